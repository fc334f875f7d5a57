"""`snakesweep.report.collect` on 10,000 synthetic trial results (issue 2, benchmark 3; target:
under 10 s on this machine), against the time just to read every JSON file it reads.

Writes into a temporary directory a real plan (the built-in digits_mlp, lr: 100 log-spaced
values x hidden: 50 values x 2 seeds = 10,000 trials, ids and params from snakesweep.grid) and,
per trial, train.json (10-epoch history), eval.json and measure.json in the documented result
schema, with the metric keys the real steps write and synthetic values. Then, interleaved
(read, collect, collect, read, ...), times:
- the baseline: json.load of the plan and of every result file, nothing else;
- collect(plan, results, logs, summary.csv, configs.csv), in this process;
and once, `python scripts/collect.py ...` as the `collect` rule runs it (imports included).

    .venv/bin/python benchmarks/bench_collect.py [--quick] [--trials 10000] [--repeats 2] [--budget-s 300]

With ``--keys K`` (issue 17, target: collect and both report rules under 30 s at K = 20,000), a
wide sweep instead: 6 trials (``--trials``, a multiple of 3: lr values x 3 seeds) whose
eval.json has K numeric metric keys (half plain, half accuracy-like) and four label keys, plus
train.json and the usual measure.json. Interleaved, it times the baseline, the simplest pandas
a user would write (the JSONs read into rows, ``pd.DataFrame(rows).groupby(params).mean()``,
numeric columns only: it fails on the label columns otherwise), against collect() in this
process; then, once each, the rules' three commands (scripts/collect.py, report_tables.py,
report_plots.py with the argv the rules pass), imports included.

    .venv/bin/python benchmarks/bench_collect.py --keys 20000 [--trials 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import PYTHON, REPO, Budget, finish, machine_line, run_timed  # noqa: E402

from snakesweep.config import validate_config  # noqa: E402
from snakesweep.grid import expand  # noqa: E402
from snakesweep.plan import build_plan, write_plan  # noqa: E402
from snakesweep.report import collect  # noqa: E402
from snakesweep.results import STEPS, result_record  # noqa: E402

TARGET_S = 10.0
KEYS_TARGET_S = 30.0  # --keys: collect + report_tables + report_plots, as processes


def make_sweep(n: int) -> dict:
    points = n // 2
    lr_num = min(100, points)
    hidden = list(range(8, 8 + points // lr_num))
    if lr_num * len(hidden) * 2 != n:
        raise SystemExit(f"--trials must be 2 x {lr_num} x k (got {n})")
    return {
        "sweep": {"name": f"bench-collect-{n}", "workload": "digits_mlp", "fixed": {"epochs": 10, "batch_size": 64},
                  "grid": {"lr": {"log": [1e-4, 1e-1], "num": lr_num}, "hidden": hidden}, "seeds": [0, 1],
                  "max_trials": max(n, 1000)},
        "device": "cpu",
    }


def metrics_for(step: str, rng: random.Random) -> dict:
    if step == "train":
        hist = [{"epoch": e + 1, "loss": 2.3 / (e + 1) + rng.random() * 0.01} for e in range(10)]
        return {"train_loss": hist[-1]["loss"], "train_time_s": 1 + rng.random(), "history": hist}
    if step == "eval":
        return {"eval_accuracy": 0.9 + rng.random() * 0.09, "eval_loss": 0.2 + rng.random() * 0.1}
    lat = 0.2 + rng.random() * 0.05
    return {
        "latency_ms_p50": lat, "latency_ms_p95": lat * 1.2, "latency_ms_p99": lat * 1.4,
        "throughput_sps": 256 / lat * 1000, "peak_mem_mb": 300 + rng.random() * 10,
        "energy_j_per_sample": None, "energy_j_per_sample_net": None, "energy_j": None, "baseline_power_w": None,
        "energy_source": "unavailable: no NVIDIA GPU in use and RAPL not readable",
        "energy_method_detail": "", "window_s": 1.0 + rng.random(), "n_batches_timed": 140, "n_samples_timed": 63000,
        "sample_interval_s": None, "device_name": "cpu", "driver_version": None, "nvml_version": None,
        "flag_short_window": False, "flag_energy_zero": False, "flag_gpu_shared": None, "flag_throttled": None,
        "flag_detail": "", "temp_start_c": None, "temp_end_c": None, "cycles": 1,
    }


def write_results(root: Path, n: int) -> tuple[Path, list[Path]]:
    return _write_sweep(root, make_sweep(n), lambda step, _params, rng: metrics_for(step, rng))


def _write_sweep(root: Path, sweep: dict, metrics_of) -> tuple[Path, list[Path]]:
    """A real plan of `sweep` and every trial's step records, metrics from `metrics_of(step, params, rng)`."""
    cfg = validate_config(sweep, "bench")
    trials = expand(cfg.sweep)
    plan = build_plan(cfg, trials)
    plan_path = root / "results/plan/trials.json"
    write_plan(plan, plan_path, root / "results/plan/trials.csv")
    rng = random.Random(0)
    files = []
    for t in trials:
        d = root / "results/trials" / t.id
        d.mkdir(parents=True)
        for step in STEPS:
            rec = result_record(trial=t.id, step=step, params=t.params, metrics=metrics_of(step, t.params, rng),
                                started_at="2026-01-01T00:00:00.000+00:00", ended_at="2026-01-01T00:00:01.000+00:00",
                                duration_s=1.0, device="cpu", sweep_hash=plan["sweep_hash"])
            p = d / f"{step}.json"
            p.write_text(json.dumps(rec, indent=2) + "\n")  # what atomic_write_json writes, minus the fsync
            files.append(p)
    return plan_path, files


def make_wide_sweep(n: int) -> dict:
    if n % 3:
        raise SystemExit(f"--trials must be a multiple of 3 with --keys (lr values x 3 seeds; got {n})")
    return {
        "sweep": {"name": f"bench-collect-wide-{n}", "workload": "digits_mlp", "fixed": {"epochs": 1},
                  "grid": {"lr": [round(1e-3 * (i + 1), 6) for i in range(n // 3)]}, "seeds": [0, 1, 2]},
        "device": "cpu",
    }


def wide_eval_metrics(keys: int, params: dict, rng: random.Random) -> dict:
    """`keys` numeric metrics: k<j> plain numbers, acc_<j> scores in [0, 1]; and four labels."""
    out: dict = {}
    for j in range(keys - keys // 2):
        out[f"k{j}"] = params["lr"] * 100 + j / 1e4 + rng.random() * 0.01
    for j in range(keys // 2):
        out[f"acc_{j}"] = 0.9 + rng.random() * 0.09
    return {**out, "eval_accuracy": 0.9 + rng.random() * 0.09, "tag": "bench", "energy_source": "rapl",
            "driver_version": "12.5", "device_name": "cpu"}


def write_wide_results(root: Path, n: int, keys: int) -> tuple[Path, list[Path]]:
    def metrics_of(step: str, params: dict, rng: random.Random) -> dict:
        return wide_eval_metrics(keys, params, rng) if step == "eval" else metrics_for(step, rng)

    return _write_sweep(root, make_wide_sweep(n), metrics_of)


def naive_configs(plan_path: Path, results: Path) -> int:
    """The baseline: every trial's scalar metrics into one row, then one pandas groupby mean."""
    import pandas as pd

    plan = json.load(open(plan_path))
    rows = []
    for t in plan["trials"]:
        row = dict(t["params"])
        for step in STEPS:
            with open(results / "trials" / t["trial"] / f"{step}.json") as fh:
                row.update({k: v for k, v in json.load(fh)["metrics"].items() if not isinstance(v, (list, dict))})
        rows.append(row)
    params = [p for p in plan["param_names"] if p != "seed"]
    return len(pd.DataFrame(rows).groupby(params).mean(numeric_only=True))


def main_keys(a: argparse.Namespace) -> int:
    """--keys: collect and the two report rules on a wide metrics table (see the module docstring)."""
    from snakesweep.report import report_command_args

    n, keys = a.trials or 6, a.keys
    budget = Budget(a.budget_s)
    root = Path(tempfile.mkdtemp(prefix="snakesweep-bench-collect-wide-"))
    print(machine_line())
    t0 = time.perf_counter()
    plan_path, files = write_wide_results(root, n, keys)
    print(f"wrote the plan and {len(files)} result files for {n} trials x {keys} metric keys in "
          f"{time.perf_counter() - t0:.1f} s ({root})")
    results, logs = root / "results", root / "logs"
    summary, configs = results / "summary.csv", results / "configs.csv"
    naive, ours = [], []
    longest = 0.0
    for i in range(a.repeats):
        for which in (["naive", "collect"] if i % 2 == 0 else ["collect", "naive"]):
            if longest and not budget.allows(longest * 1.5):
                print(f"budget of {a.budget_s:.0f} s reached")
                break
            fn = (lambda: naive_configs(plan_path, results)) if which == "naive" else (
                lambda: collect(plan_path, results, logs, summary, configs))
            w, c = timed(fn)
            (naive if which == "naive" else ours).append((w, c))
            longest = max(longest, w)
            print(f"  {which:7s}: wall {w:6.2f} s  cpu {c:6.2f} s  (load {os.getloadavg()[0]:.2f})")
    with open(summary) as fh:
        header = fh.readline().rstrip("\n").split(",")
    assert len(header) > keys, f"summary.csv has {len(header)} columns; expected more than {keys}"

    settings = {"objective": "eval_accuracy", "direction": "max", "extra": "latency_ms_p50:min"}
    tables, plots = report_command_args(settings, str(results))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    commands = [
        ("scripts/collect.py", ["--plan", str(plan_path), "--summary", str(summary), "--configs", str(configs),
                                "--logs", str(logs)]),
        ("scripts/report_tables.py", tables),
        ("scripts/report_plots.py", plots),
    ]
    procs = []
    for script, args in commands:
        if not budget.allows(longest * 2):
            print(f"budget of {a.budget_s:.0f} s reached before {script}")
            break
        t = run_timed([PYTHON, str(REPO / script), *args], root, env, timeout=max(60, budget.left()))
        if t.rc:
            print(t.output[-2000:])
        procs.append((script, t))
        longest = max(longest, t.wall_s)

    nw, nc = min(w for w, _ in naive), min(c for _, c in naive)
    cw, cc = min(w for w, _ in ours), min(c for _, c in ours)
    print(f"\n== {n} trials x {keys} metric keys ({len(header)} summary.csv columns), min of {len(ours)} ==")
    print(f"baseline, pd.DataFrame(rows).groupby(params).mean():  wall {nw:.2f} s, cpu {nc:.2f} s")
    print(f"collect() (summary.csv + configs.csv):                wall {cw:.2f} s, cpu {cc:.2f} s  -> {cw / nw:.2f}x the baseline")
    for script, t in procs:
        print(f"python {script:26s} wall {t.wall_s:6.2f} s, cpu {t.cpu_s:6.2f} s, peak rss {t.maxrss_mb:.0f} MB"
              + (f"  (exit {t.rc})" if t.rc else ""))
    total = sum(t.wall_s for _, t in procs)
    whole = len(procs) == len(commands) and not any(t.rc for _, t in procs)
    print(f"target: the three rule commands < {KEYS_TARGET_S:g} s together: "
          f"{'PASS' if whole and total < KEYS_TARGET_S else 'MISS'} ({total:.2f} s"
          + ("" if whole else ", incomplete") + ")")
    payload = {"machine": machine_line(), "trials": n, "keys": keys, "naive_wall_s": nw, "naive_cpu_s": nc,
               "collect_wall_s": cw, "collect_cpu_s": cc, **{f"{Path(s).stem}_wall_s": t.wall_s for s, t in procs}}
    return finish(a.json, payload, a.keep, root)


def read_all(plan_path: Path, files: list[Path]) -> int:
    n = len(json.load(open(plan_path))["trials"])
    for p in files:
        with open(p) as fh:
            json.load(fh)
    return n


def timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    # config_hash() of a grid with a {log:/lin:} range makes pydantic warn about its union
    # serialisation (a snakesweep.config matter, reported; the hash is unaffected): not ours here
    warnings.filterwarnings("ignore", message="Pydantic serializer warnings")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 trials instead of 10,000")
    ap.add_argument("--trials", type=int)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keys", type=int, help="a wide sweep instead: this many metric keys per trial (issue 17)")
    a = ap.parse_args(argv)
    if a.keys:
        return main_keys(a)
    n = a.trials or (2000 if a.quick else 10000)
    budget = Budget(a.budget_s)
    root = Path(tempfile.mkdtemp(prefix="snakesweep-bench-collect-"))
    print(machine_line())
    t0 = time.perf_counter()
    plan_path, files = write_results(root, n)
    print(f"wrote the plan and {len(files)} result files for {n} trials in {time.perf_counter() - t0:.1f} s ({root})")
    results, logs = root / "results", root / "logs"
    summary, configs = results / "summary.csv", results / "configs.csv"

    reads, collects = [], []
    order = []
    for i in range(a.repeats):
        order += ["read", "collect"] if i % 2 == 0 else ["collect", "read"]
    longest = 0.0
    for which in order:
        if longest and not budget.allows(longest * 1.5):
            print(f"budget of {a.budget_s:.0f} s reached")
            break
        if which == "read":
            w, c = timed(lambda: read_all(plan_path, files))
            reads.append((w, c))
        else:
            w, c = timed(lambda: collect(plan_path, results, logs, summary, configs))
            collects.append((w, c))
        longest = max(longest, w)
        print(f"  {which:7s}: wall {w:6.2f} s  cpu {c:6.2f} s  (load {os.getloadavg()[0]:.2f})")

    with open(summary) as fh:
        rows = list(csv.DictReader(fh))
    ok = sum(r["status"] == "ok" for r in rows)
    with open(configs) as fh:
        n_cfg = sum(1 for _ in csv.DictReader(fh))
    assert len(rows) == n and ok == n, f"summary has {len(rows)} rows, {ok} ok; expected {n}"

    cli = None
    if budget.allows(longest * 2):
        cli = run_timed([PYTHON, str(REPO / "scripts" / "collect.py"), "--plan", str(plan_path), "--summary", str(summary),
                         "--configs", str(configs), "--logs", str(logs)], root,
                        dict(os.environ, PYTHONPATH=str(REPO)), timeout=max(60, budget.left()))
        if cli.rc:
            print(cli.output[-2000:])

    rw, rc = min(w for w, _ in reads), min(c for _, c in reads)
    cw, cc = min(w for w, _ in collects), min(c for _, c in collects)
    print(f"\n== collect on {n} trials ({len(files)} result files; summary {len(rows)} rows, configs {n_cfg} rows), min of {len(collects)} ==")
    print(f"baseline, json.load of every file: wall {rw:.2f} s, cpu {rc:.2f} s")
    print(f"collect():                         wall {cw:.2f} s, cpu {cc:.2f} s  -> {cw / rw:.2f}x the read-only baseline")
    if cli:
        print(f"python scripts/collect.py:        wall {cli.wall_s:.2f} s, cpu {cli.cpu_s:.2f} s, peak rss {cli.maxrss_mb:.0f} MB (process, imports included)")
    worst = max(cw, cli.wall_s if cli else 0)
    print(f"target < {TARGET_S:g} s: {'PASS' if worst < TARGET_S else 'MISS'} (slowest of the above: {worst:.2f} s)")
    payload = {"machine": machine_line(), "trials": n, "read_wall_s": rw, "read_cpu_s": rc,
               "collect_wall_s": cw, "collect_cpu_s": cc, "cli_wall_s": cli.wall_s if cli else None}
    return finish(a.json, payload, a.keep, root)


if __name__ == "__main__":
    sys.exit(main())
