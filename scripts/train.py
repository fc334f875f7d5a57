"""Rule `train` (workflow/rules/train.smk): train one trial.

Runs the step (snakesweep/steps.py: train) in a child process under the supervisor (snakesweep/supervise.py),
which enforces `timeout_s` and leaves an error record for every way the step can fail.
"""

import sys

from snakesweep.supervise import supervise

sys.exit(supervise(["train", *sys.argv[1:]]))
