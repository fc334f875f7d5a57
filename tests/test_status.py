"""Live status: counts per step, failures with their error and log, running detection from
Snakemake's own markers, ETA, and proof that the command reads only (tree unchanged)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snakesweep.bookkeeping import decode_marker
from snakesweep.status import format_text, sweep_status
from state_helpers import marker as _marker
from state_helpers import touch as _touch
from state_helpers import write_result

REPO = Path(__file__).resolve().parents[1]
TRIALS = [f"{i:010x}" for i in range(4)]


def make_tree(root: Path) -> None:
    """Trial 0 finished; trial 1 failed in train (injected error record); trial 2 has train
    done and eval started (marker, fresh log); trial 3 not started."""
    plan = {"schema_version": 1, "sweep_name": "st", "param_names": ["seed"],
            "trials": [{"trial": t, "params": {"seed": i}} for i, t in enumerate(TRIALS)]}
    _touch(root / "results/plan/trials.json", json.dumps(plan))
    for step, secs in (("train", 10.0), ("eval", 2.0), ("measure", 4.0)):
        write_result(root, TRIALS[0], step, age_s=100, duration_s=secs)
        _touch(root / f"results/logs/{step}/{TRIALS[0]}.log", "ok", age_s=100)
    _touch(root / f"results/logs/train/{TRIALS[1]}.log", "Traceback ...", age_s=50)
    _touch(root / f"results/logs/train/{TRIALS[1]}.error.json", json.dumps(
        {"trial": TRIALS[1], "step": "train", "type": "ValueError", "message": "lr must be positive",
         "traceback_tail": "...", "reason": "exception", "time": "2024-01-01T00:00:00Z"}), age_s=50)
    write_result(root, TRIALS[2], "train", age_s=30, duration_s=10.0)
    _touch(root / f"results/logs/eval/{TRIALS[2]}.log", "epoch 1", age_s=1)
    _marker(root, f"results/trials/{TRIALS[2]}/eval.json")


def test_counts_failure_and_interrupted_without_a_live_run(tmp_path):
    make_tree(tmp_path)
    st = sweep_status(tmp_path, recent_s=0.5)  # the eval log is 1 s old: not recent here
    assert st["planned"] == 4 and st["snakemake_running"] is False
    tr = st["steps"]["train"]
    assert (tr["done"], tr["failed"], tr["pending"], tr["running"]) == (2, 1, 1, 0)
    ev = st["steps"]["eval"]
    assert (ev["done"], ev["interrupted"], ev["blocked"], ev["pending"]) == (1, 1, 1, 1)
    ms = st["steps"]["measure"]
    assert (ms["done"], ms["blocked"], ms["pending"]) == (1, 1, 2)
    (f,) = st["failed"]
    assert f["trial"] == TRIALS[1] and f["step"] == "train" and f["type"] == "ValueError"
    assert f["message"] == "lr must be positive" and f["log"] == f"results/logs/train/{TRIALS[1]}.log"
    assert st["interrupted"][0]["trial"] == TRIALS[2]
    text = format_text(st)
    assert "lr must be positive" in text and f"results/logs/train/{TRIALS[1]}.log" in text
    assert "failed (1)" in text


def _wait_until_visible(proc: subprocess.Popen, root: Path, timeout_s: float = 10.0) -> None:
    """Until /proc shows `proc` as status looks for it (argv naming snakemake, cwd `root`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            if b"snakemake" in argv and os.readlink(f"/proc/{proc.pid}/cwd") == str(root.resolve()):
                return
        except OSError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "the fake snakemake never showed in /proc"
        time.sleep(0.02)


class _LiveSnakemake:
    """A lock in .snakemake/locks and a process whose argv names snakemake, working in `root`:
    what a running Snakemake instance looks like from outside."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self):
        self.lock = _touch(self.root / ".snakemake/locks/0.input.lock", "x")
        fake = _touch(self.root / "bin" / "snakemake", "sleep 30\n")
        self.proc = subprocess.Popen(["/bin/sh", str(fake)], cwd=self.root)
        _wait_until_visible(self.proc, self.root)
        return self.proc

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        self.lock.unlink()


def test_marker_with_recent_log_is_running_and_eta_uses_the_results_durations(tmp_path):
    make_tree(tmp_path)
    now = time.time()
    with _LiveSnakemake(tmp_path):
        st = sweep_status(tmp_path, recent_s=120, now=now)
    assert st["steps"]["eval"]["running"] == 1
    (r,) = st["running"]
    assert (r["trial"], r["step"]) == (TRIALS[2], "eval")
    assert st["steps"]["train"]["mean_duration_s"] == pytest.approx(10.0)
    # left: train 1 x 10 s; eval 1 pending x 2 s + the running one's unused part (<= 2 s);
    # measure 2 x 4 s (one at a time); one job running now -> parallelism 1
    assert 20.0 <= st["eta_s"] <= 22.0 + 1e-6
    assert "ETA" in format_text(st)


def test_fallback_without_markers_uses_log_activity_under_a_foreign_lock(tmp_path):
    """A lock but no Snakemake process on this host (a run on another host of a shared file
    system) and no markers to go by: a recent log is the only sign of a running job."""
    make_tree(tmp_path)
    shutil.rmtree(tmp_path / ".snakemake")
    _touch(tmp_path / ".snakemake/locks/0.input.lock", "x")
    st = sweep_status(tmp_path, recent_s=120)
    assert st["markers"].startswith("none")
    assert st["steps"]["eval"]["running"] == 1
    assert sweep_status(tmp_path, recent_s=0.5)["steps"]["eval"]["pending"] == 2
    # with no lock at all nothing runs here, however recent a log
    shutil.rmtree(tmp_path / ".snakemake")
    assert sweep_status(tmp_path, recent_s=120)["steps"]["eval"]["running"] == 0


def test_stale_lock_is_not_a_running_snakemake(tmp_path):
    make_tree(tmp_path)
    _touch(tmp_path / ".snakemake/locks/0.input.lock", "x")
    st = sweep_status(tmp_path, recent_s=0.5)
    assert st["stale_lock"] is True and st["snakemake_running"] is False
    assert "--unlock" in format_text(st)


def test_live_lock_with_a_snakemake_process_here_means_running(tmp_path):
    make_tree(tmp_path)
    _touch(tmp_path / ".snakemake/locks/0.input.lock", "x")
    fake = tmp_path / "bin" / "snakemake"  # a process whose argv names snakemake, cwd = the sweep dir
    _touch(fake, "sleep 30\n")
    proc = subprocess.Popen(["/bin/sh", str(fake)], cwd=tmp_path)
    try:
        _wait_until_visible(proc, tmp_path)
        st = sweep_status(tmp_path, recent_s=0.5)  # log not recent: the lock decides
        assert st["snakemake_running"] is True and proc.pid in st["snakemake_pids"]
        assert st["steps"]["eval"]["running"] == 1 and st["elapsed_s"] is not None
    finally:
        proc.kill()
        proc.wait()


def test_measure_cycles_are_counted_per_trial(tmp_path):
    """`measure.cycles: 3`: cycle outputs under cycles/, logs and error records named .cycleC."""
    make_tree(tmp_path)
    plan = json.loads((tmp_path / "results/plan/trials.json").read_text())
    plan["measure"] = {"cycles": 3}
    _touch(tmp_path / "results/plan/trials.json", json.dumps(plan))
    t0, t3 = TRIALS[0], TRIALS[3]
    # trial 3: trained and evaluated; cycle 0 measured, cycle 1 failed, cycle 2 running
    for step in ("train", "eval"):
        write_result(tmp_path, t3, step, age_s=20)
    write_result(tmp_path, t3, "measure", rel=f"results/trials/{t3}/cycles/measure.0.json", age_s=10, duration_s=6.0)
    _touch(tmp_path / f"results/logs/measure/{t3}.cycle1.error.json", json.dumps(
        {"type": "Timeout", "message": "measure ran longer than timeout_s.measure", "reason": "timeout"}), age_s=5)
    _touch(tmp_path / f"results/logs/measure/{t3}.cycle2.log", "warming up", age_s=1)
    _marker(tmp_path, f"results/trials/{t3}/cycles/measure.2.json")
    with _LiveSnakemake(tmp_path):
        st = sweep_status(tmp_path, recent_s=120)
    ms = st["steps"]["measure"]
    assert ms["running"] == 1 and ms["done"] == 1  # trial 0 is done (measure.json exists)
    assert ms["mean_duration_s"] == pytest.approx((4.0 + 6.0) / 2)  # one job per record
    r = [x for x in st["running"] if x["step"] == "measure"][0]
    assert r["trial"] == t3 and r["log"] == f"results/logs/measure/{t3}.cycle2.log"
    # once the running cycle is gone, the failed cycle makes the trial's measure failed
    shutil.rmtree(tmp_path / ".snakemake/incomplete")
    st = sweep_status(tmp_path, recent_s=0.5)
    f = [x for x in st["failed"] if x["step"] == "measure"][0]
    assert f["trial"] == t3 and f["error_file"] == f"results/logs/measure/{t3}.cycle1.error.json"
    assert f["log"] == f"results/logs/measure/{t3}.cycle1.log" and f["reason"] == "timeout"
    assert t0 not in {x["trial"] for x in st["failed"]}


def test_decode_marker_handles_snakemake_chunked_names():
    path = "results/trials/" + "x" * 400 + "/train.json"
    enc = base64.urlsafe_b64encode(path.encode()).decode()
    chunks = [enc[i:i + 254] for i in range(0, len(enc), 254)]
    parts = ["@" + c for c in chunks[:-1]] + [chunks[-1]]
    assert decode_marker(parts) == path


def _snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[p] = (st.st_mode, st.st_size, st.st_mtime_ns)
    st = os.lstat(root)
    out[str(root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def test_status_command_never_writes(tmp_path):
    make_tree(tmp_path)
    _touch(tmp_path / ".snakemake/locks/0.input.lock", "x")
    _touch(tmp_path / ".snakemake/log/2024-01-01T000000.000000.snakemake.log", "log")
    before = _snapshot(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    for fmt in ("text", "json"):
        out = subprocess.run([sys.executable, "-m", "snakesweep.status", str(tmp_path / "results"), "--format", fmt],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["failed"][0]["trial"] == TRIALS[1]
    assert _snapshot(tmp_path) == before


WRITE_RECORD = """
import json, sys
sys.path.insert(0, {repo!r})
from state_helpers import record
trial, step, out = sys.argv[1:4]
open(out, "w").write(json.dumps(record(trial, step)))
"""

SNAKEFILE = """
TR = {trials!r}
rule all:
    input: expand("results/trials/{{t}}/eval.json", t=TR)
rule train:
    output: "results/trials/{{t}}/train.json"
    log: "results/logs/train/{{t}}.log"
    shell: "echo start > {{log}}; if [ {{wildcards.t}} = {bad} ]; then echo '{{{{\\"type\\": \\"RuntimeError\\", \\"message\\": \\"boom\\", \\"reason\\": \\"exception\\"}}}}' > results/logs/train/{{wildcards.t}}.error.json; exit 1; fi; i=0; while [ ! -e release ] && [ $i -lt {polls} ]; do sleep 0.1; i=$((i+1)); done; {py} write_record.py {{wildcards.t}} train {{output}}"
rule eval:
    input: "results/trials/{{t}}/train.json"
    output: "results/trials/{{t}}/eval.json"
    log: "results/logs/eval/{{t}}.log"
    shell: "echo start > {{log}}; {py} write_record.py {{wildcards.t}} eval {{output}}"
"""


def test_status_during_a_real_snakemake_run(tmp_path):
    """Real Snakemake: its incomplete markers and lock make a waiting job `running`; the
    failed job's error record is listed; at the end everything is done or failed."""
    trials = TRIALS[:3]
    plan = {"schema_version": 1, "sweep_name": "live", "param_names": ["seed"],
            "trials": [{"trial": t, "params": {"seed": i}} for i, t in enumerate(trials)]}
    _touch(tmp_path / "results/plan/trials.json", json.dumps(plan))
    # the good trains run until the test has seen what it needs and writes `release` (60 s at
    # most); three cores start all three trains at once, so the failure happens beside them
    # whichever ready job Snakemake picks first
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(trials=trials, bad=trials[1], polls=600, py=sys.executable))
    (tmp_path / "write_record.py").write_text(WRITE_RECORD.format(repo=str(REPO / "tests")))
    smk = Path(sys.executable).with_name("snakemake")
    proc = subprocess.Popen([str(smk), "--cores", str(len(trials)), "--keep-going", "-q"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen = None
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            st = sweep_status(tmp_path, steps=("train", "eval"), recent_s=0.0)
            if st["steps"]["train"]["running"] and st["failed"]:
                seen = st
                break
            time.sleep(0.3)
        assert seen is not None, "never saw a running job and the failure"
        assert seen["snakemake_running"] is True
        assert {r["trial"] for r in seen["running"]} <= {trials[0], trials[2]}
        assert seen["failed"][0]["trial"] == trials[1] and seen["failed"][0]["message"] == "boom"
        (tmp_path / "release").touch()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    st = sweep_status(tmp_path, steps=("train", "eval"), recent_s=0.0)
    assert st["snakemake_running"] is False
    assert st["steps"]["train"]["done"] == 2 and st["steps"]["train"]["failed"] == 1
    assert st["steps"]["eval"]["done"] == 2 and st["steps"]["eval"]["blocked"] == 1
    assert st["eta_s"] == 0.0
