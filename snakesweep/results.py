"""Result and error records on disk: the sweep's only state.

Everything is written atomically (temp file in the same directory + os.replace), so a
kill at any moment leaves either the old file, the new file, or nothing: never half a JSON.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__

SCHEMA_VERSION = 1
STEPS = ("train", "eval", "measure")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def versions() -> dict[str, str | None]:
    """Versions of what the step actually used: torch only if the step imported it."""
    torch = sys.modules.get("torch")
    return {
        "python": platform.python_version(),
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
        "host": socket.gethostname(),
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
) -> Path:
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
        },
    )
    return path


def exception_record(log_path: str | Path, trial: str, step: str, exc: BaseException) -> Path:
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
