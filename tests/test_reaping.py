"""The supervisor reaps every process a step started, however it detached (snakesweep/supervise.py
as a child subreaper, snakesweep/procs.py): a helper in its own session and a double-forked one
are killed at the step's timeout and at the end of a successful step, and the record says so."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import sweep_dir

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")

# A user's command that leaves two helpers behind: one started with start_new_session=True, one
# double-forked (its parent exits at once, so it is nobody's child but init's, or a subreaper's).
SPAWNER = r'''
import argparse, json, os, subprocess, sys, time
from pathlib import Path
ap = argparse.ArgumentParser()
ap.add_argument("--mode"); ap.add_argument("--out", type=Path)
a = ap.parse_args()
a.out.mkdir(parents=True, exist_ok=True)
helper = [sys.executable, "-c", "import time; time.sleep(300)"]
pids = [subprocess.Popen(helper, start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid]
r, w = os.pipe()
if os.fork() == 0:  # the double fork: the middle process exits, its child lives on detached
    os.setsid()
    child = os.fork()
    if child == 0:
        os.closerange(3, 1024)
        os.execv(sys.executable, helper)
    os.write(w, str(child).encode())
    os._exit(0)
os.close(w)
pids.append(int(os.read(r, 64)))
Path("helpers.%s.json" % a.mode).write_text(json.dumps(pids))
if a.mode == "sleep":
    time.sleep(300)
(a.out / "metrics.json").write_text(json.dumps({"score": 1.0}))
'''


def alive(pid: int) -> bool:
    """A live process (a zombie, dead but not yet reaped by its parent, is not alive)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_gone(pids: list[int], deadline_s: float = 20.0) -> list[int]:
    """The pids still alive after polling up to `deadline_s`."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def kill_all(pids: list[int]) -> None:
    for p in pids:
        try:
            os.kill(p, 9)
        except OSError:
            pass


def spawner_sweep(name: str, mode: str, timeout_s: float) -> dict:
    return {
        "sweep": {
            "name": name, "steps": ["train"],
            "workload": {"command": {"train": ["python", "spawner.py", "--mode", "{mode}", "--out", "{out_dir}"]}},
            "experiments": [{"mode": mode}],
        },
        "device": "cpu",
        "timeout_s": {"train": timeout_s},
        "failures": {"retry_on": []},
    }


def test_detached_helpers_die_at_the_timeout_and_after_a_successful_step(workdir):
    (workdir.path / "spawner.py").write_text(SPAWNER)
    # one run each, so that the step that must finish never races the timeout under test: "ok"
    # (three interpreters) gets a timeout that is only a hang guard; "sleep" runs alone, its
    # timeout long enough to start its helpers and write their pids on a loaded machine
    sweeps = {"ok": spawner_sweep("reap", "ok", 300), "sleep": spawner_sweep("reap-timeout", "sleep", 10)}
    procs = {}
    for mode, cfg in sweeps.items():
        workdir.write_config(cfg)
        procs[mode] = workdir.snakemake("--cores", "2", "--configfile", "sweep.yaml", "--keep-going", timeout=240)
    helpers = {}
    try:
        for mode, proc in procs.items():
            f = workdir.path / f"helpers.{mode}.json"
            assert f.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
            helpers[mode] = json.loads(f.read_text())
            assert len(helpers[mode]) == 2
        # polled, never a fixed sleep: the supervisor killed and reaped them before it returned,
        # so they must be gone already; the deadline only absorbs the kernel's bookkeeping
        assert wait_gone(helpers["ok"] + helpers["sleep"], 5.0) == []
    finally:
        kill_all([p for ps in helpers.values() for p in ps])
    res = {mode: Path(workdir.path, sweep_dir(cfg)) for mode, cfg in sweeps.items()}
    by_mode = {}
    for mode in sweeps:
        [t] = json.loads((res[mode] / "plan" / "trials.json").read_text())["trials"]
        assert t["params"]["mode"] == mode
        by_mode[mode] = t["trial"]
    assert procs["ok"].returncode == 0, procs["ok"].stderr[-3000:]
    assert procs["sleep"].returncode != 0

    ok = json.loads((res["ok"] / "trials" / by_mode["ok"] / "train.json").read_text())
    assert ok["status"] == "ok"
    assert ok["leftover_processes"]["count"] == 2, ok.get("leftover_processes")
    assert all("time.sleep(300)" in c for c in ok["leftover_processes"]["killed"])
    assert "left 2 process(es) running, killed" in (res["ok"] / "logs" / "train" / f"{by_mode['ok']}.log").read_text()

    slept = by_mode["sleep"]
    assert not (res["sleep"] / "trials" / slept / "train.json").exists()
    err = json.loads((res["sleep"] / "logs" / "train" / f"{slept}.error.json").read_text())
    assert err["type"] == "Timeout"
    assert "with 2 detached process(es) it had started" in err["message"]


def test_reap_adopted_kills_what_ignores_sigterm_and_what_it_started():
    """In a subreaper: a grandchild that ignores SIGTERM and forks again is killed (SIGKILL
    after the grace) and every process is reaped, none left alive or as a zombie."""
    import subprocess
    import sys

    from snakesweep.procs import become_subreaper, children, reap_adopted

    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
        "print(os.getpid(), p.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    # run in a fresh interpreter: making pytest's own process a subreaper would outlive the test
    code = (
        "import subprocess, sys, json\n"
        "from snakesweep.procs import become_subreaper, children, reap_adopted\n"
        "assert become_subreaper()\n"
        f"mid = subprocess.Popen([sys.executable, '-c', {script!r}], start_new_session=True, stdout=subprocess.PIPE, text=True)\n"
        "pids = [int(x) for x in mid.stdout.readline().split()]\n"
        "# the middle process detaches its children by dying: they are re-parented to us\n"
        "killed = reap_adopted(grace_s=0.5)\n"
        "print(json.dumps({'pids': pids, 'killed': killed, 'children': children(__import__('os').getpid())}))\n"
    )
    del become_subreaper, children, reap_adopted
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    try:
        assert len(got["killed"]) == 2
        assert got["children"] == []
        assert wait_gone(got["pids"], 5.0) == []
    finally:
        kill_all(got["pids"])
