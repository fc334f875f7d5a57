"""Successive halving vs the full grid on the digits workload (issue 10), with real Snakemake.

The same configurations (a grid) are run two ways in temporary copies of the workflow:
- grid: every configuration at the full budget (`epochs = max`), every seed;
- halving: `search.method: halving` from the same grid, budget ladder min..max by eta.
Reported: the grid's best configuration (mean eval accuracy over seeds and its 95% t-interval),
the configuration halving ends with and its mean accuracy at the full budget, whether that lies
within the grid best's interval, and the training epochs each spent (sum of `epochs` over trials)
and wall time. On demand, not collected by pytest:

    .venv/bin/python benchmarks/bench_halving.py [--quick] [--cores 2] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, copy_workflow, finish, machine_line, run_timed  # noqa: E402

from snakesweep import layout  # noqa: E402

GRID = {"lr": [0.003, 0.03, 0.3], "hidden": [32, 128], "optimizer": ["sgd", "adam"]}
QUICK_GRID = {"lr": [0.003, 0.3], "hidden": [32], "optimizer": ["sgd", "adam"]}


def sweep(name: str, grid: dict, seeds: list[int], search: dict | None, max_epochs: int) -> dict:
    s = {"name": name, "workload": "digits_mlp", "steps": ["train", "eval"], "fixed": {"batch_size": 64},
         "grid": grid, "seeds": seeds}
    if search:
        s["search"] = search
    else:
        s["fixed"]["epochs"] = max_epochs
    return {"sweep": s, "device": "cpu", "report": {"objective": {"metric": "eval_accuracy", "direction": "max"}}}


def run_sweep(root: Path, cfg: dict, cores: int) -> tuple[list[dict], float]:
    work = copy_workflow(root)
    (work / "sweep.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    t = run_timed([PYTHON, "-m", "snakemake", "--cores", str(cores), "--configfile", "sweep.yaml"], cwd=work,
                  timeout=3600)
    if t.rc != 0:
        raise SystemExit(f"snakemake failed in {work}:\n{t.output[-3000:]}")
    with open(work / layout.sweep_dir(cfg["sweep"]["name"]) / "summary.csv") as fh:
        return list(csv.DictReader(fh)), t.wall_s


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    m = statistics.fmean(values)
    if len(values) < 2:
        return m, m, m
    h = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return m, m - h, m + h


def by_config(rows: list[dict], keys: list[str], only: dict | None = None) -> dict[tuple, list[float]]:
    out: dict[tuple, list[float]] = {}
    for r in rows:
        if r["status"] != "ok" or any(str(r[k]) != str(v) for k, v in (only or {}).items()):
            continue
        out.setdefault(tuple(r[k] for k in keys), []).append(float(r["eval_accuracy"]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="4 configurations, 2 seeds, max 9 epochs")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    grid, seeds, max_epochs = (QUICK_GRID, [0, 1], 9) if a.quick else (GRID, [0, 1, 2], 27)
    budget = {"param": "epochs", "min": 1, "max": max_epochs, "eta": 3}
    tmp = Path(tempfile.mkdtemp(prefix="bench-halving-"))
    print(machine_line())
    keys = list(grid)

    t0 = time.monotonic()
    grid_rows, grid_wall = run_sweep(tmp / "grid", sweep("grid", grid, seeds, None, max_epochs), a.cores)
    halving_rows, halving_wall = run_sweep(
        tmp / "halving", sweep("halving", grid, seeds, {"method": "halving", "budget": budget}, max_epochs), a.cores)

    grid_scores = {k: mean_ci(v) for k, v in by_config(grid_rows, keys).items()}
    best_key, (best_mean, lo, hi) = max(grid_scores.items(), key=lambda kv: kv[1][0])
    top = by_config(halving_rows, keys, {"epochs": max_epochs})
    (h_key, h_values), = top.items()  # the last round trains exactly one configuration
    h_mean = statistics.fmean(h_values)
    grid_epochs = sum(int(r["epochs"]) for r in grid_rows)
    halving_epochs = sum(int(r["epochs"]) for r in halving_rows)
    within = bool(lo <= h_mean <= hi or h_mean >= best_mean)  # numpy bools are not JSON
    result = {
        "grid": {"configs": len(grid_scores), "seeds": len(seeds), "trials": len(grid_rows), "epochs": grid_epochs,
                 "wall_s": round(grid_wall, 1), "best": dict(zip(keys, best_key)),
                 "best_accuracy": [round(best_mean, 4), round(lo, 4), round(hi, 4)]},
        "halving": {"trials": len(halving_rows), "epochs": halving_epochs, "wall_s": round(halving_wall, 1),
                    "winner": dict(zip(keys, h_key)), "winner_accuracy": round(h_mean, 4)},
        "epochs_fraction": round(halving_epochs / grid_epochs, 3),
        "within_grid_best_ci": within,
        "rank_of_winner_in_grid": sorted(grid_scores, key=lambda k: -grid_scores[k][0]).index(h_key) + 1,
        "total_s": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    print(f"halving: {h_mean:.4f} accuracy with {halving_epochs} epochs ({result['epochs_fraction']:.1%} of the "
          f"grid's {grid_epochs}); grid best {best_mean:.4f} [95% CI {lo:.4f}, {hi:.4f}]: "
          f"{'within' if within else 'OUTSIDE'} its interval")
    return finish(a.json, result, a.keep, tmp)


if __name__ == "__main__":
    sys.exit(main())
