"""Result and error records on disk (the sweep's only state), and their one reader and checker.

Everything is written atomically (temp file in the same directory + os.replace), so a kill at
any moment leaves the old file, the new one, or nothing: never half a JSON. Every step process
imports this module first, so it imports only what writing a record needs (hostname and version
from os and sys; traceback only when there is an exception to format).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

SCHEMA_VERSION = 1
ATTEMPT_ENV = "SNAKESWEEP_ATTEMPT"
STEPS = ("train", "eval", "measure")
# a measurement cycle's record: results/trials/{trial}/cycles/{step}.{cycle}.json
CYCLE_FILE = re.compile(r"^(?P<step>[a-z_]+)\.(?P<cycle>\d+)\.json$")
# failures.retry_on's default: the reasons a retry may cure (a timeout, the OOM killer, a lost
# Snakemake); an exception in the workload or a non-zero exit fails again
RETRY_ON = ("timeout", "signal", "orphaned")
# the reason of a step the failure budget held back: always retried
BUDGET_REASON = "budget"


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-23T06:41:25.925+00:00."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}+00:00"


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write `data` to `path` through a temp file beside it and os.replace.

    A kill at any moment leaves the old file, the new one, or nothing (never half a file).
    The temp file is created with os.open(..., 0o666), so the process umask applies exactly
    as for a plain open(): 0644 under umask 022, 0664 under 002. (tempfile.mkstemp forces 0600,
    which made every result unreadable to colleagues on a shared cluster directory.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)  # a failed write or flush names no file: errors.disk_error_line names this one
        raise


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    """Atomic, umask-respecting text write (UTF-8); see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, obj: Any, *, fsync: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n", fsync=fsync)


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def read_json_or_none(path: str | Path) -> Any:
    """:func:`read_json`, or None when the file is missing, unreadable or not JSON (readers
    that must never fail on one bad file: status, summaries, error records)."""
    try:
        return read_json(path)
    except (OSError, ValueError):  # ValueError: JSONDecodeError, UnicodeDecodeError
        return None


def versions() -> dict[str, str | None]:
    """Versions of what the step actually used: torch only if the step imported it."""
    torch = sys.modules.get("torch")
    return {
        "python": sys.version.split()[0],  # what platform.python_version() parses
        "torch": getattr(torch, "__version__", None),
        "snakesweep": __version__,
    }


def process_usage() -> dict[str, float | None]:
    """CPU seconds and peak resident memory of this step process and the children it waited for
    (getrusage): what Snakemake's `benchmark:` files would say of the job, without its sampling
    thread per job. None where the platform has no getrusage."""
    try:
        import resource  # Unix only; tiny
    except ImportError:
        return {"cpu_s": None, "max_rss_mb": None}
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"cpu_s": round(me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, 3),
            "max_rss_mb": round(max(me.ru_maxrss, kids.ru_maxrss) * unit / 2**20, 1)}


def result_record(
    *,
    trial: str,
    step: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    started_at: str,
    ended_at: str,
    duration_s: float,
    device: str,
    sweep_hash: str,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "trial": trial,
        "step": step,
        "params": params,
        "metrics": metrics,
        "status": "ok",
        "started_at": started_at,
        "ended_at": ended_at,
        "duration_s": round(duration_s, 6),
        **process_usage(),
        "host": os.uname().nodename,  # socket.gethostname() without importing socket
        "device": device,
        "versions": versions(),
        "sweep_hash": sweep_hash,
    }


def check_result(record: Any, trial: str, step: str) -> str | None:
    """Why `record` is not a valid result of `trial`'s `step` (None when it is).

    Valid: a JSON object with the current schema_version, this trial and step, status "ok"
    and a metrics object; what every reader of results relies on.
    """
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    if record.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version is {record.get('schema_version')!r}, expected {SCHEMA_VERSION}"
    if record.get("trial") != trial:
        return f"it is a result of trial {record.get('trial')!r}, not {trial!r}"
    if record.get("step") != step:
        return f"it is a result of step {record.get('step')!r}, not {step!r}"
    if record.get("status") != "ok":
        return f"status is {record.get('status')!r}, not 'ok'"
    if not isinstance(record.get("metrics"), dict):
        return "it has no metrics object"
    return None


def load_result(path: str | Path, trial: str, step: str) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a valid result; (None, "corrupt: <path>: <why>") otherwise."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        return None, f"corrupt: {path}: {err.strerror or err}"
    try:
        record = json.loads(data)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        return None, f"corrupt: {path}: {err}"
    problem = check_result(record, trial, step)
    if problem:
        return None, f"corrupt: {path}: {problem}"
    return record, None


def record_seconds(record: Any) -> float | None:
    """A result record's `duration_s` when it is a usable duration (a finite number >= 0): the
    one measure of how long a step's job took (preview, status and the run's ETA use it)."""
    v = record.get("duration_s") if isinstance(record, dict) else None
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")
    return float(v) if ok else None


def earlier_durations(output: str | Path, limit: int = 200) -> list[float]:
    """The durations (:func:`record_seconds`) of up to `limit` results at `output`'s place in the
    other trials of its sweep (<sweep dir>/trials/<trial>/<file>, a cycle's file too): how long
    this step took before, for a step none of whose jobs has finished in this run. [] for an
    output outside a trial's directory."""
    parts = Path(output).parts
    if "trials" not in parts:
        return []
    i = len(parts) - 1 - parts[::-1].index("trials")
    if len(parts) < i + 3:
        return []
    trials_dir, rel = os.path.join(*parts[: i + 1]), os.path.join(*parts[i + 2:])
    out: list[float] = []
    try:
        with os.scandir(trials_dir) as it:
            for entry in it:
                record = read_json_or_none(os.path.join(entry.path, rel))
                secs = record_seconds(record) if isinstance(record, dict) and record.get("status") == "ok" else None
                if secs is not None:
                    out.append(secs)
                    if len(out) >= limit:
                        break
    except OSError:
        return []
    return out


def error_record_path(log_path: str | Path) -> Path:
    """The error record sits next to the step's log: logs/{step}/{trial}.error.json."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.name.removesuffix(".log") + ".error.json")


def plan_beside_logs(logs: str | Path) -> Path:
    """The plan of the sweep whose logs are `logs` (<sweep dir>/logs -> <sweep dir>/plan/trials.json)."""
    return Path(logs).parent / "plan" / "trials.json"


# the plan file last read for its identity: (path, mtime_ns, size) -> identity
_IDENTITY_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}


def plan_identity(plan: Any) -> dict[str, Any]:
    """What an error record carries of the plan it failed under: the sweep's name, its hash (the
    whole sweep file's meaning) and, for a search, the search key and method (what the search's
    choices depend on). {} without a plan."""
    if not isinstance(plan, dict):
        return {}
    search = plan.get("search") if isinstance(plan.get("search"), dict) else {}
    return {"sweep_name": plan.get("sweep_name"), "sweep_hash": plan.get("sweep_hash"),
            "search_key": search.get("key"), "search_method": search.get("method")}


def identity_of_plan_file(path: str | Path) -> dict[str, Any]:
    """:func:`plan_identity` of the plan file at `path` ({} without a readable one); cached
    while the file is unchanged, since a 10k-trial plan is read once, not once per record."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _IDENTITY_CACHE:
        _IDENTITY_CACHE.clear()
        _IDENTITY_CACHE[key] = plan_identity(read_json_or_none(path))
    return _IDENTITY_CACHE[key]


def of_plan(record: Any, identity: dict[str, Any]) -> bool:
    """Whether an error record belongs to the plan of `identity` (:func:`plan_identity`): a record
    of another sweep name, or of another search (key or method; a grid's record under a search's
    plan and the reverse), is not. The sweep hash is not compared: the same sweep, edited, keeps
    its failures (what changed re-runs). A record without identity (older) or no plan: trusted."""
    if not identity or not isinstance(record, dict) or "search_key" not in record:
        return True
    if record.get("sweep_name") not in (None, identity.get("sweep_name")) and identity.get("sweep_name") is not None:
        return False
    return (record.get("search_key"), record.get("search_method")) == (identity.get("search_key"),
                                                                       identity.get("search_method"))


def write_error_record(
    log_path: str | Path,
    *,
    trial: str,
    step: str,
    reason: str,
    type_: str,
    message: str,
    traceback_tail: str = "",
    attempt: int | None = None,
    plan: dict[str, Any] | None = None,
) -> Path:
    """`attempt` (1 for the first try) defaults to $SNAKESWEEP_ATTEMPT, which the supervisor
    sets for its step, so a record says which retry failed (snakesweep/supervise.py). The record
    carries the identity of the plan it failed under (:func:`plan_identity`; `plan` defaults to
    the sweep's plan beside its logs), so readers of another plan or search ignore it."""
    path = error_record_path(log_path)
    identity = plan_identity(plan) if plan is not None else identity_of_plan_file(
        plan_beside_logs(Path(log_path).parent.parent))
    atomic_write_json(
        path,
        {
            "trial": trial,
            "step": step,
            "reason": reason,
            "type": type_,
            "message": message,
            "traceback_tail": traceback_tail,
            "time": utc_now(),
            "log": str(log_path),
            "attempt": attempt or int(os.environ.get(ATTEMPT_ENV, "1")),
            **identity,
        },
    )
    return path


def exception_record(log_path: str | Path, trial: str, step: str, exc: BaseException) -> Path:
    import traceback

    tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])
    return write_error_record(
        log_path,
        trial=trial,
        step=step,
        reason="exception",
        type_=type(exc).__name__,
        message=str(exc)[:2000],
        traceback_tail=tail[-4000:],
    )


def retried(reason: Any, retry_on: Iterable[str]) -> bool:
    """Whether a step that failed with `reason` runs again: a reason in failures.retry_on, or a
    step the failure budget held back."""
    return reason in (*retry_on, BUDGET_REASON)


def error_records(logs: str | Path, steps: Iterable[str], *, since: float | None = None,
                  cycles: bool = True, plan: dict[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(trial, record) of every readable error record logs/{step}/{trial}[.cycle{c}].error.json
    of `steps`, one directory listing per step. `since`: only records written at or after it
    (this run's); `cycles=False` leaves out the records of measurement cycles. Records of another
    plan (:func:`of_plan`: another sweep or search; `plan` defaults to the one beside `logs`)
    are left out: never a failure of this one."""
    identity = plan_identity(plan) if plan is not None else identity_of_plan_file(plan_beside_logs(logs))
    for step in steps:
        try:
            entries = list(os.scandir(Path(logs, step)))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.endswith(".error.json") or (not cycles and ".cycle" in entry.name):
                continue
            if since is not None:
                try:
                    if entry.stat().st_mtime < since:
                        continue
                except OSError:
                    continue
            record = read_json_or_none(entry.path)
            if isinstance(record, dict) and of_plan(record, identity):
                yield entry.name.split(".", 1)[0], record
