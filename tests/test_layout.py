"""The project card's layout: entry points, and the workflow deployed as a Snakemake module.

A deployed module (snakedeploy style) runs from another directory, without this repository's
profiles/default: measurement exclusivity must still hold there, and across two runs at once.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TOY, copy_workflow
from snakesweep.results import read_json

pytestmark = pytest.mark.e2e


def test_every_rule_runs_a_script_under_scripts():
    """A reader gets from a rule to the code it runs in one hop: scripts/<name>.py exists."""
    rules = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    named = set(re.findall(r'get_script\("(\w+)"\)', rules)) | set(re.findall(r'"\.\./\.\./scripts/(\w+)\.py"', rules))
    assert {"train", "eval", "measure", "collect", "plan", "report_tables", "report_plots"} <= named
    for name in named:
        script = REPO / "scripts" / f"{name}.py"
        assert script.is_file(), script
        ast.parse(script.read_text())  # and it is Python
    assert "python -m snakesweep" not in rules  # no rule bypasses its script


def _deploy(tmp_path: Path, grid: dict, steps: list[str] | None = None, window_s: float = 0.4,
            cooldown_s: float = 0) -> Path:
    """A user's project that uses the workflow as a module (no profiles/, no workflow/ of its own)."""
    checkout = tmp_path / "snakesweep"
    checkout.mkdir(parents=True)
    copy_workflow(checkout)
    project = tmp_path / "project"
    (project / "config").mkdir(parents=True)
    (project / "toy.py").write_text(TOY.read_text())
    sweep = {"name": "deployed", "workload": "toy.py", "grid": grid, "seeds": [0]}
    if steps:
        sweep["steps"] = steps
    cfg = {
        "sweep": sweep,
        "measure": {"batch_size": 8, "warmup_batches": 1, "repeats": 2, "min_window_s": window_s,
                    "cooldown_s": cooldown_s},
        "device": "cpu",
    }
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (project / "Snakefile").write_text(
        'configfile: "config/config.yaml"\n\n\n'
        "module snakesweep:\n"
        "    snakefile:\n"
        f'        "{checkout / "workflow" / "Snakefile"}"\n'
        "    config:\n"
        "        config\n\n\n"
        "use rule * from snakesweep\n"
    )
    return project


def _env(lock: Path) -> dict[str, str]:
    return dict(os.environ, SNAKESWEEP_MEASURE_LOCK=str(lock), PYTHONDONTWRITEBYTECODE="1")


def _windows(project: Path) -> list[tuple[datetime, datetime, float]]:
    out = []
    for f in sorted((project / "results/deployed" / "trials").glob("*/measure.json")):
        m = read_json(f)["metrics"]
        out.append((datetime.fromisoformat(m["measure_lock_from"]), datetime.fromisoformat(m["measure_lock_to"]),
                    m["measure_lock_wait_s"]))
    return sorted(out)


def _assert_disjoint(windows):
    for (_, end, _), (start, _, _) in zip(windows, windows[1:]):
        assert end <= start, f"two measurements overlapped: one ended {end}, the next started {start}"


def test_deployed_module_runs_and_measures_one_at_a_time(tmp_path):
    project = _deploy(tmp_path, {"x": [0.5, 1.5, 2.5, 3.5]})
    assert not (project / "profiles").exists()
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=project, capture_output=True,
                         text=True, timeout=300, env=_env(tmp_path / "measure.lock"))
    assert run.returncode == 0, run.stderr[-3000:]
    rows = (project / "results/deployed" / "summary.csv").read_text().splitlines()
    assert len(rows) == 5 and all(",ok," in r for r in rows[1:])
    windows = _windows(project)
    assert len(windows) == 4
    _assert_disjoint(windows)
    # the run's own scheduler kept them apart (measure_slot), not the host lock: nobody waited
    assert all(wait < 0.5 for _, _, wait in windows), windows


def test_two_runs_at_once_never_measure_together(tmp_path):
    """Two sweeps in two directories, started together: the host-wide lock serialises them."""
    # each measurement holds the host >= 1.5 s (cooldown + window): the two runs must meet
    a = _deploy(tmp_path / "a", {"x": [0.5, 1.5, 2.5]}, steps=["measure"], window_s=0.5, cooldown_s=1)
    b = _deploy(tmp_path / "b", {"x": [4.5, 5.5, 6.5]}, steps=["measure"], window_s=0.5, cooldown_s=1)
    env = _env(tmp_path / "measure.lock")
    procs = [subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=p, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for p in (a, b)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    windows = sorted(_windows(a) + _windows(b))
    assert len(windows) == 6
    _assert_disjoint(windows)
    assert any(wait > 0.05 for _, _, wait in windows), "the runs never met: the test proved nothing"
