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
import traceback
from pathlib import Path
from typing import Any, Callable

from .grid import nest
from .plan import load_plan, trial_params
from .results import atomic_write_json, exception_record, result_record, utc_now


def resolve_device(requested: str) -> str:
    if requested == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if requested == "cuda":
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device here (fix: device: auto or cpu)")
    return "cpu"


def prepare_data(plan_path: str | Path, marker: str | Path) -> None:
    from .workloads import load_workload

    plan = load_plan(plan_path)
    workload = load_workload(plan["workload"])
    data_dir = Path(marker).parent
    data_dir.mkdir(parents=True, exist_ok=True)
    started = utc_now()
    if callable(getattr(workload, "prepare", None)):
        workload.prepare(data_dir)
    atomic_write_json(marker, {"workload": plan["workload"], "started_at": started, "ended_at": utc_now()})


def _run_step(
    step: str,
    trial: str,
    plan: dict[str, Any],
    output: str | Path,
    body: Callable[[dict[str, Any], str], dict[str, Any]],
    device: str | None = None,
) -> dict[str, Any]:
    """Time `body(nested params, device)` and write its metrics as the step's result record."""
    params = trial_params(plan, trial)
    device = device or resolve_device(plan["device"])
    started, t0 = utc_now(), time.perf_counter()
    metrics = body(nest(params), device)
    record = result_record(
        trial=trial, step=step, params=params, metrics=metrics, started_at=started, ended_at=utc_now(),
        duration_s=time.perf_counter() - t0, device=device, sweep_hash=plan["sweep_hash"],
    )
    atomic_write_json(output, record)
    return record


def train(trial: str, plan_path: str | Path, data: str | Path, output: str | Path) -> dict[str, Any]:
    from .workloads import load_workload

    plan = load_plan(plan_path)
    workload = load_workload(plan["workload"])
    out_dir = Path(output).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    return _run_step(
        "train", trial, plan, output,
        lambda p, dev: workload.train(p, out_dir, data_dir=Path(data).parent, device=dev),
    )


def evaluate(trial: str, plan_path: str | Path, data: str | Path, train_result: str | Path, output: str | Path):
    from .workloads import load_workload

    plan = load_plan(plan_path)
    workload = load_workload(plan["workload"])
    return _run_step(
        "eval", trial, plan, output,
        lambda p, dev: workload.evaluate(p, Path(train_result).parent, data_dir=Path(data).parent, device=dev),
    )


def measure(
    trial: str, plan_path: str | Path, data: str | Path, train_result: str | Path, output: str | Path,
    cycle: int | None = None,
):
    from .config import MeasureSettings
    from .measure import run_measurement
    from .workloads import load_workload

    plan = load_plan(plan_path)
    workload = load_workload(plan["workload"])
    settings = MeasureSettings.model_validate(plan["measure"])
    # stop timing well before the supervisor's kill: a long window is flagged short, not lost
    budget = 0.8 * plan["timeout_s"]["measure"] - settings.cooldown_s - settings.baseline_s
    max_window_s = max(budget, settings.min_window_s, 1.0)

    def body(p, dev):
        fn, batches, sizes = workload.inference(
            p, Path(train_result).parent, data_dir=Path(data).parent, device=dev, batch_size=settings.batch_size
        )
        metrics = run_measurement(
            fn, batches, sizes, dev, settings, log=lambda m: print(m, flush=True), max_window_s=max_window_s
        )
        return metrics if cycle is None else {**metrics, "cycle": cycle}

    return _run_step("measure", trial, plan, output, body)


def measure_aggregate(trial: str, plan_path: str | Path, cycles: list[str], output: str | Path):
    """Cycles -> measure.json; no workload, no torch: the device is the one the cycles ran on."""
    from .measure import aggregate_cycles
    from .results import read_json

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
        traceback.print_exc()
        exception_record(a.log, a.trial, a.step, exc)
        print(f"snakesweep: {a.step} {a.trial} FAILED: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(f"snakesweep: {a.step} {a.trial} finished {utc_now()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
