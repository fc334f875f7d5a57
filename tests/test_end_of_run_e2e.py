"""The end of a run (issues 16, 17): summaries that read huge cells, error records that carry their
plan's identity, a wide metrics table built without fragmenting, and a full disk named in one line."""

from __future__ import annotations

import csv
import errno
import json
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import pytest

from snakesweep import results as res
from snakesweep.state import read_state
from snakesweep.summary import disk_error_line, end_of_run_summary, unfinished


def _plan(d: Path, search: dict | None = None) -> dict:
    plan = {"schema_version": 1, "sweep_name": "t", "sweep_hash": "h1", "steps": ["train"], "param_names": ["x"],
            "trials": [{"trial": "aaaaaaaaaa", "params": {"x": 1}}]}
    if search:
        plan["search"] = search
    (d / "plan").mkdir(parents=True, exist_ok=True)
    (d / "plan" / "trials.json").write_text(json.dumps(plan))
    return plan


def test_a_summary_cell_over_the_csv_field_limit_is_still_read(tmp_path):
    big = "y" * 300_000  # the csv module's default limit is 131,072 characters
    with open(tmp_path / "summary.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", "status", "note", "config_id", "error", "error_log"])
        w.writerow(["aaaaaaaaaa", "ok", big, "c1", "", ""])
        w.writerow(["bbbbbbbbbb", "failed", big, "c2", "train: ValueError: x", ""])
    lines = end_of_run_summary(tmp_path, tmp_path / "logs")
    assert lines[0] == "snakesweep: 2 trials: 1 ok, 1 failed, 0 pending", lines[:2]
    assert unfinished(tmp_path) == "1 of 2 planned trials did not finish ok"


def test_error_records_carry_the_plans_identity_and_readers_ignore_another_search(tmp_path):
    sweep = tmp_path / "results" / "t"
    plan = _plan(sweep, {"method": "halving", "key": "k-halving", "rounds": 2})
    log = sweep / "logs" / "train" / "aaaaaaaaaa.log"
    log.parent.mkdir(parents=True)
    log.write_text("")
    path = res.write_error_record(log, trial="aaaaaaaaaa", step="train", reason="exception", type_="ValueError",
                                  message="boom")
    rec = json.loads(path.read_text())
    assert (rec["sweep_name"], rec["sweep_hash"], rec["search_key"], rec["search_method"]) == \
        ("t", "h1", "k-halving", "halving")
    assert [t for t, _ in res.error_records(sweep / "logs", ["train"])] == ["aaaaaaaaaa"]
    state = read_state(tmp_path, results="results/t", logs="results/t/logs", plan=plan, processes=False)
    assert state.trial_status("aaaaaaaaaa")[0] == "failed"

    # the same sweep switched to optuna: the halving record is no failure of it
    plan = _plan(sweep, {"method": "optuna", "key": "k-optuna", "rounds": 2})
    assert list(res.error_records(sweep / "logs", ["train"])) == []
    state = read_state(tmp_path, results="results/t", logs="results/t/logs", plan=plan, processes=False)
    assert state.trial_status("aaaaaaaaaa")[0] != "failed"
    # a record without identity (written before records carried one) is still trusted
    rec = {k: v for k, v in rec.items() if k not in ("sweep_name", "sweep_hash", "search_key", "search_method")}
    path.write_text(json.dumps(rec))
    assert [t for t, _ in res.error_records(sweep / "logs", ["train"])] == ["aaaaaaaaaa"]


def test_a_wide_metrics_table_is_aggregated_without_fragmenting_the_frame():
    import pandas as pd

    from snakesweep.report import config_table

    n = 400  # pandas warns past 100 inserted columns
    rows = [{"trial": f"t{i}", "status": "ok", "x": i % 2, "seed": i, **{f"k{j}": float(i + j) for j in range(n)}}
            for i in range(6)]
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        table = config_table(pd.DataFrame(rows), ["x", "seed"])
    assert time.monotonic() - start < 60
    assert len(table) == 2 and {f"k{j}_mean" for j in range(n)} <= set(table.columns)
    assert table.set_index("x").loc[0, "k7_mean"] == pytest.approx((0 + 2 + 4) / 3 + 7)


def test_a_full_file_system_is_one_line_naming_the_path_and_the_fix(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(OSError) as info:
            res.atomic_write_text(mnt / "summary.csv", "x" * 200_000)  # a real ENOSPC
        assert info.value.errno == errno.ENOSPC
        line = disk_error_line(info.value, mnt)
        assert "\n" not in line and str(mnt) in line and "No space left on device" in line
        assert "fix: free space on that file system" in line
        assert list(mnt.iterdir()) == []  # the atomic write left no half file
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
