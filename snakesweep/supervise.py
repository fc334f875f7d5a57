"""Runs one step of one trial in a child process and makes sure every failure leaves a record.

Snakemake has no per-job timeout on a workstation, and a child that segfaults, aborts or is
killed by the OOM killer cannot write its own error record: this supervisor does both. It
imports only the standard library, then forks: the child (its own process and session, killed
with the supervisor by PR_SET_PDEATHSIG, its output in the step's log) imports and runs the
step (snakesweep.steps.main) in the interpreter already started, instead of starting a second
one (one interpreter start per job instead of two). The parent watches it exactly as
it watched a separate `python -m snakesweep.steps`: timeout, signals, exit status, orphaning.

    python -m snakesweep.supervise STEP --trial T --plan P --output O --log L [...]
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

# plan, rounds, results, procs and threads import only the standard library: nothing heavy before the fork
from .argv import parse
from .errors import debugging, disk_error_line, is_disk_error, one_line_on_disk_errors
from .plan import load_plan, trial_params
from .procs import become_subreaper, die_with_parent, parent_pid, reap_adopted
from .results import (
    ATTEMPT_ENV,
    BUDGET_REASON,
    RETRY_ON,
    STEPS,
    error_record_path,
    error_records,
    read_json_or_none,
    retried,
    write_error_record,
)
from .threads import job_threads, thread_env, usable_cpus

KILL_GRACE_S = 5.0
# written by the workflow's `onstart` in the logs directory: when this run began, so that the
# error records of this run (retries, the failure budget) are told apart from older ones
RUN_MARKER = ".snakesweep-run.json"
# which `timeout_s` key bounds each step
TIMEOUT_KEY = {"prepare_data": "train", "measure_aggregate": "measure"}
# the steps of a trial that run its workload: they get the trial's threads (snakesweep/threads.py)
TRIAL_STEPS = ("train", "eval", "measure")


def _parse(argv: list[str]) -> tuple[SimpleNamespace, list[str]]:
    # --output is also the step's: passed on to it (see _supervise); the rest is the step's own
    return parse("python -m snakesweep.supervise", argv,
                 {"trial": str, "plan": str, "log": str, "threads": int, "output": str},
                 required=("trial", "plan", "log"), defaults={"threads": 1}, positional="step", keep_unknown=True)


def _timeout_for(plan: dict, step: str) -> float:
    return float(plan["timeout_s"][TIMEOUT_KEY.get(step, step)])


def run_started(logs: Path) -> float | None:
    """The start (epoch seconds) of the Snakemake run this job belongs to; None outside one."""
    try:
        return float(read_json_or_none(logs / RUN_MARKER)["started"])
    except (ValueError, KeyError, TypeError):
        return None


def previous_failure(log: Path, since: float | None) -> dict | None:
    """This step's error record from an earlier attempt in this run (a Snakemake retry)."""
    path = error_record_path(log)
    try:
        if since is None or path.stat().st_mtime < since:
            return None
    except OSError:
        return None
    record = read_json_or_none(path)
    return record if isinstance(record, dict) else None


def attempt_marker_path(log: Path) -> Path:
    """Beside the log while an attempt runs (logs/{step}/{trial}.attempt.json); the supervisor
    removes it however the attempt ends, unless it is killed itself (SIGKILL, a lost node)."""
    return log.with_name(log.name.removesuffix(".log") + ".attempt.json")


def unrecorded_attempt(log: Path, since: float | None) -> tuple[dict | None, bool]:
    """(the attempt an earlier supervisor left running, whether it belongs to this run).

    Snakemake empties the log before each attempt, so an attempt whose supervisor was killed
    would otherwise vanish without a word: the marker is what is left of it."""
    path = attempt_marker_path(log)
    marker = read_json_or_none(path)
    if not isinstance(marker, dict):
        return None, False
    try:
        this_run = since is not None and path.stat().st_mtime >= since
    except OSError:
        return None, False
    return marker, this_run


def _killed_record(marker: dict) -> dict:
    n = int(marker.get("attempt", 1))
    return {
        "attempt": n, "reason": "signal", "type": "Killed",
        "message": f"attempt {n} ended without a record (killed? its supervisor, pid {marker.get('pid')}, "
                   "died without a word: SIGKILL from the out-of-memory killer or kill -9, or a lost node)",
    }


def _describe(record: dict) -> str:
    """An earlier attempt's failure, for the log Snakemake empties before each attempt."""
    tail = record.get("traceback_tail") or ""
    return f"attempt {record.get('attempt', 1)} failed: {record.get('type')}: {record.get('message')}" + (
        f"\n{tail}" if tail else ""
    )


def failed_trials(logs: Path, steps: list[str], since: float) -> set[str]:
    """Trials with an error record written in this run (a skip for the budget is no failure)."""
    return {trial for trial, record in error_records(logs, steps, since=since)
            if record.get("reason") != BUDGET_REASON}


def budget_exceeded(plan: dict, logs: Path, since: float | None) -> str | None:
    """Why no new trial may start (failures.max_failures / max_failure_rate), or None."""
    policy = plan.get("failures") or {}
    max_n, max_rate = policy.get("max_failures"), policy.get("max_failure_rate")
    if since is None or (max_n is None and max_rate is None):
        return None
    n = len(failed_trials(logs, plan.get("steps") or list(STEPS), since))
    planned = len(plan["trials"])
    if max_n is not None and n >= max_n:
        return f"{n} trials failed in this run, failures.max_failures = {max_n}"
    if max_rate is not None and n > max_rate * planned:
        return f"{n} of {planned} planned trials failed in this run, more than failures.max_failure_rate = {max_rate:g}"
    return None


POLL_S = 0.5


def _ancestors(levels: int = 3) -> list[int]:
    chain, pid = [], os.getppid()
    while pid and pid > 1 and len(chain) < levels:
        chain.append(pid)
        pid = parent_pid(pid)
    return chain


def _snakemake_owner() -> int | None:
    """The Snakemake process that runs this job: our parent or its parent (the job's shell
    may sit between). None when we were started some other way: then nothing is watched."""
    for pid in _ancestors():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")[:3]  # `snakemake ...`, `python [-m] snakemake ...`
        except OSError:
            return None
        if any(os.path.basename(a) == b"snakemake" or a.endswith(b"snakemake/__main__.py") for a in argv):
            return pid
    return None


def _owner_alive(owner: int | None) -> bool:
    """False once Snakemake has died: we (or the shell between) were re-parented, so it is no
    longer among our ancestors."""
    return owner is None or owner in _ancestors()


def _run_child(step_argv: list[str], log_fd: int, env: dict[str, str], parent: int) -> None:
    """The forked child: becomes what `python -X faulthandler -m snakesweep.steps STEP ...`
    was (own session, output to the log, the thread/attempt variables, faulthandler on,
    sys.path[0] = the working directory as with -m), runs the step, and exits. Never returns."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the supervisor's handlers are not the step's
        signal.signal(signal.SIGINT, signal.default_int_handler)
        die_with_parent(parent)  # a killed supervisor (kill -9 of the whole run) takes the step along
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.environ.update(env)
        import faulthandler

        faulthandler.enable()
        sys.path[0] = os.getcwd()
        from snakesweep import steps

        sys.argv = [steps.__file__, *step_argv]
        code = steps.main(step_argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the child leaves through os._exit
        try:
            if is_disk_error(exc) and not debugging():  # the log itself may be what no longer fits
                print(disk_error_line(exc, None), flush=True)
            else:
                import traceback

                traceback.print_exc()
        except OSError:
            pass  # nowhere left to say it: the supervisor's record and Snakemake's error do
        code = 1
    finally:
        try:
            import atexit

            atexit._run_exitfuncs()  # the workload's atexit handlers run as in a normal exit
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _start(step_argv: list[str], out, env: dict[str, str]) -> int:
    """Fork the step's process (see _run_child); the parent gets its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    out.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        _run_child(step_argv, out.fileno(), env, parent)
    return pid


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: poll instead
        return None


def _wait(pid: int, fd: int | None, timeout: float) -> int | None:
    """The child's exit status (negative: killed by that signal) or None after `timeout` s."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if fd is not None:
            select.select([fd], [], [], left)  # readable once the child has exited
        else:
            time.sleep(min(delay, left))
            delay = min(2 * delay, 0.05)


def _kill_group(pid: int, fd: int | None = None) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        if _wait(pid, fd, KILL_GRACE_S) is None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _signal_message(code: int) -> tuple[str, str]:
    sig = signal.Signals(-code)
    hint = {
        signal.SIGKILL: " (killed from outside: often the out-of-memory killer; see `dmesg`)",
        signal.SIGSEGV: " (segmentation fault in native code)",
        signal.SIGABRT: " (aborted)",
    }.get(sig, "")
    return sig.name, f"the step's process died from {sig.name}{hint}"


def _interrupted(signum, _frame):  # Ctrl-C or SIGTERM before the step's process exists
    sys.exit(128 + signum)


def supervise(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    args, rest = _parse(argv)
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    marker = attempt_marker_path(log)
    try:
        # a full or read-only sweep directory (its marker, log or records): one line, status 1
        return one_line_on_disk_errors(lambda: _supervise(args, rest, log, marker), log.parent.parent.parent)
    finally:
        marker.unlink(missing_ok=True)  # this attempt ended here: a record or the result says how


def _supervise(args: SimpleNamespace, rest: list[str], log: Path, marker: Path) -> int:
    logs = log.parent.parent
    record = dict(trial=args.trial, step=args.step)
    plan = load_plan(args.plan)
    since = run_started(logs)
    before = previous_failure(log, since)
    killed, this_run = unrecorded_attempt(log, since)
    if killed is not None and before is None:
        if this_run:  # a Snakemake retry of an attempt whose supervisor was killed: record it now
            before = _killed_record(killed)
            write_error_record(log, reason=before["reason"], type_=before["type"], message=before["message"],
                               attempt=before["attempt"], **record)
        else:
            with open(log, "a") as out:
                print(f"snakesweep: the last attempt, in an earlier run, ended without a record (killed with "
                      f"its run? its supervisor was pid {killed.get('pid')}); this is this run's first attempt", file=out)
    attempt = int(before.get("attempt", 1)) + 1 if before else 1
    retry_on = (plan.get("failures") or {}).get("retry_on", list(RETRY_ON))
    if before and not retried(before.get("reason"), retry_on):
        # Snakemake retries whatever failed; an exception in the user's code fails again
        with open(log, "a") as out:  # Snakemake emptied the log for this attempt: say what failed
            print(f"snakesweep: attempt {attempt} not started: the last attempt failed with reason "
                  f"'{before.get('reason')}', which failures.retry_on {retry_on} does not retry\n"
                  f"{_describe(before)}", file=out)
        return 1
    first_step = (plan.get("steps") or ["train"])[0]
    if args.step == first_step:  # only trials that have not started yet are held back
        why = budget_exceeded(plan, logs, since)
        if why:
            msg = f"not started: the failure budget is spent ({why}); fix the failures and re-run to continue"
            with open(log, "a") as out:
                print(f"snakesweep: {msg}", file=out)
            write_error_record(log, reason="budget", type_="FailureBudget", message=msg, attempt=attempt, **record)
            return 1
    error_record_path(log).unlink(missing_ok=True)  # a retry starts clean
    timeout = _timeout_for(plan, args.step) * attempt
    os.environ[ATTEMPT_ENV] = str(attempt)  # for the records this process writes
    threads, why = _threads(plan, args)
    if why:
        msg = f"{args.step} not started: {why}"
        with open(log, "a") as out:
            print(f"snakesweep: {msg}", file=out)
        write_error_record(log, reason="threads", type_="ThreadsUnavailable", message=msg, **record)
        return 1
    env = {**thread_env(threads), ATTEMPT_ENV: str(attempt)}
    step_argv = [args.step, "--trial", args.trial, "--plan", args.plan, "--log", args.log, *rest]
    if args.output is not None:
        step_argv += ["--output", args.output]
    if attempt > 1:
        with open(log, "a") as out:
            print(f"snakesweep: attempt {attempt} (the last one failed: {before.get('reason')}); "
                  f"timeout {timeout:g} s\n{_describe(before)}", file=out)
    from .results import atomic_write_json

    # not fsynced: an advisory marker (what a host crash leaves is a re-run of the step anyway)
    atomic_write_json(marker, {"attempt": attempt, "pid": os.getpid(), "started": time.time(), "threads": threads},
                      fsync=False)
    # every descendant, however it detached (its own session, a double fork), is re-parented
    # to this process when its parent dies: killed and reaped when the step ends (_leftovers)
    become_subreaper()
    with open(log, "a") as out:
        pid = _start(step_argv, out, env)
        fd = _pidfd(pid)

        def forward(signum, _frame):  # Ctrl-C, scancel: take the child's whole group down too
            _kill_group(pid, fd)
            _leftovers(out, args.step, grace_s=1.0)
            sys.exit(128 + signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        start = time.monotonic()
        owner = _snakemake_owner()
        while True:
            left = timeout - (time.monotonic() - start)
            code = _wait(pid, fd, max(0.0, min(POLL_S, left)))
            if code is not None:
                break
            if left <= POLL_S:
                _kill_group(pid, fd)
                killed = _leftovers(out, args.step)
                key = TIMEOUT_KEY.get(args.step, args.step)
                msg = f"{args.step} ran longer than {timeout:g} s (timeout_s.{key} x attempt {attempt}) and was killed"
                if killed:
                    msg += f", with {len(killed)} detached process(es) it had started"
                print(f"snakesweep: {msg}", file=out, flush=True)
                write_error_record(log, reason="timeout", type_="Timeout", message=msg, **record)
                return 1
            if not _owner_alive(owner):
                # Snakemake was killed (kill -9, lost node): stop, so that a re-run's job for
                # this step never runs beside this one (a second measurement would be contaminated)
                _kill_group(pid, fd)
                _leftovers(out, args.step)
                msg = f"the Snakemake process that started {args.step} died; the step was stopped"
                print(f"snakesweep: {msg}", file=out, flush=True)
                write_error_record(log, reason="orphaned", type_="Orphaned", message=msg, **record)
                return 1
        killed = _leftovers(out, args.step)
    if code == 0:
        if killed and args.output:
            _note_leftovers(Path(args.output), killed)
        return 0
    if error_record_path(log).exists():  # the step recorded its own exception
        return code
    if code < 0:
        name, msg = _signal_message(code)
        write_error_record(log, reason="signal", type_=name, message=msg, **record)
    else:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        msg = f"the step exited with status {code} after {time.monotonic() - start:.1f} s"
        write_error_record(log, reason="exit", type_="ExitStatus", message=msg, traceback_tail="\n".join(tail), **record)
    with open(log, "a") as out:  # the step could not say it: its log would end at "...started"
        print(f"snakesweep: {args.step} {args.trial} attempt {attempt} FAILED: {msg}", file=out)
    return 1


LEFTOVER_NOTE = ("processes the step started were still running when it ended (detached: their own session "
                 "or a double fork); the supervisor killed them, so nothing of a trial outlives its step")


def _leftovers(out, step: str, grace_s: float = KILL_GRACE_S) -> list[str]:
    """Kill and reap what the step left running (re-parented to this subreaper); say so in the log."""
    killed = reap_adopted(grace_s=grace_s)
    if killed:
        shown = "; ".join(killed[:5]) + (f"; and {len(killed) - 5} more" if len(killed) > 5 else "")
        print(f"snakesweep: {step} left {len(killed)} process(es) running, killed: {shown}", file=out, flush=True)
    return killed


def _note_leftovers(output: Path, killed: list[str]) -> None:
    """A successful step's result says how many processes it left behind (`leftover_processes`)."""
    from .results import atomic_write_json

    result = read_json_or_none(output)
    if isinstance(result, dict):
        result["leftover_processes"] = {"count": len(killed), "killed": killed[:20], "note": LEFTOVER_NOTE}
        atomic_write_json(output, result)


def _threads(plan: dict, args: SimpleNamespace) -> tuple[int, str | None]:
    """The step's threads (the trial's `threads` parameter, else the job's), checked against what
    the job may use (snakesweep/threads.py); steps without a trial's workload get the job's."""
    if args.step not in TRIAL_STEPS:
        return args.threads, None
    try:
        requested = trial_params(plan, args.trial).get("threads")
    except KeyError:  # not in the plan: the step says so itself
        requested = None
    if isinstance(requested, bool) or not isinstance(requested, int):
        requested = None  # the parse-time check refuses such a value; never here
    return job_threads(requested, args.threads, usable_cpus())


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1:]))
