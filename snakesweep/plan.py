"""The plan: a validated sweep turned into the data every step reads (results/plan/)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from .results import SCHEMA_VERSION, atomic_write_json, atomic_write_text, read_json

if TYPE_CHECKING:  # every step reads the plan: it must not pay for pydantic
    from .config import SweepConfig
    from .grid import Trial


def build_plan(cfg: SweepConfig, trials: list[Trial]) -> dict[str, Any]:
    from .grid import config_hash, param_names
    from .workloads import resolve_workload

    workload = resolve_workload(cfg.sweep.workload)
    return {
        "schema_version": SCHEMA_VERSION,
        "sweep_name": cfg.sweep.name,
        "sweep_hash": config_hash(cfg),
        "workload": workload.spec,  # a command workload's dict, or the module's name/path
        "steps": list(cfg.sweep.steps),
        "workload_key": workload.key,
        "device": cfg.device,
        "timeout_s": cfg.timeout_s.model_dump(mode="json"),
        "failures": cfg.failures.model_dump(mode="json"),
        "measure": cfg.measure.model_dump(mode="json"),
        "param_names": param_names(trials),
        "trials": [{"trial": t.id, "params": t.params} for t in trials],
    }


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def trials_csv(plan: dict[str, Any]) -> str:
    names = plan["param_names"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", *names])
    for t in plan["trials"]:
        writer.writerow([t["trial"], *(_cell(t["params"].get(n, "")) for n in names)])
    return buf.getvalue()


def write_plan(plan: dict[str, Any], json_path: str | Path, csv_path: str | Path) -> None:
    atomic_write_json(json_path, plan)
    atomic_write_text(csv_path, trials_csv(plan))


def load_plan(path: str | Path) -> dict[str, Any]:
    return read_json(path)


def trial_params(plan: dict[str, Any], trial: str) -> dict[str, Any]:
    for t in plan["trials"]:
        if t["trial"] == trial:
            return t["params"]
    raise KeyError(f"trial {trial} is not in the plan {plan.get('sweep_name')!r}")
