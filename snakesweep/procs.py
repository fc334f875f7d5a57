"""Process helpers of this host (Linux /proc and prctl), standard library only.

The supervisor imports this before it forks the step, and a command workload's step before it
starts the command, so it must stay light: os, signal and sys; ctypes only when called.
"""

from __future__ import annotations

import os
import signal
import sys


def parent_pid(pid: int) -> int | None:
    """The parent of `pid`, from /proc/{pid}/stat (None when it cannot be told)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def die_with_parent(parent: int | None = None) -> None:
    """In a child: the kernel kills it with SIGKILL when its parent dies (Linux PR_SET_PDEATHSIG);
    elsewhere this does nothing. Given `parent` (the pid that forked us), a parent that died
    before prctl took effect ends the child at once."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if parent is not None and os.getppid() != parent:
            os._exit(1)
