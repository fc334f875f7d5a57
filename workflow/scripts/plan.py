"""Rule `plan`: write the plan the trials read, and its readable index."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from snakesweep.plan import write_plan

write_plan(snakemake.params.plan, snakemake.output.json, snakemake.output.csv)
