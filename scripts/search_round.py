"""Rule `search_round` (workflow/rules/search.smk): choose one round's trials of a halving or
optuna search from the sweep file and the earlier rounds' results (snakesweep/search.py: main)."""

import sys

args = sys.argv[1:]
at = args.index("--log")
sys.stderr = open(args[at + 1], "w")
del args[at : at + 2]

from snakesweep.search import main  # noqa: E402

sys.exit(main(args))
