"""python -m snakesweep.export {mlflow,wandb} [SWEEP]: see :mod:`snakesweep.export`."""

from __future__ import annotations

import argparse
import sys

from snakesweep.errors import ConfigError

from . import read_runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.export",
                                 description="A sweep's trials as MLflow runs (local sqlite store) or W&B offline runs.")
    sub = ap.add_subparsers(dest="target", required=True)
    m = sub.add_parser("mlflow", help="one MLflow run per trial (default store: sqlite:///<sweep dir>/mlflow.db)")
    m.add_argument("sweep", nargs="?", help="a sweep file, a sweep's directory or a checkout (default: config/config.yaml)")
    m.add_argument("--tracking-uri", help="a tracking server or store URI (default: the sweep's own sqlite store)")
    m.add_argument("--experiment", help="the experiment's name (default: the sweep's name)")
    w = sub.add_parser("wandb", help="one W&B run per trial, offline, inside the sweep's directory (then: wandb sync)")
    w.add_argument("sweep", nargs="?", help="a sweep file, a sweep's directory or a checkout (default: config/config.yaml)")
    w.add_argument("--project", help="the W&B project (default: the sweep's name)")
    ap.add_argument("--marker", help=argparse.SUPPRESS)  # the export rule's output: the counts as JSON
    args = ap.parse_args(argv)
    try:
        runs = read_runs(args.sweep)
        if args.target == "mlflow":
            from .to_mlflow import export_mlflow

            counts = export_mlflow(runs, args.tracking_uri, args.experiment)
        else:
            from .to_wandb import export_wandb

            counts = export_wandb(runs, args.project)
    except ConfigError as err:
        print(f"export: {err}", file=sys.stderr)
        return 2
    line = (f"export {args.target}: {len(runs.runs)} trials of {runs.name!r} -> {counts['where']}: "
            f"{counts['added']} added, {counts['updated']} updated, {counts['unchanged']} unchanged"
            + (f"; {runs.pending} not finished yet (not exported)" if runs.pending else ""))
    print(line)
    if args.marker:
        import json

        from snakesweep.results import atomic_write_text

        atomic_write_text(args.marker, json.dumps({**counts, "trials": len(runs.runs), "pending": runs.pending}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
