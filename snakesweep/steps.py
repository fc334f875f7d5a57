"""The steps a trial goes through, as functions of files; `python -m snakesweep.steps` runs one.

Each step reads its trial's parameters from the plan (data, never a shell string), calls
the workload, and writes one result JSON atomically. An exception becomes an error record
next to the step's log and a non-zero exit, so Snakemake removes the output and retries it
on the next run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
) -> dict[str, Any]:
    """Time `body(params, device)` and write its metrics as the step's result record.

    A trial's own `device` parameter (an efficiency study sweeping cpu vs cuda) wins over the
    sweep's `device:`, so the record names the device the step really used."""
    params = trial_params(plan, trial)
    requested = str(params.get("device", plan["device"]))
    device = device or resolve_device(requested, torch_free=isinstance(plan["workload"], dict))
    started, t0 = utc_now(), time.perf_counter()
    metrics = body(params, device)
    record = result_record(
        trial=trial, step=step, params=params, metrics=metrics, started_at=started, ended_at=utc_now(),
        duration_s=time.perf_counter() - t0, device=device, sweep_hash=plan["sweep_hash"],
    )
    atomic_write_json(output, record)
    return record


def train(trial: str, plan_path: str | Path, data: str | Path, output: str | Path) -> dict[str, Any]:
    plan = load_plan(plan_path)
    data_dir = Path(data).parent
    command = _command(plan)
    if command is not None:
        from .workloads import command as cmd

        out_dir = fresh_step_dir(output)
        body = lambda p, dev: cmd.run_train(  # noqa: E731
            command, p, out_dir=out_dir, data_dir=data_dir, trial=trial, device=dev, log=_log
        )
    else:
        workload = _module(plan, "train")
        out_dir = Path(output).parent
        out_dir.mkdir(parents=True, exist_ok=True)
        body = lambda p, dev: workload.train(nest(p), out_dir, data_dir=data_dir, device=dev)  # noqa: E731
    return _run_step("train", trial, plan, output, body)


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
    """Cycles -> measure.json; no workload, no torch: the device is the one the cycles ran on."""
    from .measure import aggregate_cycles

    records = [read_json(c) for c in cycles]
    return _run_step(
        "measure", trial, load_plan(plan_path), output,
        lambda p, dev: {**aggregate_cycles([r["metrics"] for r in records]), "cycle_files": list(cycles)},
        device=records[0]["device"],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.steps")
    ap.add_argument("step", choices=["prepare_data", "train", "eval", "measure", "measure_aggregate"])
    ap.add_argument("--trial", default="-")
    ap.add_argument("--plan", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--data")
    ap.add_argument("--train")
    ap.add_argument("--cycle", type=int)
    ap.add_argument("--cycles", nargs="*", default=[])
    ap.add_argument("--output", required=True)
    a = ap.parse_args(argv)
    print(f"snakesweep: {a.step} {a.trial} started {utc_now()}", flush=True)
    try:
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
        import traceback

        traceback.print_exc()
        exception_record(a.log, a.trial, a.step, exc)
        print(f"snakesweep: {a.step} {a.trial} FAILED: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(f"snakesweep: {a.step} {a.trial} finished {utc_now()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
