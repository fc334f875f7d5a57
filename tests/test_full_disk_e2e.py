"""End-to-end (issue 17): a full disk and a read-only sweep directory, through real Snakemake.

Either ends the run with one line naming the path and the fix (errors.disk_error_line), never
a traceback; no result record is lost or half-written; and once the disk is fixed, the same
command finishes the sweep without redoing a trial that had finished. The sweep's directory
(results/toy) is a small tmpfs mounted for the test (root only: skipped, with the reason,
where mounting is refused); a read-only directory is a remount, or `chmod -R a-w` for a user
who cannot mount (the permission case, EACCES)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Workdir, jobs_run, toy_config

pytestmark = pytest.mark.e2e

SWEEP = "results/toy"
TOY_FILES = ("model.json", "data.json")  # written by tests/workloads/toy.py itself
# a step's or a report's line ("snakesweep: train T FAILED: cannot write ..." or "snakesweep: cannot write ...")
NO_SPACE = re.compile(r"^snakesweep: (?:\S+ \S+ FAILED: )?cannot write (results/toy/\S+): No space left on device "
                      r"\(fix: free space on that file system")
READ_ONLY = re.compile(r"^snakesweep: (?:\S+ \S+ FAILED: )?cannot write (results/toy/\S+): "
                       r"(?:Read-only file system \(fix: the file system is read-only: remount it read-write"
                       r"|Permission denied \(fix: make the directory writable)")


def _mount(where: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at `where`; the reason it cannot be done, or None."""
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode == 0:
        return None
    return f"cannot mount a tmpfs here: {(done.stderr.strip() or f'status {done.returncode}').splitlines()[0]}"


def _writes_through_chmod(where: Path) -> bool:
    """Whether this user can write into a directory made `chmod a-w` (root can, with its DAC
    override capability): then chmod cannot stand for a read-only directory."""
    probe = where / "chmod-probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_text("x")
        return True
    except PermissionError:
        return False
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)


@pytest.fixture
def tmpfs_sweep(workdir: Workdir) -> Iterator[Callable[[str], Path | str]]:
    """Mounts a tmpfs of a size at the sweep's directory: the directory, or why mounting is
    refused (the test decides whether it can go on); unmounted afterwards."""
    where = workdir.path / SWEEP
    mounted: list[Path] = []

    def mount(size: str) -> Path | str:
        where.mkdir(parents=True)
        why = _mount(where, size)
        if why is not None:
            return why
        mounted.append(where)
        return where

    try:
        yield mount
    finally:
        for m in mounted:
            subprocess.run(["mount", "-o", "remount,rw", str(m)], capture_output=True)
            subprocess.run(["umount", "-l", str(m)], check=False)


def _seen(proc: subprocess.CompletedProcess) -> str:
    """What the user sees: the console, Snakemake's log file of the run (job blocks and the logs
    of failed jobs included)."""
    text = proc.stdout + proc.stderr
    m = re.search(r"^Complete log\(s\): (.+)$", text, re.M)
    if m and os.path.exists(m.group(1).strip()):
        text += Path(m.group(1).strip()).read_text()
    return text


def _fill_up(path: Path) -> None:
    """Take every page the file system has left."""
    with open(path, "wb", buffering=0) as fh:  # unbuffered: closing has nothing left to write
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err


def _around(text: str, word: str) -> str:
    """The part of a long output around the first `word` (for a failure's message)."""
    at = text.find(word)
    return text[max(0, at - 300):at + 3000]


def _records(sweep: Path) -> dict[Path, tuple[bytes, int]]:
    """Every trial's result record (train/eval/measure.json), with its bytes and modification time.
    Not the toy's own files: a train whose record did not fit re-runs and rewrites its model.json."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(sweep.glob("trials/*/*.json"))
            if p.name not in TOY_FILES}


def _assert_nothing_half_written(sweep: Path) -> None:
    """Every JSON snakesweep wrote is complete (atomic writes), and no temp file of one is left.
    The workload's own files (the toy's model.json in its trial's directory, its data.json) are
    its to write: a plain write_text on a full disk may leave them empty."""
    for p in sweep.rglob("*.json"):
        if p.name in TOY_FILES:
            continue
        try:
            json.loads(p.read_text())
        except ValueError:
            pytest.fail(f"half a record: {p} ({p.stat().st_size} bytes)")
    assert not [p for p in sweep.rglob(".*.tmp")], "an atomic write left its temp file"


def test_a_full_disk_ends_in_one_line_and_a_rerun_after_freeing_space_finishes(workdir, tmpfs_sweep):
    disk = tmpfs_sweep("2m")  # room for the whole sweep once the filler is gone
    if isinstance(disk, str):
        pytest.skip(disk)
    cfg = toy_config(workdir, {"x": [0.0, 1.0]})  # 4 trials: about 180 KB of records and logs
    workdir.write_config(cfg)
    room = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (room.f_bavail * room.f_frsize - 96 * 1024))  # 96 KB left: full mid-sweep

    first = workdir.snakemake("--cores", "2", "--configfile", "sweep.yaml")
    seen = _seen(first)
    assert first.returncode != 0, seen[-3000:]
    lines = [m for m in map(NO_SPACE.match, seen.splitlines()) if m]
    assert lines, f"no one-line 'No space left' message naming the path and the fix:\n{seen[-4000:]}"
    assert "Traceback" not in seen, _around(seen, "Traceback")
    _assert_nothing_half_written(disk)
    done = _records(disk)
    assert len(done) < 4 * 3, "the disk never filled before the trials were done: the test needs less room"

    # the collect rule's own process, on a disk with no page left: one line and status 1; the
    # traceback too with SNAKESWEEP_DEBUG=1
    _fill_up(disk / "filler.rest")
    collect = [sys.executable, "scripts/collect.py", "--plan", f"{SWEEP}/plan/trials.json",
               "--summary", f"{SWEEP}/summary.csv", "--configs", f"{SWEEP}/configs.csv"]
    for debug in ("", "1"):
        out = subprocess.run(collect, cwd=workdir.path, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "SNAKESWEEP_DEBUG": debug})
        assert out.returncode == 1, out.stderr
        assert NO_SPACE.match(out.stderr.splitlines()[-1]), out.stderr
        assert ("Traceback" in out.stderr) is bool(debug), out.stderr
    _assert_nothing_half_written(disk)

    filler.unlink()
    (disk / "filler.rest").unlink()
    second = workdir.snakemake("--cores", "2", "--configfile", "sweep.yaml")
    assert second.returncode == 0, _seen(second)[-4000:]
    rows = workdir.read_csv(f"{SWEEP}/summary.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}, rows
    for p, (data, mtime) in done.items():  # no finished step re-ran: its record is the same file
        assert (p.read_bytes(), p.stat().st_mtime_ns) == (data, mtime), f"{p} was rewritten"
    for step in ("train", "eval", "measure"):  # exactly the steps without a record ran
        assert jobs_run(second, step) == 4 - sum(p.name == f"{step}.json" for p in done), step
    _assert_nothing_half_written(disk)


def test_a_read_only_sweep_directory_ends_in_one_line_and_a_run_needing_nothing_passes(workdir, tmpfs_sweep, tmp_path):
    disk = tmpfs_sweep("4m")
    if isinstance(disk, str) and _writes_through_chmod(tmp_path):
        pytest.skip(f"{disk}; and this user writes through `chmod a-w` (root without a mount)")
    cfg = toy_config(workdir, {"x": [0.0, 1.0]})
    cfg["sweep"]["seeds"] = [0]
    workdir.write_config(cfg)
    workdir.snakemake("--cores", "2", "--configfile", "sweep.yaml", check=True)
    sweep = workdir.path / SWEEP
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}

    def read_only(on: bool) -> None:
        if isinstance(disk, Path):
            subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(sweep)], check=True)
        else:
            subprocess.run(["chmod", "-R", "a-w" if on else "u+w", str(sweep)], check=True)

    read_only(True)
    try:
        idle = workdir.snakemake("--cores", "2", "--configfile", "sweep.yaml")  # nothing to write: fine
        assert idle.returncode == 0, _seen(idle)[-3000:]
        cfg["sweep"]["grid"]["x"].append(2.0)  # a new trial: the plan, its steps and the reports to write
        workdir.write_config(cfg)
        refused = workdir.snakemake("--cores", "2", "--configfile", "sweep.yaml")
        seen = _seen(refused)
        assert refused.returncode != 0, seen[-3000:]
        assert any(map(READ_ONLY.match, (refused.stdout + refused.stderr).splitlines())), seen[-4000:]
        assert "Traceback" not in seen, _around(seen, "Traceback")
        assert {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} == before  # nothing lost or touched
    finally:
        read_only(False)  # (a re-run with room finishing the sweep: the full-disk test above)
