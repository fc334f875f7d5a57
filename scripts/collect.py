"""Rule `collect` (workflow/rules/collect.smk): every trial's results -> summary.csv (snakesweep.collect),
then configs.csv aggregated from it (snakesweep.report.write_configs)."""

import sys

from snakesweep.report.cli import collect_main

sys.exit(collect_main())
