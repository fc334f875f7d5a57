"""snakesweep: ML sweeps and efficiency studies as Snakemake file targets."""

__version__ = "0.1.0"
