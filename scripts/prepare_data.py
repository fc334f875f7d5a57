"""Rule `prepare_data` (workflow/rules/plan.smk): the workload's data, once per run.

Runs the step (snakesweep/steps.py: prepare_data) in a child process under the supervisor (snakesweep/supervise.py),
which enforces `timeout_s` and leaves an error record for every way the step can fail.
"""

import sys

from snakesweep.supervise import supervise

sys.exit(supervise(["prepare_data", *sys.argv[1:]]))
