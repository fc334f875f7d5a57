"""Command workloads at run time: run a step's argv (no shell), tee its output, check its exit, read
its metrics; for measure, one window from spawn to exit with the tree's peak memory and energy.

Split from the parse-time half (_command_argv.py, whose build_argv and step_context it uses);
command.py re-exports both and its docstring holds the rules (metrics, processes). Imports: the
standard library, ..params and ..procs; the measure step imports the meters lazily. The run_*
functions read only ``.command``, ``.args`` and ``.metrics`` of the workload, so a step may pass
the plan's dict as ``types.SimpleNamespace(**plan["workload"])`` instead of validating it again.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..params import KeyClash, flatten, non_finite
from ..procs import die_with_parent
from ._command_argv import RESUME, build_argv, step_context

if TYPE_CHECKING:  # pydantic stays out of a step's imports: run_* read only .command/.args/.metrics
    from ..config import CommandWorkload, MeasureSettings

Log = Callable[[str], Any]

TAIL_LINES = 30
PIPE_GRACE_S = 2.0  # after the command exits, how long a grandchild may keep its output pipe open


class CommandError(RuntimeError):
    """A command workload's step failed; the message is what the error record shows."""


class CommandFailed(CommandError):
    """The command exited non-zero or died from a signal."""


class HydraKeyMissing(CommandFailed):
    """A sweep parameter names no key of the Hydra app's config."""


class MetricsMissing(CommandError):
    """The command exited 0 without the metrics it was to write (or with unusable ones)."""


# --------------------------------------------------------------------------- running


class Completed(NamedTuple):  # no dataclasses in a step process: it imports inspect (~6 ms)
    """What a finished command left: exit code, rusage of its tree, output, timing."""

    argv: list[str]
    returncode: int
    stdout_lines: list[str]
    tail: list[str]
    wall_s: float
    cpu_s: float
    open_pipes: bool = False  # a grandchild still held the output pipe after the command exited
    maxrss_mb: float = 0.0  # wait4's ru_maxrss: the command's peak, or what the fork carried over (below)
    launcher_rss_mb: float = 0.0  # this process's RSS right before the spawn: the most the fork carries


def command_name(argv: list[str]) -> str:
    """What to call the command in messages: the script, not the interpreter."""
    if len(argv) > 1 and re.match(r"^python[\d.]*$", os.path.basename(argv[0])):
        if argv[1] == "-m" and len(argv) > 2:
            return argv[2]
        script = next((a for a in argv[1:] if not a.startswith("-")), None)
        if script:
            return os.path.basename(script)
    return os.path.basename(argv[0])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")]) if env.get("PATH") else bindir
    return env


def _pump(stream: Any, log: Log, tail: collections.deque, keep: list[str] | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
        line = line.rsplit("\r", 1)[-1]  # a progress bar's last state, as a terminal shows it
        log(line)
        tail.append(line)
        if keep is not None:
            keep.append(line)
    stream.close()


def run_command(
    argv: list[str], *, log: Log, keep_stdout: bool = False, on_start: Callable[[int], Any] | None = None
) -> Completed:
    """Run argv (no shell) from the current directory, tee its output into `log`, wait for it.

    The wait is wait4 on the command itself, so its end is exact and its rusage covers every
    descendant it reaped. A grandchild left running in the background may hold the output pipe:
    reading stops PIPE_GRACE_S after the command exits, and the result says so.
    """
    log(f"snakesweep: running {json.dumps(argv)}")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    stdout_lines: list[str] = []
    launcher_rss_mb = status_mb(os.getpid(), "VmRSS") or 0.0
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=_env(), preexec_fn=die_with_parent,  # in the child, before exec: dies with the step
        )
    except OSError as err:
        raise CommandFailed(
            f"cannot start {argv[0]!r}: {err.strerror or err} (fix: check the command's first element; "
            "it is run without a shell, from the directory snakemake runs in)"
        ) from None
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, log, tail, stdout_lines if keep_stdout else None), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, log, tail, None), daemon=True),
    ]
    for p in pumps:
        p.start()
    if on_start is not None:
        on_start(proc.pid)
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    deadline = time.monotonic() + PIPE_GRACE_S
    for p in pumps:
        p.join(max(0.0, deadline - time.monotonic()))
    open_pipes = any(p.is_alive() for p in pumps)
    if open_pipes:
        log(f"snakesweep: {command_name(argv)} exited, but a process it started still holds its output; not waiting for it")
    return Completed(
        argv, proc.returncode, stdout_lines, list(tail), wall, ru.ru_utime + ru.ru_stime, open_pipes,
        ru.ru_maxrss / 1024, launcher_rss_mb,
    )


def _check_exit(done: Completed, workload: CommandWorkload, params: dict[str, Any]) -> None:
    name = command_name(done.argv)
    if done.returncode == 0:
        return
    last = "\n".join(done.tail[-15:])
    if done.returncode < 0:
        sig = signal.Signals(-done.returncode).name
        hint = " (often the out-of-memory killer)" if sig == "SIGKILL" else ""
        raise CommandFailed(f"{name} was killed by {sig}{hint} after {done.wall_s:.1f} s; its last output:\n{last}")
    if workload.args == "hydra":
        for line in done.tail:
            m = re.search(r"Could not override '([^']+)'", line)
            if m and m.group(1) in params:
                key = m.group(1)
                extra = " (every trial has a seed: add e.g. `seed: 0` to it)" if key == "seed" else ""
                raise HydraKeyMissing(
                    f"{name}: the Hydra app's config has no key '{key}' for the sweep parameter '{key}' "
                    f"(fix: add {key} to the app's config{extra}, or correct the parameter's name in the "
                    "sweep; snakesweep does not add keys with +, so a misspelt name cannot run silently). "
                    f"Hydra said:\n{last}"
                )
    raise CommandFailed(f"{name} exited with status {done.returncode} after {done.wall_s:.1f} s; its last output:\n{last}")


# --------------------------------------------------------------------------- metrics

_STDOUT_METRIC = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*[:=]\s*(.*?)\s*$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_NON_FINITE = re.compile(r"^[-+]?(nan|inf|infinity)$", re.IGNORECASE)


def parse_stdout_metrics(lines: Iterable[str]) -> dict[str, Any]:
    """`name: value` / `name=value` lines -> metrics; the last value of a name wins."""
    out: dict[str, Any] = {}
    for line in lines:
        m = _STDOUT_METRIC.match(line)
        if not m or not m.group(2):
            continue
        name, text = m.groups()
        if _NUMBER.match(text):
            out[name] = int(text) if re.match(r"^[-+]?\d+$", text) else float(text)
        elif _NON_FINITE.match(text):
            out[name] = float(text)
        else:
            out[name] = text
    return out


def read_metrics(workload: CommandWorkload, done: Completed, out_dir: Path, required: bool) -> dict[str, Any]:
    """The metrics a command that exited 0 left; MetricsMissing when `required` and there are none."""
    name = command_name(done.argv)
    if workload.metrics == "stdout":
        metrics = parse_stdout_metrics(done.stdout_lines)
        if not metrics and required:
            raise MetricsMissing(
                f"{name} exited 0 but printed no metrics on stdout (fix: print lines such as "
                "`accuracy: 0.93` or `accuracy=0.93`, or write a JSON file and set `metrics:` to its name)"
            )
    else:
        path = out_dir / workload.metrics
        if not path.is_file():
            if not required:
                return {}
            raise MetricsMissing(
                f"{name} exited 0 but wrote no {workload.metrics} in {out_dir} (fix: write a JSON object "
                f"of metrics to {{out_dir}}/{workload.metrics}, or set `metrics: stdout`)"
            )
        try:
            metrics = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise MetricsMissing(f"{name} exited 0 but {path} is not valid JSON: {err}") from None
        if not isinstance(metrics, dict):
            raise MetricsMissing(
                f"{name} exited 0 but {path} holds a {type(metrics).__name__}, not a JSON object of metrics"
            )
        try:
            metrics = flatten(metrics)
        except KeyClash as clash:  # keeping one value would drop the other without a word
            raise MetricsMissing(f"{name} wrote {path}, in which {clash}") from None
    bad = [k for k, v in metrics.items() if non_finite(v)]
    if bad:
        raise MetricsMissing(
            f"{name} reported {bad[0]} = {metrics[bad[0]]}: a diverged or broken run is a failed trial "
            "(NaN and infinity have no JSON form)"
        )
    return metrics


# --------------------------------------------------------------------------- the steps


def _clear_metrics(workload: CommandWorkload, out_dir: Path) -> None:
    """A metrics file left by an earlier attempt must not pass for this one's."""
    if workload.metrics != "stdout":
        (out_dir / workload.metrics).unlink(missing_ok=True)


def _run_step(
    workload: CommandWorkload, step: str, params: dict[str, Any], ctx: dict[str, str], out_dir: Path,
    log: Log, required: bool, on_start: Callable[[int], Any] | None = None,
) -> tuple[dict[str, Any], Completed]:
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_metrics(workload, out_dir)
    argv = build_argv(workload, step, params, ctx)
    done = run_command(argv, log=log, keep_stdout=workload.metrics == "stdout", on_start=on_start)
    _check_exit(done, workload, params)
    return read_metrics(workload, done, out_dir, required), done


def run_prepare(workload: CommandWorkload, *, data_dir: Path, log: Log) -> None:
    """The optional `prepare` command, once per sweep (no trial, nothing appended)."""
    if "prepare" not in workload.command:
        return
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    argv = build_argv(workload, "prepare", {}, {"data_dir": str(data_dir)})
    _check_exit(run_command(argv, log=log), workload, {})


def run_train(
    workload: CommandWorkload, params: dict[str, Any], *, out_dir: Path, data_dir: Path, trial: str, device: str, log: Log,
    resume_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the train command; its metrics (required). `resume_dir`: the checkpoint's directory
    this trial continues from ({resume_dir}; elements using it are left out when None)."""
    ctx = step_context(params, trial, Path(out_dir), Path(data_dir), None)
    if resume_dir is not None:
        ctx[RESUME] = str(resume_dir)
    return _run_step(workload, "train", params, ctx, Path(out_dir), log, required=True)[0]


def run_eval(
    workload: CommandWorkload, params: dict[str, Any], *, out_dir: Path, train_dir: Path, data_dir: Path, trial: str,
    device: str, log: Log,
) -> dict[str, Any]:
    """Run the eval command; its metrics (required)."""
    ctx = step_context(params, trial, Path(out_dir), Path(data_dir), Path(train_dir))
    return _run_step(workload, "eval", params, ctx, Path(out_dir), log, required=True)[0]


# --------------------------------------------------------------------------- measuring a command

# Short, because they are columns of summary.csv; the module docstring and config/README.md say more.
WINDOW_NOTE = "spawn to exit of the command's process tree: start-up inside, not a steady-state latency"
# Peak memory: the kernel's high-water marks, never a sampled RSS (which misses a short spike).
# - VmHWM (/proc/<pid>/status) of every process of the tree, read every sample_interval_s and
#   summed over the processes alive at that read; a process's spike before any later read counts.
# - the command's own peak up to its exit: wait4's ru_maxrss. Linux folds into it the peak of the
#   pre-exec copy of this process (a 10 MB command started from a 250 MB process reads 250 MB), so
#   it is used only when above this process's RSS at the spawn (+ CARRY_MARGIN_MB), which bounds
#   that copy; then a command that exits between two reads still has its true peak.
# None (never a measured-looking 0) when neither source gave a figure; peak_mem_method says which.
CARRY_MARGIN_MB = 2.0  # the child's own allocations between fork and exec (PR_SET_PDEATHSIG via ctypes)
PEAK_MEM_SAMPLED = "kernel peak RSS (VmHWM) of the tree's processes, summed over those alive at each read every sample_interval_s"
PEAK_MEM_METHODS = {
    "both": PEAK_MEM_SAMPLED + "; the command's own to its exit from wait4 (ru_maxrss)",
    "exit": "the command's kernel peak RSS to its exit, from wait4 (ru_maxrss); it ended before the first read",
    "sampled": PEAK_MEM_SAMPLED + " (a lower bound: ru_maxrss was not above what the launcher's fork carries)",
    "none": "not measured: the command ended before the first read and its ru_maxrss was not above what the launcher's fork carries",
}


class TreeSampler:
    """Polls /proc for the high-water marks (VmHWM) of a process tree's processes on a thread; the
    peak is the largest sum over the processes alive at one read."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.samples = 0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._loop, args=(pid,), name="tree-rss", daemon=True)
        self._thread.start()

    def _loop(self, pid: int) -> None:
        while True:
            self.sample(pid)
            if self._stop.wait(self.interval_s):
                return

    def sample(self, pid: int) -> None:
        pids = tree_pids(pid)
        marks = [mark for mark in (status_mb(p, "VmHWM") for p in pids) if mark]
        if marks:  # a zombie (exited, not reaped yet) has no VmHWM: a tree of zombies is no sample
            self.samples += 1
            self.max_processes = max(self.max_processes, len(pids))
            self.peak_mb = max(self.peak_mb, sum(marks))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def peak_memory(sampler: TreeSampler, done: Completed) -> tuple[float | None, str]:
    """The command's peak memory (MB, None when not measured) and the peak_mem_method saying how."""
    sampled = sampler.peak_mb if sampler.samples else None
    at_exit = done.maxrss_mb if done.maxrss_mb > done.launcher_rss_mb + CARRY_MARGIN_MB else None
    if sampled is not None and at_exit is not None:
        return max(sampled, at_exit), PEAK_MEM_METHODS["both"]
    if at_exit is not None:
        return at_exit, PEAK_MEM_METHODS["exit"]
    if sampled is not None:
        return sampled, PEAK_MEM_METHODS["sampled"]
    return None, PEAK_MEM_METHODS["none"]


def status_mb(pid: int, field: str) -> float | None:
    """One memory field (VmHWM, VmRSS) of /proc/<pid>/status in MB; None once the process is gone
    or a zombie (its memory is released at exit, so a zombie has no such line)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_pids(root: int) -> list[int]:
    """`root` and its live descendants, from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        out.append(pid)
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
            except (OSError, ValueError):
                continue
    return out


def run_measure(
    workload: CommandWorkload, params: dict[str, Any], *, out_dir: Path, train_dir: Path | None, data_dir: Path,
    trial: str, device: str, settings: MeasureSettings, log: Log,
) -> dict[str, Any]:
    """Measure the measure command as a whole: cooldown, optional temperature wait and idle
    baseline, then one window from spawn to exit with the same meters as run_measurement.

    Returns the measured keys (names shared with run_measurement where the meaning is the same;
    no latency percentiles: the command's process is not a batch loop we can time) followed by
    the command's own metrics, if any (a name clashing with a measured key gets `command.` in front).
    """
    from ..energy import UnavailableMeter, net_energy_j, open_meter, open_nvml_gpu
    from ..generation import command_token_metrics
    from ..measure import settle, throttled, window_flags, window_quality

    is_cuda = device.startswith("cuda")
    gpu, gpu_reason = (None, None)
    if is_cuda:
        gpu, gpu_reason = open_nvml_gpu(int(device.split(":", 1)[1]) if ":" in device else 0)
        if gpu is None:
            log(f"NVML: {gpu_reason}")
    meter = open_meter(device, settings.sample_interval_s, gpu=gpu, gpu_reason=gpu_reason)
    log(f"energy source: {meter.method}" + (f" ({meter.reason})" if isinstance(meter, UnavailableMeter) else ""))
    ctx = step_context(params, trial, Path(out_dir), Path(data_dir), Path(train_dir) if train_dir is not None else None)
    sampler = TreeSampler(settings.sample_interval_s)
    try:
        baseline_power_w = settle(meter, gpu if is_cuda else None, settings, log)
        temp_start = gpu.temperature_c() if gpu else None
        pids_before = gpu.running_pids() if gpu else None
        viol0 = gpu.violation_ns() if gpu else None
        meter.begin()
        try:
            own, done = _run_step(
                workload, "measure", params, ctx, Path(out_dir), log, required=False, on_start=sampler.start
            )
        finally:
            sampler.stop()
        energy = meter.end()
        temp_end = gpu.temperature_c() if gpu else None
        viol1 = gpu.violation_ns() if gpu else None
        pids_after = gpu.running_pids() if gpu else None
        reasons = [gpu.throttle_reasons()] if gpu else []
    finally:
        meter.close()
        if gpu is not None:
            gpu.close()

    window_s = done.wall_s
    peak_mem_mb, peak_mem_method = peak_memory(sampler, done)
    energy_j = energy.energy_j
    energy_net = None
    if energy_j is not None and baseline_power_w is not None:
        energy_net = net_energy_j(energy_j, baseline_power_w, energy.window_s)
    short, zero, details = window_flags(window_s, settings, energy)
    shared: bool | None = None
    thr: bool | None = None
    if gpu is not None:
        seen = [p for p in (pids_before, pids_after) if p is not None]
        if seen:
            # our step process does not use the GPU and the command is not running at either
            # end, so any process listed there is a neighbour
            others = sorted({p for pids in seen for p in pids})
            shared = bool(others)
            if others:
                details.append(f"other processes on the GPU right before or after the window: {others}")
        thr, d = throttled(viol0, viol1, reasons)
        if d:
            details.append(d)
    if done.open_pipes:
        details.append("a process the command started outlived it (not inside the window)")
    measured: dict[str, Any] = {
        "window_s": window_s,
        "window_includes_startup": True,
        "window_note": WINDOW_NOTE,
        "cpu_time_s": done.cpu_s,
        "peak_mem_mb": peak_mem_mb,
        "peak_mem_method": peak_mem_method,
        "max_processes": sampler.max_processes or None,
        "energy_j": energy_j,
        "energy_j_net": energy_net,
        "baseline_power_w": baseline_power_w,
        "energy_source": energy.source,
        "energy_method_detail": energy.detail,
        "sample_interval_s": energy.sample_interval_s,
        "rss_sample_interval_s": settings.sample_interval_s,
        **window_quality(meter, meter.device_name, short, zero, shared, thr, details, temp_start, temp_end),
    }
    # a command that reports its output tokens (`output_tokens: N`) gets tokens/s and J/token
    measured.update(command_token_metrics(own, window_s, energy_j, energy_net))
    for k, v in own.items():
        if k in measured:
            log(f"snakesweep: the command's metric {k!r} is kept as 'command.{k}' ({k} is what the window measured)")
            measured[f"command.{k}"] = v
        else:
            measured[k] = v
    return measured
