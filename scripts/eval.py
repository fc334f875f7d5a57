"""Rule `eval` (workflow/rules/eval.smk): evaluate one trial's trained model.

Runs the step (snakesweep/steps.py: evaluate) in a child process under the supervisor (snakesweep/supervise.py),
which enforces `timeout_s` and leaves an error record for every way the step can fail.
"""

import sys

from snakesweep.supervise import supervise

sys.exit(supervise(["eval", *sys.argv[1:]]))
