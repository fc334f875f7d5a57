"""Helpers shared by the pipeline benchmarks (issue 2): timed child processes, a run budget,
a temporary copy of the workflow, and the machine context printed with every figure.

Benchmarks compare against a baseline measured in the same run, interleaved (A B A B ...),
and report the minimum of the repeats: on a shared 2-core machine the minimum is the figure
least inflated by neighbours. Both wall time and CPU time (user + sys of the child and its
descendants, from wait4) are reported; CPU time is the steadier of the two under contention.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass
class Timing:
    wall_s: float
    cpu_s: float  # user + sys of the child and every descendant it waited for
    maxrss_mb: float
    rc: int
    output: str = ""


@dataclass
class Series:
    """Repeats of one command; `best` is the minimum (least disturbed) of each measure."""

    name: str
    runs: list[Timing] = field(default_factory=list)

    def add(self, t: Timing) -> None:
        self.runs.append(t)

    @property
    def wall(self) -> float:
        return min(t.wall_s for t in self.runs)

    @property
    def cpu(self) -> float:
        return min(t.cpu_s for t in self.runs)

    @property
    def rss(self) -> float:
        return max(t.maxrss_mb for t in self.runs)

    def describe(self) -> str:
        walls = ", ".join(f"{t.wall_s:.2f}" for t in self.runs)
        cpus = ", ".join(f"{t.cpu_s:.2f}" for t in self.runs)
        return (
            f"{self.name}: min wall {self.wall:.2f} s (runs: {walls}); min cpu {self.cpu:.2f} s "
            f"(runs: {cpus}); peak rss {self.rss:.0f} MB"
        )


def run_timed(
    cmd: list[str], cwd: Path | str | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> Timing:
    """Run `cmd`, return its wall time, CPU time and peak RSS (via wait4); output captured."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"snakesweep-bench-{os.getpid()}-{time.monotonic_ns()}.out"
    with open(out_path, "w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, 9)
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    out_path.unlink(missing_ok=True)
    # ru_maxrss is the largest single process of the tree, in KiB on Linux
    return Timing(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, proc.returncode, text)


class Budget:
    """A wall-clock allowance for a whole benchmark; repeats stop (and say so) when it runs out."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.monotonic()
        self.exhausted = False

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def allows(self, expected_s: float) -> bool:
        ok = self.left() > expected_s
        if not ok:
            self.exhausted = True
        return ok


def copy_workflow(dest: Path, root: Path = REPO) -> Path:
    """What a user has after `git clone` (the same set the tests copy)."""
    from snakesweep.layout import copy_workflow as copy

    return copy(dest, root)


def add_run_args(ap, budget_s: float) -> None:
    """The options every workflow-vs-hand-written benchmark takes."""
    ap.add_argument("--budget-s", type=float, default=budget_s)
    ap.add_argument("--workflow-root", type=Path, default=REPO)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path)


def real_and_hand(prefix: str, root: Path, sweep_yaml: str, hand_files: dict[str, str]) -> tuple[Path, Path, Path]:
    """A temp dir holding `real` (a copy of the workflow with sweep.yaml) and `hand` (the
    hand-written baseline's files); returns (tmp, real, hand)."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    real, hand = tmp / "real", tmp / "hand"
    copy_workflow(real, root)
    (real / "sweep.yaml").write_text(sweep_yaml)
    hand.mkdir()
    for name, text in hand_files.items():
        (hand / name).write_text(text)
    return tmp, real, hand


def job_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment a job of the workflow sees: this interpreter first on PATH, the checkout
    on PYTHONPATH (common.smk does the same), plus `extra`."""
    env = dict(os.environ, **extra)
    env["PATH"] = os.pathsep.join([os.path.dirname(PYTHON), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    return env


def finish(json_path: Path | None, payload: dict, keep: bool, workdir: Path) -> int:
    """The end of every benchmark: optional JSON of the figures, then keep or remove its temp dir."""
    if json_path:
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
    if keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine_line() -> str:
    import subprocess as sp

    try:
        rev = sp.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = sp.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rev, dirty = "?", ""
    return (
        f"machine: {platform.node()} {os.cpu_count()} cpus, python {platform.python_version()}, "
        f"repo {rev}{' (+local changes)' if dirty else ''}, load average {loadavg()}"
    )


def verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"
