"""Result records on disk: atomic writes, one schema, error records beside the log."""

import json
import sys

import pytest

from snakesweep.results import (
    atomic_write_json,
    error_record_path,
    exception_record,
    result_record,
    versions,
)


def test_atomic_write_replaces_whole_files_and_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "deep" / "r.json"
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    with pytest.raises(ValueError):
        atomic_write_json(target, {"a": float("nan")})  # NaN is not JSON: refused, old file kept
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_error_record_sits_next_to_the_log_and_keeps_the_traceback_tail(tmp_path):
    log = tmp_path / "logs" / "train" / "abc.log"
    assert error_record_path(log) == tmp_path / "logs" / "train" / "abc.error.json"
    try:
        raise KeyError("lr")
    except KeyError as exc:
        path = exception_record(log, "abc", "train", exc)
    rec = json.loads(path.read_text())
    assert rec["type"] == "KeyError" and rec["message"] == "'lr'" and rec["reason"] == "exception"
    assert "raise KeyError" in rec["traceback_tail"]
    assert rec["log"] == str(log)


def test_result_record_carries_the_schema():
    rec = result_record(
        trial="t", step="eval", params={"lr": 0.1}, metrics={"eval_accuracy": 0.9},
        started_at="s", ended_at="e", duration_s=1.23456789, device="cpu", sweep_hash="h",
    )
    assert rec["schema_version"] == 1 and rec["status"] == "ok" and rec["duration_s"] == 1.234568
    assert rec["host"] and rec["versions"]["python"]
    assert "torch" in versions()


def test_a_record_carries_the_cpu_time_and_peak_memory_of_its_process_and_children(tmp_path):
    """What Snakemake's benchmark files said of a job (the rules no longer ask for them): a child
    that spins 0.3 s of CPU and touches 100 MB more than this process ever held shows in both."""
    import subprocess

    before = result_record(trial="t", step="eval", params={}, metrics={}, started_at="s", ended_at="e",
                           duration_s=0.0, device="cpu", sweep_hash="h")
    size_mb = int(before["max_rss_mb"]) + 100
    subprocess.run([sys.executable, "-c", f"import time; b = bytearray({size_mb} << 20); t = time.process_time()\n"
                    "while time.process_time() - t < 0.3: pass"], check=True)
    after = result_record(trial="t", step="eval", params={}, metrics={}, started_at="s", ended_at="e",
                          duration_s=0.0, device="cpu", sweep_hash="h")
    assert after["cpu_s"] >= before["cpu_s"] + 0.25
    assert after["max_rss_mb"] >= before["max_rss_mb"] + 90
