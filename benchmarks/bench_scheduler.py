"""Local scheduling at 5,000 toy trials: per-job cost of each scheduler choice (issue 11).

The workflow (a temporary copy, default profile applied) runs the torch-free toy workload
(tests/workloads/toy.py) over N trials with `--cores 2`; at the start every trial's train job
is ready, so each scheduling pass chooses among thousands of jobs. Each variant runs for a
fixed window, counted from the first finished step result (DAG building excluded), then is
stopped; the figure is the window divided by the step results written in it: wall seconds
per finished job, the scheduler's cost included. The variants, in turn:

- `ilp`: Snakemake's default (an ILP solved by CBC through PuLP at every selection);
- `greedy`;
- `greedy` with `--scheduler-subsample 100`;
- `ilp` with `--scheduler-subsample 100`;
- whatever the default profile sets (profiles/default), when it differs from all of these.

Scheduler plugins (`--scheduler NAME` from snakemake-scheduler-plugin-*) are listed if
installed and timed the same way.

    .venv/bin/python benchmarks/bench_scheduler.py [--trials 5000] [--window-s 45] [--cores 2] [--keep] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_orchestration import sweep_yaml  # noqa: E402
from common import PYTHON, REPO, copy_workflow, finish, loadavg, machine_line  # noqa: E402

VARIANTS = {
    "ilp (Snakemake default)": ["--scheduler", "ilp"],
    "greedy": ["--scheduler", "greedy"],
    "greedy, subsample 100": ["--scheduler", "greedy", "--scheduler-subsample", "100"],
    "ilp, subsample 100": ["--scheduler", "ilp", "--scheduler-subsample", "100"],
    "default profile (no flag)": [],
}


def plugins() -> list[str]:
    from importlib.metadata import distributions

    return sorted({d.metadata["Name"] for d in distributions() if d.metadata["Name"].startswith("snakemake-scheduler-plugin-")})


def results_in(root: Path) -> list[float]:
    out = []
    trials = root / "results" / "trials"
    try:
        with os.scandir(trials) as it:
            dirs = [e.path for e in it if e.is_dir()]
    except OSError:
        return out
    for d in dirs:
        for step in ("train", "eval", "measure"):
            try:
                out.append(os.stat(os.path.join(d, f"{step}.json")).st_mtime)
            except OSError:
                pass
    return out


def run_variant(d: Path, flags: list[str], window: float, cores: int, env: dict) -> dict:
    import shutil

    for name in ("results", "logs", ".snakemake"):
        shutil.rmtree(d / name, ignore_errors=True)
    t0 = time.time()
    proc = subprocess.Popen([PYTHON, "-m", "snakemake", "--cores", str(cores), "--configfile", "sweep.yaml", *flags],
                            cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = None
    deadline = t0 + 900
    while time.time() < deadline and proc.poll() is None:
        times = results_in(d) if first is None else []
        if first is None and times:
            first = min(times)
        if first is not None and time.time() - first >= window:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if first is None:
        raise SystemExit(f"no step finished with {flags}")
    done = [t for t in results_in(d) if first <= t <= first + window]
    return {"dag_s": first - t0, "jobs": len(done), "ms_per_job": 1000 * window / max(1, len(done))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5000)
    ap.add_argument("--window-s", type=float, default=45)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--workflow-root", type=Path, default=REPO)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="snakesweep-bench-sched-"))
    d = copy_workflow(tmp / "real", a.workflow_root)
    (d / "toy.py").write_text((REPO / "tests" / "workloads" / "toy.py").read_text())
    (d / "sweep.yaml").write_text(sweep_yaml(a.trials))
    env = dict(os.environ)
    print(machine_line())
    found = plugins()
    print(f"scheduler plugins installed: {', '.join(found) or 'none'}")
    variants = dict(VARIANTS)
    for p in found:
        variants[p] = ["--scheduler", p.removeprefix("snakemake-scheduler-plugin-")]
    if a.only:
        variants = {k: v for k, v in variants.items() if k in a.only}
    out = {"machine": machine_line(), "trials": a.trials, "window_s": a.window_s, "variants": {}}
    for name, flags in variants.items():
        r = run_variant(d, flags, a.window_s, a.cores, env)
        out["variants"][name] = r
        print(f"  {name:28s}: {r['jobs']:5d} jobs in {a.window_s:.0f} s = {r['ms_per_job']:6.1f} ms/job "
              f"(DAG + first job {r['dag_s']:.1f} s; load {loadavg()})", flush=True)
    print(f"\n== scheduling, {a.trials} toy trials, --cores {a.cores}: wall ms per finished job (lower is better) ==")
    for name, r in sorted(out["variants"].items(), key=lambda kv: kv[1]["ms_per_job"]):
        print(f"{name:28s} {r['ms_per_job']:7.1f} ms/job")
    return finish(a.json, out, a.keep, tmp)


if __name__ == "__main__":
    sys.exit(main())
