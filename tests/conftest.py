"""Fixtures that run the real workflow with real Snakemake in a temporary copy of the repository."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from snakesweep import layout

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "workloads" / "toy.py"


def sweep_dir(cfg: dict) -> str:
    """The directory a sweep writes everything to (results/<sweep.name>/ or sweep.dir), relative
    to the directory Snakemake runs in: the rules' RESULTS."""
    sweep = cfg["sweep"]
    return layout.sweep_dir(sweep["name"], sweep.get("dir"))


def default_sweep_dir() -> str:
    """The directory of the checkout's default sweep (config/config.yaml)."""
    return layout.sweep_dir_of_file(REPO / layout.DEFAULT_SWEEP_FILE)


def copy_workflow(dest: Path) -> Path:
    """What a user has after `git clone`: workflow, package, config and profiles."""
    return layout.copy_workflow(dest, REPO)


class BackgroundRun(subprocess.Popen):
    """A Snakemake run in the background, in its own session (killpg reaches its jobs), whose
    output goes to an unnamed temporary file, never a pipe: a run that prints more than a pipe
    holds (64 KB) while nobody reads it never blocks. :meth:`output` reads what it printed so far;
    :meth:`communicate` waits and returns (output, None)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self._out = tempfile.TemporaryFile()
        super().__init__(argv, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        fd = self._out.fileno()  # pread: the child's writes move the shared offset, not this read
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def communicate(self, input=None, timeout=None):  # noqa: A002 - Popen's signature
        self.wait(timeout=timeout)
        return self.output(), None


class Workdir:
    def __init__(self, path: Path):
        self.path = path

    def write_config(self, cfg: dict, name: str = "sweep.yaml") -> Path:
        p = self.path / name
        p.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return p

    def snakemake(
        self, *args: str, timeout: float = 300, check: bool = False, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        env = dict(env or os.environ, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=self.path, capture_output=True, text=True, timeout=timeout, env=env,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    def popen(self, *args: str) -> BackgroundRun:
        return BackgroundRun([sys.executable, "-m", "snakemake", *args], cwd=self.path)

    def sweep(self, name: str = "toy") -> Path:
        """The directory of the sweep called `name` (results/<name>/), inside this checkout."""
        return self.path / layout.sweep_dir(name)

    def read_csv(self, rel: str) -> list[dict[str, str]]:
        with open(self.path / rel) as fh:
            return list(csv.DictReader(fh))

    def workload(self) -> str:
        dest = self.path / "toy.py"
        if not dest.exists():
            shutil.copy(TOY, dest)
        return "toy.py"


@pytest.fixture
def workdir(tmp_path: Path) -> Workdir:
    return Workdir(copy_workflow(tmp_path))


def toy_config(workdir: Workdir, grid: dict, **overrides) -> dict:
    """A fast sweep on the torch-free test workload."""
    cfg = {
        "sweep": {"name": "toy", "workload": workdir.workload(), "grid": grid, "seeds": [0, 1]},
        "measure": {"batch_size": 8, "warmup_batches": 1, "repeats": 2, "min_window_s": 0},
        "device": "cpu",
    }
    for key, value in overrides.items():
        if key in cfg and isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def job_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The last `Job stats` table Snakemake printed (after a checkpoint it prints a new one)."""
    counts: dict[str, int] = {}
    lines = (proc.stdout + proc.stderr).splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Job stats:":
            counts = {}
            for row in lines[i + 3 :]:
                parts = row.split()
                if len(parts) != 2 or not parts[1].isdigit():
                    break
                counts[parts[0]] = int(parts[1])
    return counts


def jobs_run(proc: subprocess.CompletedProcess, rule: str) -> int:
    """How many jobs of `rule` this run started, from Snakemake's per-job blocks: in the run's log
    file (named on its "Complete log(s):" line), since profiles/default prints progress lines
    instead of job blocks on the console."""
    text = proc.stdout + proc.stderr
    m = re.search(r"^Complete log\(s\): (.+)$", text, re.M)
    if m and os.path.exists(m.group(1).strip()):
        text = Path(m.group(1).strip()).read_text()
    return sum(line.strip() in (f"rule {rule}:", f"localrule {rule}:") for line in text.splitlines())


def wait_for(condition, what: str, deadline_s: float = 120.0, every_s: float = 0.05):
    """Poll `condition` until it returns something true (returned), failing after a generous
    deadline with `what` (what was awaited): a loaded 2-core machine runs things late, never not at all."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {deadline_s:.0f} s waiting for {what}"
        time.sleep(every_s)
