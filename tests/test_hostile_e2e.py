"""Issue 17's hostile and unlucky cases, each with real Snakemake and real processes: a failing
user script's log shows the user's error and none of snakesweep's frames, a metric key clash
fails the step naming both keys, `--unlock` beside a live run cannot start its steps twice, and
`sources: [.]` (a source tree holding the sweep's own outputs) loses no result."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import sweep_dir

OUR_FRAMES = ("snakesweep/steps.py", "snakesweep/workloads/command.py", "snakesweep/workloads/_command_argv.py",
              "snakesweep/workloads/_command_run.py", "snakesweep/workloads/__init__.py", "snakesweep/supervise.py")

MODULE = '''
def _load(params):
    raise ValueError("the user's own error, x=%s" % params["x"])


def train(params, out_dir, *, data_dir, device):
    return {"loss": _load(params)}
'''

SCRIPT = '''
import sys
def parse(path):
    raise KeyError("the script's own error: " + path)
parse(sys.argv[1])
'''


def test_a_failing_user_script_shows_its_own_error_and_none_of_our_frames(workdir):
    (workdir.path / "broken.py").write_text(MODULE)
    (workdir.path / "broken_cli.py").write_text(SCRIPT)
    for name, workload in (
        ("mod", "broken.py"),
        ("cmd", {"command": {"train": ["python", "broken_cli.py", "{out_dir}"]}}),
    ):
        cfg = {"sweep": {"name": name, "steps": ["train"], "workload": workload, "grid": {"x": [1]}, "seeds": [0]},
               "device": "cpu", "failures": {"retry_on": []}}
        workdir.write_config(cfg, f"{name}.yaml")
        proc = workdir.snakemake("--cores", "1", "--configfile", f"{name}.yaml", timeout=240)
        assert proc.returncode != 0
        logs = list(Path(workdir.path, sweep_dir(cfg), "logs", "train").glob("*.log"))
        assert len(logs) == 1, proc.stderr[-3000:]
        text = logs[0].read_text()
        printed = proc.stdout + proc.stderr
        for frame in OUR_FRAMES:
            assert frame not in text, (frame, text)
            assert frame not in printed, (frame, printed[-4000:])
        if name == "mod":
            assert 'broken.py", line 3, in _load' in text and 'line 7, in train' in text, text
            assert "ValueError: the user's own error, x=1" in text
            assert "SNAKESWEEP_DEBUG=1" in text  # how to see the rest
        else:
            assert 'broken_cli.py", line 4, in parse' in text
            # the script's traceback once (its stderr), then our one line, not the output again
            assert text.count("KeyError: \"the script's own error") == 1, text
            assert "broken_cli.py exited with status 1" in text and "(its output is above)" in text
        error = json.loads(next(logs[0].parent.glob("*.error.json")).read_text())
        assert error["reason"] == "exception"


def test_snakesweep_debug_shows_our_frames_too(tmp_path):
    """A step failing in snakesweep's own code (a missing plan): one line by default, the whole
    traceback with SNAKESWEEP_DEBUG=1 (the steps module in a real process)."""
    import subprocess
    import sys

    code = ("import sys; from snakesweep import steps; sys.exit(steps.main(['train', '--trial', 't', "
            f"'--plan', {str(tmp_path / 'none.json')!r}, '--log', {str(tmp_path / 't.log')!r}, "
            f"'--output', {str(tmp_path / 'o.json')!r}]))")
    repo = Path(__file__).resolve().parents[1]
    for debug in ("1", ""):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo,
                             env={"PATH": "/usr/bin:/bin", "SNAKESWEEP_DEBUG": debug}, timeout=60)
        assert out.returncode == 1
        assert "train t FAILED: FileNotFoundError" in out.stdout
        assert ("snakesweep/steps.py" in out.stderr) is bool(debug), out.stderr
        assert ("SNAKESWEEP_DEBUG=1 shows" in out.stdout) is not bool(debug)


CLASH = '''
import json, sys
from pathlib import Path
Path(sys.argv[1], "metrics.json").write_text(json.dumps({"a.b": 1, "a": {"b": 2}, "ok": 3}))
'''


def test_a_metric_key_clash_fails_the_step_naming_both_keys(workdir):
    (workdir.path / "clash.py").write_text(CLASH)
    cfg = {"sweep": {"name": "clash", "steps": ["train"], "grid": {"x": [1]}, "seeds": [0],
                     "workload": {"command": {"train": ["python", "clash.py", "{out_dir}"]}}},
           "device": "cpu", "failures": {"retry_on": []}}
    workdir.write_config(cfg)
    proc = workdir.snakemake("--cores", "1", "--configfile", "sweep.yaml", timeout=240)
    assert proc.returncode != 0
    res = Path(workdir.path, sweep_dir(cfg))
    assert not list(res.glob("trials/*/train.json"))  # neither value was kept silently
    error = json.loads(next(res.glob("logs/train/*.error.json")).read_text())
    assert error["type"] == "MetricsMissing"
    assert "the keys 'a.b' and 'a' -> 'b' both become 'a.b'" in error["message"]
    assert "\n" not in error["message"]


WAITER = '''
import os, time
from pathlib import Path


def train(params, out_dir, *, data_dir, device):
    with open("starts.txt", "a") as fh:  # one line per start of any trial's train
        fh.write("%s %d\\n" % (params["x"], os.getpid()))
    end = time.monotonic() + 200
    while not Path("release").exists():
        if time.monotonic() > end:
            raise TimeoutError("never released")
        time.sleep(0.05)
    return {"score": float(params["x"])}
'''


def _wait_for(predicate, deadline_s: float, what: str):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _starts(workdir) -> list[str]:
    f = workdir.path / "starts.txt"
    return f.read_text().splitlines() if f.exists() else []


def test_unlock_beside_a_live_run_cannot_start_its_steps_twice(workdir):
    (workdir.path / "waiter.py").write_text(WAITER)
    cfg = {"sweep": {"name": "live", "steps": ["train"], "workload": "waiter.py", "grid": {"x": [1, 2]},
                     "seeds": [0]}, "device": "cpu"}
    workdir.write_config(cfg)
    args = ("--cores", "2", "--configfile", "sweep.yaml")
    live = workdir.popen(*args)
    try:
        _wait_for(lambda: len(_starts(workdir)) == 2 or live.poll() is not None, 180, "both trains to start")
        assert live.poll() is None, live.output()[-3000:]
        # what Snakemake's LockException suggests; harmless in itself (it starts no job)
        unlock = workdir.snakemake("--unlock", *args, timeout=120)
        assert unlock.returncode == 0, unlock.stderr[-2000:]
        dry = workdir.snakemake("-n", *args, timeout=120)  # a dry run starts nothing: allowed
        assert dry.returncode == 0, dry.stderr[-2000:]
        second = workdir.snakemake(*args, timeout=120)
        assert second.returncode == 1
        assert f"another Snakemake is running the sweep results/live in this directory: pid {live.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert len(_starts(workdir)) == 2
    finally:
        (workdir.path / "release").write_text("")
        try:
            out, _ = live.communicate(timeout=180)
        finally:
            if live.poll() is None:
                live.kill()
    assert live.returncode == 0, out[-3000:]
    assert len(_starts(workdir)) == 2  # each trial's train started exactly once
    logs = list(Path(workdir.path, sweep_dir(cfg), "logs", "train").glob("*.log"))
    assert len(logs) == 2 and all(p.read_text().count(" started ") == 1 for p in logs)
    assert len(list(Path(workdir.path, sweep_dir(cfg), "trials").glob("*/train.json"))) == 2


TRAINER = '''
import json, sys
from pathlib import Path
Path(sys.argv[1], "metrics.json").write_text(json.dumps({"score": 1.0}))
Path(sys.argv[1], "model.bin").write_text("weights")  # a step output inside the sources tree
'''


def test_sources_dot_loses_no_result_over_three_runs(workdir):
    (workdir.path / "trainer.py").write_text(TRAINER)
    cfg = {"sweep": {"name": "dot", "steps": ["train"], "grid": {"x": [1, 2]}, "seeds": [0],
                     "workload": {"command": {"train": ["python", "trainer.py", "{out_dir}"]}, "sources": ["."]}},
           "device": "cpu"}
    workdir.write_config(cfg)
    res = Path(workdir.path, sweep_dir(cfg))
    seen = None
    for run in range(3):
        proc = workdir.snakemake("--cores", "2", "--configfile", "sweep.yaml", timeout=240)
        assert proc.returncode == 0, (run, proc.stderr[-3000:])
        results = sorted(res.glob("trials/*/train.json"))
        assert len(results) == 2, (run, proc.stderr[-3000:])
        stamp = {p: (p.stat().st_mtime_ns, p.read_text()) for p in results}
        if seen is not None:  # nothing the sweep wrote counts as a changed source: kept as it was
            assert stamp == seen, run
            assert "Nothing to be done" in proc.stdout + proc.stderr
        seen = stamp
    # an edited source file does re-run the step (the tree is still tracked)
    (workdir.path / "notes.txt").write_text("a new source file")
    proc = workdir.snakemake("--cores", "2", "--configfile", "sweep.yaml", timeout=240)
    assert proc.returncode == 0
    assert all(p.stat().st_mtime_ns != seen[p][0] for p in seen)


def test_sources_inside_the_outputs_or_too_big_are_refused_at_parse_time(workdir):
    (workdir.path / "trainer.py").write_text(TRAINER)
    big = workdir.path / "big"
    big.mkdir()
    for i in range(10_001):
        (big / f"f{i}").touch()
    (workdir.path / "results" / "dot").mkdir(parents=True, exist_ok=True)
    for entry, message in (
        ("results/dot", "'sweep.workload.sources' lists 'results/dot', which is inside results/dot/, where the workflow writes"),
        ("big", "'sweep.workload.sources' lists 'big', which holds 10,001 files, more than the 10,000"),
    ):
        cfg = {"sweep": {"name": "dot", "steps": ["train"], "grid": {"x": [1]}, "seeds": [0],
                         "workload": {"command": {"train": ["python", "trainer.py", "{out_dir}"]},
                                      "sources": [entry]}}, "device": "cpu"}
        workdir.write_config(cfg)
        start = time.monotonic()
        proc = workdir.snakemake("-n", "--configfile", "sweep.yaml", timeout=120)
        assert proc.returncode == 1
        assert message in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        assert time.monotonic() - start < 60
