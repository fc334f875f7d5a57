"""The plan: a validated sweep turned into the data every step reads (results/plan/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .results import SCHEMA_VERSION, atomic_write_json, atomic_write_text, read_json, read_json_or_none
from .rounds import round_trials

# every step reads the plan: it must not pay for pydantic, nor for csv/hashlib (used by the
# plan rule and by searches only; lazy: keeps step processes light)
if TYPE_CHECKING:
    from .config import SweepConfig
    from .grid import Trial


def build_plan(cfg: SweepConfig, trials: list[Trial]) -> dict[str, Any]:
    # lazy: keeps step processes light (the plan rule alone builds a plan: pydantic, hashlib)
    from .grid import config_hash, param_names
    from .workloads import resolve_workload

    workload = resolve_workload(cfg.sweep.workload)
    plan = {
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
    if cfg.sweep.search.method != "grid":
        # the search's settings; random/sobol trials are all round 0; halving/optuna trials
        # are chosen in round files beside the plan (load_plan adds them)
        from .search import in_rounds, plan_block, probe_trials  # lazy: as above

        plan["search"] = plan_block(cfg)
        if in_rounds(cfg):
            plan["param_names"] = param_names(probe_trials(cfg))
        for t in plan["trials"]:
            t["round"] = 0
    return plan


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def trials_csv(plan: dict[str, Any]) -> str:
    names = plan["param_names"]
    import csv  # lazy: keeps step processes light
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trial", *names])
    for t in plan["trials"]:
        writer.writerow([t["trial"], *(_cell(t["params"].get(n, "")) for n in names)])
    return buf.getvalue()


def write_plan(plan: dict[str, Any], json_path: str | Path, csv_path: str | Path) -> None:
    atomic_write_json(json_path, plan)
    atomic_write_text(csv_path, trials_csv(plan))


def load_plan(path: str | Path, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """The plan, with (for a search in rounds: halving, optuna) the trials of every round chosen so
    far appended from results/plan/rounds/ (:func:`snakesweep.rounds.round_trials`), each entry
    carrying its `round` and `budget`. A grid plan is returned as it is on disk.

    `missing_ok`: None instead of an error when the plan is missing or unreadable, for readers
    that must not fail (status, reports); a malformed round file then ends the rounds there and
    the plan's own trials are returned."""
    if not missing_ok:
        return _with_rounds(read_json(path), path)
    try:
        plan = _with_rounds(read_json(path), path)
    except (OSError, ValueError):
        return None
    except (KeyError, TypeError, AttributeError):  # a malformed round file: the plan's own trials
        plan = read_json_or_none(path)
    return plan if isinstance(plan, dict) else None


def _with_rounds(plan: Any, path: str | Path) -> Any:
    search = plan.get("search") if isinstance(plan, dict) else None
    if search and search.get("rounds_dir"):
        plan["trials"] = [*plan["trials"], *round_trials(Path(path).parent, search)]
    return plan


def trial_params(plan: dict[str, Any], trial: str) -> dict[str, Any]:
    for t in plan["trials"]:
        if t["trial"] == trial:
            return t["params"]
    raise KeyError(f"trial {trial} is not in the plan {plan.get('sweep_name')!r}")
