"""Rule `report_lineage` (workflow/rules/report.smk, a pbt sweep only): lineage.csv."""

import sys

from snakesweep.report.lineage import main

sys.exit(main())
