"""Rule `report_tables` (workflow/rules/report.smk): best.json, pareto.csv, importance.csv, answer.html."""

import sys

from snakesweep.report import main

sys.exit(main())
