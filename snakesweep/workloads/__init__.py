"""Workloads: what a trial trains, evaluates and measures.

A module workload is a Python module (built-in, or a user's .py file) with the functions of
the steps the sweep selects (`sweep.steps`):

    prepare(data_dir: Path) -> None                                  # optional, once per run
    train(params, out_dir, *, data_dir, device) -> dict              # step train: metrics; checkpoint in out_dir
    train(params, out_dir, *, data_dir, device, resume_dir=None)     # ... or this: halving/hyperband/pbt hand a
                                                                     # promoted trial its previous rung's out_dir
                                                                     # (read-only); params carry the new TOTAL
                                                                     # budget; None at a fresh start
    evaluate(params, train_dir, *, data_dir, device) -> dict         # step eval: metrics
    inference(params, train_dir, *, data_dir, device, batch_size)
        -> (fn, batches, samples_per_batch)                          # step measure: fn(batch) runs one batch
                                                                     # (train_dir is None without a train step)
    generation(params, train_dir, *, data_dir, device, batch_size)
        -> snakesweep.generation.GenerationTask                      # optional: a generating model; the measure
                                                                     # step then reports TTFT, ITL, tokens/s
    METRICS = {"train": [...], "eval": [...], "measure": [...]}      # optional: lets a bad objective fail at parse time

`params` is the trial's parameters as nested dicts (dotted keys expanded), `seed` included.
A `threads` parameter (any workload) is the trial's CPU threads: the job's Snakemake threads and
the OMP/MKL/OpenBLAS/torch thread counts of its steps' processes (snakesweep/threads.py).
A command workload (`sweep.workload: {command: ...}`) runs the user's own scripts instead:
snakesweep/workloads/command.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

from ..errors import ConfigError
from ..results import STEPS

if TYPE_CHECKING:
    from ..config import CommandWorkload

BUILTIN = {
    "digits_mlp": "snakesweep.workloads.digits_mlp",
    "inference_model": "snakesweep.workloads.inference_model",
    "causal_lm": "snakesweep.workloads.causal_lm",  # needs the llm extra (transformers) to run
}
# the numeric metrics snakesweep.measure.run_measurement reports for every module workload
MEASURED_METRICS = [
    "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "throughput_sps", "peak_mem_mb",
    "energy_j_per_sample", "energy_j_per_sample_net", "energy_j", "window_s",
]
# the function each step calls in a module workload
STEP_FUNCTION = {"train": "train", "eval": "evaluate", "measure": "inference"}


class WorkloadRef(NamedTuple):  # not a dataclass: `dataclasses` imports inspect (~10 ms per step)
    spec: str | dict  # built-in name, the file path as the user wrote it, or a command workload's dict
    key: str  # directory-safe name for its prepared data
    path: Path | None  # the file, for user module workloads
    command: CommandWorkload | None = None

    @property
    def kind(self) -> str:
        return "command" if self.command else "builtin" if self.spec in BUILTIN else "module"


def resolve_workload(spec: str | dict | CommandWorkload, source: str = "config") -> WorkloadRef:
    if not isinstance(spec, str):  # a command workload (pydantic only here, at parse time)
        from ..config import CommandWorkload

        if isinstance(spec, dict):  # as the plan stores it
            spec = CommandWorkload.model_validate(spec)
        dumped = spec.model_dump(mode="json")
        import hashlib  # parse time only (the step processes import this module too)

        digest = hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:8]
        return WorkloadRef(dumped, f"command-{digest}", None, spec)
    if spec in BUILTIN:
        return WorkloadRef(spec, spec, None)
    path = Path(spec)
    if path.suffix == ".py" and path.is_file():
        import hashlib

        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        return WorkloadRef(spec, f"{path.stem}-{digest}", path)
    raise ConfigError(
        f"{source}: 'sweep.workload' is {spec!r}, which is neither a built-in workload "
        f"({', '.join(BUILTIN)}) nor an existing .py file (fix: use a built-in name, or a path "
        "relative to the directory you run snakemake in)"
    )


def load_workload(spec: str, steps: tuple[str, ...] | list[str] = STEPS) -> ModuleType:
    """Import a module workload and check it defines what the selected steps call."""
    if spec in BUILTIN:
        module = importlib.import_module(BUILTIN[spec])
    else:
        path = Path(spec)
        if path.suffix != ".py" or not path.is_file():
            resolve_workload(spec)  # raises the config error that names the fix
        # the module's name needs no digest (one user module per step process): no hashlib here
        name = "snakesweep_user_workload_" + "".join(c if c.isalnum() else "_" for c in path.stem)
        mod_spec = importlib.util.spec_from_file_location(name, path)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    missing = [STEP_FUNCTION[s] for s in steps if not callable(getattr(module, STEP_FUNCTION[s], None))]
    if missing:
        raise TypeError(
            f"workload {spec!r} does not define {', '.join(missing)}, which sweep.steps {list(steps)} call "
            "(see snakesweep/workloads/__init__.py)"
        )
    return module


def builtin_metrics(spec: str | dict, steps: list[str]) -> list[str] | None:
    """The metrics a built-in produces in the selected steps; None where only a run can tell."""
    if not isinstance(spec, str) or spec not in BUILTIN:
        return None
    declared = getattr(importlib.import_module(BUILTIN[spec]), "METRICS", None)
    if declared is None:
        return None
    return [m for step in steps for m in declared.get(step, [])]


def validate_builtin_params(spec: str | dict, params: dict, source: str = "config") -> None:
    """Built-ins check parameter names before any job starts; user workloads check their own.
    `threads` means the same for every workload (snakesweep/threads.py) and is checked for all
    (a built-in's own check, naming the built-in, comes first)."""
    from ..threads import PARAM, check_threads

    if isinstance(spec, str) and spec in BUILTIN:
        module = importlib.import_module(BUILTIN[spec])
        error = module.check_params(params)
        if error:
            raise ConfigError(f"{source}: {error}")
    if PARAM in params:
        error = check_threads(params[PARAM])
        if error:
            raise ConfigError(f"{source}: {error}")


def code_digest(spec: str | dict, step: str = "train") -> str | None:
    """A digest of the files a step runs (a module workload's file, a built-in's module, a
    command's sources and literal .py argv elements): a train record keeps it, and a trial
    continues only from a checkpoint trained by the same code (snakesweep/steps.py). None when
    no file is known (a command with no sources)."""
    import hashlib  # lazy: only train steps digest

    if isinstance(spec, dict):
        from types import SimpleNamespace

        from .command import source_files

        sources = spec.get("sources") or []

        def step_sources(s: str) -> list[str]:
            return list(sources.get(s, [])) if isinstance(sources, dict) else list(sources)

        files = source_files(SimpleNamespace(command=spec["command"], step_sources=step_sources), step)  # type: ignore[arg-type]
    elif spec in BUILTIN:
        import importlib.util

        found = importlib.util.find_spec(BUILTIN[spec])
        files = [found.origin] if found and found.origin else []
    else:
        files = [spec]
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        try:
            data = Path(f).read_bytes()
        except OSError:
            data = b"<missing>"
        h.update(f"{Path(f).name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]
