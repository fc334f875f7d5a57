"""collect: summary rows from the sweep state, on pandas: a corrupt result fails only its trial,
parameter values of every JSON type survive the round trip, and the columns are those of the
steps that ran."""

from __future__ import annotations

import json
from pathlib import Path

from snakesweep.report import collect, read_summary
from state_helpers import touch, write_plan, write_result

T = [f"{i:010x}" for i in range(4)]
METRICS = {"train": {"train_loss": 0.5, "history": [1, 2]}, "eval": {"eval_accuracy": 0.9},
           "measure": {"latency_ms_p50": 2.0, "energy_source": "unavailable: no RAPL"}}


def _run(root: Path):
    return collect(root / "results/plan/trials.json", root / "results", root / "logs",
                   root / "results/summary.csv", root / "results/configs.csv")


def _finish(root: Path, trial: str, steps=("train", "eval", "measure")) -> None:
    for s in steps:
        write_result(root, trial, s, dict(METRICS[s]))


def test_a_corrupt_eval_fails_its_trial_and_the_rest_aggregates(tmp_path):
    write_plan(tmp_path, T, params=[{"lr": 0.1, "seed": 0}, {"lr": 0.1, "seed": 1}, {"lr": 0.2, "seed": 0}, {"lr": 0.2, "seed": 1}])
    for t in T:
        _finish(tmp_path, t)
    bad = tmp_path / f"results/trials/{T[1]}/eval.json"
    bad.write_text(bad.read_text()[:25])  # truncated: a full disk
    touch(tmp_path / f"logs/train/{T[3]}.error.json", json.dumps(
        {"type": "ValueError", "message": "lr, too big", "log": f"logs/train/{T[3]}.log"}))
    (tmp_path / f"results/trials/{T[3]}/train.json").unlink()
    for s in ("eval", "measure"):
        (tmp_path / f"results/trials/{T[3]}/{s}.json").unlink()
    rows = {r["trial"]: r for r in _run(tmp_path)}
    assert [rows[t]["status"] for t in T] == ["ok", "failed", "ok", "failed"]
    assert rows[T[1]]["error"].startswith(f"eval: corrupt: results/trials/{T[1]}/eval.json: Unterminated string")
    assert rows[T[1]]["error_log"] == f"results/trials/{T[1]}/eval.json"
    assert rows[T[3]]["error"] == "train: ValueError: lr, too big"
    summary = (tmp_path / "results/summary.csv").read_text()
    assert "history" not in summary.splitlines()[0]  # lists stay in the JSON
    import pandas as pd

    cfg = pd.read_csv(tmp_path / "results/configs.csv", dtype=str, keep_default_na=False)
    assert list(cfg["n_ok"]) == ["1", "1"] and list(cfg["n_failed"]) == ["1", "1"]
    df = pd.read_csv(tmp_path / "results/summary.csv", dtype=str, keep_default_na=False)
    assert set(df["config_id"]) == set(cfg["config_id"])  # the two files join


def test_parameter_values_of_every_json_type_survive_the_round_trip(tmp_path):
    values = [None, True, "a, \"quoted\" b", [1, 2.5, None]]
    plan = write_plan(tmp_path, T, params=[{"v": v, "flag": i % 2 == 0, "seed": 0} for i, v in enumerate(values)])
    for t in T:
        _finish(tmp_path, t)
    rows = _run(tmp_path)
    assert [r["v"] for r in rows] == values
    text = (tmp_path / "results/summary.csv").read_text()
    assert "null" in text.splitlines()[1] and '"a, ""quoted"" b"' in text  # never a blank for null
    back = read_summary(tmp_path / "results/summary.csv", plan)
    assert list(back["v"]) == values and list(back["flag"]) == [True, False, True, False]
    assert list(back["status"]) == ["ok"] * 4


def test_columns_follow_the_steps_that_ran(tmp_path):
    write_plan(tmp_path, T[:2], steps=["measure"], params=[{"batch": 1}, {"batch": 8}])
    for t in T[:2]:
        _finish(tmp_path, t, ("measure",))
    rows = _run(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    head = (tmp_path / "results/summary.csv").read_text().splitlines()[0].split(",")
    assert head == ["trial", "status", "batch", "latency_ms_p50", "energy_source", "config_id", "error", "error_log"]
    # a prefix sweep: train and eval only; a pending trial has no metrics yet
    write_plan(tmp_path, T[:2], steps=["train", "eval"])
    for s in ("train", "eval"):
        write_result(tmp_path, T[0], s, dict(METRICS[s]))
    for s in ("train", "eval", "measure"):
        (tmp_path / f"results/trials/{T[1]}/{s}.json").unlink(missing_ok=True)
    rows = _run(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "pending"]
    head = (tmp_path / "results/summary.csv").read_text().splitlines()[0].split(",")
    assert "latency_ms_p50" not in head and "eval_accuracy" in head
