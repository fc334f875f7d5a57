"""The plan: a validated sweep turned into the data every step reads (results/plan/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .results import SCHEMA_VERSION, atomic_write_json, atomic_write_text, read_json

# every step reads the plan: it must not pay for pydantic, nor for csv/hashlib (used by the
# plan rule and by searches only, imported where used)
if TYPE_CHECKING:
    from .config import SweepConfig
    from .grid import Trial


def build_plan(cfg: SweepConfig, trials: list[Trial]) -> dict[str, Any]:
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
        # issue 10: the search's settings; random/sobol trials are all round 0; halving/optuna
        # trials are chosen in round files beside the plan (load_plan adds them)
        from .search import in_rounds, plan_block, probe_trials

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
    import csv
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


def load_plan(path: str | Path) -> dict[str, Any]:
    """The plan, with (for a search in rounds: halving, optuna) the trials of every round chosen so
    far appended from results/plan/rounds/ (:func:`chosen_rounds`), each entry carrying its `round`
    and `budget`. A grid plan is returned as it is on disk."""
    plan = read_json(path)
    search = plan.get("search") if isinstance(plan, dict) else None
    if search and search.get("rounds_dir"):
        plan["trials"] = [*plan["trials"], *round_trials(Path(path).parent, search)]
    return plan


# ---------------------------------------------------------------------------- search rounds (issue 10)
# Read here, with the standard library only, because every step reads the plan; they are
# written by the round checkpoint (snakesweep/search.py: choose_round).

ROUNDS_DIR = "rounds"  # beside the plan: results/plan/rounds/round_{r}.json
ROUND_KIND = "snakesweep-round"


def round_path(plan_dir: str | Path, r: int) -> Path:
    return Path(plan_dir, ROUNDS_DIR, f"round_{r}.json")


def round_digest(doc: dict[str, Any] | None) -> str | None:
    """Names a round's choice; the next round records it as its `parent`, so a round file left from
    another search (or from an earlier choice) is never taken for this one's (:func:`chosen_rounds`)."""
    if doc is None:
        return None
    ids = [t["trial"] for t in doc["trials"]]
    import hashlib

    return hashlib.sha256(json.dumps([doc.get("parent"), doc["key"], ids]).encode()).hexdigest()[:12]


def chosen_rounds(plan_dir: str | Path, search: dict[str, Any]) -> list[dict[str, Any]]:
    """The rounds of this search chosen so far: round files 0, 1, ... while each exists, has the
    plan's search key and names the round before it as its parent."""
    docs: list[dict[str, Any]] = []
    for r in range(int(search.get("rounds") or 0)):
        try:
            doc = read_json(round_path(plan_dir, r))
        except (OSError, ValueError):
            break
        if not isinstance(doc, dict) or doc.get("kind") != ROUND_KIND or doc.get("key") != search.get("key") \
                or doc.get("round") != r or doc.get("parent") != round_digest(docs[-1] if docs else None):
            break
        docs.append(doc)
    return docs


def round_trials(plan_dir: str | Path, search: dict[str, Any]) -> list[dict[str, Any]]:
    """Every trial entry of the rounds chosen so far, round by round (what load_plan adds)."""
    seen: set[str] = set()
    out = []
    for doc in chosen_rounds(plan_dir, search):
        for t in doc["trials"]:
            if t["trial"] not in seen:
                seen.add(t["trial"])
                out.append(t)
    return out


def trial_params(plan: dict[str, Any], trial: str) -> dict[str, Any]:
    for t in plan["trials"]:
        if t["trial"] == trial:
            return t["params"]
    raise KeyError(f"trial {trial} is not in the plan {plan.get('sweep_name')!r}")
