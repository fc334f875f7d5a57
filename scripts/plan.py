"""Rule `plan`: write the plan the trials read, and its readable index.

The plan is rebuilt here from the validated config Snakemake hands the script, rather than
passed as a rule parameter: parameters are stored in Snakemake's metadata for every run.
"""

import sys

sys.stderr = open(snakemake.log[0], "w")

from snakesweep.config import validate_config
from snakesweep.grid import expand
from snakesweep.plan import build_plan, write_plan

cfg = validate_config(snakemake.config, "config")
plan = build_plan(cfg, expand(cfg.sweep))
assert plan["sweep_hash"] == snakemake.params.sweep_hash, "the plan must describe the sweep Snakemake validated"
write_plan(plan, snakemake.output.json, snakemake.output.csv)
