"""Runs one step of one trial in a child process and makes sure every failure leaves a record.

Snakemake has no per-job timeout on a workstation, and a child that segfaults, aborts or is
killed by the OOM killer cannot write its own error record: this supervisor does both. It
imports only the standard library so it adds almost nothing to a step's start-up.

    python -m snakesweep.supervise STEP --trial T --plan P --output O --log L [...]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .results import error_record_path, write_error_record

KILL_GRACE_S = 5.0
# which `timeout_s` key bounds each step
TIMEOUT_KEY = {"prepare_data": "train", "measure_aggregate": "measure"}


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m snakesweep.supervise")
    parser.add_argument("step")
    parser.add_argument("--trial", required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_known_args(argv)


def _timeout_for(plan_path: str, step: str) -> float:
    with open(plan_path) as fh:
        timeouts = json.load(fh)["timeout_s"]
    return float(timeouts[TIMEOUT_KEY.get(step, step)])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    except ProcessLookupError:
        pass


def _signal_message(code: int) -> tuple[str, str]:
    sig = signal.Signals(-code)
    hint = {
        signal.SIGKILL: " (killed from outside: often the out-of-memory killer; see `dmesg`)",
        signal.SIGSEGV: " (segmentation fault in native code)",
        signal.SIGABRT: " (aborted)",
    }.get(sig, "")
    return sig.name, f"the step's process died from {sig.name}{hint}"


def supervise(argv: list[str]) -> int:
    args, rest = _parse(argv)
    log = Path(args.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    error_record_path(log).unlink(missing_ok=True)  # a retry starts clean
    record = dict(trial=args.trial, step=args.step)
    timeout = _timeout_for(args.plan, args.step)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-X", "faulthandler", "-m", "snakesweep.steps", args.step,
           "--trial", args.trial, "--plan", args.plan, "--log", args.log, *rest]
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def forward(signum, _frame):  # Ctrl-C, scancel: take the child's whole group down too
            _kill_group(proc)
            sys.exit(128 + signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        start = time.monotonic()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            msg = f"{args.step} ran longer than timeout_s.{TIMEOUT_KEY.get(args.step, args.step)} = {timeout:g} s and was killed"
            print(f"snakesweep: {msg}", file=out, flush=True)
            write_error_record(log, reason="timeout", type_="Timeout", message=msg, **record)
            return 1
    if code == 0:
        return 0
    if error_record_path(log).exists():  # the step recorded its own exception
        return code
    if code < 0:
        name, msg = _signal_message(code)
        write_error_record(log, reason="signal", type_=name, message=msg, **record)
    else:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        write_error_record(
            log, reason="exit", type_="ExitStatus",
            message=f"the step exited with status {code} after {time.monotonic() - start:.1f} s",
            traceback_tail="\n".join(tail), **record,
        )
    return 1


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1:]))
