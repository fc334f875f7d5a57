"""Per-job fixed cost of each step's process, start to first useful work, vs `python -c 'import
torch'` measured in the same run (issue 2, benchmark 2; target: <= 1.2x).

A step runs as Snakemake runs it: `python -m snakesweep.supervise STEP ...`, which spawns
`python -m snakesweep.steps STEP ...`, which loads the plan and the workload and calls it. The
trial is a real one (the built-in digits_mlp, epochs=1) in a plan written by this script; the
workload is a thin file wrapper around the built-in that stamps time.monotonic() (one clock for
every process on Linux) when the workload function is entered and again once `import torch`
(the first thing each of its functions needs) has returned. "First useful work" is that second
stamp: the step has both interpreters up, its own imports, the plan, the workload and torch.

Baselines, interleaved with the steps in every round:
- `python -c pass`: the interpreter floor;
- `python -c 'import torch'`: the issue's baseline (whole process, exit included);
- spawn -> the stamp after `import torch` in `python -c`: the same definition as the steps'.
The ratio is the min over rounds of (step: spawn -> torch ready) over the min of the last.

Also: the import cost of `snakesweep.supervise` and `snakesweep.steps` alone (process wall minus
`python -c pass`), and, from one extra pass with PYTHONPROFILEIMPORTTIME=1, the top-level
packages each process imports with their cumulative import time.

    .venv/bin/python benchmarks/bench_step_overhead.py [--quick] [--rounds 5] [--device auto] [--budget-s 300]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, REPO, Budget, Series, finish, loadavg, machine_line, run_timed, verdict  # noqa: E402

TARGET = 1.2
STEPS = ("train", "eval", "measure")

WRAPPER = '''\
"""digits_mlp, stamped: benchmarks/bench_step_overhead.py times the step up to these stamps."""
import json
import os
import sys
import time

from snakesweep.workloads import digits_mlp as _w

check_params = _w.check_params
prepare = _w.prepare


def _stamp(step, entry, ready, done, mods_entry):
    rec = {
        "step": step, "entry": entry, "ready": ready, "done": done, "modules_at_entry": mods_entry,
        "modules_at_done": sorted({m.split(".")[0] for m in sys.modules if not m.startswith("_")}),
    }
    with open(os.environ["SNAKESWEEP_BENCH_STAMPS"], "a") as fh:
        fh.write(json.dumps(rec) + "\\n")


def _enter():
    entry = time.monotonic()
    mods = sorted({m.split(".")[0] for m in sys.modules if not m.startswith("_")})
    import torch  # noqa: F401  (every function of the workload starts with this)

    return entry, time.monotonic(), mods


def train(params, out_dir, **kw):
    entry, ready, mods = _enter()
    out = _w.train(params, out_dir, **kw)
    _stamp("train", entry, ready, time.monotonic(), mods)
    return out


def evaluate(params, train_dir, **kw):
    entry, ready, mods = _enter()
    out = _w.evaluate(params, train_dir, **kw)
    _stamp("eval", entry, ready, time.monotonic(), mods)
    return out


def inference(params, train_dir, **kw):
    entry, ready, mods = _enter()
    out = _w.inference(params, train_dir, **kw)
    _stamp("measure", entry, ready, None, mods)
    return out
'''

READY_SNIPPET = "import time, torch; print(time.monotonic())"
HEAVY = ("torch", "numpy", "sklearn", "scipy", "pandas", "pydantic", "pydantic_core", "yaml", "matplotlib", "pynvml", "snakemake")


def write_plan(work: Path, device: str) -> tuple[str, Path]:
    sys.path.insert(0, str(REPO))
    from snakesweep.config import validate_config
    from snakesweep.grid import expand
    from snakesweep.plan import build_plan
    from snakesweep.plan import write_plan as _write

    (work / "stamped.py").write_text(WRAPPER)
    cfg = validate_config(
        {
            "sweep": {"name": "bench-steps", "workload": "stamped.py", "fixed": {"epochs": 1, "batch_size": 64},
                      "grid": {"lr": [0.03], "hidden": [32]}, "seeds": [0]},
            "measure": {"batch_size": 256, "warmup_batches": 1, "repeats": 2, "min_window_s": 0},
            "device": device,
        },
        "bench",
    )
    old = os.getcwd()
    os.chdir(work)  # the workload path is relative to the run directory, as in a real run
    try:
        trials = expand(cfg.sweep)
        plan = build_plan(cfg, trials)
        _write(plan, work / "results/plan/trials.json", work / "results/plan/trials.csv")
    finally:
        os.chdir(old)
    return trials[0].id, Path("results/data", plan["workload_key"], "ready.json")


def step_cmd(step: str, trial: str, marker: Path) -> list[str]:
    cmd = [PYTHON, "-m", "snakesweep.supervise", step, "--trial", trial, "--plan", "results/plan/trials.json",
           "--log", f"logs/{step}/{trial}.log", "--threads", "1", "--data", str(marker)]
    if step in ("eval", "measure"):
        cmd += ["--train", f"results/trials/{trial}/train.json"]
    return cmd + ["--output", f"results/trials/{trial}/{step}.json"]


def read_stamps(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def parse_importtime(text: str) -> list[tuple[int, float, str]]:
    """(depth, cumulative ms, module) per line of -X importtime output, in its (post-)order."""
    out = []
    for line in text.splitlines():
        m = IMPORT_LINE.match(line)
        if m:
            out.append(((len(m.group(3)) - 1) // 2, int(m.group(2)) / 1000, m.group(4)))
    return out


def top_imports(text: str, limit: int = 8) -> list[tuple[str, float]]:
    """Modules imported at top level (by the script or `-m` itself), by cumulative import time."""
    by_mod: dict[str, float] = defaultdict(float)
    for depth, cum, name in parse_importtime(text):
        if depth == 0 and name not in ("site", "encodings", "_frozen_importlib_external", "zipimport", "io", "_signal"):
            by_mod[name] += cum
    return sorted(by_mod.items(), key=lambda kv: -kv[1])[:limit]


def heavy_imports(text: str) -> list[tuple[str, float, str]]:
    """Each heavy third-party package: cumulative import time and who imported it first."""
    rows = parse_importtime(text)
    out = []
    for pkg in HEAVY:
        for i, (depth, cum, name) in enumerate(rows):
            if name == pkg:
                parent = next((n for d, _, n in rows[i + 1 :] if d < depth), None) if depth else "top level"
                out.append((pkg, cum, f"via {parent}" if depth else parent))
                break
    return sorted(out, key=lambda r: -r[1])


def fmt_imports(items: list[tuple[str, float]]) -> str:
    return ", ".join(f"{k} {v:.0f} ms" for k, v in items)


def fmt_heavy(items: list[tuple[str, float, str]]) -> str:
    return ", ".join(f"{k} {v:.0f} ms ({w})" for k, v, w in items) or "none"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds instead of 5")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="the plan's device (default: auto, as config/config.yaml)")
    ap.add_argument("--budget-s", type=float, default=300)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    rounds = a.rounds or (2 if a.quick else 5)
    budget = Budget(a.budget_s)

    work = Path(tempfile.mkdtemp(prefix="snakesweep-bench-steps-"))
    stamps = work / "stamps.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               SNAKESWEEP_BENCH_STAMPS=str(stamps))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    print(machine_line())
    trial, marker = write_plan(work, a.device)
    prep = run_timed([PYTHON, "-m", "snakesweep.supervise", "prepare_data", "--trial", "-", "--plan",
                      "results/plan/trials.json", "--log", "logs/prepare_data/x.log", "--output", str(marker)], work, env)
    if prep.rc:
        print((work / "logs/prepare_data/x.log").read_text()[-3000:])
        raise SystemExit("prepare_data failed")
    print(f"trial {trial} (digits_mlp via stamped.py, epochs=1, device {a.device}); temp dir {work}")

    floor, torch_proc, torch_ready = Series("python -c pass"), Series("python -c 'import torch'"), Series("spawn -> torch imported (python -c)")
    imp = {m: Series(f"python -c 'import {m}'") for m in ("snakesweep.supervise", "snakesweep.steps")}
    steps = {s: {"entry": [], "ready": [], "tail": [], "total": Series(f"{s} process")} for s in STEPS}
    last_stamp: dict = {}
    per_round = 0.0
    for rnd in range(rounds):
        if rnd and not budget.allows(per_round * 1.3):
            print(f"budget of {a.budget_s:.0f} s reached after {rnd} rounds")
            break
        t_round = time.monotonic()
        floor.add(run_timed([PYTHON, "-c", "pass"], work, env))
        for m, s in imp.items():
            s.add(run_timed([PYTHON, "-c", f"import {m}"], work, env))
        torch_proc.add(run_timed([PYTHON, "-c", "import torch"], work, env))
        t0 = time.monotonic()
        t = run_timed([PYTHON, "-c", READY_SNIPPET], work, env)
        t.wall_s = float(t.output.strip().splitlines()[-1]) - t0
        torch_ready.add(t)
        for step in STEPS:
            n_before = len(read_stamps(stamps))
            t0 = time.monotonic()
            t = run_timed(step_cmd(step, trial, marker), work, env)
            t_exit = time.monotonic()
            if t.rc:
                print(Path(work, f"logs/{step}/{trial}.log").read_text()[-3000:])
                raise SystemExit(f"step {step} failed ({t.rc})")
            rec = read_stamps(stamps)[n_before]
            last_stamp[step] = rec
            steps[step]["entry"].append(rec["entry"] - t0)
            steps[step]["ready"].append(rec["ready"] - t0)
            if rec["done"] is not None:
                steps[step]["tail"].append(t_exit - rec["done"])
            steps[step]["total"].add(t)
        per_round = time.monotonic() - t_round
        print(f"  round {rnd + 1}: torch ready {torch_ready.runs[-1].wall_s:.2f} s; "
              + "; ".join(f"{s} ready {steps[s]['ready'][-1]:.2f} s" for s in STEPS) + f"  (load {loadavg()})")

    # one untimed pass with -X importtime in every process (supervise passes the env to the step)
    ienv = dict(env, PYTHONPROFILEIMPORTTIME="1")
    imports: dict[str, str] = {}
    for m in ("snakesweep.supervise", "snakesweep.steps"):
        r = subprocess.run([PYTHON, "-X", "importtime", "-c", f"import {m}"], cwd=work, env=env, capture_output=True, text=True)
        imports[f"import {m}"] = r.stderr
    for step in STEPS:
        log = work / "logs" / step / f"{trial}.log"
        log.unlink(missing_ok=True)
        r = subprocess.run(step_cmd(step, trial, marker), cwd=work, env=ienv, capture_output=True, text=True)
        imports[f"{step}: supervise process"] = r.stderr
        text = log.read_text()
        # only what is imported before the step reports `finished` (torch imports more at exit)
        imports[f"{step}: steps process"] = text.split(f"snakesweep: {step} {trial} finished")[0]

    base_ready = torch_ready.wall
    print(f"\n== step process fixed cost, min of {len(floor.runs)} rounds ==")
    print(floor.describe())
    print(torch_proc.describe())
    print(f"{torch_ready.name}: min {base_ready:.2f} s (runs: {', '.join(f'{r.wall_s:.2f}' for r in torch_ready.runs)})")
    print(f"  (so a torch process's exit costs about {torch_proc.wall - base_ready:.2f} s: whole process minus spawn -> ready)")
    for s in imp.values():
        print(f"{s.name}: min wall {s.wall:.3f} s, i.e. {s.wall - floor.wall:+.3f} s over the interpreter floor")
    out = {"machine": machine_line(), "device": a.device, "rounds": len(floor.runs), "baseline": {
        "python_pass_s": floor.wall, "import_torch_process_s": torch_proc.wall, "torch_ready_s": base_ready,
        **{f"import_{m}_s": s.wall for m, s in imp.items()}}, "steps": {}}
    for step in STEPS:
        d = steps[step]
        ready, entry = min(d["ready"]), min(d["entry"])
        r1, r2 = ready / base_ready, ready / torch_proc.wall
        tail = f"; after the workload returns -> supervise exited: min {min(d['tail']):.2f} s" if d["tail"] else ""
        print(f"{step:7s}: spawn -> workload entered min {entry:.2f} s; -> torch ready (first useful work) min {ready:.2f} s "
              f"(median {statistics.median(d['ready']):.2f}); ratio {r1:.2f}x vs spawn->torch ready, {r2:.2f}x vs "
              f"`python -c 'import torch'`: {verdict(r1, TARGET)} (target <= {TARGET}x){tail}")
        rec = last_stamp.get(step, {})
        heavy_entry = [m for m in HEAVY if m in rec.get("modules_at_entry", [])]
        heavy_done = [m for m in HEAVY if m in rec.get("modules_at_done", [])]
        print(f"         heavy packages loaded at workload entry: {heavy_entry or 'none'}; by the end of the workload call: {heavy_done}")
        out["steps"][step] = {"entry_s": entry, "ready_s": ready, "ratio_vs_torch_ready": r1, "ratio_vs_import_torch_process": r2,
                              "tail_s": min(d["tail"]) if d["tail"] else None, "heavy_at_entry": heavy_entry, "heavy_at_done": heavy_done}
    print("\n== imports per process (one untimed pass with -X importtime; cumulative ms) ==")
    out["imports"] = {}
    for k, text in imports.items():
        top, heavy = top_imports(text), heavy_imports(text)
        print(f"{k}:\n    top level: {fmt_imports(top)}\n    heavy packages: {fmt_heavy(heavy)}")
        out["imports"][k] = {"top_level_ms": dict(top), "heavy_ms": {p: [v, w] for p, v, w in heavy}}
    if budget.exhausted:
        print(f"note: the {a.budget_s:.0f} s budget cut the rounds short")
    return finish(a.json, out, a.keep, work)


if __name__ == "__main__":
    sys.exit(main())
