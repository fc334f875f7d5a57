"""End-to-end: command workloads (the examples/ CLI scripts and Hydra app, and failing commands)
swept by real Snakemake in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, jobs_run, sweep_dir

pytestmark = pytest.mark.e2e


def with_examples(workdir) -> None:
    """A user's checkout: the workflow plus their own scripts beside it."""
    shutil.copytree(REPO / "examples", workdir.path / "examples", ignore=shutil.ignore_patterns("__pycache__"))


def example(name: str) -> dict:
    return yaml.safe_load((REPO / "config/examples" / name).read_text())


def rows_by(workdir, cfg: dict, key: str) -> dict:
    return {r[key]: r for r in workdir.read_csv(f"{sweep_dir(cfg)}/summary.csv")}


def touch_later(path: Path, results: Path) -> None:
    """Edit a file so that its mtime is newer than every file under `results` (made before): waits
    for the clock to pass the newest, whatever the file system's timestamp resolution."""
    newest = max(p.stat().st_mtime for p in results.rglob("*") if p.is_file())
    path.write_text(path.read_text() + "\n# edited\n")
    deadline = time.monotonic() + 10
    while path.stat().st_mtime <= newest:
        assert time.monotonic() < deadline, f"{path}'s mtime never passed {newest}"
        time.sleep(0.01)
        os.utime(path)


def test_cli_script_sweep_runs_and_editing_one_steps_script_reruns_only_what_uses_it(workdir):
    with_examples(workdir)
    cfg = example("cli-sweep.yaml")
    cfg["sweep"]["grid"] = {"lr": [0.5], "l2": [0.0, 0.001]}
    cfg["sweep"]["seeds"] = [0]
    path = workdir.write_config(cfg)
    workdir.snakemake("--cores", "2", "--configfile", str(path), check=True)

    rows = workdir.read_csv(f"{sweep_dir(cfg)}/summary.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
    for r in rows:
        assert 0.8 < float(r["eval_accuracy"]) <= 1 and float(r["val_accuracy"]) > 0.8
        assert float(r["throughput_sps"]) > 0  # infer_cli.py's own figure, kept under its name
        tdir = workdir.path / sweep_dir(cfg) / "trials" / r["trial"]
        assert (tdir / "train/model.npz").is_file() and (tdir / "eval/metrics.json").is_file()
        saved = json.loads((tdir / "train/model.json").read_text())
        assert (saved["lr"], saved["l2"]) == (0.5, float(r["l2"]))
        measured = json.loads((tdir / "measure.json").read_text())["metrics"]
        assert measured["window_includes_startup"] is True and measured["window_s"] > 0
        assert measured["peak_mem_mb"] > 10 and measured["energy_j"] is None  # no RAPL on this box
        assert measured["energy_source"].startswith("unavailable: ")

    touch_later(workdir.path / "examples/eval_cli.py", workdir.path / sweep_dir(cfg))
    again = workdir.snakemake("--cores", "2", "--configfile", str(path), check=True)
    assert jobs_run(again, "eval") == 2 and jobs_run(again, "train") == 0, again.stderr[-3000:]

    touch_later(workdir.path / "examples/train_cli.py", workdir.path / sweep_dir(cfg))
    third = workdir.snakemake("--cores", "2", "--configfile", str(path), check=True)
    assert jobs_run(third, "train") == 2, third.stderr[-3000:]


def test_flags_sweep_of_an_unchanged_argparse_script(workdir):
    with_examples(workdir)
    cfg = {
        "sweep": {
            "name": "flags", "steps": ["train"],
            "workload": {"command": {"train": "python examples/train_cli.py --out {out_dir}"}, "args": "flags",
                         "sources": ["examples/digits.py"]},
            "fixed": {"epochs": 3}, "grid": {"lr": [0.1, 0.5]}, "seeds": [3],
        },
        "device": "cpu",
        "report": {"objective": {"metric": "val_accuracy", "direction": "max"}},
    }
    workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(cfg)), check=True)
    rows = rows_by(workdir, cfg, "lr")
    assert set(rows) == {"0.1", "0.5"} and all(r["status"] == "ok" for r in rows.values())
    for lr, r in rows.items():
        saved = json.loads((workdir.path / sweep_dir(cfg) / "trials" / r["trial"] / "train/model.json").read_text())
        assert saved == {"lr": float(lr), "l2": 1e-4, "epochs": 3, "seed": 3}  # --l2 left at its default
        assert "eval_accuracy" not in r and "latency_ms_p50" not in r  # only the columns of the steps run


def test_hydra_app_sweep_and_a_parameter_the_app_lacks(workdir):
    pytest.importorskip("hydra")
    with_examples(workdir)
    cfg = example("hydra-sweep.yaml")
    cfg["sweep"]["grid"] = {"optimizer.lr": [0.5]}
    cfg["sweep"]["experiments"] = [{"optimizer.lrr": 0.1}]
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(cfg)))
    assert run.returncode != 0

    rows = workdir.read_csv(f"{sweep_dir(cfg)}/summary.csv")
    ok = [r for r in rows if r["optimizer.lr"] == "0.5"]
    bad = [r for r in rows if r["optimizer.lrr"] == "0.1"]
    assert len(ok) == len(bad) == 1
    assert ok[0]["status"] == "ok" and 0.8 < float(ok[0]["eval_accuracy"]) <= 1
    assert ok[0]["run_name"] == "digits; hydra sweep"
    tdir = workdir.path / sweep_dir(cfg) / "trials" / ok[0]["trial"]
    assert "lr: 0.5" in (tdir / "train/.hydra/config.yaml").read_text()
    assert (tdir / "train/app.log").is_file() and (tdir / "eval/metrics.json").is_file()
    assert not (workdir.path / "outputs").exists() and not (workdir.path / "multirun").exists()

    assert bad[0]["status"] == "failed"
    assert bad[0]["error"].startswith(
        "train: HydraKeyMissing: app.py: the Hydra app's config has no key 'optimizer.lrr' for the sweep parameter"
    ), bad[0]["error"]
    assert "fix: add optimizer.lrr to the app's config" in bad[0]["error"]


TOOL = '''\
"""A user's script for the failure tests: --mode ok | nometrics | crash | sleep."""
import argparse, json, os, time
from pathlib import Path
ap = argparse.ArgumentParser()
ap.add_argument("--mode"); ap.add_argument("--name"); ap.add_argument("--out", type=Path)
a = ap.parse_args()
a.out.mkdir(parents=True, exist_ok=True)
(a.out / "argv.json").write_text(json.dumps({"name": a.name}))
if a.mode == "crash":
    raise RuntimeError("the data loader broke")
if a.mode == "sleep":
    Path("sleeper.pid").write_text(str(os.getpid()))
    time.sleep(120)
if a.mode == "ok":
    (a.out / "metrics.json").write_text(json.dumps({"score": 1.0}))
'''


def failing_sweep(name: str, modes: list[str], timeout_s: float, evil: str) -> dict:
    return {
        "sweep": {
            "name": name, "steps": ["train"],
            "workload": {"command": {"train": ["python", "tool.py", "--mode", "{mode}", "--name", "{name}",
                                               "--out", "{out_dir}"]}},
            "fixed": {"name": evil},
            "experiments": [{"mode": m} for m in modes],
        },
        "device": "cpu",
        "timeout_s": {"train": timeout_s},
        "report": {"objective": {"metric": "score", "direction": "max"}},
    }


def test_failing_commands_are_recorded_clearly_and_values_never_reach_a_shell(workdir):
    (workdir.path / "tool.py").write_text(TOOL)
    evil = "; touch pwned #"
    # two sweeps, so that nothing that must finish races the timeout under test: the trials that
    # end by themselves get a timeout that is only a hang guard; the sleeper runs alone, its
    # timeout long enough for an interpreter to start and write its pid file on a loaded machine
    cfg = failing_sweep("failures", ["ok", "nometrics", "crash"], 300, evil)
    slow = failing_sweep("failures-timeout", ["sleep"], 10, evil)
    for c in (cfg, slow):
        run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(c)))
        assert run.returncode != 0
    rows = {**rows_by(workdir, cfg, "mode"), **rows_by(workdir, slow, "mode")}
    assert sorted(rows) == ["crash", "nometrics", "ok", "sleep"]
    assert rows["ok"]["status"] == "ok" and float(rows["ok"]["score"]) == 1.0
    received = json.loads((workdir.path / sweep_dir(cfg) / "trials" / rows["ok"]["trial"] / "train/argv.json").read_text())
    assert received == {"name": evil} and not list(workdir.path.rglob("pwned*"))

    nometrics = rows["nometrics"]
    assert nometrics["status"] == "failed"
    assert nometrics["error"].startswith(
        f"train: MetricsMissing: tool.py exited 0 but wrote no metrics.json in results/failures/trials/{nometrics['trial']}/train"
    ), nometrics["error"]
    assert rows["crash"]["status"] == "failed"
    assert rows["crash"]["error"].startswith("train: CommandFailed: tool.py exited with status 1"), rows["crash"]["error"]
    assert "RuntimeError: the data loader broke" in rows["crash"]["error"]
    assert rows["sleep"]["status"] == "failed" and rows["sleep"]["error"].startswith("train: Timeout")
    pid = int((workdir.path / "sleeper.pid").read_text())
    try:  # gone, or a zombie (dead, not reaped yet); read once: it may vanish between two reads
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = "gone"
    assert state in ("gone", "Z", "X"), "the timed-out command outlived its step"


def test_a_placeholder_naming_no_parameter_stops_the_run_before_any_job(workdir):
    cfg = {
        "sweep": {"name": "typo", "steps": ["train"],
                  "workload": {"command": {"train": ["python", "t.py", "--lr", "{lrr}"]}},
                  "grid": {"lr": [0.1]}},
        "device": "cpu",
    }
    run = workdir.snakemake("-n", "--configfile", str(workdir.write_config(cfg)))
    assert run.returncode != 0
    assert "'sweep.workload.command.train' uses {lrr}, which names no parameter (did you mean {lr}?" in run.stderr
    assert not (workdir.path / "results").exists()
