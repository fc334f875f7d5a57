"""What a search adds to the report: successive halving's ladder (every configuration's score
per round and whether it was promoted, stopped or failed, from the round files), and for
random/sobol/optuna the objective against trial order with the best so far."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from snakesweep.rounds import chosen_rounds
from snakesweep.table import py_value

from .frame import FAILED_STATUSES, metric_values
from .tables import Reports
from .values import SEED, is_number, to_float

SEARCH_PLOTS = {"halving": "halving_ladder", "random": "search_progress", "sobol": "search_progress",
                "optuna": "search_progress"}


def search_plot_name(method: str | None) -> str | None:
    """The figure a search method adds (a grid has none: no placeholder it has no use for)."""
    return SEARCH_PLOTS.get(method or "grid")


def load_rounds(plan_path: str | Path | None, plan: Mapping | None) -> list[dict]:
    """The round files a plan's search has chosen so far (the same rule as load_plan: each with
    the plan's key and its parent's digest); [] for a grid or a search without rounds."""
    search = (plan or {}).get("search") or {}
    if not plan_path or not search.get("rounds_dir"):
        return []
    return chosen_rounds(Path(plan_path).parent, search)


def _config_key(params: Mapping, drop: Iterable[str]) -> str:
    from snakesweep.grid import canonical_json  # lazy: grid loads pydantic, which the end-of-run summary never needs

    gone = {SEED, *drop}
    return canonical_json({k: py_value(v) for k, v in params.items() if k not in gone})


def _objective_by_trial(rep: Reports) -> dict[str, float | None]:
    """Each trial's objective value (ok trials with a finite value; None otherwise)."""
    metric = rep.objective[0]
    df = rep.summary
    if metric not in df.columns or "trial" not in df.columns:
        return {}
    vals = metric_values(df[metric])
    out = {}
    for trial, status, v in zip(df["trial"], df["status"], vals):
        out[str(trial)] = float(v) if status == "ok" and v == v and math.isfinite(v) else None
    return out


def _trial_status(rep: Reports) -> dict[str, str]:
    df = rep.summary
    if "trial" not in df.columns:
        return {}
    return {str(t): str(s or "pending") for t, s in zip(df["trial"], df["status"])}


def halving_ladder(rep: Reports) -> list[dict]:
    """Successive halving's ladder, one entry per configuration of round 0, from the round files:

    ``{"key", "params" (the configuration: no seed, no budget), "steps": [{"round", "budget",
    "score", "outcome", "rank"}], "last_round", "outcome", "text"}``, where a step's outcome is
    the round after it's verdict (``selection.configs``: ``promoted``, ``stopped``, ``failed``)
    or, for the last round chosen, ``final`` (the top of the ladder), ``failed``, ``pending``
    (a trial not finished) or ``waiting`` (every seed finished; the next round has not judged it
    yet). Scores are the mean objective over the seeds, as the promotion used them (the round
    file's score; from summary.csv for the last round). Sorted: furthest round first, then by
    score (best first), failed last. Empty when the search is not halving or no round is chosen.
    """
    search = rep.search or {}
    if search.get("method") != "halving" or not rep.rounds:
        return []
    metric, direction = rep.objective
    param = search.get("budget_param") or ""
    ladder = list(search.get("ladder") or [])
    top_round = len(ladder) - 1 if ladder else None
    values = _objective_by_trial(rep)
    status = _trial_status(rep)
    entries: dict[str, dict] = {}
    for doc in rep.rounds:
        r = int(doc.get("round", 0))
        groups: dict[str, list[dict]] = {}
        for t in doc.get("trials") or []:
            groups.setdefault(_config_key(t.get("params") or {}, [param]), []).append(t)
        for key, trials in groups.items():
            params = {k: v for k, v in (trials[0].get("params") or {}).items() if k not in (SEED, param)}
            e = entries.setdefault(key, {"key": key, "params": params, "steps": []})
            e["steps"].append({"round": r, "budget": trials[0].get("budget", doc.get("budget")),
                               "trials": [t["trial"] for t in trials], "score": None, "outcome": None, "rank": None})
    # verdicts: round r+1's selection judged round r's configurations
    for doc in rep.rounds:
        sel = doc.get("selection") or {}
        r = int(doc.get("round", 0))
        judged = sel.get("configs")  # round 0's is a count; later rounds list round r-1's verdicts
        for c in judged if isinstance(judged, list) else []:
            e = entries.get(_config_key(c.get("config") or {}, [param]))
            step = next((st for st in (e or {}).get("steps", []) if st["round"] == r - 1), None)
            if step is None:
                continue
            step.update(score=to_float(c.get("score")), outcome=c.get("outcome"), rank=c.get("rank"))
    last_chosen = max(int(d.get("round", 0)) for d in rep.rounds)
    sign = -1.0 if direction == "max" else 1.0
    for e in entries.values():
        for st in e["steps"]:
            if st["outcome"] is not None:
                continue
            vals = [values.get(t) for t in st["trials"]]
            states = [status.get(t, "pending") for t in st["trials"]]
            if any(s in FAILED_STATUSES for s in states) or (
                    all(s == "ok" for s in states) and any(v is None for v in vals)):
                st["outcome"] = "failed"
            elif all(s == "ok" for s in states):
                st["score"] = round(math.fsum(vals) / len(vals), 12)
                st["outcome"] = "final" if st["round"] == top_round else "waiting"
            else:
                st["outcome"] = "pending"
        last = e["steps"][-1]
        e["last_round"], e["outcome"] = last["round"], last["outcome"]
        b = last["budget"]
        at = f"round {last['round']} ({param} = {b:g})" if is_number(b) else f"round {last['round']}"
        e["text"] = {
            "stopped": f"stopped after {at}",
            "failed": f"failed in {at}",
            "promoted": f"promoted from {at}",  # only while the next round's trials are not listed
            "final": f"reached the top budget: {at}",
            "waiting": f"finished {at}; the next round has not been chosen yet",
            "pending": f"running or pending in {at}",
        }.get(last["outcome"], str(last["outcome"]))
    finals = [e for e in entries.values() if e["outcome"] == "final" and e["steps"][-1]["score"] is not None]
    if finals and last_chosen == top_round:
        win = min(finals, key=lambda e: (sign * e["steps"][-1]["score"], e["key"]))
        st = win["steps"][-1]
        at = f"{param} = {st['budget']:g}" if is_number(st["budget"]) else "the top budget"
        win["outcome"], win["text"] = "winner", f"the winner, at the top budget (round {st['round']}, {at})"

    def order(e: dict) -> tuple:
        sc = e["steps"][-1]["score"]
        return (-e["last_round"], e["outcome"] == "failed", sc is None, sign * sc if sc is not None else 0.0, e["key"])

    return sorted(entries.values(), key=order)


def search_progress(rep: Reports) -> list[dict]:
    """The objective against trial order (random/sobol/optuna, any search): one entry per trial
    in plan order (round, then position: load_plan's order), ``{"n", "trial", "round",
    "value" (None unless ok), "best" (the best so far by the objective's direction, over ok
    trials up to this one; None before the first)}``."""
    metric, direction = rep.objective
    values = _objective_by_trial(rep)
    better = (lambda a, b: a > b) if direction == "max" else (lambda a, b: a < b)
    out, best = [], None
    for i, t in enumerate(rep.plan_trials, start=1):
        v = values.get(t.get("trial"))
        if v is not None and (best is None or better(v, best)):
            best = v
        out.append({"n": i, "trial": t.get("trial"), "round": t.get("round", 0), "value": v, "best": best})
    return out
