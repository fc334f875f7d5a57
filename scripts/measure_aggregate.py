"""Rule `measure` with cycles (workflow/rules/measure.smk): combine a trial's measurement cycles.

Runs the step (snakesweep/steps.py: measure_aggregate) in a child process under the supervisor (snakesweep/supervise.py),
which enforces `timeout_s` and leaves an error record for every way the step can fail.
"""

import sys

from snakesweep.supervise import supervise

sys.exit(supervise(["measure_aggregate", *sys.argv[1:]]))
