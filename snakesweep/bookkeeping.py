"""Snakemake's bookkeeping in .snakemake/, read (and, for the parse-time repairs, edited) here only.

Incomplete markers (file backend: .snakemake/incomplete/<urlsafe-base64 of the output path>,
mtime = job start; db backend: the ``incomplete`` column of metadata.db), the input checksums of
the metadata records (.snakemake/metadata/, or metadata.db), the locks of a running
instance, live Snakemake processes working in a directory (/proc), and its run logs. Standard
library only; reading never writes (the db is opened immutable).
"""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from .procs import parent_pid

_LOG_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{6}(?:\.\d+)?)\.snakemake\.log$")
_JOB_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) \w+:$", re.M)


# ---------------------------------------------------------------------------- small readers
# one scandir per directory (state.py and reconcile.py read the sweep's directories with them too)


def listdir(path: str | Path) -> dict[str, os.DirEntry]:
    """Name -> entry of one directory; empty when it does not exist (one scandir)."""
    try:
        with os.scandir(path) as it:
            return {e.name: e for e in it}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}


def entry_mtime(entry: os.DirEntry | None) -> float | None:
    if entry is None:
        return None
    try:
        return entry.stat().st_mtime
    except OSError:
        return None


# ---------------------------------------------------------------------------- .snakemake/


def decode_marker(rel_parts: Iterable[str]) -> str | None:
    """Snakemake's file-backend record name -> the output path it marks.

    The path is urlsafe-base64 encoded and split into chunks of at most NAME_MAX - 1 characters;
    every chunk but the last is a directory whose name starts with '@'.
    """
    parts = list(rel_parts)
    enc = "".join(p[1:] if p.startswith("@") else p for p in parts)
    try:
        return base64.urlsafe_b64decode(enc.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def marker_files(snakemake_dir: Path) -> dict[str, tuple[str, float]]:
    """{output path: (marker file, its mtime = the job's start)} of the file backend."""
    out: dict[str, tuple[str, float]] = {}
    inc = snakemake_dir / "incomplete"
    for dirpath, _dirs, files in os.walk(inc):
        rel = Path(dirpath).relative_to(inc).parts
        for name in files:
            if name == "migration_underway":
                continue
            path = decode_marker([*rel, name])
            if path is None:
                continue
            marker = os.path.join(dirpath, name)
            try:
                out[os.path.normpath(path)] = (marker, os.stat(marker).st_mtime)
            except OSError:
                pass
    return out


def db_namespaces(snakemake_dir: Path) -> tuple[str, ...]:
    """Snakemake's db backend keys rows by the absolute .snakemake path (not symlink-resolved)."""
    return tuple(dict.fromkeys([str(snakemake_dir.absolute()), str(snakemake_dir.resolve())]))


def _db_rows(snakemake_dir: Path, query: str) -> list[tuple]:
    db = snakemake_dir / "metadata.db"
    if not db.is_file():
        return []
    try:
        # immutable=1: no locking and no journal; a plain read, never a write
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            ns = db_namespaces(snakemake_dir)
            return con.execute(query.format(ns=",".join("?" * len(ns))), ns).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def incomplete_markers(snakemake_dir: Path) -> tuple[bool, dict[str, float]]:
    """(markers available, {output path: mtime of the marker = job start})."""
    snakemake_dir = Path(snakemake_dir)
    found = (snakemake_dir / "incomplete").is_dir() or (snakemake_dir / "metadata.db").is_file()
    markers = {path: mtime for path, (_f, mtime) in marker_files(snakemake_dir).items()}
    for target, start in _db_rows(
        snakemake_dir,
        "SELECT target, starttime FROM snakemake_metadata WHERE namespace IN ({ns}) AND incomplete = 1",
    ):
        markers[os.path.normpath(target)] = float(start or 0)
    return found, markers


# Snakemake's default --max-checksum-file-size (settings/types.py, DAGSettings): a job records the
# checksum of each input of at most this many bytes, and a later run does not count such an input
# as updated when it is newer than the output but has the recorded checksum (dag.py update_needrun)
MAX_CHECKSUM_FILE_SIZE = 1_000_000


def record_path(subject: Path, target: str) -> Path:
    """The file of `target`'s record in a file-backend directory (metadata/ or incomplete/): the
    urlsafe-base64 name split into chunks of NAME_MAX - 1, every chunk but the last an '@' folder
    (persistence/file.py _record_path; :func:`decode_marker` reads it back)."""
    try:
        max_len = os.pathconf(subject, "PC_NAME_MAX") if os.name == "posix" else 255
    except OSError:
        max_len = 255
    max_len = max_len or 255
    enc = base64.urlsafe_b64encode(target.encode()).decode()
    chunks = [enc[i:i + max_len - 1] for i in range(0, len(enc), max_len - 1)]
    return Path(subject, *["@" + c for c in chunks[:-1]], chunks[-1])


class MetadataRecords:
    """Snakemake's metadata records (one per output a finished job made), read on demand and
    cached: the file backend's .snakemake/metadata/<encoded output>, else the db backend's rows of
    this directory. Only what a record says of its inputs' checksums is used (state.py: whether an
    input newer than its output is one Snakemake counts as changed)."""

    def __init__(self, snakemake_dir: str | Path):
        self.dir = Path(snakemake_dir)
        self._files: dict[str, dict[str, str] | None] = {}
        self._db: dict[str, str | None] | None = None

    def input_checksums(self, target: str) -> dict[str, str] | None:
        """{input path (normalized): "algorithm:hexdigest"} that the job which made `target`
        recorded; None without a record (never run by Snakemake, `--drop-metadata`, a record
        from before checksums). A record from before the algorithm prefix is sha256, as
        Snakemake reads it (persistence input_checksums)."""
        if target not in self._files:
            raw = self._file_record(target)
            if raw is None:
                raw = self._db_record(target)
            sums = raw.get("input_checksums") if isinstance(raw, dict) else None
            self._files[target] = {
                os.path.normpath(k): v if ":" in v else f"sha256:{v}"
                for k, v in sums.items() if isinstance(k, str) and isinstance(v, str)
            } if isinstance(sums, dict) else None
        return self._files[target]

    def _file_record(self, target: str) -> dict | None:
        meta = self.dir / "metadata"
        for name in dict.fromkeys([target, os.path.normpath(target)]):
            try:
                with open(record_path(meta, name)) as fh:
                    return json.load(fh)
            except (OSError, ValueError):  # none, or being written (Snakemake ignores those too)
                continue
        return None

    def _db_record(self, target: str) -> dict | None:
        if self._db is None:  # one query for every row: a preview asks for many targets
            rows = _db_rows(self.dir, "SELECT target, input_checksums FROM snakemake_metadata "
                                      "WHERE namespace IN ({ns})")
            self._db = {os.path.normpath(t): c for t, c in rows if isinstance(t, str)}
        text = self._db.get(os.path.normpath(target))
        if not text:
            return None
        try:
            return {"input_checksums": json.loads(text)}
        except ValueError:
            return None


def snakemake_locks(snakemake_dir: Path) -> list[float]:
    """mtimes of the lock files a Snakemake instance holds (empty: no instance holds the dir)."""
    snakemake_dir = Path(snakemake_dir)
    out = [m for name, e in listdir(snakemake_dir / "locks").items() if name.endswith(".lock") and (m := entry_mtime(e))]
    if _db_rows(snakemake_dir, "SELECT 1 FROM snakemake_locks WHERE namespace IN ({ns}) LIMIT 1"):
        out.append((snakemake_dir / "metadata.db").stat().st_mtime)
    return out


def _is_snakemake(argv: list[str]) -> bool:
    head = argv[:4]
    if any(os.path.basename(a) == "snakemake" for a in head[:2]):
        return True
    return any(a == "-m" and b == "snakemake" for a, b in zip(head, head[1:]))


def _ancestors() -> set[int]:
    """This process and its ancestors: the Snakemake that parses the workflow is not "another"."""
    out, pid = {os.getpid()}, os.getppid()
    while pid > 1 and pid not in out:
        out.add(pid)
        parent = parent_pid(pid)
        if parent is None:
            break
        pid = parent
    return out


def snakemake_processes(root: str | Path) -> list[int] | None:
    """PIDs of Snakemake processes on this host whose working directory is `root` (this process
    and its ancestors excluded). None when /proc cannot tell (not Linux)."""
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return None
    target = os.path.realpath(root)
    mine = _ancestors()
    pids = []
    for entry in listdir(proc):
        if not entry.isdigit() or int(entry) in mine:
            continue
        try:
            argv = (proc / entry / "cmdline").read_bytes().split(b"\0")
            if not _is_snakemake([a.decode(errors="replace") for a in argv if a]):
                continue
            if os.path.realpath(proc / entry / "cwd") == target:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def _log_start(name: str) -> float | None:
    m = _LOG_NAME.match(name)
    if not m:
        return None
    try:
        fmt = "%Y-%m-%dT%H%M%S.%f" if "." in m.group(1) else "%Y-%m-%dT%H%M%S"
        return datetime.strptime(m.group(1), fmt).timestamp()  # Snakemake names it in local time
    except ValueError:
        return None


def _ran_jobs(path: str, sweep_dir: str | None = None) -> bool:
    """Whether a Snakemake run log is of a run that executed jobs: not a dry run, nor
    `--report`, `--unlock`, `--lint`, ... (which write logs too); with `sweep_dir`, jobs of that
    sweep (its directory in their paths): another sweep of the checkout has runs of its own."""
    try:
        with open(path, errors="replace") as fh:
            text = fh.read()
    except OSError:
        return False
    if sweep_dir is not None and f"{os.path.normpath(sweep_dir)}/" not in text:
        return False
    return bool(_JOB_LINE.search(text)) and "This was a dry-run" not in text


def latest_run_log(snakemake_dir: Path, sweep_only: bool = True,
                   sweep_dir: str | None = None) -> tuple[float, float] | None:
    """(start, last write) of the newest .snakemake/log/<start>.snakemake.log; with
    `sweep_only`, of the newest one that ran jobs (so a later `snakemake --report` or dry run
    does not pass for the sweep run), of the sweep in `sweep_dir` when given."""
    logs = []
    for name, entry in listdir(Path(snakemake_dir) / "log").items():
        start = _log_start(name)
        if start is not None:
            logs.append((start, entry))
    for start, entry in sorted(logs, key=lambda x: x[0], reverse=True):
        if not sweep_only or _ran_jobs(entry.path, sweep_dir):
            return start, entry_mtime(entry) or start
    return None


# ---------------------------------------------------------------------------- edits (parse-time repairs)


def remove_marker(marker_file: str, incomplete_dir: Path) -> None:
    """Remove a marker file and its now empty chunk directories ('@...'), never more."""
    os.remove(marker_file)
    top = os.path.normpath(incomplete_dir)
    parent = os.path.normpath(os.path.dirname(marker_file))
    while parent != top and parent.startswith(top + os.sep):
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)


def clear_db_markers(snakemake_dir: Path, finished: Callable[[str], bool]) -> list[str]:
    """Clear the db backend's ``incomplete`` flag of every marked target for which `finished`
    holds, the way Snakemake's own _unmark_incomplete does (a stub row written only to mark the
    job is deleted). Returns the targets cleared; nothing on a database error."""
    db = snakemake_dir / "metadata.db"
    if not db.is_file():
        return []
    done = []
    try:
        con = sqlite3.connect(str(db), timeout=5)
        try:
            ns = db_namespaces(snakemake_dir)
            q = ",".join("?" * len(ns))
            rows = con.execute(
                f"SELECT namespace, target, record_format_version FROM snakemake_metadata "
                f"WHERE namespace IN ({q}) AND incomplete = 1", ns).fetchall()
            for namespace, target, version in rows:
                if not finished(target):
                    continue
                if not version:  # a stub written only to mark the job: Snakemake deletes it
                    con.execute("DELETE FROM snakemake_metadata WHERE namespace = ? AND target = ?",
                                (namespace, target))
                else:
                    con.execute("UPDATE snakemake_metadata SET incomplete = 0 WHERE namespace = ? AND target = ?",
                                (namespace, target))
                done.append(os.path.normpath(target))
            con.commit()
        finally:
            con.close()
    except sqlite3.Error:
        return []
    return done


# ---------------------------------------------------------------------------- a live run beside this one

# invocations that start no job: beside a live run they are harmless (and `--unlock` must work)
_READ_ONLY = frozenset({
    "--unlock", "--lint", "--summary", "-S", "--detailed-summary", "-D", "--list-rules", "--list", "-l",
    "--list-target-rules", "--lt", "--list-changes", "--lc", "--list-code-changes", "--list-input-changes",
    "--list-params-changes", "--report", "--dag", "--rulegraph", "--filegraph", "--d3dag", "--version", "-v",
    "--help", "-h", "--print-compilation",
})
_DRY_RUN = frozenset({"-n", "--dry-run", "--dryrun", "--dry_run"})
_SHORT_DRY = re.compile(r"^-[pqrFn]*n[pqrFn]*$")  # -np, -pn, -nr: clusters of flags without values


def invocation_mode(argv: list[str]) -> str:
    """What a Snakemake command line does: 'read-only' (--unlock, --lint, --summary, ...),
    'dry-run' (-n) or 'run' (it may start jobs)."""
    flags = [a.split("=", 1)[0] for a in argv]
    if any(f in _READ_ONLY for f in flags):
        return "read-only"
    if any(f in _DRY_RUN or _SHORT_DRY.match(f) for f in flags):
        return "dry-run"
    return "run"


def checksum_size_limit(argv: list[str]) -> int:
    """The --max-checksum-file-size of a Snakemake command line (Snakemake's default without one).
    Read from the command line because the Snakefile is parsed before Snakemake sets the DAG
    settings that hold it (api.py DAGApi); a value set only in a profile is not seen here."""
    value = None
    for i, arg in enumerate(argv):
        name, eq, rest = arg.partition("=")
        if len(name) > len("--max-c") and "--max-checksum-file-size".startswith(name):  # argparse takes prefixes
            value = rest if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    if value is None:
        return MAX_CHECKSUM_FILE_SIZE
    try:
        try:
            from humanfriendly import parse_size  # what Snakemake parses it with (cli.py)
        except ImportError:  # outside Snakemake's environment: a plain number of bytes
            return int(value)
        return int(parse_size(value))
    except Exception:  # noqa: BLE001 - humanfriendly.InvalidSize is no ValueError; Snakemake refuses it anyway
        return MAX_CHECKSUM_FILE_SIZE


def _config_files(argv: list[str]) -> list[str]:
    files, taking = [], False
    for a in argv:
        if a.startswith("-"):
            name, _, value = a.partition("=")
            taking = name in ("--configfile", "--configfiles")
            if taking and value:
                files.append(value)
                taking = False
        elif taking:
            files.append(a)
    return files


def _sweep_of(argv: list[str], root: str | Path) -> str | None:
    """The sweep directory a Snakemake command line works on (the last --configfile that names a
    sweep, else the checkout's default sweep file); None when it cannot be told."""
    from .layout import DEFAULT_SWEEP_FILE, sweep_dir_of_file

    for path in reversed(_config_files(argv) or [DEFAULT_SWEEP_FILE]):
        try:
            return os.path.normpath(sweep_dir_of_file(Path(root, path)))
        except Exception:  # noqa: BLE001 - unreadable, or no sweep in it: the next one, or unknown
            continue
    return None


def _argv(pid: int) -> list[str]:
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []


def live_runs(root: str | Path, sweep: str) -> list[tuple[int, list[str]]]:
    """(pid, argv) of the Snakemake processes other than this one that may start jobs of `sweep`
    (its directory relative to `root`) in `root`: read-only and dry-run ones are left out, and so
    are runs of another sweep (their outputs are not ours). A job process of such a run (a
    Snakemake below another one) is named by its top process."""
    pids = snakemake_processes(root) or []
    found = {}
    for pid in pids:
        argv = _argv(pid)
        if not argv or invocation_mode(argv) != "run":
            continue
        theirs = _sweep_of(argv, root)
        if theirs is not None and theirs != os.path.normpath(sweep):
            continue
        found[pid] = argv
    return [(pid, argv) for pid, argv in sorted(found.items()) if parent_pid(pid) not in found]


def live_run_problem(root: str | Path, sweep: str, argv: list[str], *, dry_run: bool = False) -> str | None:
    """Why this Snakemake (command line `argv`) must not start: another one is running the same
    sweep in the same directory (starting beside it would run each of its running steps a second
    time, concurrently, in the same step directories). None for read-only invocations and dry
    runs, which start no job, and when no such process is found."""
    if dry_run or invocation_mode(argv) != "run":
        return None
    runs = live_runs(root, sweep)
    if not runs:
        return None
    pid, other = runs[0]
    shown = " ".join(other)[:120]
    more = f" (and {len(runs) - 1} more)" if len(runs) > 1 else ""
    return (
        f"snakesweep: another Snakemake is running the sweep {sweep} in this directory: pid {pid} "
        f"({shown}){more}; a second run would start its running steps again (fix: wait for it, or stop "
        f"it with `kill {pid}`; `snakemake --unlock` is only for a lock no live process holds: "
        "`python -m snakesweep.status` tells which)"
    )
