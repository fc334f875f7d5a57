"""python -m snakesweep.report: the report_tables main (best.json, pareto.csv, importance.csv)."""

import sys

from .cli import tables_main

sys.exit(tables_main())
