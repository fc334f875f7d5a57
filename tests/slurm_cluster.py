"""A throw-away single-node Slurm cluster on loopback, for integration tests.

Usage (context manager)::

    with SlurmCluster(tmp_dir) as cluster:      # installs, configures, starts, waits for idle
        cluster.run(["sbatch", "--wrap", "hostname"])
    # every daemon it started is stopped (by PID) here, even on error

or the pytest helper ``slurm_cluster_fixture(tmp_path_factory)`` (a generator for a fixture).

What it does:

1. ``ensure_slurm_installed()`` installs the Debian packages ``slurm-wlm`` and ``munge`` with
   apt-get when their binaries are missing (needs root). It returns a reason string when Slurm
   cannot be had, so a test can ``pytest.skip(reason)``.
2. Writes ``slurm.conf`` (one node, the short hostname, on 127.0.0.1, free TCP ports) and a
   fresh munge key into its own directory. ``/etc/slurm/slurm.conf`` is made a symlink to that
   file, because jobs started by snakemake-executor-plugin-slurm drop ``SLURM_CONF`` before
   their nested ``srun``; whatever was at that path before is put back afterwards.
3. Starts ``munged``, ``slurmctld`` and ``slurmd`` in the foreground as children of this
   process (so their PIDs are known and they are reaped here), each with its own pid, log and
   state files in the cluster directory.
4. Waits until ``sinfo`` reports the node idle.
5. ``stop()`` cancels the cluster's jobs, then stops every daemon it started by PID
   (SIGTERM, then SIGKILL), and any ``slurmstepd`` left in the daemons' session. A process
   that has become a zombie counts as stopped (PID 1 in these sandboxes does not reap).

Only one such cluster can run on a machine at a time (``/etc/slurm/slurm.conf`` is global):
a file lock serialises concurrent users.

Every external command is bounded with ``timeout -k 10 N``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ETC_SLURM_CONF = Path("/etc/slurm/slurm.conf")
LOCK_FILE = Path(tempfile.gettempdir()) / "snakesweep-slurm-cluster.lock"
REQUIRED_BINARIES = ("munged", "mungekey", "munge", "unmunge", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
PARTITION = "debug"
MARKER = "snakesweep-test-slurm"  # written into slurm.conf, recognises our own stale symlinks


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be installed or started here; the message says why."""


def bounded(cmd: Sequence[str], seconds: float) -> list[str]:
    """``cmd`` wrapped in ``timeout -k 10 seconds`` (SIGTERM, then SIGKILL 10 s later)."""
    return ["timeout", "-k", "10", str(int(max(1, seconds)))] + [str(c) for c in cmd]


def _run(cmd: Sequence[str], seconds: float = 30, check: bool = False, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    return subprocess.run(bounded(cmd, seconds), check=check, **kw)


def missing_binaries() -> list[str]:
    return [b for b in REQUIRED_BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def ensure_slurm_installed(timeout_s: float = 400) -> str | None:
    """Install slurm-wlm and munge if missing. Returns None when ready, else the reason why not."""
    if not missing_binaries():
        return None
    if os.geteuid() != 0:
        return f"Slurm binaries missing ({', '.join(missing_binaries())}) and not root, cannot apt-get install"
    if shutil.which("apt-get") is None:
        return f"Slurm binaries missing ({', '.join(missing_binaries())}) and no apt-get on this machine"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock_opt = ["-o", "DPkg::Lock::Timeout=120"]
    upd = _run(["apt-get", *lock_opt, "update", "-qq"], timeout_s / 2, env=env)
    if upd.returncode != 0:
        return f"apt-get update failed (rc={upd.returncode}): {upd.stderr.strip()[-400:]}"
    inst = _run(
        ["apt-get", *lock_opt, "install", "-y", "-qq", "--no-install-recommends", "slurm-wlm", "munge"],
        timeout_s / 2,
        env=env,
    )
    if inst.returncode != 0:
        return f"apt-get install slurm-wlm munge failed (rc={inst.returncode}): {inst.stderr.strip()[-400:]}"
    if missing_binaries():
        return f"after apt-get install still missing: {', '.join(missing_binaries())}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _available_memory_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096


def _is_stopped(pid: int) -> bool:
    """True when ``pid`` no longer runs (gone, or a zombie nobody reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, OSError):
        return True
    # state is the field after the parenthesised command name
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X")


def _session_members(sid: int) -> list[int]:
    """PIDs of live processes in session ``sid`` (ours: daemons were started in a new session)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields: state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            out.append(int(d.name))
    return out


class SlurmCluster:
    """One slurmctld + one slurmd on 127.0.0.1, with munge, rooted in ``root``."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        cpus: int = 4,
        gpus: int = 0,
        memory_mb: int | None = None,
        min_job_age: int = 300,
        start_timeout_s: float = 60,
        lock_timeout_s: float = 300,
        install: bool = True,
    ):
        # a directory we create ourselves is removed again by stop(); a given one is kept (logs)
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="snakesweep-slurm-"))
        self.root = self.root.resolve()
        self.cpus = cpus
        self.gpus = gpus  # > 0: advertise that many (device-less) gres/gpu, to exercise --gpus requests
        # bookkeeping only (no memory enforcement is configured; SlurmdParameters=config_overrides
        # lets the node claim more than it has), so jobs asking for a few GB fit on small machines
        self.memory_mb = memory_mb or max(16384, int(_available_memory_mb() * 0.8))
        self.min_job_age = min_job_age
        self.start_timeout_s = start_timeout_s
        self.lock_timeout_s = lock_timeout_s
        self.install = install
        self.host = socket.gethostname().split(".")[0]
        self.partition = PARTITION
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}
        self._lock_fd: int | None = None
        self._etc_backup: tuple[str, Path | str | None] | None = None
        self._started = False
        self._stopped = False
        self._stop_lock = threading.Lock()

    # ------------------------------------------------------------------ public helpers
    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def run(self, cmd: Sequence[str], timeout_s: float = 30, check: bool = False, **kw) -> subprocess.CompletedProcess:
        """Run a client command (sbatch, squeue, ...) bounded by ``timeout -k 10``."""
        return _run(cmd, timeout_s, check=check, **kw)

    def node_state(self) -> str:
        r = self.run(["sinfo", "--noheader", "-N", "-n", self.host, "-o", "%T"], 15)
        return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still remembers (running, pending and finished within MinJobAge)."""
        fmt = "%i|%j|%T|%k|%r"
        r = self.run(["squeue", "--states=all", "--noheader", f"--format={fmt}"], 15)
        out = []
        for line in r.stdout.splitlines():
            parts = line.split("|")
            if len(parts) == 5:
                out.append(dict(zip(("jobid", "name", "state", "comment", "reason"), (p.strip() for p in parts))))
        return out

    def wait_for(self, predicate, timeout_s: float, interval: float = 0.5, what: str = "condition"):
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            time.sleep(interval)

    def log_tail(self, n: int = 30) -> str:
        parts = []
        for name in ("munged", "slurmctld", "slurmd"):
            f = self.root / "log" / f"{name}.log"
            if f.exists():
                lines = f.read_text(errors="replace").splitlines()[-n:]
                parts.append(f"--- {f} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> SlurmCluster:
        if self.install:
            reason = ensure_slurm_installed()
            if reason:
                raise SlurmUnavailable(reason)
        elif missing_binaries():
            raise SlurmUnavailable(f"Slurm binaries missing: {', '.join(missing_binaries())}")
        self._acquire_lock()
        atexit.register(self.stop)
        self._started = True
        try:
            self._write_config()
            self._link_etc_conf()
            self._start_munged()
            self._start_slurmctld()
            self._start_slurmd()
            last = {"state": "not read yet"}

            def node_idle() -> bool:
                for name in ("munged", "slurmctld", "slurmd"):
                    self._check_alive(name)  # a daemon that died says so now, not at the deadline
                last["state"] = self.node_state()
                return last["state"] == "idle"

            try:
                self.wait_for(node_idle, self.start_timeout_s, what=f"node {self.host} idle")
            except TimeoutError as e:
                raise TimeoutError(f"{e} (last state: {last['state']})") from None
        except BaseException as e:
            tail = self.log_tail()
            self.stop()
            if isinstance(e, (SlurmUnavailable, TimeoutError, RuntimeError, OSError)):
                raise SlurmUnavailable(f"could not start the test Slurm: {e}\n{tail}") from e
            raise
        return self

    def stop(self) -> None:
        """Cancel our jobs, stop every daemon we started (by PID), restore /etc/slurm/slurm.conf."""
        with self._stop_lock:
            if not self._started or self._stopped:
                return
            self._stopped = True
            try:
                if "slurmctld" in self.procs and not _is_stopped(self.procs["slurmctld"].pid):
                    self.run(["scancel", "--full", "-p", self.partition], 15)
                    try:
                        self.wait_for(
                            lambda: not [j for j in self.jobs() if j["state"] in ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING")],
                            15,
                            what="jobs to end",
                        )
                    except TimeoutError:
                        pass
            except Exception:
                pass
            # job steps: slurmstepd daemonises into its own session but keeps slurmd's cwd (our root)
            sids = {s for s in (self._stepd_sessions()) if s > 1}
            for name in ("slurmd", "slurmctld", "munged"):
                p = self.procs.get(name)
                if p is None:
                    continue
                sids.add(p.pid)  # started with start_new_session: pid == sid
                self._terminate(p)
            # leftovers: job steps' sessions (slurmstepd + job processes) and the daemons' sessions
            for sid in sids:
                for pid in _session_members(sid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            for f in self._logs.values():
                with contextlib.suppress(Exception):
                    f.close()
            self._restore_etc_conf()
            self._release_lock()
            if self._own_root:
                shutil.rmtree(self.root, ignore_errors=True)
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)

    def still_running(self) -> dict[str, int]:
        """Daemons (name -> pid) that have not stopped; empty after ``stop()``."""
        return {n: p.pid for n, p in self.procs.items() if not _is_stopped(p.pid)}

    # ------------------------------------------------------------------ internals
    def _acquire_lock(self) -> None:
        fd = os.open(LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise SlurmUnavailable(
                        f"another test Slurm holds {LOCK_FILE} for more than {self.lock_timeout_s:.0f}s"
                    ) from None
                time.sleep(1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.root}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def _write_config(self) -> None:
        for d in ("etc", "munge", "log", "run", "state", "spool"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        self.ctld_port = _free_port()
        self.slurmd_port = _free_port()
        while self.slurmd_port == self.ctld_port:
            self.slurmd_port = _free_port()
        r = self.root
        lines = [
            f"# {MARKER}: single-node test cluster written by tests/slurm_cluster.py",
            "ClusterName=snakesweep",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={self.ctld_port}",
            f"SlurmdPort={self.slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "MpiDefault=none",
            "MailProg=/bin/true",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            f"MinJobAge={self.min_job_age}",
            "KillWait=5",
            "InactiveLimit=0",
            "SlurmctldTimeout=60",
            "SlurmdTimeout=120",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            *(["GresTypes=gpu"] if self.gpus else []),
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb}"
            + (f" Gres=gpu:{self.gpus}" if self.gpus else "")
            + " State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))
        if self.gpus:
            # slurmd drops file-less GPUs; character devices stand in for them
            files = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"][: self.gpus]
            (self.conf.parent / "gres.conf").write_text(
                "".join(f"NodeName={self.host} Name=gpu File={f}\n" for f in files)
            )
        key = self.root / "munge" / "munge.key"
        res = _run(["mungekey", "--create", "--force", f"--keyfile={key}"], 30)
        if res.returncode != 0:
            raise SlurmUnavailable(f"mungekey failed: {res.stderr.strip()}")
        key.chmod(0o600)

    def _link_etc_conf(self) -> None:
        """Point /etc/slurm/slurm.conf at our file, remembering what was there."""
        ETC_SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
        if ETC_SLURM_CONF.is_symlink():
            target = os.readlink(ETC_SLURM_CONF)
            stale_ours = False
            try:
                stale_ours = MARKER in Path(target).read_text(errors="replace")[:200]
            except OSError:
                stale_ours = not Path(target).exists() and "snakesweep-slurm" in target
            self._etc_backup = ("none", None) if stale_ours else ("symlink", target)
            ETC_SLURM_CONF.unlink()
        elif ETC_SLURM_CONF.exists():
            backup = ETC_SLURM_CONF.with_name(f"slurm.conf.before-{MARKER}-{os.getpid()}")
            os.replace(ETC_SLURM_CONF, backup)
            self._etc_backup = ("file", backup)
        else:
            self._etc_backup = ("none", None)
        ETC_SLURM_CONF.symlink_to(self.conf)

    def _restore_etc_conf(self) -> None:
        if self._etc_backup is None:
            return
        kind, what = self._etc_backup
        with contextlib.suppress(FileNotFoundError):
            if ETC_SLURM_CONF.is_symlink() and os.readlink(ETC_SLURM_CONF) == str(self.conf):
                ETC_SLURM_CONF.unlink()
        if kind == "symlink" and not ETC_SLURM_CONF.exists():
            ETC_SLURM_CONF.symlink_to(what)
        elif kind == "file" and not ETC_SLURM_CONF.exists():
            os.replace(what, ETC_SLURM_CONF)
        self._etc_backup = None

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        out = open(self.root / "log" / f"{name}.stdout", "ab")
        self._logs[name] = out
        p = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.root,
            # daemons find gres.conf etc. next to SLURM_CONF (not next to the -f file)
            env=dict(os.environ, SLURM_CONF=str(self.conf)),
        )
        self.procs[name] = p
        return p

    def _check_alive(self, name: str) -> None:
        p = self.procs[name]
        if p.poll() is not None:
            raise SlurmUnavailable(f"{name} exited with {p.returncode} during start-up")

    def _start_munged(self) -> None:
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                shutil.which("munged") or "/usr/sbin/munged",
                "--force",
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={m / 'munge.key'}",
                f"--pid-file={self.root / 'run' / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
        )

        def ready():
            self._check_alive("munged")
            if not self.munge_socket.exists():
                return False
            enc = _run(["munge", "-n", "-S", self.munge_socket], 10)
            if enc.returncode != 0:
                return False
            dec = _run(["unmunge", "-S", self.munge_socket], 10, input=enc.stdout)
            return dec.returncode == 0

        self.wait_for(ready, 20, 0.2, "munged to answer")

    def _start_slurmctld(self) -> None:
        self._spawn("slurmctld", [shutil.which("slurmctld") or "/usr/sbin/slurmctld", "-D", "-i", "-f", str(self.conf)])

        def ready():
            self._check_alive("slurmctld")
            return _run(["scontrol", "ping"], 10).stdout.find("UP") >= 0

        self.wait_for(ready, 30, 0.3, "slurmctld to answer scontrol ping")

    def _start_slurmd(self) -> None:
        self._spawn("slurmd", [shutil.which("slurmd") or "/usr/sbin/slurmd", "-D", "-f", str(self.conf), "-N", self.host])
        self._check_alive("slurmd")  # start() keeps checking while it polls for the node to be idle

    def _stepd_sessions(self) -> set[int]:
        """Session ids of live slurmstepd processes started by our slurmd (their cwd is our root)."""
        sids = set()
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if not (d / "cmdline").read_bytes().startswith(b"slurmstepd"):
                    continue
                if Path(os.readlink(d / "cwd")) != self.root:
                    continue
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in ("Z", "X"):
                sids.add(int(fields[3]))
        return sids

    def _terminate(self, p: subprocess.Popen, grace_s: float = 10) -> None:
        if p.poll() is not None or _is_stopped(p.pid):
            with contextlib.suppress(Exception):
                p.wait(timeout=1)
            return
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)


@contextlib.contextmanager
def slurm_cluster(root: Path | str | None = None, **kw) -> Iterator[SlurmCluster]:
    """Context manager: a running single-node Slurm, stopped (by PID) on exit."""
    cluster = SlurmCluster(root, **kw)
    prev_term = None
    if threading.current_thread() is threading.main_thread():
        # turn SIGTERM (e.g. a CI timeout) into an exception so the finally below still runs
        def _on_term(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")

        prev_term = signal.signal(signal.SIGTERM, _on_term)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if prev_term is not None:
            signal.signal(signal.SIGTERM, prev_term)


def slurm_cluster_fixture(tmp_path_factory, **kw) -> Iterator[SlurmCluster]:
    """Body of a pytest fixture (`yield from slurm_cluster_fixture(tmp_path_factory)`): skips (with the
    reason) where Slurm cannot be installed or started; after the tests, every daemon must be gone.
    `kw`: SlurmCluster's options (e.g. min_job_age)."""
    import pytest

    reason = ensure_slurm_installed()
    if reason:
        pytest.skip(f"Slurm not available: {reason}")
    root = Path(tempfile.mkdtemp(prefix="snakesweep-slurm-", dir=tmp_path_factory.getbasetemp()))
    try:
        with slurm_cluster(root, **kw) as cluster:
            yield cluster
    except SlurmUnavailable as e:
        pytest.skip(f"could not start a test Slurm: {e}")
    assert cluster.still_running() == {}, f"daemons still running after stop: {cluster.still_running()}"


if __name__ == "__main__":  # manual smoke test: python tests/slurm_cluster.py
    import sys

    t0 = time.monotonic()
    with slurm_cluster() as c:
        print(f"up in {time.monotonic() - t0:.1f}s: pids {c.pids}, node {c.node_state()}", flush=True)
        r = c.run(["sbatch", "--parsable", "--wrap", "hostname"], 30)
        print("sbatch:", r.returncode, r.stdout.strip(), r.stderr.strip(), flush=True)
        jobid = r.stdout.strip()
        c.wait_for(lambda: any(j["jobid"] == jobid and j["state"] == "COMPLETED" for j in c.jobs()), 30, what="sbatch job")
        print("sbatch job output:", (c.root / f"slurm-{jobid}.out").read_text().strip() if (c.root / f"slurm-{jobid}.out").exists() else "(see cwd)")
        r = c.run(["srun", "hostname"], 30)
        print("srun:", r.returncode, r.stdout.strip(), r.stderr.strip(), flush=True)
        print("jobs:", c.jobs())
        pids = c.pids
    print("still running after stop:", c.still_running(), "pids were", pids)
    print("etc conf:", ETC_SLURM_CONF, "exists" if ETC_SLURM_CONF.exists() or ETC_SLURM_CONF.is_symlink() else "absent")
    print(f"total {time.monotonic() - t0:.1f}s")
    sys.exit(0)
