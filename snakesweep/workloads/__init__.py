"""Workloads: what a trial trains, evaluates and measures.

A workload is a Python module (built-in, or a user's .py file) with:

    prepare(data_dir: Path) -> None                                  # optional, once per run
    train(params, out_dir, *, data_dir, device) -> dict              # metrics; saves a checkpoint in out_dir
    evaluate(params, train_dir, *, data_dir, device) -> dict         # metrics
    inference(params, train_dir, *, data_dir, device, batch_size)
        -> (fn, batches, samples_per_batch)                          # fn(batch) runs one inference batch

`params` is the trial's parameters as nested dicts (dotted keys expanded), `seed` included.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..config import ConfigError

BUILTIN = {"digits_mlp": "snakesweep.workloads.digits_mlp"}
REQUIRED = ("train", "evaluate", "inference")


@dataclass(frozen=True)
class WorkloadRef:
    spec: str  # built-in name, or the file path as the user wrote it
    key: str  # directory-safe name for its prepared data
    path: Path | None  # the file, for user workloads


def resolve_workload(spec: str, source: str = "config") -> WorkloadRef:
    if spec in BUILTIN:
        return WorkloadRef(spec, spec, None)
    path = Path(spec)
    if path.suffix == ".py" and path.is_file():
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        return WorkloadRef(spec, f"{path.stem}-{digest}", path)
    raise ConfigError(
        f"{source}: 'sweep.workload' is {spec!r}, which is neither a built-in workload "
        f"({', '.join(BUILTIN)}) nor an existing .py file (fix: use a built-in name, or a path "
        "relative to the directory you run snakemake in)"
    )


def load_workload(spec: str) -> ModuleType:
    ref = resolve_workload(spec)
    if ref.path is None:
        module = importlib.import_module(BUILTIN[spec])
    else:
        mod_spec = importlib.util.spec_from_file_location(f"snakesweep_user_workload_{ref.key}", ref.path)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    missing = [name for name in REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise TypeError(f"workload {spec!r} does not define {', '.join(missing)} (see snakesweep/workloads/__init__.py)")
    return module


def validate_builtin_params(spec: str, params: dict, source: str = "config") -> None:
    """Built-ins check parameter names before any job starts; user workloads check their own."""
    if spec not in BUILTIN:
        return
    module = importlib.import_module(BUILTIN[spec])
    error = module.check_params(params)
    if error:
        raise ConfigError(f"{source}: {error}")
