"""The one reading of a sweep directory (snakesweep/state.py): unit tests on built trees, then
real Snakemake runs that were interrupted (Ctrl+C, kill -9), edited and resumed: no finished
step re-runs, status is right just after the interrupt, and the preview's counts are the jobs
Snakemake then runs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Workdir, copy_workflow, job_counts, jobs_run, sweep_dir, toy_config, wait_for
from snakesweep import bookkeeping as B
from snakesweep import reconcile as R
from snakesweep import results as RES
from snakesweep import state as S
from snakesweep.status import format_text, sweep_status
from state_helpers import marker, metadata, record, touch, write_plan, write_result

T = [f"{i:010x}" for i in range(3)]


# ---------------------------------------------------------------------------- unit


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"schema_version": 1, "trial": "', "Unterminated string"),
        ("garbage", "Expecting value"),
        ("[]", "not a JSON object"),
        (json.dumps({**record(T[0], "eval"), "schema_version": 0}), "schema_version is 0"),
        (json.dumps(record(T[1], "eval")), f"result of trial '{T[1]}'"),
        (json.dumps(record(T[0], "train")), "result of step 'train'"),
        (json.dumps({**record(T[0], "eval"), "status": "failed"}), "status is 'failed'"),
        (json.dumps({**record(T[0], "eval"), "metrics": [1]}), "no metrics object"),
    ],
)
def test_a_corrupt_result_is_that_steps_failure_with_path_and_reason(tmp_path, text, needle):
    write_plan(tmp_path, T[:2])
    write_result(tmp_path, T[0], "train")
    touch(tmp_path / f"results/trials/{T[0]}/eval.json", text)
    st = S.read_state(tmp_path)
    cell = st.cells[T[0]]["eval"]
    assert cell.state == "failed" and cell.corrupt
    assert cell.reason.startswith(f"corrupt: results/trials/{T[0]}/eval.json: ") and needle in cell.reason
    assert st.cells[T[0]]["measure"].state == "blocked"
    assert st.trial_status(T[0])[0] == "failed" and st.trial_status(T[1])[0] == "pending"


def test_selected_steps_decide_ok_and_old_plans_mean_all_three(tmp_path):
    write_plan(tmp_path, T[:1], steps=["measure"])
    write_result(tmp_path, T[0], "measure")
    st = S.read_state(tmp_path)
    assert st.steps == ("measure",) and st.trial_status(T[0]) == ("ok", None)
    write_plan(tmp_path, T[:1])  # no "steps": a plan from before steps were selectable
    st = S.read_state(tmp_path)
    assert st.steps == ("train", "eval", "measure") and st.trial_status(T[0])[0] == "pending"


def test_stale_when_an_input_is_newer_or_settings_changed(tmp_path):
    plan = write_plan(tmp_path, T[:1], workload="toy.py", device="cpu", measure={"repeats": 2})
    for age, step in ((30, "train"), (20, "eval"), (10, "measure")):
        write_result(tmp_path, T[0], step, age_s=age)
    touch(tmp_path / "toy.py", "# workload", age_s=60)
    st = S.read_state(tmp_path)
    assert [c.state for c in st.cells[T[0]].values()] == ["done"] * 3
    assert st.cells[T[0]]["train"].duration_s == 1.0
    # only measure's settings changed: only measure is stale
    current = {**plan, "measure": {"repeats": 3}}
    st = S.read_state(tmp_path, current_plan=current)
    assert [c.state for c in st.cells[T[0]].values()] == ["done", "done", "stale"]
    assert S.jobs_to_run(st)[0] == {"train": 0, "eval": 0, "measure": 1}
    # a retrained model makes eval and measure stale
    write_result(tmp_path, T[0], "train")
    st = S.read_state(tmp_path)
    assert st.cells[T[0]]["eval"].state == "stale" and "train.json is newer" in st.cells[T[0]]["eval"].reason
    # an edited workload file is an input of every step
    touch(tmp_path / "toy.py", "# edited")
    st = S.read_state(tmp_path)
    assert [c.state for c in st.cells[T[0]].values()] == ["stale"] * 3
    assert "toy.py changed" in st.cells[T[0]]["train"].reason


def test_a_newer_input_with_the_recorded_checksum_is_no_change(tmp_path):
    """Snakemake 9 re-runs a job for a newer input only if its checksum differs from the one the
    job recorded (or none is recorded, or the file is too large): a `touch` changes nothing."""
    write_plan(tmp_path, T[:1], workload="toy.py", workload_key="k")
    toy = touch(tmp_path / "toy.py", "# workload", age_s=60)
    ready = touch(tmp_path / "results/data/k/ready.json", "{}", age_s=50)
    for age, step in ((30, "train"), (20, "eval"), (10, "measure")):
        write_result(tmp_path, T[0], step, age_s=age)
    trial = tmp_path / "results/trials" / T[0]
    inputs = {"train": {"toy.py": toy, "results/data/k/ready.json": ready},
              "eval": {"toy.py": toy, f"results/trials/{T[0]}/train.json": trial / "train.json"},
              "measure": {"toy.py": toy, f"results/trials/{T[0]}/train.json": trial / "train.json"}}
    for step, files in inputs.items():
        metadata(tmp_path, f"results/trials/{T[0]}/{step}.json", files)
    metadata(tmp_path, "results/data/k/ready.json", {"toy.py": toy})  # prepare_data's job
    later = time.time() + 5
    for f, t in ((toy, later), (ready, later - 2), (trial / "train.json", later - 1)):
        os.utime(f, (t, t))  # touched: each newer than what it feeds, the same content
    st = S.read_state(tmp_path)
    assert [c.state for c in st.cells[T[0]].values()] == ["done"] * 3
    assert S.jobs_to_run(st)[0] == {"train": 0, "eval": 0, "measure": 0}
    # too large for Snakemake's checksum (--max-checksum-file-size): the mtime decides
    st = S.read_state(tmp_path, max_checksum_size=3)
    assert [c.state for c in st.cells[T[0]].values()] == ["stale"] * 3
    # no record for eval's job (never run by Snakemake, --drop-metadata): the mtime decides
    (tmp_path / ".snakemake/metadata" / base64.urlsafe_b64encode(f"results/trials/{T[0]}/eval.json".encode()).decode()).unlink()
    st = S.read_state(tmp_path)
    assert [c.state for c in st.cells[T[0]].values()] == ["done", "stale", "done"]
    assert "train.json is newer" in st.cells[T[0]]["eval"].reason
    # the data is an input of the first step only; edited, it makes that step stale (and so the rest)
    ready.write_text('{"again": 1}')
    os.utime(ready, (later, later))
    st = S.read_state(tmp_path)
    assert st.cells[T[0]]["train"].state == "stale" and "the data" in st.cells[T[0]]["train"].reason
    assert S.jobs_to_run(st)[0] == {"train": 1, "eval": 1, "measure": 1}
    # an edited workload file: every step that records it sees another checksum
    ready.write_text("{}")
    toy.write_text("# edited")
    os.utime(toy, (later, later))
    st = S.read_state(tmp_path)
    assert [c.state for c in st.cells[T[0]].values()] == ["stale"] * 3
    assert "toy.py changed" in st.cells[T[0]]["measure"].reason


def test_an_edited_prepare_source_prepares_the_data_again(tmp_path):
    """prepare_data's own inputs: an edited one re-runs it, and with it every step; touched, nothing."""
    write_plan(tmp_path, T[:1], steps=["train"], workload_key="k")
    src = touch(tmp_path / "prep.py", "# prepare", age_s=60)
    ready = touch(tmp_path / "results/data/k/ready.json", "{}", age_s=50)
    write_result(tmp_path, T[0], "train", age_s=30)
    metadata(tmp_path, "results/data/k/ready.json", {"prep.py": src})
    metadata(tmp_path, f"results/trials/{T[0]}/train.json", {"results/data/k/ready.json": ready})
    later = time.time() + 5
    os.utime(src, (later, later))
    sources = {"prepare": ["prep.py"], "train": []}
    assert S.jobs_to_run(S.read_state(tmp_path, sources=sources))[0] == {"train": 0}
    src.write_text("# prepare, edited")
    os.utime(src, (later, later))
    st = S.read_state(tmp_path, sources=sources)
    assert st.cells[T[0]]["train"].state == "stale" and "will be prepared again" in st.cells[T[0]]["train"].reason
    assert S.jobs_to_run(st)[0] == {"train": 1}


SNAKEFILE_COPY = 'rule copy:\n    input: "in.txt"\n    output: "{out}"\n    shell: "cp {{input}} {{output}}"\n'


@pytest.mark.parametrize("backend", ["file", "db"])
def test_input_checksums_are_read_as_snakemake_records_them(tmp_path, backend):
    out = "o" * 200 + ".txt"  # its file-backend record's name is longer than NAME_MAX: '@' chunks
    (tmp_path / "Snakefile").write_text(SNAKEFILE_COPY.format(out=out))
    src = touch(tmp_path / "in.txt", "data\n")
    smk = [sys.executable, "-m", "snakemake", "--cores", "1", "--persistence-backend", backend]

    def snakemake(*args: str) -> str:
        proc = subprocess.run([*smk, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    snakemake()
    if backend == "file":
        assert [p.name[0] for p in (tmp_path / ".snakemake/metadata").iterdir()] == ["@"]
    digest = "sha256:" + hashlib.sha256(b"data\n").hexdigest()
    assert B.MetadataRecords(tmp_path / ".snakemake").input_checksums(out) == {"in.txt": digest}
    assert B.MetadataRecords(tmp_path / ".snakemake").input_checksums("other.txt") is None
    later = os.stat(tmp_path / out).st_mtime + 10
    os.utime(src, (later, later))  # touched: newer than the output, same content
    assert S.InputChecksums(tmp_path).unchanged("in.txt", [out])
    assert not S.InputChecksums(tmp_path, max_size=3).unchanged("in.txt", [out])  # too large to hash
    assert not S.InputChecksums(tmp_path).unchanged("in.txt", [out, "other.txt"])  # one output unrecorded
    assert "Nothing to be done" in snakemake("-n")  # Snakemake agrees (the sweep's e2e test: edits too)
    src.write_text("edited\n")
    os.utime(src, (later, later))
    assert not S.InputChecksums(tmp_path).unchanged("in.txt", [out])


def test_the_checksum_size_limit_of_a_command_line():
    assert B.checksum_size_limit(["snakemake", "-n"]) == B.MAX_CHECKSUM_FILE_SIZE == 1_000_000
    assert B.checksum_size_limit(["snakemake", "--max-checksum-file-size", "3"]) == 3
    assert B.checksum_size_limit(["snakemake", "--max-checksum=2KB"]) == 2000  # argparse takes a prefix
    assert B.checksum_size_limit(["snakemake", "--max-checksum-file-size", "1MiB"]) == 1 << 20
    assert B.checksum_size_limit(["snakemake", "--max-checksum-file-size", "lots"]) == B.MAX_CHECKSUM_FILE_SIZE


def test_resolve_finished_markers_keeps_only_valid_results(tmp_path):
    write_plan(tmp_path, T)
    write_result(tmp_path, T[0], "train", sweep_hash="now")  # finished just before the kill
    write_result(tmp_path, T[1], "train", sweep_hash="older")  # another configuration's
    touch(tmp_path / f"results/trials/{T[2]}/train.json", '{"schema_version": 1, "tr')  # half a file
    touch(tmp_path / f"results/trials/{T[2]}/model.pt", "weights")  # a checkpoint
    outs = [f"results/trials/{t}/train.json" for t in T] + [f"results/trials/{T[2]}/model.pt", "results/plan/trials.json"]
    files = {o: marker(tmp_path, o) for o in outs}
    lock = touch(tmp_path / ".snakemake/locks/0.input.lock", "x")
    assert R.resolve_finished_markers(tmp_path, sweep_hash="now") == []  # another instance holds the dir
    lock.unlink()
    assert R.resolve_finished_markers(tmp_path, sweep_hash="now") == [outs[0]]
    assert [o for o, f in files.items() if f.exists()] == outs[1:]
    # the status reading agrees: a marker on a finished result of the plan's sweep is done
    st = S.read_state(tmp_path)
    assert st.cells[T[1]]["train"].state == "interrupted" and st.cells[T[2]]["train"].state == "interrupted"


def test_resolve_handles_snakemakes_chunked_marker_names(tmp_path):
    write_plan(tmp_path, T[:1])
    write_result(tmp_path, T[0], "train")
    out = f"results/trials/{T[0]}/train.json"
    import base64

    enc = base64.urlsafe_b64encode(out.encode()).decode()
    chunked = tmp_path / ".snakemake/incomplete" / ("@" + enc[:20]) / enc[20:]
    touch(chunked, "{}")
    assert R.resolve_finished_markers(tmp_path) == [out]
    assert not chunked.exists() and not chunked.parent.exists() and (tmp_path / ".snakemake/incomplete").is_dir()


def test_set_aside_corrupt_results(tmp_path):
    write_plan(tmp_path, T[:2])
    write_result(tmp_path, T[0], "train")
    touch(tmp_path / f"results/trials/{T[0]}/eval.json", '{"trunc')
    write_result(tmp_path, T[1], "measure", rel=f"results/trials/{T[1]}/cycles/measure.0.json")
    touch(tmp_path / f"results/trials/{T[1]}/cycles/measure.1.json", "")
    moved = R.set_aside_corrupt_results(tmp_path, stamp="X")
    assert sorted((a, b) for a, b, _w in moved) == [
        (f"results/trials/{T[0]}/eval.json", f"results/trials/{T[0]}/eval.json.corrupt-X"),
        (f"results/trials/{T[1]}/cycles/measure.1.json", f"results/trials/{T[1]}/cycles/measure.1.json.corrupt-X"),
    ]
    assert (tmp_path / f"results/trials/{T[0]}/eval.json.corrupt-X").read_text() == '{"trunc'
    assert (tmp_path / f"results/trials/{T[0]}/train.json").exists()
    assert S.read_state(tmp_path).cells[T[0]]["eval"].state == "pending"


def test_reading_costs_no_stat_per_trial_and_step(tmp_path, monkeypatch):
    """One listing per directory: a missing trial directory is never stat-ed per step."""
    write_plan(tmp_path, [f"{i:010x}" for i in range(200)])
    write_result(tmp_path, "0000000000", "train")
    calls = []
    real = os.stat
    monkeypatch.setattr(os, "stat", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    S.read_state(tmp_path, processes=False)
    assert not [c for c in calls if "results/trials/" in str(c)]


# ---------------------------------------------------------------------------- real Snakemake


PREVIEW = re.compile(r"jobs to run per step: ([^(]*)\(")


def preview_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The numbers the plan preview printed (the last preview, for the re-plan pass)."""
    found = PREVIEW.findall(proc.stdout + proc.stderr)
    assert found, "no preview line in the output"
    return {k: int(v) for k, v in (p.rsplit(" ", 1) for p in found[-1].strip().split(", "))}


class Since:
    """The jobs of each step a run executed, counted by the result files it wrote (independent
    of how the profile's logger prints jobs); jobs_run (conftest) counts printed job blocks."""

    def __init__(self, root: Path):
        self.root, self.t0 = root, time.time()

    def __call__(self, proc: subprocess.CompletedProcess) -> dict[str, int]:
        out = {}
        for s in ("train", "eval", "measure"):
            files = (self.root / "results/toy/trials").glob(f"*/{s}.json")
            by_files = sum(1 for p in files if p.stat().st_mtime >= self.t0)
            printed = jobs_run(proc, s)
            out[s] = printed if printed else by_files
        return out


def _valid(path: Path) -> bool:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return RES.check_result(rec, path.parent.name, path.stem) is None


def _finished_under_marker(root: Path) -> list[Path]:
    """Result files completely written while Snakemake's marker is still on them."""
    _found, markers = B.incomplete_markers(root / ".snakemake")
    return [root / m for m in markers if m.endswith(".json") and "/trials/" in m and _valid(root / m)]


def _interrupt_after_a_result(workdir: Workdir, cfg: Path, sig: int, group: bool) -> list[Path]:
    """Start a run and stop it (signal `sig`) the moment a result JSON exists whose job
    Snakemake has not yet seen finish; return those results."""
    proc = workdir.popen("--cores", "2", "--configfile", str(cfg))
    try:
        deadline = time.monotonic() + 120
        caught: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            caught = _finished_under_marker(workdir.path)
            if caught:
                break
            time.sleep(0.005)
        assert caught, "never saw a finished result under an incomplete marker"
        (os.killpg if group else os.kill)(proc.pid, sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return caught


def _processes_in(path: Path) -> list[int]:
    """PIDs of live processes (this one excepted) working in `path`: Snakemake, its job shells,
    supervisors and their step processes (each in its own session, so out of the run's group)."""
    target, out = os.path.realpath(path), []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if os.path.realpath(f"/proc/{entry}/cwd") == target:
                    out.append(int(entry))
            except OSError:
                continue
    return out


def _stable(rows: list[dict]) -> list[dict]:
    """Summary rows without what differs between two runs of the same sweep (timings, and the
    measurement's sample counts, which depend on speed)."""
    keep = ("trial", "status", "config_id", "x", "seed", "sleep_s", "train_loss", "eval_accuracy", "eval_loss", "error")
    return [{k: r.get(k) for k in keep} for r in rows]


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["ctrl-c", "kill-9-group"])
def test_interrupted_right_after_a_result_resume_redoes_nothing_finished(workdir, tmp_path, how):
    grid = {"x": [0.0, 1.0, 2.0], "sleep_s": [1.0]}
    cfg = workdir.write_config(toy_config(workdir, grid))
    # Ctrl+C in a terminal signals the whole foreground process group
    sig, group = (signal.SIGINT, True) if how == "ctrl-c" else (signal.SIGKILL, True)
    caught = _interrupt_after_a_result(workdir, cfg, sig, group)
    # the step processes die with their supervisors a moment after Snakemake: none may write later
    wait_for(lambda: not _processes_in(workdir.path), "every process of the stopped run to exit", 60)
    before = {p: p.stat().st_mtime_ns for p in (workdir.path / "results/toy/trials").glob("*/*.json") if _valid(p)}
    assert set(caught) <= set(before)
    if sig == signal.SIGKILL:  # a killed run leaves its lock; the user unlocks as Snakemake says
        workdir.snakemake("--unlock", "--configfile", str(cfg), check=True)

    # right after the interrupt: nothing runs, the stopped jobs are interrupted, no ETA
    st = sweep_status(workdir.path, results="results/toy", recent_s=3600)
    assert st["snakemake_running"] is False and st["running"] == []
    assert st["eta_s"] is None or st["eta_s"] == 0.0
    assert "snakemake: not running" in format_text(st)
    for p in caught:  # a finished result under a marker counts as done, not interrupted
        assert st["steps"][p.stem]["done"] >= 1
        assert {"trial": p.parent.name, "step": p.stem} not in [{k: i[k] for k in ("trial", "step")} for i in st["interrupted"]]

    ran = Since(workdir.path)
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert "Forced execution" not in run.stdout + run.stderr or all(
        str(p.relative_to(workdir.path)) not in run.stdout + run.stderr for p in caught)
    for p, mtime in before.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was redone"
    assert preview_counts(run) == ran(run)  # the preview counted exactly what then ran
    missing = {s: 6 - sum(1 for p in before if p.stem == s) for s in ("train", "eval", "measure")}
    assert ran(run) == missing

    other = Workdir(copy_workflow(tmp_path / "fresh"))
    cfg2 = other.write_config(toy_config(other, grid))
    other.snakemake("--cores", "2", "--configfile", str(cfg2), check=True)
    assert _stable(workdir.read_csv("results/toy/summary.csv")) == _stable(other.read_csv("results/toy/summary.csv"))
    assert workdir.read_csv("results/toy/configs.csv")[0].keys() == other.read_csv("results/toy/configs.csv")[0].keys()


@pytest.mark.e2e
def test_status_right_after_ctrl_c_counts_interrupted_and_elapsed_from_the_sweep_run(workdir):
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0, 2.0], "sleep_s": [3.0]}))
    proc = workdir.popen("--cores", "2", "--configfile", str(cfg))

    def two_running_after_two_trained():
        st = sweep_status(workdir.path, results="results/toy")
        return st if st["snakemake_running"] and len(st["running"]) == 2 and st["steps"]["train"]["done"] >= 2 else None

    st = wait_for(two_running_after_two_trained, "status to show 2 steps running after 2 trained", 120, 0.2)
    assert st["snakemake_running"] and st["running"]
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C: the terminal signals the whole process group
    proc.wait(timeout=60)
    st = sweep_status(workdir.path, results="results/toy")  # logs were written a moment ago: recent, yet nothing runs
    assert st["snakemake_running"] is False and st["running"] == []
    assert sum(c["interrupted"] for c in st["steps"].values()) >= 1 and st["interrupted"]
    assert st["eta_s"] is None and "not running" in st["eta_note"]
    text = format_text(st)
    assert "snakemake: not running" in text and "interrupted" in text and "ETA: none" in text
    started, elapsed = st["started_at"], st["elapsed_s"]
    assert elapsed is not None and 3 <= elapsed < 120
    # an unrelated later invocation (a dry run, --report) does not become the sweep's run: the run
    # logs' names carry their start to the microsecond, so the later ones are told apart exactly
    smk = workdir.path / ".snakemake"
    sweep_run = B.latest_run_log(smk)
    workdir.snakemake("-n", "--configfile", str(cfg), check=True)
    workdir.snakemake("--unlock", "--configfile", str(cfg), check=True)
    assert B.latest_run_log(smk, sweep_only=False)[0] > sweep_run[0], "the dry run wrote no later log"
    assert B.latest_run_log(smk)[0] == sweep_run[0]
    assert B.latest_run_log(smk, sweep_dir="results/toy")[0] == sweep_run[0]
    assert B.latest_run_log(smk, sweep_dir="results/other") is None  # another sweep never ran here
    st2 = sweep_status(workdir.path, results="results/toy")
    assert st2["started_at"] == started


@pytest.mark.e2e
def test_preview_counts_equal_the_jobs_snakemake_runs_after_an_edit_and_a_settings_change(workdir):
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0]}))
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)

    # the workload file is an input of every step: all steps of all trials re-run
    toy = workdir.path / "toy.py"
    toy.write_text(toy.read_text() + "\n# edited\n")
    dry = workdir.snakemake("-n", "--configfile", str(cfg), check=True)
    assert preview_counts(dry) == {"train": 4, "eval": 4, "measure": 4}
    ran = Since(workdir.path)
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert preview_counts(run) == ran(run) == {"train": 4, "eval": 4, "measure": 4}

    # measure settings: only measure re-runs
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0]}, measure={"repeats": 3}))
    ran = Since(workdir.path)
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert preview_counts(run) == ran(run) == {"train": 0, "eval": 0, "measure": 4}


STEP_SCRIPT = """import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"loss": 0.5}))
"""


def _source_sweep(workdir: Workdir) -> tuple[Path, Path]:
    """(config, sweep dir) of a command sweep (train, eval) whose steps list their own sources."""
    (workdir.path / "step.py").write_text(STEP_SCRIPT)
    for name in ("prep_lib.py", "train_lib.py", "eval_lib.py"):
        (workdir.path / name).write_text(f"# {name}\n")
    cmd = ["python", "step.py"]
    cfg = {
        "sweep": {
            "name": "src", "steps": ["train", "eval"], "grid": {"x": [0, 1]}, "seeds": [0],
            "workload": {
                "command": {"prepare": [*cmd, "{data_dir}"], "train": [*cmd, "{out_dir}"], "eval": [*cmd, "{out_dir}"]},
                "metrics": "metrics.json",
                "sources": {"prepare": ["prep_lib.py"], "train": ["train_lib.py"], "eval": ["eval_lib.py"]},
            },
        },
        "device": "cpu",
        "report": {"objective": {"metric": "loss", "direction": "min"}},
    }
    return workdir.write_config(cfg), workdir.path / sweep_dir(cfg)


@pytest.mark.e2e
def test_a_touched_input_runs_nothing_and_an_edited_one_what_it_feeds_as_snakemake_says(workdir):
    """Issue 17: Snakemake 9 re-runs a job for a newer input only if its checksum differs from the
    one the job recorded; the preview follows it for sources, the data, the plan and results."""
    cfg, sweep = _source_sweep(workdir)
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    results = {p: p.stat().st_mtime_ns for p in (sweep / "trials").glob("*/*.json")}
    assert len(results) == 4
    newest = max(p.stat().st_mtime for p in sweep.rglob("*") if p.is_file())
    lib = {n: workdir.path / f"{n}_lib.py" for n in ("prep", "train", "eval")}

    def later(by: float, *paths: Path) -> None:  # an explicit mtime past every output: no clock race
        for p in paths:
            os.utime(p, (newest + by, newest + by))

    def edit(by: float, path: Path, text: str) -> None:
        path.write_text(text)
        later(by, path)

    def dry(*extra: str) -> tuple[dict[str, int], dict[str, int], str]:
        proc = workdir.snakemake("-n", "--configfile", str(cfg), *extra, check=True)
        return preview_counts(proc), job_counts(proc), proc.stdout + proc.stderr

    nothing = {"train": 0, "eval": 0}
    # a touched source: the preview promises nothing, and Snakemake (dry and real) runs nothing
    later(10, lib["train"])
    counts, _jobs, out = dry()
    assert counts == nothing and "Nothing to be done" in out, out[-3000:]
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert preview_counts(run) == nothing and "Nothing to be done" in run.stdout + run.stderr
    assert {p: p.stat().st_mtime_ns for p in results} == results, "a result was redone"
    # the data marker, the plan, a prepare source and the results later steps read, touched
    later(30, *sweep.glob("data/*/ready.json"), sweep / "plan/trials.json")
    later(40, lib["prep"])
    later(20, *(sweep / "trials").glob("*/train.json"))
    counts, _jobs, out = dry()
    assert counts == nothing and "Nothing to be done" in out, out[-3000:]
    # files above --max-checksum-file-size have no checksum: the mtime decides, for both
    counts, jobs, _out = dry("--max-checksum-file-size", "1")
    assert counts == {"train": 2, "eval": 2} and (jobs["train"], jobs["eval"]) == (2, 2), jobs
    # an edited source re-runs the steps that list it, and what they feed
    edit(50, lib["eval"], "# eval, edited\n")
    counts, jobs, _out = dry()
    assert counts == {"train": 0, "eval": 2} and jobs.get("train", 0) == 0 and jobs["eval"] == 2, jobs
    edit(60, lib["eval"], "# eval_lib.py\n")  # back to what eval recorded: newer, and no change
    edit(60, lib["prep"], "# prepare, edited\n")
    counts, jobs, _out = dry()
    assert counts == {"train": 2, "eval": 2} and jobs["prepare_data"] == 1 and jobs["train"] == 2, jobs
    edit(70, lib["prep"], "# prep_lib.py\n")
    edit(70, lib["train"], "# train, edited\n")
    counts, jobs, _out = dry()
    assert counts == {"train": 2, "eval": 2} and "prepare_data" not in jobs and jobs["eval"] == 2, jobs


def _corrupt_one(workdir: Workdir, step: str) -> tuple[Path, dict]:
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0]}))
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    victim = sorted((workdir.path / "results/toy/trials").glob(f"*/{step}.json"))[0]
    keep = {p: p.stat().st_mtime_ns for p in (workdir.path / "results/toy/trials").glob("*/*.json")}
    victim.write_text(victim.read_text()[:40])  # a full disk, a hand edit
    return victim, keep


@pytest.mark.e2e
def test_a_corrupt_final_result_is_set_aside_and_redone_in_the_same_run(workdir):
    victim, keep = _corrupt_one(workdir, "measure")
    ran = Since(workdir.path)
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.path / "sweep.yaml"), check=True)
    assert "moved to" in run.stderr and "corrupt" in run.stderr
    assert preview_counts(run) == ran(run) == {"train": 0, "eval": 0, "measure": 1}
    assert list(victim.parent.glob("measure.json.corrupt-*")) and _valid(victim)
    for p, m in keep.items():
        if p != victim:
            assert p.stat().st_mtime_ns == m, f"{p} was redone"
    assert [r["status"] for r in workdir.read_csv("results/toy/summary.csv")] == ["ok"] * 4


@pytest.mark.e2e
def test_a_corrupt_intermediate_result_preview_matches_what_runs(workdir):
    victim, keep = _corrupt_one(workdir, "eval")
    ran = Since(workdir.path)
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.path / "sweep.yaml"), check=True)
    assert list(victim.parent.glob("eval.json.corrupt-*"))
    assert preview_counts(run) == ran(run)
    assert (victim.parent / "train.json").stat().st_mtime_ns == keep[victim.parent / "train.json"]


@pytest.mark.e2e
def test_a_corrupt_intermediate_result_is_redone_in_the_same_run(workdir):
    victim, keep = _corrupt_one(workdir, "eval")
    ran = Since(workdir.path)
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.path / "sweep.yaml"), check=True)
    assert ran(run)["eval"] == 1 and _valid(victim)
    assert [r["status"] for r in workdir.read_csv("results/toy/summary.csv")] == ["ok"] * 4
