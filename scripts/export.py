"""Rule `export` (workflow/rules/export.smk): the sweep's trials to the trackers it asks for
(snakesweep/export: MLflow's sqlite store, W&B offline runs), on the submit host."""

import sys

from snakesweep.export.__main__ import main

sys.exit(main())
