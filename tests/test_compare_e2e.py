"""python -m snakesweep.compare on two real sweeps in one checkout (issue 20): the second sweep runs a
changed workload that makes one configuration worse by far more than seed noise, shifts another
by much less than the noise, and leaves a third alone; each sweep has a configuration the other lacks."""

from __future__ import annotations

import json
import subprocess
import sys

from snakesweep.layout import find_sweep

# score = 0.1 * x + seed noise (+-0.05 over seeds 0, 1, 2) + the change of the new workload
WORKLOAD = '''
import json
from pathlib import Path

NOISE = {{0: 0.0, 1: 0.05, 2: -0.05}}
CHANGE = {change!r}


def prepare(data_dir):
    (Path(data_dir) / "data.json").write_text("{{}}")


def train(params, out_dir, *, data_dir, device):
    x = int(params["x"])
    score = 0.1 * x + NOISE[params["seed"]] + CHANGE.get(x, 0.0)
    history = [{{"epoch": e, "loss": 1.0 / e + x}} for e in (1, 2, 3)]
    Path(out_dir, "model.json").write_text(json.dumps({{"x": x}}))
    return {{"train_score": score, "train_loss": 1.0 / 3 + x, "history": history}}
'''


def _sweep(workdir, name: str, workload: str, xs: list[int]) -> str:
    cfg = {
        "sweep": {"name": name, "workload": workload, "steps": ["train"], "grid": {"x": xs}, "seeds": [0, 1, 2]},
        "report": {"objective": {"metric": "train_score", "direction": "max"}},
        "device": "cpu",
    }
    workdir.write_config(cfg, f"{name}.yaml")
    return f"{name}.yaml"


def _compare(workdir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakesweep.compare", *args], cwd=workdir.path,
                          capture_output=True, text=True, timeout=120)


def test_compare_calls_exactly_the_changed_configuration_regressed(workdir):
    (workdir.path / "old_wl.py").write_text(WORKLOAD.format(change={}))
    # x=2: 1.0 worse (the seed noise is 0.05); x=3: 0.001 better, far inside the noise; x=1: the same
    (workdir.path / "new_wl.py").write_text(WORKLOAD.format(change={2: -1.0, 3: 0.001}))
    old = _sweep(workdir, "old", "old_wl.py", [0, 1, 2, 3])
    new = _sweep(workdir, "new", "new_wl.py", [1, 2, 3, 4])
    workdir.snakemake("--cores", "2", "--configfile", old, check=True)
    workdir.snakemake("--cores", "2", "--configfile", new, check=True)
    old_dir = find_sweep(workdir.path / old, workdir.path)
    new_dir = find_sweep(workdir.path / new, workdir.path)
    assert old_dir != new_dir, "the two sweeps share a directory"

    proc = _compare(workdir, old, new, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    verdicts = {r["params"]["x"]: r["verdict"] for r in rows if r["metric"] == "train_score"}
    assert verdicts == {1: "no significant change", 2: "regressed", 3: "no significant change"}
    by_x = {r["params"]["x"]: r for r in rows}
    assert abs(by_x[2]["difference"] - (-1.0)) < 1e-9
    assert abs(by_x[2]["old_mean"] - 0.2) < 1e-9 and abs(by_x[2]["new_mean"] - (0.2 - 1.0)) < 1e-9
    assert by_x[2]["p_value"] < 0.05 < by_x[3]["p_value"]
    assert by_x[2]["over"] == "seeds" and by_x[2]["old_n"] == by_x[2]["new_n"] == 3

    # --fail-on regressed gates a change: 1 with a regression, 0 without (the same sweep twice)
    proc = _compare(workdir, old, new, "--fail-on", "regressed")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout
    assert "only in old: x=0" in text and "only in new: x=4" in text
    assert "Holm" in text
    assert "workload code digest" in text and "plan: workload" in text
    assert _compare(workdir, old, old, "--fail-on", "regressed").returncode == 0

    # the directories name the sweeps as well as their files do; markdown pastes as a table
    md = _compare(workdir, f"{old_dir[1]}", f"{new_dir[1]}", "--format", "markdown")
    assert md.returncode == 0, md.stderr
    assert "| x=2 | train_score (max) |" in md.stdout and "**regressed**" in md.stdout
    assert "| old only | x=0 |" in md.stdout and "| new only | x=4 |" in md.stdout

    # another metric by name: train_loss is the same in both sweeps, seed-free (no spread at all)
    proc = _compare(workdir, old, new, "--metric", "train_loss:min", "--format", "json")
    assert {r["verdict"] for r in json.loads(proc.stdout)} == {"not testable"}
    bad = _compare(workdir, old, new, "--metric", "train_loss")
    assert bad.returncode == 2 and "train_loss:min" in bad.stderr and "Traceback" not in bad.stderr
