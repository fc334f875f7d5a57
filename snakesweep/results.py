"""Result and error records on disk: the sweep's only state.

Everything is written atomically (temp file in the same directory + os.replace), so a
kill at any moment leaves either the old file, the new file, or nothing: never half a JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__

if TYPE_CHECKING:
    from typing import Any

# Every step process imports this module before any work (issue 11: hundreds of short jobs):
# it imports only what writing a record needs; hostname and version come from os and sys,
# the traceback module only when there is an exception to format.

SCHEMA_VERSION = 1
ATTEMPT_ENV = "SNAKESWEEP_ATTEMPT"
STEPS = ("train", "eval", "measure")


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
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic, umask-respecting text write (UTF-8); see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def versions() -> dict[str, str | None]:
    """Versions of what the step actually used: torch only if the step imported it."""
    torch = sys.modules.get("torch")
    return {
        "python": sys.version.split()[0],  # what platform.python_version() parses
        "torch": getattr(torch, "__version__", None),
        "snakesweep": __version__,
    }


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
        "host": os.uname().nodename,  # socket.gethostname() without importing socket
        "device": device,
        "versions": versions(),
        "sweep_hash": sweep_hash,
    }


def error_record_path(log_path: str | Path) -> Path:
    """The error record sits next to the step's log: logs/{step}/{trial}.error.json."""
    log_path = Path(log_path)
    return log_path.with_name(log_path.name.removesuffix(".log") + ".error.json")


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
) -> Path:
    """`attempt` (1 for the first try) defaults to $SNAKESWEEP_ATTEMPT, which the supervisor
    sets for its step, so a record says which retry failed (snakesweep/supervise.py)."""
    path = error_record_path(log_path)
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
