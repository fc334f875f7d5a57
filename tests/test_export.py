"""python -m snakesweep.export (issue 20): a real sweep's trials as MLflow runs in the sweep's sqlite
store (read back with mlflow.search_runs and MlflowClient.get_metric_history) and as W&B offline runs
(their transaction logs read back), idempotent, with trials finished later added."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import toy_config
from snakesweep.export import flatten, history_points
from snakesweep.layout import find_sweep

mlflow = pytest.importorskip("mlflow")


def test_flatten_and_history_points():
    assert flatten({"opt": {"lr": 0.1, "betas": [0.9, 0.99]}, "seed": 0}) == {"opt.lr": 0.1, "opt.betas": [0.9, 0.99], "seed": 0}
    assert history_points([{"epoch": 1, "loss": 2.0, "tag": "x"}, {"loss": 1.0}, "junk"]) == [(1, {"loss": 2.0}), (1, {"loss": 1.0})]


def _export(workdir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakesweep.export", *args], cwd=workdir.path,
                          capture_output=True, text=True, timeout=300)


def _records(path: Path):
    """The records of a W&B transaction log (.wandb): a 7-byte header, then LevelDB-log-style
    32 KiB blocks of chunks (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


def _offline_run(path: Path) -> dict:
    out = {"config": {}, "history": [], "summary": {}}
    for rec in _records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["id"] = rec.run.run_id
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
    return out


def test_export_to_mlflow_and_wandb_offline(workdir):
    cfg = toy_config(workdir, {"x": [0.0, 2.0]}, report={"export": ["mlflow", "wandb"]})
    cfg["sweep"]["steps"] = ["train", "eval"]
    workdir.write_config(cfg, "sweep.yaml")
    root, rel = find_sweep(workdir.path / "sweep.yaml", workdir.path)
    # the export rule, at the end of the run (its markers are the run's targets here)
    workdir.snakemake(f"{rel}/export/mlflow.json", f"{rel}/export/wandb.json", "--cores", "2",
                      "--configfile", "sweep.yaml", check=True, timeout=600)
    sweep = Path(root, rel)
    marker = json.loads((sweep / "export" / "mlflow.json").read_text())
    assert (marker["added"], marker["trials"]) == (4, 4)

    plan = json.loads((sweep / "plan" / "trials.json").read_text())
    trials = {t["trial"]: t["params"] for t in plan["trials"]}
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{sweep.resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["toy"])
    assert len(runs) == 4
    client = MlflowClient(tracking_uri=uri)
    for _, r in runs.iterrows():
        trial = r["tags.snakesweep.trial"]
        train = json.loads((sweep / "trials" / trial / "train.json").read_text())
        evaluate = json.loads((sweep / "trials" / trial / "eval.json").read_text())
        assert r["params.x"] == json.dumps(trials[trial]["x"]) and r["params.seed"] == json.dumps(trials[trial]["seed"])
        assert r["metrics.train_loss"] == pytest.approx(train["metrics"]["train_loss"])
        assert r["metrics.eval_accuracy"] == pytest.approx(evaluate["metrics"]["eval_accuracy"])
        assert r["tags.snakesweep.status"] == "ok" and r["status"] == "FINISHED"
        assert r["tags.snakesweep.sweep"] == "toy" and r["tags.snakesweep.code_digest"]
        history = client.get_metric_history(r["run_id"], "history.loss")
        assert [(m.step, m.value) for m in history] == [(h["epoch"], pytest.approx(h["loss"])) for h in train["metrics"]["history"]]
    ids = set(runs["run_id"])

    # a second export updates nothing and duplicates nothing
    again = _export(workdir, "mlflow", "sweep.yaml")
    assert again.returncode == 0, again.stderr
    assert "0 added, 0 updated, 4 unchanged" in again.stdout
    assert set(mlflow.search_runs(experiment_names=["toy"])["run_id"]) == ids

    # W&B: one offline run per trial inside the sweep's directory, holding its params and metrics
    offline = sorted((sweep / "wandb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 4
    seen = {}
    for path in offline:
        run = _offline_run(path)
        trial = run["summary"]["snakesweep.trial"]
        seen[trial] = run
        train = json.loads((sweep / "trials" / trial / "train.json").read_text())
        assert run["config"]["x"] == trials[trial]["x"] and run["config"]["seed"] == trials[trial]["seed"]
        assert run["summary"]["train_loss"] == pytest.approx(train["metrics"]["train_loss"])
        assert [h["history/loss"] for h in run["history"]] == pytest.approx([h["loss"] for h in train["metrics"]["history"]])
    assert set(seen) == set(trials)
    assert "4 unchanged" in _export(workdir, "wandb", str(rel)).stdout
    assert len(list((sweep / "wandb" / "wandb").glob("offline-run-*"))) == 4

    # more trials finished (the same sweep, edited): they are added, the others kept
    cfg["sweep"]["grid"]["x"] = [0.0, 2.0, 3.0]
    workdir.write_config(cfg, "sweep.yaml")
    workdir.snakemake(f"{rel}/summary.csv", "--cores", "2", "--configfile", "sweep.yaml", check=True, timeout=600)
    more = _export(workdir, "mlflow", "sweep.yaml")
    assert "2 added, 0 updated, 4 unchanged" in more.stdout, more.stdout + more.stderr
    after = mlflow.search_runs(experiment_names=["toy"])
    assert len(after) == 6 and ids <= set(after["run_id"])


def test_export_without_a_plan_is_one_line(workdir, tmp_path):
    proc = _export(workdir, "mlflow", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "fix:" in proc.stderr
