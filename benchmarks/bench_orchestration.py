"""Orchestration cost per trial: a real `snakemake --cores 2` run of the workflow on the
torch-free toy workload vs a bare Snakefile with the same per-trial chain (issue 11; target:
<= 2x per trial, at 300 and at 1,000 trials).

The workflow: a temporary copy (what a user has after `git clone`, default profile applied as
it is for a user), the toy workload (tests/workloads/toy.py: milliseconds of work per step),
grid x = 0 .. N/2-1 x 2 seeds, steps train -> eval -> measure, `measure: {min_window_s: 0,
warmup_batches: 1, repeats: 2, batch_size: 8}` (window 0, no cooldown, no baseline), the
default target (plan, prepare, every trial, collect, report tables and plots).

The baseline (written here): 3 chained `shell:` rules per trial, each starting one `python`
that writes a JSON result, and one aggregate rule over a plain `expand()` list that reads them
all: the simplest Snakefile a user would write for the same chain.

Runs alternate (bare, real, real, bare, ...) and each figure is the minimum over repeats;
the ratio is of the per-trial wall times (whole run / trials). The result records of the last
real run (`duration_s` of results/<name>/trials/*/{step}.json) give each step's own time.

    .venv/bin/python benchmarks/bench_orchestration.py [--trials 300 1000] [--repeats 1]
        [--cores 2] [--workflow-root DIR] [--budget-s 3600] [--keep] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, REPO, Budget, Series, copy_workflow, finish, loadavg, machine_line, run_timed, verdict  # noqa: E402

from snakesweep import layout  # noqa: E402
from snakesweep.results import earlier_durations  # noqa: E402

TARGET = 2.0

BARE_SNAKEFILE = """\
# Baseline for benchmarks/bench_orchestration.py: three chained one-process jobs per trial + one aggregate.
TRIALS = [f"t{{i:05d}}" for i in range({n})]


rule all:
    input:
        "results/summary.json",


rule train:
    output:
        "results/trials/{{trial}}/train.json",
    shell:
        "python step.py {{output}}"


rule eval:
    input:
        "results/trials/{{trial}}/train.json",
    output:
        "results/trials/{{trial}}/eval.json",
    shell:
        "python step.py {{output}} {{input}}"


rule measure:
    input:
        "results/trials/{{trial}}/eval.json",
    output:
        "results/trials/{{trial}}/measure.json",
    shell:
        "python step.py {{output}} {{input}}"


rule aggregate:
    input:
        expand("results/trials/{{trial}}/measure.json", trial=TRIALS),
    output:
        "results/summary.json",
    shell:
        "python aggregate.py {{output}} {{input}}"
"""

STEP_PY = """\
import json, sys, time
json.dump({"step": sys.argv[1], "inputs": sys.argv[2:], "time": time.time()}, open(sys.argv[1], "w"))
"""

AGGREGATE_PY = """\
import json, sys
rows = [json.load(open(p)) for p in sys.argv[2:]]
json.dump({"n": len(rows)}, open(sys.argv[1], "w"))
"""


def sweep_yaml(n: int) -> str:
    if n % 2:
        raise SystemExit("--trials must be even (x values x 2 seeds)")
    xs = ", ".join(str(i) for i in range(n // 2))
    return (
        "sweep:\n"
        f"  name: bench-orchestration-{n}\n"
        "  workload: toy.py\n"
        f"  grid: {{x: [{xs}]}}\n"
        "  seeds: [0, 1]\n"
        f"  max_trials: {max(n, 1000)}\n"
        "measure: {batch_size: 8, warmup_batches: 1, repeats: 2, min_window_s: 0}\n"
        "device: cpu\n"
        "report: {objective: {metric: eval_accuracy, direction: max}, extra_objectives: []}\n"
    )


def step_seconds(results: Path) -> dict[str, float]:
    """Median `duration_s` of the result records per step (the step's own time in its process)."""
    out = {}
    for step in ("train", "eval", "measure"):
        # every trial's record of the step: a result's path of any trial name ("-") says where
        vals = earlier_durations(results / "trials" / "-" / f"{step}.json", limit=10**9)
        if vals:
            out[step] = statistics.median(vals)
    return out


def prepare(tmp: Path, n: int, root: Path) -> tuple[Path, Path]:
    real, bare = tmp / f"real-{n}", tmp / f"bare-{n}"
    copy_workflow(real, root)
    (real / "toy.py").write_text((REPO / "tests" / "workloads" / "toy.py").read_text())
    (real / "sweep.yaml").write_text(sweep_yaml(n))
    bare.mkdir()
    (bare / "Snakefile").write_text(BARE_SNAKEFILE.format(n=n))
    (bare / "step.py").write_text(STEP_PY)
    (bare / "aggregate.py").write_text(AGGREGATE_PY)
    return real, bare


def clean(d: Path) -> None:
    import shutil

    for name in ("results", "logs", ".snakemake"):
        shutil.rmtree(d / name, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, nargs="+", default=[300, 1000])
    ap.add_argument("--repeats", type=int, default=1, help="pairs per trial count (default 1)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=3600)
    ap.add_argument("--workflow-root", type=Path, default=REPO)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    budget = Budget(a.budget_s)
    tmp = Path(tempfile.mkdtemp(prefix="snakesweep-bench-orch-"))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(PYTHON), env.get("PATH", "")])  # the bare `python`
    print(machine_line())
    print(f"workflow: {a.workflow_root}; temp dir {tmp}; --cores {a.cores}")
    payload: dict = {"machine": machine_line(), "runs": {}}
    summary = []
    for n in a.trials:
        real, bare = prepare(tmp, n, a.workflow_root)
        s_real, s_bare = Series(f"snakesweep {n}"), Series(f"bare       {n}")
        order = []
        for i in range(a.repeats):
            order += ("bare", "real") if i % 2 == 0 else ("real", "bare")
        steps = {}
        for which in order:
            d = real if which == "real" else bare
            clean(d)
            extra = ["--configfile", "sweep.yaml"] if which == "real" else []
            if s_real.runs and s_bare.runs and not budget.allows(max(s_real.wall, s_bare.wall) * 1.2):
                print(f"  budget of {a.budget_s:.0f} s reached: stopping repeats at {n} trials")
                break
            t = run_timed([PYTHON, "-m", "snakemake", "--cores", str(a.cores), *extra], d, env, timeout=max(120, budget.left()))
            if t.rc:
                print(t.output[-4000:])
                raise SystemExit(f"{which} run of {n} trials failed with status {t.rc}")
            (s_real if which == "real" else s_bare).add(t)
            if which == "real":
                steps = step_seconds(d / layout.sweep_dir_of_file(d / "sweep.yaml"))  # the sweep's own directory
            print(f"  {which:4s} {n} trials: wall {t.wall_s:7.1f} s ({1000 * t.wall_s / n:6.1f} ms/trial)  "
                  f"cpu {t.cpu_s:7.1f} s  (load {loadavg()})", flush=True)
        if not (s_real.runs and s_bare.runs):
            continue
        ratio = s_real.wall / s_bare.wall
        ratio_cpu = s_real.cpu / s_bare.cpu
        line = (f"{n} trials: snakesweep {1000 * s_real.wall / n:.0f} ms/trial, bare {1000 * s_bare.wall / n:.0f} ms/trial: "
                f"ratio {ratio:.2f}x wall ({ratio_cpu:.2f}x cpu); target <= {TARGET}x: {verdict(ratio, TARGET)}")
        summary.append(line)
        print(s_bare.describe())
        print(s_real.describe())
        if steps:
            print("  per job (the records' duration_s, median s): " + ", ".join(f"{k} {v:.3f}" for k, v in steps.items()))
        payload["runs"][n] = {"real_wall_s": s_real.wall, "bare_wall_s": s_bare.wall, "real_cpu_s": s_real.cpu,
                              "bare_cpu_s": s_bare.cpu, "ratio_wall": ratio, "ratio_cpu": ratio_cpu, "step_s": steps}
    print(f"\n== orchestration cost per trial, --cores {a.cores:d} ==")
    for line in summary:
        print(line)
    if budget.exhausted:
        print(f"note: the {a.budget_s:.0f} s budget cut the repeats short")
    return finish(a.json, payload, a.keep, tmp)


if __name__ == "__main__":
    sys.exit(main())
