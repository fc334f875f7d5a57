"""Rule `report_plots` (workflow/rules/report.smk): the PNG figures of the report and answer.html."""

import sys

from snakesweep.errors import one_line_on_disk_errors
from snakesweep.report.plots import plots_main

sys.exit(one_line_on_disk_errors(plots_main))  # a full or read-only disk: one line, status 1
