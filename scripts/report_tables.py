"""Rule `report_tables` (workflow/rules/report.smk): best.json, pareto.csv, importance.csv."""

import sys

from snakesweep.report.cli import tables_main

sys.exit(tables_main())
