"""snakesweep: ML sweeps and efficiency studies as Snakemake file targets.

Imports run one way, from the reports down to the records (checked by tests/test_imports.py,
whose LAYERS is this paragraph as data). Layers, top to bottom; a module imports its own layer
or a lower one, never a higher one, and no two modules import each other, directly or round a
circle (function-level imports count too; only `if TYPE_CHECKING:` imports are exempt):

    compare, export | summary | report (the package) | collect, preview, status |
    state, reconcile | steps, supervise | plan | search | hyperband, pbt | grid | space |
    workloads (the package) | config | generation | measure | results, rounds, bookkeeping,
    table, params, errors, stats, energy, measure_lock, layout, procs, sweepfile, markdown,
    threads, profile, argv

Each on-disk format has one owner in the bottom layer: results (result and error records),
rounds (search round files), bookkeeping (Snakemake's .snakemake/), table (the CSV cells of
summary.csv and configs.csv); the plan has one loader, plan.load_plan. A function-level import
marked `# lazy` keeps a step process light; none exists to dodge a circle.
"""

__version__ = "0.1.0"
