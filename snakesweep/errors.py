"""The one exception a user's mistake in the sweep file becomes (kept free of pydantic, so that
step processes that only format or check parameters do not pay for importing it), and the one
line a write the file system refuses (full, read-only, no permission) ends in: it sits in this
bottom layer so that every process that writes (steps, supervisor, collect, reports, the
workflow's handlers) says it the same way, with the standard library only."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path

# the errors of a file system that refuses a write: the user's disk, not a bug of ours
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# permission errors count when they name a file (a signal refused to a process names none)
FILE_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM})
DEBUG_ENV = "SNAKESWEEP_DEBUG"  # set (to anything but 0): the traceback too


class ConfigError(Exception):
    """A mistake in the sweep file: the message names the file, the key and the fix."""


def is_disk_error(err: BaseException) -> bool:
    """Whether `err` is the file system refusing a write (no space, quota, read-only, permission)."""
    if not isinstance(err, OSError):
        return False
    return err.errno in DISK_ERRNOS or (err.errno in FILE_PERMISSION_ERRNOS and err.filename is not None)


def debugging() -> bool:
    """SNAKESWEEP_DEBUG=1: show tracebacks that are otherwise one line."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def disk_error_line(err: OSError, results: str | Path | None = "results") -> str:
    """One line for a write that failed on the sweep's file system (no space, read-only, no
    permission): the path, what happened and the fix; no traceback. `results` (the sweep's
    directory) is named when the error carries no file name."""
    path = err.filename or (Path(results).as_posix() if results is not None else "the sweep's directory")
    if isinstance(path, str) and Path(path).name.startswith(".") and path.endswith(".tmp"):
        path = Path(path).parent.as_posix()  # the temp file of an atomic write: name its directory
    fix = {errno.ENOSPC: "free space on that file system (or set sweep.dir to a directory with room)",
           errno.EDQUOT: "free space within your quota (or set sweep.dir elsewhere)",
           errno.EROFS: "the file system is read-only: remount it read-write, or set sweep.dir to a writable "
                        "directory",
           errno.EACCES: "make the directory writable for this user, or set sweep.dir elsewhere",
           errno.EPERM: "make the directory writable for this user, or set sweep.dir elsewhere"}
    how = fix.get(err.errno, "make it writable, with free space")
    return (f"snakesweep: cannot write {path}: {err.strerror or err} (fix: {how}; then re-run the same "
            "command: no result record is lost, the summary and reports are rewritten)")


def one_line_on_disk_errors(main: Callable[[], int], results: str | Path | None = None) -> int:
    """Run a process's `main`; a write the file system refuses ends it with :func:`disk_error_line`
    on stderr and status 1 instead of a traceback (printed above the line with SNAKESWEEP_DEBUG=1).
    Every other error propagates unchanged."""
    try:
        return main()
    except OSError as err:
        if not is_disk_error(err):
            raise
        if debugging():
            import traceback

            traceback.print_exc()
        print(disk_error_line(err, results), file=sys.stderr, flush=True)
        return 1
