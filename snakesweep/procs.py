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


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux PR_SET_CHILD_SUBREAPER): a descendant orphaned
    anywhere below it, however it detached (its own session, a double fork), is re-parented to
    this process instead of to init, so that it can be found and killed. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def children(pid: int) -> list[int]:
    """The live children of `pid` (zombies included): the kernel's per-thread lists
    (/proc/{pid}/task/*/children, one small read per thread), else a scan of all of /proc
    (PPID = pid) where the kernel lacks them (CONFIG_PROC_CHILDREN off)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    out: list[int] = []
    try:
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
        return out
    except FileNotFoundError:
        if tasks and not os.path.exists(f"/proc/{pid}/task/{tasks[0]}/children"):
            return _children_by_scan(pid)  # no per-thread lists on this kernel
        return out  # a thread that ended while we read: its children moved to another
    except (OSError, ValueError):
        return _children_by_scan(pid)


def _children_by_scan(pid: int) -> list[int]:
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if name.isdigit() and parent_pid(int(name)) == pid:
            out.append(int(name))
    return out


def command_line(pid: int) -> str:
    """`pid`'s command line, for messages ('' once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b" ".join(fh.read().split(b"\0")).decode(errors="replace").strip()[:200]
    except OSError:
        return ""


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _reap_any() -> bool:
    """Reap what has exited; whether this process still has children (the kernel's answer:
    ECHILD means none at all, adopted ones included, with no /proc read)."""
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if not done:
            return True


def reap_adopted(grace_s: float = 5.0, deadline_s: float = 30.0, settle_s: float = 0.2) -> list[str]:
    """Kill and reap every process re-parented to this subreaper (and what they started):
    SIGTERM, then SIGKILL after `grace_s`. Call it only once this process's own child has been
    waited for. Returns the command lines of the processes that were alive (what a step left)."""
    import time

    me = os.getpid()
    found: dict[int, str] = {}
    settle = time.monotonic() + settle_s  # what exits by itself right after the step is no leftover
    while time.monotonic() < settle:
        if not _reap_any():
            return []  # no child left at all: the usual end of a step
        if not [p for p in children(me) if not _zombie(p)]:
            break
        time.sleep(0.01)
    start = time.monotonic()
    term_sent: dict[int, float] = {}
    while time.monotonic() - start < deadline_s:
        if not _reap_any():
            break
        live = [p for p in children(me) if not _zombie(p)]
        if not live:
            _reap_any()
            if not [p for p in children(me)]:
                break
            time.sleep(0.01)
            continue
        now = time.monotonic()
        for p in live:
            found.setdefault(p, command_line(p))
            sig = signal.SIGTERM if p not in term_sent else signal.SIGKILL
            if p in term_sent and now - term_sent[p] < grace_s:
                continue
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
            term_sent.setdefault(p, now)
        time.sleep(0.02)
    _reap_any()
    return list(found.values())
