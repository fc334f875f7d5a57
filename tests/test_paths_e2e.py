"""End-to-end: hostile and unlucky file names through every workload form (issue 17, "A file name
runs in the shell"), and a sweep's own directory (`sweep.dir`) with the readers that take it.

The rules paste paths into `shell:` lines; each is quoted there, and the workload file's stem never
reaches a path unsanitised. A name with spaces, quotes, `$(...)`, backticks, `;` and (where the file
system allows) a newline must run nothing and must work."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TOY, sweep_dir, toy_config

pytestmark = pytest.mark.e2e

# every shell metacharacter the issue names; each payload would create a PWNED_* file if it ran
HOSTILE = "w$(touch PWNED_1) `touch PWNED_2`; touch PWNED_3 'q' \"d\" &"


def _newline_ok(where: Path) -> bool:
    try:
        (where / "nl\nprobe").mkdir()
        (where / "nl\nprobe").rmdir()
        return True
    except OSError:
        return False


def assert_nothing_injected(workdir) -> None:
    found = [p for p in workdir.path.rglob("*PWNED*") if not _is_ours(p)]
    assert not found, f"a name ran in a shell: {found}"


def _is_ours(p: Path) -> bool:
    # the hostile files and directories themselves hold the word; a file created by a payload is
    # named exactly PWNED_<n>
    return not p.name.startswith("PWNED_")


def assert_all_ok(workdir, cfg, n: int) -> list[dict]:
    rows = workdir.read_csv(f"{sweep_dir(cfg)}/summary.csv")
    assert len(rows) == n and all(r["status"] == "ok" for r in rows), rows
    return rows


@pytest.mark.parametrize("name", ["my wl/toy v2.py", "hostile"])
def test_a_module_workload_at_an_odd_path_runs_and_nothing_is_injected(workdir, name):
    if name == "hostile":
        nl = "\n" if _newline_ok(workdir.path) else ""
        name = f"my wl;{HOSTILE}/{HOSTILE}{nl} v2.py"
    dest = workdir.path / name
    dest.parent.mkdir(parents=True)
    shutil.copy(TOY, dest)
    cfg = toy_config(workdir, {"x": [0.0, 1.0]}, sweep={"workload": name, "seeds": [0],
                                                         "steps": ["train", "eval", "measure"]})
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(cfg)))
    assert run.returncode == 0, run.stderr[-4000:]
    assert_nothing_injected(workdir)
    rows = assert_all_ok(workdir, cfg, 2)
    assert {float(r["x"]) for r in rows} == {0.0, 1.0} and all(float(r["eval_accuracy"]) > 0 for r in rows)
    # the prepared data and every log sit in the sweep's directory, under safe names
    sweep = workdir.path / sweep_dir(cfg)
    (marker,) = sweep.glob("data/*/ready.json")
    assert set(marker.parent.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert len(list(sweep.glob("logs/prepare_data/*.log"))) == 1
    for r in rows:
        for step in ("train", "eval", "measure"):
            assert (sweep / "logs" / step / f"{r['trial']}.log").is_file()
    # editing the oddly named file re-runs the steps that use it: it is an input, found by its name
    dest.write_text(dest.read_text() + "\n# edited\n")
    again = workdir.snakemake("-n", "--configfile", "sweep.yaml")
    out = again.stdout + again.stderr
    assert again.returncode == 0 and "jobs to run per step: train 2, eval 2, measure 2" in out, out[-3000:]
    assert_nothing_injected(workdir)


TOOL = '''\
"""A user's CLI script: writes metrics.json into --out (and reads the model with --model)."""
import argparse, json
from pathlib import Path
ap = argparse.ArgumentParser()
ap.add_argument("--out", type=Path); ap.add_argument("--model", type=Path); ap.add_argument("--lr", type=float)
a = ap.parse_args()
a.out.mkdir(parents=True, exist_ok=True)
if a.model:
    score = json.loads((a.model / "model.json").read_text())["lr"]
    (a.out / "metrics.json").write_text(json.dumps({"score": score}))
else:
    (a.out / "model.json").write_text(json.dumps({"lr": a.lr}))
    (a.out / "metrics.json").write_text(json.dumps({"train_loss": 1 - a.lr}))
'''


def test_a_command_workload_from_odd_paths_in_its_own_sweep_dir_runs_and_nothing_is_injected(workdir):
    tools = workdir.path / f"tools;{HOSTILE}"
    tools.mkdir()
    script = tools / f"{HOSTILE}.py"
    script.write_text(TOOL)
    rel = str(script.relative_to(workdir.path))
    cfg = {
        "sweep": {
            "name": "cmd", "dir": "elsewhere/cmd-sweep", "steps": ["train", "eval", "measure"],
            "workload": {"command": {"train": ["python", rel, "--lr", "{lr}", "--out", "{out_dir}"],
                                     "eval": ["python", rel, "--model", "{train_dir}", "--out", "{out_dir}"],
                                     "measure": ["python", rel, "--model", "{train_dir}", "--out", "{out_dir}"]},
                         "sources": [str(tools.relative_to(workdir.path))]},
            "grid": {"lr": [0.1, 0.5]}, "seeds": [0],
        },
        "measure": {"min_window_s": 0},
        "device": "cpu",
        "report": {"objective": {"metric": "score", "direction": "max"}},
    }
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(cfg)))
    assert run.returncode == 0, run.stderr[-4000:]
    assert_nothing_injected(workdir)
    rows = assert_all_ok(workdir, cfg, 2)
    assert {float(r["score"]) for r in rows} == {0.1, 0.5}
    # everything under sweep.dir, nothing under results/
    assert sweep_dir(cfg) == "elsewhere/cmd-sweep" and not (workdir.path / "results").exists()
    sweep = workdir.path / "elsewhere/cmd-sweep"
    for part in ("plan/trials.json", "summary.csv", "best.json", "report/answer.html", "logs/collect/collect.log"):
        assert (sweep / part).is_file(), part
    assert "elsewhere/cmd-sweep/summary.csv" in run.stderr  # the end summary names the sweep's own files
    # the status command takes the sweep as its file or as its directory
    for arg in ("sweep.yaml", "elsewhere/cmd-sweep"):
        st = subprocess.run([sys.executable, "-m", "snakesweep.status", arg, "--format", "json"],
                            cwd=workdir.path, capture_output=True, text=True, timeout=60)
        assert st.returncode == 0, st.stderr
        doc = json.loads(st.stdout)
        assert doc["sweep_name"] == "cmd" and doc["planned"] == 2
        assert doc["steps"]["measure"]["done"] == 2 and doc["sweep_dir"] == str(sweep.resolve())


def test_a_hydra_app_at_an_odd_path_runs_and_nothing_is_injected(workdir):
    pytest.importorskip("hydra")
    apps = workdir.path / f"apps;{HOSTILE}"
    app = apps / f"hydra app {HOSTILE}"
    shutil.copytree(REPO / "examples/hydra_app", app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "examples/digits.py", apps / "digits.py")  # the app imports it from its parent
    rel = str((app / "app.py").relative_to(workdir.path))
    cfg = {
        "sweep": {
            "name": "hydra-odd", "steps": ["train", "eval"],
            "workload": {"command": {"train": ["python", rel],
                                     "eval": ["python", rel, "stage=eval", "model_dir={train_dir}"]},
                         "args": "hydra", "sources": [str(apps.relative_to(workdir.path))]},
            "fixed": {"optimizer": {"epochs": 2}, "run_name": HOSTILE},
            "grid": {"optimizer.lr": [0.5]}, "seeds": [0],
        },
        "device": "cpu",
        "report": {"objective": {"metric": "eval_accuracy", "direction": "max"}},
    }
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(cfg)))
    assert run.returncode == 0, run.stderr[-4000:]
    assert_nothing_injected(workdir)
    (row,) = assert_all_ok(workdir, cfg, 1)
    assert row["run_name"] == HOSTILE and 0 < float(row["eval_accuracy"]) <= 1
    tdir = workdir.path / sweep_dir(cfg) / "trials" / row["trial"]
    assert "lr: 0.5" in (tdir / "train/.hydra/config.yaml").read_text()
