"""Rule `report_lineage` (workflow/rules/report.smk, a pbt sweep only): lineage.csv."""

import sys

from snakesweep.errors import one_line_on_disk_errors
from snakesweep.report.lineage import main

sys.exit(one_line_on_disk_errors(main))  # a full or read-only disk: one line, status 1
