"""Rules `measure` / `measure_cycle` (workflow/rules/measure.smk): measure one trial's inference
(latency, throughput, energy), holding the host's measurement lock.

Runs the step (snakesweep/steps.py: measure) in a child process under the supervisor (snakesweep/supervise.py),
which enforces `timeout_s` and leaves an error record for every way the step can fail.
"""

import sys

from snakesweep.supervise import supervise

sys.exit(supervise(["measure", *sys.argv[1:]]))
