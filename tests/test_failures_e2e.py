"""Failure policies with real Snakemake: retries that know the reason, and a failure budget."""

from __future__ import annotations

import json
import os

import pytest

from conftest import toy_config

pytestmark = pytest.mark.e2e

FAILING = dict(os.environ, TOY_FAILURES="1")


def _records(workdir, step="train") -> dict[str, dict]:
    return {p.name.split(".")[0]: json.loads(p.read_text()) for p in (workdir.path / "results/toy/logs" / step).glob("*.error.json")}


def _ids(workdir, **match) -> list[str]:
    plan = json.loads((workdir.path / "results/toy" / "plan" / "trials.json").read_text())
    return [t["trial"] for t in plan["trials"] if all(t["params"].get(k) == v for k, v in match.items())]


def test_signals_are_retried_and_exceptions_are_not(workdir):
    cfg = toy_config(workdir, {"x": [0.5], "fail": [None, "kill", "raise"]}, failures={"retries": {"train": 1}})
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(cfg)), env=FAILING)
    assert run.returncode == 1
    records = _records(workdir)
    for tid in _ids(workdir, fail="kill"):  # the OOM killer's signal: a second attempt, with twice the time
        assert records[tid]["reason"] == "signal" and records[tid]["attempt"] == 2
        log = (workdir.path / "results/toy/logs" / "train" / f"{tid}.log").read_text()
        # Snakemake empties the log before each attempt: the retry's log says what failed before
        assert "attempt 2 (the last one failed: signal); timeout 7200 s" in log
        assert "attempt 1 failed: SIGKILL: the step's process died from SIGKILL" in log
        assert log.count(f"train {tid} started") == 1
    for tid in _ids(workdir, fail="raise"):  # the user's exception would fail again: not re-run
        assert records[tid]["reason"] == "exception" and records[tid]["attempt"] == 1
        log = (workdir.path / "results/toy/logs" / "train" / f"{tid}.log").read_text()
        assert f"train {tid} started" not in log
        assert "attempt 2 not started: the last attempt failed with reason 'exception'" in log
        assert "attempt 1 failed: ValueError: injected failure for x=0.5" in log
        assert "Traceback" in log or "raise ValueError" in log  # the traceback is kept
    rows = {r["trial"]: r for r in workdir.read_csv("results/toy/summary.csv")}
    assert [rows[t]["status"] for t in _ids(workdir, fail=None)] == ["ok"] * 2


def test_exceptions_are_retried_when_asked(workdir):
    cfg = toy_config(workdir, {"x": [0.5], "fail": ["raise"]},
                     failures={"retries": {"train": 2}, "retry_on": ["exception"]})
    cfg["sweep"]["seeds"] = [0]
    workdir.snakemake("--cores", "1", "--configfile", str(workdir.write_config(cfg)), env=FAILING)
    (tid,) = _ids(workdir, fail="raise")
    assert _records(workdir)[tid]["attempt"] == 3
    log = (workdir.path / "results/toy/logs" / "train" / f"{tid}.log").read_text()
    assert "attempt 3 (the last one failed: exception)" in log and f"train {tid} started" in log


def test_failure_budget_stops_new_trials_and_stays_resumable(workdir):
    cfg = toy_config(workdir, {"x": [0.5, 1.5, 2.5], "fail": [None, "raise"]}, failures={"max_failures": 1})
    cfg["sweep"]["seeds"] = [0]
    path = str(workdir.write_config(cfg))
    run = workdir.snakemake("--cores", "1", "--configfile", path, env=FAILING)
    assert run.returncode == 1
    reasons = {tid: r["reason"] for tid, r in _records(workdir).items()}
    # one real failure spends the budget; every trial not started by then is held back, and
    # since two of six trials fail, the first failure always comes before the last trial
    assert list(reasons.values()).count("exception") == 1
    held = [t for t, why in reasons.items() if why == "budget"]
    assert held
    rows = {r["trial"]: r for r in workdir.read_csv("results/toy/summary.csv")}
    for tid in held:
        assert "failure budget is spent (1 trials failed in this run, failures.max_failures = 1)" in rows[tid]["error"]
        log = (workdir.path / "results/toy/logs" / "train" / f"{tid}.log").read_text()
        assert f"train {tid} started" not in log  # held back before the step ran
        assert not (workdir.path / "results/toy" / "trials" / tid / "train.json").exists()
    started_ok = [t for t, r in rows.items() if r["status"] == "ok"]
    assert len(started_ok) + len(reasons) == 6

    # the bug is fixed: the same command finishes the sweep; finished trials are not redone
    again = workdir.snakemake("--cores", "2", "--configfile", path, check=True)
    assert again.returncode == 0
    assert [r["status"] for r in workdir.read_csv("results/toy/summary.csv")] == ["ok"] * 6
    for tid in started_ok:
        assert f"train {tid} started" in (workdir.path / "results/toy/logs" / "train" / f"{tid}.log").read_text()
        assert (workdir.path / "results/toy/logs" / "train" / f"{tid}.log").read_text().count("started") == 1


def test_failure_rate_budget(workdir):
    cfg = toy_config(workdir, {"x": [0.5, 1.5, 2.5, 3.5], "fail": [None, "raise"]},
                     failures={"max_failure_rate": 0.1})
    cfg["sweep"]["seeds"] = [0]
    workdir.snakemake("--cores", "1", "--configfile", str(workdir.write_config(cfg)), env=FAILING)
    reasons = [r["reason"] for r in _records(workdir).values()]
    # 0.1 x 8 planned trials: the first failure (1 > 0.8) spends it
    assert reasons.count("exception") == 1 and reasons.count("budget") >= 1
    budget_msgs = [r["message"] for r in _records(workdir).values() if r["reason"] == "budget"]
    assert "1 of 8 planned trials failed in this run, more than failures.max_failure_rate = 0.1" in budget_msgs[0]
