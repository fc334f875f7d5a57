"""A measure-only study: what each measurement job costs beyond the configured cooldown + idle
baseline + timed window (issue 11). Measurement jobs hold the one measurement slot, so that
fixed cost is paid in series, once per trial.

The study: the built-in inference_model (an MLP with random weights, `steps: [measure]`), width
{64, 256} x batch_size {1, 16} x seeds {0, 1} = 8 trials, `measure: {warmup_batches: 3,
repeats: 10, min_window_s: 1, baseline_s: 0.5, cooldown_s: 0.5}`, device cpu, run by
`snakemake --cores 2` in a temporary copy of the workflow (what a user has after `git clone`).
Per job: the job's wall time from Snakemake's benchmark record, the window the step measured
(`window_s` in measure.json), and the fixed cost = job wall - (cooldown + baseline + window).

The baseline (same run, same machine): what a user would write instead, one plain Python
process per trial, run one after another (the serial slot): `import torch`, build the same model
through the same function (snakesweep.workloads.inference_model.inference) and measure it with
the same protocol (snakesweep.measure.run_measurement, same settings), write a JSON. Its fixed
cost is computed the same way, from its own wall time and window.

Runs alternate (hand, real, real, hand, ...); each figure is the minimum over repeats.

    .venv/bin/python benchmarks/bench_measure_only.py [--repeats 1] [--keep] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, Budget, add_run_args, finish, job_env, loadavg, machine_line, real_and_hand, run_timed  # noqa: E402

from snakesweep import layout  # noqa: E402

COOLDOWN_S, BASELINE_S = 0.5, 0.5
FIXED = {"model": "mlp", "depth": 2, "threads": 1}
GRID = {"width": [64, 256], "batch_size": [1, 16], "seed": [0, 1]}

SWEEP = f"""\
sweep:
  name: bench-measure-only
  workload: inference_model
  steps: [measure]
  fixed: {json.dumps(FIXED)}
  grid: {{width: {GRID['width']}, batch_size: {GRID['batch_size']}}}
  seeds: {GRID['seed']}
measure: {{warmup_batches: 3, repeats: 10, min_window_s: 1, baseline_s: {BASELINE_S}, cooldown_s: {COOLDOWN_S}}}
device: cpu
report: {{objective: {{metric: throughput_sps, direction: max}}}}
"""

HAND_MEASURE = f"""\
import json, sys
from pathlib import Path
from types import SimpleNamespace

from snakesweep.measure import run_measurement
from snakesweep.workloads import inference_model as w

params, out = json.loads(sys.argv[1]), Path(sys.argv[2])
settings = SimpleNamespace(batch_size=256, warmup_batches=3, repeats=10, min_window_s=1.0, baseline_s={BASELINE_S},
                           cooldown_s={COOLDOWN_S}, max_start_temp_c=None, temp_wait_timeout_s=300.0,
                           sample_interval_s=0.1, cycles=1, cycle_order="interleaved")
fn, batches, sizes = w.inference(params, None, data_dir=Path("."), device="cpu", batch_size=256)
metrics = run_measurement(fn, batches, sizes, "cpu", settings)
out.write_text(json.dumps({{k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}}))
"""


def trials() -> list[dict]:
    keys = list(GRID)
    return [{**FIXED, **dict(zip(keys, vals))} for vals in itertools.product(*GRID.values())]


def run_real(real: Path, env: dict[str, str], timeout: float) -> dict:
    for name in ("results", "logs", ".snakemake"):
        shutil.rmtree(real / name, ignore_errors=True)
    t = run_timed([PYTHON, "-m", "snakemake", "--cores", "2", "--configfile", "sweep.yaml"], real, env, timeout)
    if t.rc:
        print(t.output[-4000:])
        raise SystemExit(f"the workflow run failed with status {t.rc}")
    jobs, fixed = [], []
    sweep = real / layout.sweep_dir_of_file(real / "sweep.yaml")  # the sweep's own directory
    for tsv in sorted((sweep / "benchmarks" / "measure").glob("*.tsv")):
        with open(tsv) as fh:
            job_s = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
        record = json.loads((sweep / "trials" / tsv.stem / "measure.json").read_text())
        window = float(record["metrics"]["window_s"])
        jobs.append(job_s)
        fixed.append(job_s - (COOLDOWN_S + BASELINE_S + window))
    if len(jobs) != len(trials()):
        raise SystemExit(f"expected {len(trials())} benchmark records, found {len(jobs)}")
    return {"total_s": t.wall_s, "cpu_s": t.cpu_s, "job_s": jobs, "fixed_s": fixed}


def run_hand(hand: Path, env: dict[str, str], timeout: float) -> dict:
    jobs, fixed, total, cpu = [], [], 0.0, 0.0
    for i, params in enumerate(trials()):  # one after another: the measurement slot
        out = hand / f"measure.{i}.json"
        t = run_timed([PYTHON, "hand_measure.py", json.dumps(params), str(out)], hand, env, timeout)
        if t.rc:
            print(t.output[-4000:])
            raise SystemExit(f"the hand-written measurement failed with status {t.rc}")
        window = float(json.loads(out.read_text())["window_s"])
        jobs.append(t.wall_s)
        fixed.append(t.wall_s - (COOLDOWN_S + BASELINE_S + window))
        total += t.wall_s
        cpu += t.cpu_s
    return {"total_s": total, "cpu_s": cpu, "job_s": jobs, "fixed_s": fixed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1, help="pairs (default 1)")
    add_run_args(ap, budget_s=900)
    a = ap.parse_args(argv)
    budget = Budget(a.budget_s)
    tmp, real, hand = real_and_hand("snakesweep-bench-measure-", a.workflow_root, SWEEP, {"hand_measure.py": HAND_MEASURE})
    env = job_env(a.workflow_root, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # as the workflow gives each job
    print(machine_line())
    print(f"workflow: {a.workflow_root}; temp dir {tmp}; {len(trials())} trials, cooldown {COOLDOWN_S} s + "
          f"baseline {BASELINE_S} s + window (>= 1 s) per measurement")
    runs: dict[str, list[dict]] = {"real": [], "hand": []}
    order = []
    for i in range(a.repeats):
        order += ("hand", "real") if i % 2 == 0 else ("real", "hand")
    for which in order:
        if runs["real"] and runs["hand"] and not budget.allows(120):
            print(f"  budget of {a.budget_s:.0f} s reached: stopping repeats")
            break
        r = (run_real if which == "real" else run_hand)(real if which == "real" else hand, env, max(120, budget.left()))
        runs[which].append(r)
        print(f"  {which}: study wall {r['total_s']:6.1f} s, per job {statistics.median(r['job_s']):.2f} s, "
              f"fixed {statistics.median(r['fixed_s']):.2f} s (median)  (load {loadavg()})", flush=True)
    best = {k: min(v, key=lambda r: r["total_s"]) for k, v in runs.items()}
    n = len(trials())
    fixed_real, fixed_hand = (statistics.median(best[k]["fixed_s"]) for k in ("real", "hand"))
    job_real, job_hand = (statistics.median(best[k]["job_s"]) for k in ("real", "hand"))
    print("\n== measure-only study, fixed cost per measurement job (paid in series) ==")
    print(f"snakesweep: {fixed_real:.2f} s per job beyond cooldown + baseline + window (job {job_real:.2f} s); "
          f"study {best['real']['total_s']:.1f} s for {n} trials ({best['real']['total_s'] / n:.2f} s/trial, "
          "plan, data and reports included)")
    print(f"hand-written process: {fixed_hand:.2f} s per job (job {job_hand:.2f} s); "
          f"{best['hand']['total_s']:.1f} s for {n} in series")
    print(f"fixed cost ratio {fixed_real / fixed_hand:.2f}x ({fixed_real - fixed_hand:+.2f} s per job); "
          f"job wall ratio {job_real / job_hand:.2f}x; study wall ratio "
          f"{best['real']['total_s'] / best['hand']['total_s']:.2f}x")
    payload = {"trials": n, "real": best["real"], "hand": best["hand"], "fixed_real_s": fixed_real,
               "fixed_hand_s": fixed_hand, "job_real_s": job_real, "job_hand_s": job_hand}
    return finish(a.json, payload, a.keep, tmp)


if __name__ == "__main__":
    sys.exit(main())
