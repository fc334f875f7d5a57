"""8 digits trials through the workflow vs a hand-written Snakemake + Paramspace workflow of the
same steps (issue 11; target: <= 1.10x wall, report rules included).

The sweep: the built-in digits_mlp, lr {0.01, 0.1} x hidden {32, 64} x seeds {0, 1} = 8 trials,
4 epochs, batch 64, device cpu, measure window 0 (min_window_s 0: the measure step's default
warm-up and 20 timed batches). snakesweep runs its default target in a temporary copy
(`snakemake --cores 2 --configfile sweep.yaml`): plan, prepare_data, train -> eval -> measure per
trial, collect, report tables and plots.

The baseline (written here) is what a user would write by hand with snakemake.utils.Paramspace:
a pandas table of the 8 trials, a prepare rule, three chained `shell:` rules per trial each
running `python hand_step.py STEP ...` (one process: it calls the same digits_mlp function and
snakesweep.measure.run_measurement with the same settings, and writes a JSON), and one aggregate
rule writing a CSV of every trial. No supervisor, logs, benchmarks, plan or reports.

Runs alternate (bare, real, real, bare, ...); the minimum of the repeats is reported.

    .venv/bin/python benchmarks/bench_digits.py [--repeats 2] [--cores 2] [--workflow-root DIR] [--keep] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PYTHON,
    Budget,
    Series,
    add_run_args,
    finish,
    job_env,
    loadavg,
    machine_line,
    real_and_hand,
    run_timed,
    verdict,
)

TARGET = 1.10

SWEEP = """\
sweep:
  name: bench-digits
  workload: digits_mlp
  fixed: {epochs: 4, batch_size: 64}
  grid: {lr: [0.01, 0.1], hidden: [32, 64]}
  seeds: [0, 1]
measure: {min_window_s: 0}
device: cpu
"""

HAND_SNAKEFILE = """\
# Hand-written baseline for benchmarks/bench_digits.py: the same steps over a Paramspace.
import itertools

import pandas as pd
from snakemake.utils import Paramspace

rows = [dict(lr=lr, hidden=h, seed=s) for lr, h, s in itertools.product([0.01, 0.1], [32, 64], [0, 1])]
paramspace = Paramspace(pd.DataFrame(rows))


rule all:
    input:
        "results/summary.csv",


rule prepare:
    output:
        "results/data/digits.npz",
    shell:
        "python hand_step.py prepare results/data"


rule train:
    input:
        "results/data/digits.npz",
    output:
        f"results/trials/{paramspace.wildcard_pattern}/train.json",
    shell:
        "python hand_step.py train {output} {wildcards.lr} {wildcards.hidden} {wildcards.seed}"


rule eval:
    input:
        f"results/trials/{paramspace.wildcard_pattern}/train.json",
    output:
        f"results/trials/{paramspace.wildcard_pattern}/eval.json",
    shell:
        "python hand_step.py eval {output} {wildcards.lr} {wildcards.hidden} {wildcards.seed}"


rule measure:
    input:
        f"results/trials/{paramspace.wildcard_pattern}/eval.json",
    output:
        f"results/trials/{paramspace.wildcard_pattern}/measure.json",
    shell:
        "python hand_step.py measure {output} {wildcards.lr} {wildcards.hidden} {wildcards.seed}"


rule aggregate:
    input:
        expand("results/trials/{params}/measure.json", params=paramspace.instance_patterns),
    output:
        "results/summary.csv",
    shell:
        "python hand_step.py aggregate {output} {input}"
"""

HAND_STEP = """\
import csv, json, sys
from pathlib import Path
from types import SimpleNamespace

step, out = sys.argv[1], Path(sys.argv[2])
data = Path("results/data")
if step == "prepare":
    from snakesweep.workloads import digits_mlp as w
    data.mkdir(parents=True, exist_ok=True)
    w.prepare(data)
    sys.exit(0)
if step == "aggregate":
    rows = []
    for m in sys.argv[3:]:
        d = Path(m).parent
        row = {}
        for s in ("train", "eval", "measure"):
            row.update({k: v for k, v in json.load(open(d / f"{s}.json")).items() if not isinstance(v, (list, dict))})
        rows.append(row)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        w.writeheader()
        w.writerows(rows)
    sys.exit(0)
from snakesweep.workloads import digits_mlp as w
lr, hidden, seed = sys.argv[3:6]  # the Paramspace wildcards
params = {"lr": float(lr), "hidden": int(hidden), "seed": int(seed), "epochs": 4, "batch_size": 64}
out.parent.mkdir(parents=True, exist_ok=True)
if step == "train":
    metrics = w.train(params, out.parent, data_dir=data, device="cpu")
elif step == "eval":
    metrics = w.evaluate(params, out.parent, data_dir=data, device="cpu")
else:
    from snakesweep.measure import run_measurement
    settings = SimpleNamespace(batch_size=256, warmup_batches=5, repeats=20, min_window_s=0.0, baseline_s=0.0,
                               cooldown_s=0.0, max_start_temp_c=None, temp_wait_timeout_s=300.0,
                               sample_interval_s=0.1, cycles=1, cycle_order="interleaved")
    fn, batches, sizes = w.inference(params, out.parent, data_dir=data, device="cpu", batch_size=256)
    metrics = run_measurement(fn, batches, sizes, "cpu", settings)
json.dump({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}, open(out, "w"))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2, help="pairs (default 2)")
    ap.add_argument("--cores", type=int, default=2)
    add_run_args(ap, budget_s=900)
    a = ap.parse_args(argv)
    budget = Budget(a.budget_s)
    tmp, real, hand = real_and_hand("snakesweep-bench-digits-", a.workflow_root, SWEEP,
                                    {"Snakefile": HAND_SNAKEFILE, "hand_step.py": HAND_STEP})
    env = job_env(a.workflow_root)
    print(machine_line())
    print(f"workflow: {a.workflow_root}; temp dir {tmp}; --cores {a.cores}")
    s_real, s_hand = Series("snakesweep"), Series("paramspace")
    order = []
    for i in range(a.repeats):
        order += ("hand", "real") if i % 2 == 0 else ("real", "hand")
    import shutil

    for which in order:
        d = real if which == "real" else hand
        for name in ("results", "logs", ".snakemake"):
            shutil.rmtree(d / name, ignore_errors=True)
        if s_real.runs and s_hand.runs and not budget.allows(max(s_real.wall, s_hand.wall) * 1.2):
            print(f"  budget of {a.budget_s:.0f} s reached: stopping repeats")
            break
        extra = ["--configfile", "sweep.yaml"] if which == "real" else []
        # the workflow runs each job with `threads: 1` (OMP/MKL_NUM_THREADS=1, snakesweep/supervise.py);
        # the hand-written jobs get the same, so neither oversubscribes the cores (fair to the baseline)
        run_env = env if which == "real" else dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        t = run_timed([PYTHON, "-m", "snakemake", "--cores", str(a.cores), *extra], d, run_env, timeout=max(120, budget.left()))
        if t.rc:
            print(t.output[-4000:])
            raise SystemExit(f"{which} run failed with status {t.rc}")
        (s_real if which == "real" else s_hand).add(t)
        print(f"  {which:4s}: wall {t.wall_s:6.1f} s  cpu {t.cpu_s:6.1f} s  (load {loadavg()})", flush=True)
    print(s_hand.describe())
    print(s_real.describe())
    rw, rc = s_real.wall / s_hand.wall, s_real.cpu / s_hand.cpu
    print(f"\n== 8 digits trials, --cores {a.cores}: snakesweep {s_real.wall:.1f} s vs Paramspace {s_hand.wall:.1f} s: "
          f"ratio {rw:.2f}x wall ({rc:.2f}x cpu); target <= {TARGET}x: {verdict(rw, TARGET)}")
    payload = {"machine": machine_line(), "real_wall_s": s_real.wall, "hand_wall_s": s_hand.wall,
               "real_cpu_s": s_real.cpu, "hand_cpu_s": s_hand.cpu, "ratio_wall": rw, "ratio_cpu": rc}
    return finish(a.json, payload, a.keep, tmp)


if __name__ == "__main__":
    sys.exit(main())
