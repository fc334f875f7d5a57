"""The steps a trial goes through, as functions of files; `python -m snakesweep.steps` runs one.

Each step reads its trial's parameters from the plan (data, never a shell string), calls
the workload, and writes one result JSON atomically. An exception becomes an error record
next to the step's log and a non-zero exit, so Snakemake removes the output and retries it
on the next run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .argv import parse
from .errors import DEBUG_ENV, debugging, disk_error_line, is_disk_error
from .params import nest
from .plan import load_plan, trial_params
from .results import atomic_write_json, exception_record, read_json, result_record, utc_now

# lazy: keeps step processes light. Every import below the module level is of what one step
# alone runs (a command workload, the module loader, measurement, torch, shutil), so a step
# process pays only for its own.


def resolve_device(requested: str, *, torch_free: bool = False) -> str:
    """`auto` -> cuda when a GPU is usable, else cpu. A command workload runs its own
    interpreter, so its step asks NVML instead of paying ~1.7 s for `import torch`."""
    if requested == "cpu":
        return "cpu"
    if torch_free:
        return "cuda" if requested == "cuda" or _nvml_gpus() > 0 else "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device here (fix: device: auto or cpu)")
    return "cpu"


def _nvml_gpus() -> int:
    """GPUs this process may use, by NVML (0 without a driver, or with CUDA_VISIBLE_DEVICES empty)."""
    import os

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return 0
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no library, no driver: no usable GPU
        return 0


def step_dir(result: str | Path) -> Path:
    """A command workload's step writes into its own directory beside its result JSON:
    results/trials/{trial}/train.json -> results/trials/{trial}/train/ ({out_dir}, {train_dir})."""
    result = Path(result)
    return result.with_name(result.name.removesuffix(".json"))


def fresh_step_dir(result: str | Path) -> Path:
    """An empty directory for a command's step: a file left by an earlier, failed attempt
    (an old metrics.json) must never pass for this attempt's output."""
    import shutil

    out_dir = step_dir(result)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    return out_dir


def _command(plan: dict[str, Any]):
    """The command workload of the plan, or None for a module workload. The plan holds it
    validated and complete (model_dump), so a step reads its fields without pydantic."""
    from types import SimpleNamespace

    spec = plan["workload"]
    return SimpleNamespace(**spec) if isinstance(spec, dict) else None


def _module(plan: dict[str, Any], step: str):
    from .workloads import load_workload

    return load_workload(plan["workload"], [step])


def prepare_data(plan_path: str | Path, marker: str | Path) -> None:
    plan = load_plan(plan_path)
    data_dir = Path(marker).parent
    data_dir.mkdir(parents=True, exist_ok=True)
    started = utc_now()
    command = _command(plan)
    if command is not None:
        if "prepare" in command.command:
            from .workloads import command as cmd

            cmd.run_prepare(command, data_dir=data_dir, log=_log)
    else:
        from .workloads import load_workload

        workload = load_workload(plan["workload"], [])
        if callable(getattr(workload, "prepare", None)):
            workload.prepare(data_dir)
    atomic_write_json(marker, {"workload": plan["workload"], "started_at": started, "ended_at": utc_now()})


def _log(message: str) -> None:
    print(message, flush=True)


def _run_step(
    step: str,
    trial: str,
    plan: dict[str, Any],
    output: str | Path,
    body: Callable[[dict[str, Any], str], dict[str, Any]],
    device: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time `body(params, device)` and write its metrics as the step's result record.

    A trial's own `device` parameter (an efficiency study sweeping cpu vs cuda) wins over the
    sweep's `device:`, so the record names the device the step really used."""
    params = trial_params(plan, trial)
    requested = str(params.get("device", plan["device"]))
    device = device or resolve_device(requested, torch_free=isinstance(plan["workload"], dict))
    from .threads import apply_torch_threads

    apply_torch_threads()  # the trial's threads (snakesweep/threads.py), if the workload imported torch
    started, t0 = utc_now(), time.perf_counter()
    metrics = body(params, device)
    record = result_record(
        trial=trial, step=step, params=params, metrics=metrics, started_at=started, ended_at=utc_now(),
        duration_s=time.perf_counter() - t0, device=device, sweep_hash=plan["sweep_hash"],
    )
    record.update(extra or {})
    atomic_write_json(output, record)
    return record


def _accepts_resume(fn: Any) -> bool:
    """Whether a module workload's train takes `resume_dir` (or **kwargs); read from its code
    object, not with `inspect` (~10 ms per step process)."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return False
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return "resume_dir" in names or bool(code.co_flags & 0x08)  # CO_VARKEYWORDS


def continuation(plan: dict[str, Any], trial: str, output: str | Path, *, command: bool) -> tuple[Path | None, dict[str, Any]]:
    """(resume_dir, what the train record says about it) for a trial of a search that continues
    from checkpoints (halving, hyperband, pbt: the plan's round entry names `resume_from`).

    resume_dir is the parent trial's train directory (a module workload's `trials/{parent}/`, a
    command's `trials/{parent}/train/`), read-only to the workload. The record keeps this
    trial's `code_digest` and `resumed_from: {trial, budget, code_digest}`. A parent trained by
    other code (another digest) is no valid checkpoint: the trial trains from scratch instead, and
    its record says why (`resume_refused`); a resumed result is never built on a stale checkpoint."""
    entry = next((t for t in plan["trials"] if t["trial"] == trial), {})
    if "resume_from" not in entry:  # no continuing search: the record and the step's cost as before
        return None, {}
    from .workloads import code_digest  # lazy: hashes the workload's files, only where a chain needs it

    digest = code_digest(plan["workload"], "train")
    info: dict[str, Any] = {"code_digest": digest, "resumed_from": None}
    parent = entry.get("resume_from")
    if not parent:
        return None, info
    from .results import load_result

    trials_dir = Path(output).parent.parent
    record, problem = load_result(trials_dir / parent / "train.json", parent, "train")
    if record is None:
        info["resume_refused"] = f"the parent trial's train result is unusable ({problem})"
    elif record.get("code_digest") != digest:
        info["resume_refused"] = (f"the parent trial {parent} was trained by other workload code "
                                  f"(code digest {record.get('code_digest')}, now {digest})")
    if "resume_refused" in info:
        _log(f"snakesweep: not continuing from {parent}: {info['resume_refused']}; training from scratch")
        return None, info
    assert record is not None
    param = ((plan.get("search") or {}).get("budget_param"))
    info["resumed_from"] = {"trial": parent, "budget": record["params"].get(param) if param else None,
                            "code_digest": record.get("code_digest")}
    return trials_dir / parent / ("train" if command else ""), info


def train(trial: str, plan_path: str | Path, data: str | Path, output: str | Path) -> dict[str, Any]:
    plan = load_plan(plan_path)
    data_dir = Path(data).parent
    command = _command(plan)
    resume_dir, extra = continuation(plan, trial, output, command=command is not None)
    if command is not None:
        from .workloads import command as cmd

        out_dir = fresh_step_dir(output)
        body = lambda p, dev: cmd.run_train(  # noqa: E731
            command, p, out_dir=out_dir, data_dir=data_dir, trial=trial, device=dev, log=_log, resume_dir=resume_dir
        )
    else:
        workload = _module(plan, "train")
        out_dir = Path(output).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        if _accepts_resume(workload.train):
            body = lambda p, dev: workload.train(  # noqa: E731
                nest(p), out_dir, data_dir=data_dir, device=dev, resume_dir=resume_dir
            )
        else:  # a train without resume_dir keeps today's behaviour: every rung from scratch
            if extra.get("resumed_from"):
                extra["resumed_from"] = None
                extra["resume_refused"] = "the workload's train takes no resume_dir"
            body = lambda p, dev: workload.train(nest(p), out_dir, data_dir=data_dir, device=dev)  # noqa: E731
    if extra.get("resumed_from"):
        _log(f"snakesweep: continuing from {resume_dir} (trial {extra['resumed_from']['trial']}, "
             f"budget {extra['resumed_from']['budget']})")
    return _run_step("train", trial, plan, output, body, extra=extra)


def evaluate(trial: str, plan_path: str | Path, data: str | Path, train_result: str | Path, output: str | Path):
    plan = load_plan(plan_path)
    data_dir = Path(data).parent
    command = _command(plan)
    if command is not None:
        from .workloads import command as cmd

        out_dir = fresh_step_dir(output)
        body = lambda p, dev: cmd.run_eval(  # noqa: E731
            command, p, out_dir=out_dir, train_dir=step_dir(train_result), data_dir=data_dir,
            trial=trial, device=dev, log=_log,
        )
    else:
        workload = _module(plan, "eval")
        body = lambda p, dev: workload.evaluate(  # noqa: E731
            nest(p), Path(train_result).parent, data_dir=data_dir, device=dev
        )
    return _run_step("eval", trial, plan, output, body)


def measure(
    trial: str, plan_path: str | Path, data: str | Path, train_result: str | Path | None, output: str | Path,
    cycle: int | None = None,
):
    """One measurement (or one cycle of it), holding the host's measurement lock throughout."""
    from types import SimpleNamespace

    from .measure_lock import measurement_lock

    plan = load_plan(plan_path)
    data_dir = Path(data).parent
    settings = SimpleNamespace(**plan["measure"])  # validated and complete in the plan
    command = _command(plan)
    if command is not None:
        from .workloads import command as cmd

        out_dir = fresh_step_dir(output)

        def measured(p, dev):
            return cmd.run_measure(
                command, p, out_dir=out_dir, train_dir=step_dir(train_result) if train_result else None,
                data_dir=data_dir, trial=trial, device=dev, settings=settings, log=_log,
            )
    else:
        from .measure import run_measurement

        workload = _module(plan, "measure")
        # stop timing well before the supervisor's kill: a long window is flagged short, not lost
        budget = 0.8 * plan["timeout_s"]["measure"] - settings.cooldown_s - settings.baseline_s
        max_window_s = max(budget, settings.min_window_s, 1.0)
        train_dir = Path(train_result).parent if train_result else None

        def measured(p, dev):
            if callable(getattr(workload, "generation", None)):  # a generating model: per-token metrics
                from .generation import run_generation

                task = workload.generation(
                    nest(p), train_dir, data_dir=data_dir, device=dev, batch_size=settings.batch_size
                )
                return run_generation(task, dev, settings, log=_log, max_window_s=max_window_s)
            fn, batches, sizes = workload.inference(
                nest(p), train_dir, data_dir=data_dir, device=dev, batch_size=settings.batch_size
            )
            metrics = run_measurement(fn, batches, sizes, dev, settings, log=_log, max_window_s=max_window_s)
            # facts the workload knows exactly (param_count, FLOPs), never measured numbers
            return {**getattr(fn, "facts", {}), **metrics}

    def body(p, dev):
        with measurement_lock(log=_log) as waited_s:
            held_from = utc_now()
            metrics = measured(p, dev)
            held_to = utc_now()
        # when this step had the host to itself (cooldown, baseline and window are inside)
        metrics.update(measure_lock_wait_s=round(waited_s, 3), measure_lock_from=held_from, measure_lock_to=held_to)
        return metrics if cycle is None else {**metrics, "cycle": cycle}

    return _run_step("measure", trial, plan, output, body)


def measure_aggregate(trial: str, plan_path: str | Path, cycles: list[str], output: str | Path):
    """Cycles -> measure.json; no workload, no torch: the device is the one the cycles ran on, and
    the library versions are the cycles' (this process never imports torch, the cycles did)."""
    from .measure import aggregate_cycles

    records = [read_json(c) for c in cycles]
    plan = load_plan(plan_path)
    started, t0 = utc_now(), time.perf_counter()
    metrics = {**aggregate_cycles([r["metrics"] for r in records]), "cycle_files": list(cycles)}
    record = result_record(
        trial=trial, step="measure", params=trial_params(plan, trial), metrics=metrics, started_at=started,
        ended_at=utc_now(), duration_s=time.perf_counter() - t0, device=records[0]["device"],
        sweep_hash=plan["sweep_hash"],
    )
    seen = [r.get("versions") or {} for r in records]
    for name in dict.fromkeys(k for v in seen for k in v):
        found = list(dict.fromkeys(v.get(name) for v in seen if v.get(name) is not None))
        # the version the cycles measured with; several (an upgrade between cycles) are all named
        record["versions"][name] = found[0] if len(found) == 1 else " | ".join(found) if found else None
    atomic_write_json(output, record)
    return record


_PACKAGE = Path(__file__).resolve().parent
# the built-in workloads are the user's side of a traceback, like a user's own module
_WORKLOAD_FILES = {"digits_mlp.py", "causal_lm.py", "inference_model.py"}


def _ours(filename: str) -> bool:
    """A frame of snakesweep's machinery (or of the import system loading the user's module)."""
    if filename.startswith("<frozen ") or "/importlib/" in filename:
        return True
    path = Path(filename).resolve()
    if _PACKAGE not in path.parents:
        return False
    return not (path.parent.name == "workloads" and path.name in _WORKLOAD_FILES)


def user_traceback(exc: BaseException):
    """The traceback of `exc` from the first frame of the user's code on (None: no such frame)."""
    tb = exc.__traceback__
    while tb is not None and _ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


def report_failure(exc: BaseException) -> str:
    """Print what a user needs of a step's exception into the log; the one-line message returned.

    A command workload's own output (its traceback, in its stderr) is already in the log above:
    nothing more is printed. A module workload's traceback starts at its own frames. Frames of
    snakesweep (steps.py, the loaders, command.py) appear only with SNAKESWEEP_DEBUG=1."""
    import traceback

    message = str(exc)
    command = sys.modules.get("snakesweep.workloads.command")
    if debugging():  # SNAKESWEEP_DEBUG=1: snakesweep's own frames too
        traceback.print_exc()
        return message
    if command is not None and isinstance(exc, command.CommandError):
        # the last output is in the log just above: the headline alone, once
        first = message.split("\n", 1)[0]
        if "\n" in message:
            first = first.removesuffix(";").removesuffix("; its last output:").removesuffix(" Hydra said:")
            first += " (its output is above)"
        return first
    tb = user_traceback(exc)
    if tb is not None:
        traceback.print_exception(type(exc), exc, tb)
    elif isinstance(exc, SyntaxError):
        print("".join(traceback.format_exception_only(type(exc), exc)), end="", flush=True)
    sys.stderr.flush()
    return message + f" ({DEBUG_ENV}=1 shows snakesweep's own frames)"


def main(argv: list[str] | None = None) -> int:
    a, _ = parse("python -m snakesweep.steps", sys.argv[1:] if argv is None else argv,
                 {"trial": str, "plan": str, "log": str, "data": str, "train": str, "cycle": int, "cycles": "list",
                  "output": str},
                 required=("plan", "log", "output"), defaults={"trial": "-", "cycles": []}, positional="step",
                 choices=("prepare_data", "train", "eval", "measure", "measure_aggregate"))
    try:
        print(f"snakesweep: {a.step} {a.trial} started {utc_now()}", flush=True)  # the log may be on a full disk
        if a.step == "prepare_data":
            prepare_data(a.plan, a.output)
        elif a.step == "train":
            train(a.trial, a.plan, a.data, a.output)
        elif a.step == "eval":
            evaluate(a.trial, a.plan, a.data, a.train, a.output)
        elif a.step == "measure":
            measure(a.trial, a.plan, a.data, a.train, a.output, a.cycle)
        else:
            measure_aggregate(a.trial, a.plan, a.cycles, a.output)
    except Exception as exc:
        # the sweep's disk refused a write (full, read-only): the path and the fix, not a traceback
        disk = is_disk_error(exc) and not debugging()
        headline = disk_error_line(exc, Path(a.output).parent).removeprefix("snakesweep: ") if disk else (
            f"{type(exc).__name__}: {report_failure(exc)}")
        try:
            exception_record(a.log, a.trial, a.step, exc)
        except OSError as err:  # no record either: the supervisor says so in one line
            if not is_disk_error(err):
                raise
        print(f"snakesweep: {a.step} {a.trial} FAILED: {headline}", flush=True)
        return 1
    print(f"snakesweep: {a.step} {a.trial} finished {utc_now()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
