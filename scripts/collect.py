"""Rule `collect` (workflow/rules/collect.smk): every trial's results -> summary.csv, configs.csv."""

import sys

from snakesweep.collect import main

sys.exit(main())
