"""Rule `report_plots` (workflow/rules/report.smk): the PNG figures of the report."""

import sys

from snakesweep.plots import main

sys.exit(main())
