"""A command workload's overhead per step vs running the same script by hand (issue 8; target:
step <= 1.1x the script by hand + one Python start-up).

The script trio of config/examples/cli-sweep.yaml (examples/train_cli.py, eval_cli.py,
infer_cli.py) is run two ways, interleaved in every round:
- by hand: `python examples/train_cli.py --lr ... --out DIR`, the exact argv the step would run
  (formatted by snakesweep.workloads.command.build_argv), with the same interpreter;
- as a Snakemake job runs it: `python -m snakesweep.supervise STEP ...` (the supervisor, which
  spawns `python -m snakesweep.steps STEP ...`, which reads the plan, runs the command, reads its
  metrics.json and writes the result JSON), in a plan written by this script (device: cpu).
Each figure is the minimum wall time over the rounds; CPU time (user + sys of the whole tree)
is printed beside it. `python -c pass` gives the "one Python start-up" of the target, and
`python -c 'import snakesweep.steps'` shows how much of the overhead is the step's own imports.

    .venv/bin/python benchmarks/bench_command.py [--quick] [--rounds 7] [--epochs 10] [--budget-s 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, REPO, Budget, Series, finish, loadavg, machine_line, run_timed, verdict  # noqa: E402

FACTOR = 1.1
STEPS = ("train", "eval", "measure")
SWEEP = {
    "sweep": {
        "name": "bench-command",
        "workload": {
            "command": {
                "train": ["python", "examples/train_cli.py", "--lr", "{lr}", "--l2", "{l2}", "--seed", "{seed}",
                          "--epochs", "{epochs}", "--out", "{out_dir}"],
                "eval": ["python", "examples/eval_cli.py", "--model", "{train_dir}", "--out", "{out_dir}"],
                "measure": ["python", "examples/infer_cli.py", "--model", "{train_dir}", "--batch", "{batch_size}",
                            "--out", "{out_dir}"],
            },
            "sources": ["examples"],
        },
        "fixed": {"batch_size": 64, "epochs": 10},
        "grid": {"lr": [0.5], "l2": [0.001]},
        "seeds": [0],
    },
    "measure": {"min_window_s": 0},
    "device": "cpu",
}


def write_plan(work: Path, epochs: int) -> tuple[str, dict, Path]:
    """The plan every step reads, made by the library as the `plan` rule makes it."""
    SWEEP["sweep"]["fixed"]["epochs"] = epochs
    sys.path.insert(0, str(REPO))
    from snakesweep.config import validate_config
    from snakesweep.grid import expand
    from snakesweep.plan import build_plan
    from snakesweep.plan import write_plan as _write

    cfg = validate_config(SWEEP, "bench")
    old = os.getcwd()
    os.chdir(work)
    try:
        trials = expand(cfg.sweep)
        plan = build_plan(cfg, trials)
        _write(plan, work / "results/plan/trials.json", work / "results/plan/trials.csv")
    finally:
        os.chdir(old)
    marker = Path("results/data", str(plan.get("workload_key") or "command"), "ready.json")
    return trials[0].id, trials[0].params, marker


def step_cmd(step: str, trial: str, marker: Path) -> list[str]:
    cmd = [PYTHON, "-m", "snakesweep.supervise", step, "--trial", trial, "--plan", "results/plan/trials.json",
           "--log", f"logs/{step}/{trial}.log", "--threads", "1", "--data", str(marker)]
    if step in ("eval", "measure"):
        cmd += ["--train", f"results/trials/{trial}/train.json"]
    return cmd + ["--output", f"results/trials/{trial}/{step}.json"]


def by_hand_cmd(step: str, trial: str, params: dict) -> list[str]:
    """The argv the step runs, with this interpreter, writing into a directory of its own."""
    from snakesweep.config import CommandWorkload
    from snakesweep.workloads.command import build_argv

    workload = CommandWorkload.model_validate(SWEEP["sweep"]["workload"])
    ctx = {"out_dir": f"hand/{step}", "train_dir": f"results/trials/{trial}/train", "data_dir": "d",
           "seed": str(params["seed"]), "trial": trial}
    argv = build_argv(workload, step, params, ctx)
    return [PYTHON, *argv[1:]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--epochs", type=int, default=10, help="train_cli.py --epochs: longer scripts amortise the fixed cost")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    rounds = a.rounds or (3 if a.quick else 7)
    budget = Budget(a.budget_s)

    work = Path(tempfile.mkdtemp(prefix="snakesweep-bench-command-"))
    shutil.copytree(REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    print(machine_line())
    trial, params, marker = write_plan(work, a.epochs)
    prep = run_timed([PYTHON, "-m", "snakesweep.supervise", "prepare_data", "--trial", "-", "--plan",
                      "results/plan/trials.json", "--log", "logs/prepare_data/x.log", "--output", str(marker)], work, env)
    if prep.rc:
        print(prep.output[-3000:])
        raise SystemExit("prepare_data failed")
    print(f"trial {trial} {params}; temp dir {work}")

    floor = Series("python -c pass")
    imports = Series("python -c 'import snakesweep.steps'")
    hand = {s: Series(f"{s} by hand") for s in STEPS}
    # the step runs its command with the job's `threads: 1` (OMP/MKL_NUM_THREADS=1, set by the
    # supervisor); by hand with the same setting, the difference is the step's own overhead
    hand1 = {s: Series(f"{s} by hand, 1 thread") for s in STEPS}
    env1 = dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    step = {s: Series(f"{s} as a step") for s in STEPS}
    per_round = 0.0
    for rnd in range(rounds):
        if rnd and not budget.allows(per_round * 1.3):
            print(f"budget of {a.budget_s:.0f} s reached after {rnd} rounds")
            break
        t_round = time.monotonic()
        floor.add(run_timed([PYTHON, "-c", "pass"], work, env))
        imports.add(run_timed([PYTHON, "-c", "import snakesweep.steps"], work, env))
        for s in STEPS:  # step first: eval and measure by hand read the step's checkpoint
            (work / f"results/trials/{trial}/{s}.json").unlink(missing_ok=True)
            t = run_timed(step_cmd(s, trial, marker), work, env)
            if t.rc:
                print((work / f"logs/{s}/{trial}.log").read_text()[-3000:])
                raise SystemExit(f"step {s} failed ({t.rc})")
            step[s].add(t)
            t = run_timed(by_hand_cmd(s, trial, params), work, env)
            if t.rc:
                print(t.output[-3000:])
                raise SystemExit(f"{s} by hand failed ({t.rc})")
            hand[s].add(t)
            t = run_timed(by_hand_cmd(s, trial, params), work, env1)
            if t.rc:
                print(t.output[-3000:])
                raise SystemExit(f"{s} by hand (1 thread) failed ({t.rc})")
            hand1[s].add(t)
        per_round = time.monotonic() - t_round
        print(f"  round {rnd + 1}: " + "; ".join(
            f"{s} {hand[s].runs[-1].wall_s:.2f} -> {step[s].runs[-1].wall_s:.2f} s" for s in STEPS) + f"  (load {loadavg()})")

    startup = floor.wall
    print(f"\n== command workload step vs the same script by hand, min of {len(floor.runs)} rounds ==")
    print(floor.describe())
    print(f"{imports.describe()}  ({imports.wall - startup:+.2f} s of imports over the interpreter floor)")
    out = {"machine": machine_line(), "rounds": len(floor.runs), "python_startup_s": startup,
           "import_steps_s": imports.wall, "steps": {}}
    for s in STEPS:
        st = step[s]
        print(hand[s].describe())
        print(hand1[s].describe())
        print(st.describe())
        out["steps"][s] = {"step_s": st.wall}
        for label, h in (("by hand", hand[s]), ("by hand, 1 thread", hand1[s])):
            allowed = FACTOR * h.wall + startup
            ratio, allowed_ratio = st.wall / h.wall, allowed / h.wall
            print(f"{s:7s}: step {st.wall:.2f} s vs {label} {h.wall:.2f} s: ratio {ratio:.2f}x, overhead "
                  f"{st.wall - h.wall:+.2f} s wall, {st.cpu - h.cpu:+.2f} s cpu; target <= {FACTOR}x + one Python "
                  f"start-up = {allowed:.2f} s ({allowed_ratio:.2f}x): {verdict(st.wall, allowed)}")
            key = "by_hand" if label == "by hand" else "by_hand_1_thread"
            out["steps"][s][key] = {"s": h.wall, "ratio": ratio, "target_s": allowed,
                                    "target_ratio": allowed_ratio, "overhead_cpu_s": st.cpu - h.cpu}
    if budget.exhausted:
        print(f"note: the {a.budget_s:.0f} s budget cut the rounds short")
    return finish(a.json, out, a.keep, work)


if __name__ == "__main__":
    sys.exit(main())
