"""Rule `report_plots` (workflow/rules/report.smk): the PNG figures of the report and answer.html."""

import sys

from snakesweep.report.plots import plots_main

sys.exit(plots_main())
