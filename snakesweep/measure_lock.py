"""One measurement at a time on a host, however the workflow was started.

The workflow's `measure_slot` resource keeps one Snakemake run from starting two measure jobs
together, but not a second run (another sweep, another directory, a deployed module without
this repository's profile) on the same machine. Every measure step therefore also holds an
exclusive `flock` on a host-wide lock file for its whole cooldown + baseline + window. The
kernel drops the lock when the process dies, so a killed measurement never leaves it stuck.

The file is opened read-only (flock does not need write access), so colleagues sharing a
workstation can all use the same lock file whoever created it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_VAR = "SNAKESWEEP_MEASURE_LOCK"


def lock_path() -> Path:
    """$SNAKESWEEP_MEASURE_LOCK, else snakesweep-measure.lock in the system's temp directory."""
    import tempfile  # only without the variable: tempfile imports random, shutil, ...

    return Path(os.environ.get(ENV_VAR) or Path(tempfile.gettempdir(), "snakesweep-measure.lock"))


@contextmanager
def measurement_lock(path: Path | None = None, log: Callable[[str], None] = print) -> Iterator[float]:
    """Hold the host's measurement lock; yields how long it took to get it (seconds)."""
    path = path or lock_path()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    try:
        t0 = time.monotonic()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"measurement lock {path}: another measurement is running on this host; waiting")
            fcntl.flock(fd, fcntl.LOCK_EX)
        waited = time.monotonic() - t0
        if waited > 0.05:
            log(f"measurement lock {path}: acquired after {waited:.1f} s")
        yield waited
    finally:
        os.close(fd)  # closing the descriptor releases the lock
