"""`snakemake -n --quiet` on a 10,000-trial sweep of this workflow vs the simplest bare
Snakefile for the same per-trial chain (issues 2 and 11; target: <= 1.25x).

The sweep: the built-in digits_mlp, a grid of 5,000 points (lr: 100 log-spaced values x
hidden: 50 values) x 2 seeds, max_trials raised, in a temporary copy of the workflow (what a
user has after `git clone`). The baseline (issue 11): the simplest Snakefile a user would
write: three chained `shell:` rules per trial (train -> eval -> measure, one input and one
output each) and one aggregate whose input is a plain `expand()` list of every measure.json;
`rule all` asks for the aggregate. No plan, data marker, logs, benchmarks, resources or
report rules: what the workflow adds on top of that is what the ratio measures. (The issue-2
baseline carried the workflow's plan and data inputs on every job and a named `expand()`
input beside a plan input; it is gone.) The per-trial job counts are checked to match on a
small sweep first; the workflow's few extra fixed jobs (plan, prepare_data, reports) are listed.

Runs are interleaved (bare, real, real, bare, ...) and the minimum of the repeats is
reported, as wall time and as CPU time (user + sys). Plain `-n` (which prints every job)
is measured as well with --listing.

    .venv/bin/python benchmarks/bench_dryrun.py [--quick] [--trials N] [--repeats 2] [--listing]
        [--budget-s 900] [--workflow-root DIR] [--cprofile OUT.prof] [--keep]

--workflow-root benchmarks another checkout (for example a copy with a proposed change) against
the same baseline; --cprofile also runs the real dry run once under cProfile and prints the top
entries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, REPO, Budget, Series, copy_workflow, finish, loadavg, machine_line, run_timed, verdict  # noqa: E402

TARGET = 1.25
LR_POINTS = 100

BARE_SNAKEFILE = '''\
# Baseline for benchmarks/bench_dryrun.py: the simplest Snakefile a user would write for the same
# per-trial chain: three chained rules per trial and one aggregate over a plain expand() list.
TRIALS = [f"t{{i:05d}}" for i in range({n})]


rule all:
    input:
        "results/summary.csv",


rule train:
    output:
        "results/trials/{{trial}}/train.json",
    shell:
        "touch {{output}}"


rule eval:
    input:
        "results/trials/{{trial}}/train.json",
    output:
        "results/trials/{{trial}}/eval.json",
    shell:
        "touch {{output}}"


rule measure:
    input:
        "results/trials/{{trial}}/eval.json",
    output:
        "results/trials/{{trial}}/measure.json",
    shell:
        "touch {{output}}"


rule collect:
    input:
        expand("results/trials/{{trial}}/measure.json", trial=TRIALS),
    output:
        "results/summary.csv",
    shell:
        "touch {{output}}"
'''


def sweep_yaml(n_trials: int) -> str:
    points = n_trials // 2
    lr_num = min(LR_POINTS, points)
    hidden = list(range(8, 8 + points // lr_num))
    if lr_num * len(hidden) * 2 != n_trials:
        raise SystemExit(f"--trials must be 2 x {lr_num} x k (got {n_trials})")
    return (
        "sweep:\n"
        f"  name: bench-dryrun-{n_trials}\n"
        "  workload: digits_mlp\n"
        "  fixed: {epochs: 1, batch_size: 64}\n"
        "  grid:\n"
        f"    lr: {{log: [1.0e-4, 1.0e-1], num: {lr_num}}}\n"
        f"    hidden: {json.dumps(hidden)}\n"
        "  seeds: [0, 1]\n"
        f"  max_trials: {max(n_trials, 1000)}\n"
        "device: cpu\n"
    )


def job_stats(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Job stats:":
            for row in lines[i + 3 :]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit():
                    break
                counts[parts[0]] = int(parts[1])
            break
    return counts


def snakemake_cmd(*args: str) -> list[str]:
    return [PYTHON, "-m", "snakemake", *args]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 trials instead of 10,000")
    ap.add_argument("--trials", type=int, help="number of trials (2 x 100 x k)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--listing", action="store_true", help="also time plain `-n` (prints every job)")
    ap.add_argument("--budget-s", type=float, default=900, help="stop repeating past this (default 900)")
    ap.add_argument("--workflow-root", type=Path, default=REPO, help="checkout to benchmark (default: this one)")
    ap.add_argument("--cprofile", type=Path, help="also profile one real dry run into this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--json", type=Path, help="write the figures here")
    a = ap.parse_args(argv)
    n = a.trials or (2000 if a.quick else 10000)
    budget = Budget(a.budget_s)

    tmp = Path(tempfile.mkdtemp(prefix="snakesweep-bench-dryrun-"))
    real, bare = tmp / "real", tmp / "bare"
    copy_workflow(real, a.workflow_root)
    bare.mkdir()
    env = dict(os.environ)
    print(machine_line())
    print(f"workflow: {a.workflow_root}; temp dir {tmp}")

    # 1. same job graph? (small sweep, listing printed; also warms .pyc files and .snakemake/)
    small = 200
    (real / "sweep.yaml").write_text(sweep_yaml(small))
    (bare / "Snakefile").write_text(BARE_SNAKEFILE.format(n=small))
    r = run_timed(snakemake_cmd("-n", "--quiet", "host", "--configfile", "sweep.yaml"), real, env)
    b = run_timed(snakemake_cmd("-n", "--quiet", "host"), bare, env)
    rs, bs = job_stats(r.output), job_stats(b.output)
    if r.rc or b.rc or not rs:
        print(r.output[-3000:], b.output[-3000:], sep="\n----\n")
        raise SystemExit("snakemake -n failed on the small sweep")
    print(f"job graph check ({small} trials): real {rs}; bare {bs}")
    if any(rs.get(r) != bs.get(r) for r in ("train", "eval", "measure")):
        print("  WARNING: the per-trial job counts differ; the ratio compares different work")

    # 2. the timed runs
    (real / "sweep.yaml").write_text(sweep_yaml(n))
    (bare / "Snakefile").write_text(BARE_SNAKEFILE.format(n=n))
    modes = [("-n --quiet", ["-n", "--quiet"])]
    if a.listing:
        modes.append(("-n", ["-n"]))
    results: dict[str, dict[str, Series]] = {}
    for label, flags in modes:
        s_real, s_bare = Series(f"snakesweep {label}"), Series(f"bare       {label}")
        results[label] = {"real": s_real, "bare": s_bare}
        order = []
        for i in range(a.repeats):
            order += ("bare", "real") if i % 2 == 0 else ("real", "bare")
        expected = 0.0
        for which in order:
            if expected and not budget.allows(expected * 1.5):
                print(f"  budget of {a.budget_s:.0f} s reached: stopping repeats of {label}")
                break
            if which == "real":
                t = run_timed(snakemake_cmd(*flags, "--configfile", "sweep.yaml"), real, env, timeout=max(60, budget.left()))
                s = s_real
            else:
                t = run_timed(snakemake_cmd(*flags), bare, env, timeout=max(60, budget.left()))
                s = s_bare
            if t.rc:
                print(t.output[-3000:])
                raise SystemExit(f"{which} {label} failed with status {t.rc}")
            s.add(t)
            expected = max(expected, t.wall_s)
            print(f"  {which:4s} {label}: wall {t.wall_s:7.2f} s  cpu {t.cpu_s:7.2f} s  rss {t.maxrss_mb:5.0f} MB  (load {loadavg()})")

    if a.cprofile:
        prof = a.cprofile.resolve()
        t = run_timed([PYTHON, "-m", "cProfile", "-o", str(prof), "-m", "snakemake", "-n", "--quiet", "--configfile", "sweep.yaml"], real, env, timeout=1800)
        print(f"cProfile of the real dry run: {prof} (wall {t.wall_s:.1f} s under the profiler)")
        import pstats

        stats = pstats.Stats(str(prof))
        stats.sort_stats("cumulative").print_stats(r"snakemake/(dag|rules|jobs|iocontainers|io/__init__|workflow)\.py|smk|Snakefile|snakesweep", 30)
        stats.sort_stats("tottime").print_stats(15)

    print(f"\n== snakemake dry run, {n} trials ({rs['total'] - 3 * small + 3 * n} jobs; bare {bs['total'] - 3 * small + 3 * n}), min of {a.repeats} ==")
    out = {"trials": n, "machine": machine_line(), "modes": {}}
    for label, pair in results.items():
        if not pair["real"].runs or not pair["bare"].runs:
            continue
        print(pair["bare"].describe())
        print(pair["real"].describe())
        rw, rc = pair["real"].wall / pair["bare"].wall, pair["real"].cpu / pair["bare"].cpu
        tgt = f" target <= {TARGET}x: {verdict(rw, TARGET)} (wall), {verdict(rc, TARGET)} (cpu)" if label == "-n --quiet" else ""
        print(f"ratio {label}: wall {rw:.2f}x, cpu {rc:.2f}x;{tgt}")
        out["modes"][label] = {
            "real_wall_s": pair["real"].wall, "bare_wall_s": pair["bare"].wall,
            "real_cpu_s": pair["real"].cpu, "bare_cpu_s": pair["bare"].cpu,
            "real_rss_mb": pair["real"].rss, "bare_rss_mb": pair["bare"].rss,
            "ratio_wall": rw, "ratio_cpu": rc,
        }
    if budget.exhausted:
        print(f"note: the {a.budget_s:.0f} s budget cut the repeats short")
    return finish(a.json, out, a.keep, tmp)


if __name__ == "__main__":
    sys.exit(main())
