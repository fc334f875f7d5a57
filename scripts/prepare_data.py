"""Rule `prepare_data` (workflow/rules/plan.smk): the workload's data, once per run.

Runs the step (snakesweep/steps.py: prepare_data) in a forked child under the supervisor (snakesweep/supervise.py),
which enforces `timeout_s` and leaves an error record for every way the step can fail.
"""

import sys

from snakesweep.supervise import supervise

# the step runs in a fork of this process, whose __main__ is this file: a workload's
# multiprocessing (spawn) re-imports it, and must not start a second supervisor
if __name__ == "__main__":
    sys.exit(supervise(["prepare_data", *sys.argv[1:]]))
