"""Successive halving vs the full grid, with real Snakemake (issues 10 and 19).

The same configurations (a grid) are run two ways in temporary copies of the workflow, in one run:
- grid: every configuration at the full budget (`epochs = max`), every seed;
- halving: `search.method: halving` from the same grid, budget ladder min..max by eta; a promoted
  configuration's train step continues from its previous rung's checkpoint (`resume_dir`), so it
  trains only the increment.
Reported: the grid's best configuration (mean eval accuracy over seeds and its 95% t-interval),
the configuration halving ends with and its mean accuracy at the full budget, whether that lies
within the grid best's interval, the training epochs each actually ran (the increments: the sum of
`epochs_run` over train records), wall time and CPU time (user + sys of Snakemake and every job).

Workloads (`--workload`):
- spin (default): a module workload written into the temp dir whose train step spins a fixed CPU
  time per epoch (`--epoch-cpu-s`, process time, so a loaded machine costs wall, not CPU) and
  continues from its checkpoint; its accuracy rises with the epochs trained towards a ceiling that
  depends on the configuration (a fast starter is not always the best at the top budget), plus
  seed noise. Training dominates the job start-up, as the issue asks;
- digits: the built-in digits_mlp (torch), where start-up dominates at these sizes.
On demand, not collected by pytest:

    .venv/bin/python benchmarks/bench_halving.py [--workload spin|digits] [--quick] [--cores 2] [--json out.json] [--keep]
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
from common import PYTHON, copy_workflow, finish, loadavg, machine_line, run_timed  # noqa: E402

from snakesweep import layout  # noqa: E402

GRID = {"lr": [0.003, 0.03, 0.3], "hidden": [32, 128], "optimizer": ["sgd", "adam"]}
QUICK_GRID = {"lr": [0.003, 0.3], "hidden": [32], "optimizer": ["sgd", "adam"]}
SPIN_GRID = {"rate": [0.05, 0.1, 0.2], "cap": [0.8, 0.9, 0.95]}
QUICK_SPIN_GRID = {"rate": [0.05, 0.2], "cap": [0.8, 0.95]}

SPIN = '''"""bench_halving's workload: a fixed CPU time per epoch, continued from its checkpoint."""
import hashlib, json, math, time
from pathlib import Path


def prepare(data_dir):
    Path(data_dir, "data.json").write_text("{}")


def _spin(seconds):
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x += 1
    return x


def train(params, out_dir, *, data_dir, device, resume_dir=None):
    done = json.loads(Path(resume_dir, "model.json").read_text())["epochs"] if resume_dir else 0
    epochs = int(params["epochs"])
    for _ in range(done, epochs):
        _spin(float(params["epoch_cpu_s"]))
    Path(out_dir, "model.json").write_text(json.dumps({"epochs": epochs}))
    return {"train_loss": 1.0 / (1 + epochs), "epochs_run": epochs - done, "epochs_from": done}


def evaluate(params, train_dir, *, data_dir, device):
    epochs = json.loads(Path(train_dir, "model.json").read_text())["epochs"]
    # rises with the epochs towards the configuration's ceiling: a fast rate is ahead early, a
    # high cap wins late; seed noise of +-0.005
    noise = int(hashlib.sha256(str(params["seed"]).encode()).hexdigest()[:4], 16) / 0xFFFF - 0.5
    acc = params["cap"] * (1 - math.exp(-params["rate"] * epochs)) + 0.01 * noise
    return {"eval_accuracy": acc}
'''


def sweep(name: str, grid: dict, seeds: list[int], search: dict | None, max_epochs: int, workload: str,
          epoch_cpu_s: float) -> dict:
    fixed = {"batch_size": 64} if workload == "digits" else {"epoch_cpu_s": epoch_cpu_s}
    s = {"name": name, "workload": "digits_mlp" if workload == "digits" else "spin.py", "steps": ["train", "eval"],
         "fixed": fixed, "grid": grid, "seeds": seeds}
    if search:
        s["search"] = search
    else:
        s["fixed"]["epochs"] = max_epochs
    return {"sweep": s, "device": "cpu", "report": {"objective": {"metric": "eval_accuracy", "direction": "max"}}}


def run_sweep(root: Path, cfg: dict, cores: int) -> tuple[list[dict], float, float, int]:
    """(summary rows, wall s, CPU s of Snakemake and its jobs, epochs the train steps ran)."""
    work = copy_workflow(root)
    (work / "spin.py").write_text(SPIN)
    (work / "sweep.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    t = run_timed([PYTHON, "-m", "snakemake", "--cores", str(cores), "--configfile", "sweep.yaml"], cwd=work,
                  timeout=3600)
    if t.rc != 0:
        raise SystemExit(f"snakemake failed in {work}:\n{t.output[-3000:]}")
    sweep_dir = work / layout.sweep_dir(cfg["sweep"]["name"])
    with open(sweep_dir / "summary.csv") as fh:
        rows = list(csv.DictReader(fh))
    ran = 0
    for f in sweep_dir.glob("trials/*/train.json"):
        rec = json.loads(f.read_text())
        m = rec.get("metrics") or {}
        ran += int(m.get("epochs_run", rec["params"]["epochs"]))  # digits and spin report the increment
    return rows, t.wall_s, t.cpu_s, ran


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
    ap.add_argument("--workload", choices=["spin", "digits"], default="spin")
    ap.add_argument("--quick", action="store_true", help="4 configurations, 2 seeds, max 9 epochs")
    ap.add_argument("--epoch-cpu-s", type=float, default=0.5, help="spin: CPU seconds per epoch")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.workload == "digits":
        grid, seeds, max_epochs = (QUICK_GRID, [0, 1], 9) if a.quick else (GRID, [0, 1, 2], 27)
    else:
        grid, seeds, max_epochs = (QUICK_SPIN_GRID, [0, 1], 9) if a.quick else (SPIN_GRID, [0, 1, 2], 27)
    budget = {"param": "epochs", "min": 1, "max": max_epochs, "eta": 3}
    tmp = Path(tempfile.mkdtemp(prefix="bench-halving-"))
    print(machine_line())
    keys = list(grid)

    t0 = time.monotonic()
    load = [loadavg()]
    grid_rows, grid_wall, grid_cpu, grid_epochs = run_sweep(
        tmp / "grid", sweep("grid", grid, seeds, None, max_epochs, a.workload, a.epoch_cpu_s), a.cores)
    load.append(loadavg())
    halving_rows, halving_wall, halving_cpu, halving_epochs = run_sweep(
        tmp / "halving", sweep("halving", grid, seeds, {"method": "halving", "budget": budget}, max_epochs,
                               a.workload, a.epoch_cpu_s), a.cores)
    load.append(loadavg())

    grid_scores = {k: mean_ci(v) for k, v in by_config(grid_rows, keys).items()}
    best_key, (best_mean, lo, hi) = max(grid_scores.items(), key=lambda kv: kv[1][0])
    top = by_config(halving_rows, keys, {"epochs": max_epochs})
    (h_key, h_values), = top.items()  # the last round trains exactly one configuration
    h_mean = statistics.fmean(h_values)
    within = bool(lo <= h_mean <= hi or h_mean >= best_mean)  # numpy bools are not JSON
    result = {
        "workload": a.workload, "epoch_cpu_s": a.epoch_cpu_s if a.workload == "spin" else None,
        "grid": {"configs": len(grid_scores), "seeds": len(seeds), "trials": len(grid_rows), "epochs_run": grid_epochs,
                 "wall_s": round(grid_wall, 1), "cpu_s": round(grid_cpu, 1), "best": dict(zip(keys, best_key)),
                 "best_accuracy": [round(best_mean, 4), round(lo, 4), round(hi, 4)]},
        "halving": {"trials": len(halving_rows), "epochs_run": halving_epochs, "wall_s": round(halving_wall, 1),
                    "cpu_s": round(halving_cpu, 1), "winner": dict(zip(keys, h_key)),
                    "winner_accuracy": round(h_mean, 4)},
        "epochs_fraction": round(halving_epochs / grid_epochs, 3),
        "wall_fraction": round(halving_wall / grid_wall, 3),
        "cpu_fraction": round(halving_cpu / grid_cpu, 3),
        "within_grid_best_ci": within,
        "rank_of_winner_in_grid": sorted(grid_scores, key=lambda k: -grid_scores[k][0]).index(h_key) + 1,
        "load_average": load,
        "total_s": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result, indent=2))
    print(f"halving: {h_mean:.4f} accuracy with {halving_epochs} epochs run ({result['epochs_fraction']:.1%} of the "
          f"grid's {grid_epochs}), wall {result['wall_fraction']:.2f}x and CPU {result['cpu_fraction']:.2f}x the "
          f"grid's (target <= 0.5x); grid best {best_mean:.4f} [95% CI {lo:.4f}, {hi:.4f}]: "
          f"{'within' if within else 'OUTSIDE'} its interval")
    return finish(a.json, result, a.keep, tmp)


if __name__ == "__main__":
    sys.exit(main())
