"""Rules `measure` / `measure_cycle` (workflow/rules/measure.smk): measure one trial's inference
(latency, throughput, energy), holding the host's measurement lock.

Runs the step (snakesweep/steps.py: measure) in a forked child under the supervisor (snakesweep/supervise.py),
which enforces `timeout_s` and leaves an error record for every way the step can fail.
"""

import sys

from snakesweep.supervise import supervise

# the step runs in a fork of this process, whose __main__ is this file: a workload's
# multiprocessing (spawn) re-imports it, and must not start a second supervisor
if __name__ == "__main__":
    sys.exit(supervise(["measure", *sys.argv[1:]]))
