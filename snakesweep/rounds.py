"""The round files of a search in rounds (halving, optuna): results/plan/rounds/round_{r}.json.

Their one owner: where they are, their reader and writer, and which of them belong to the plan's
search. Standard library (and results) only: every step reads the plan, which adds these trials.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .results import atomic_write_json, read_json, read_json_or_none

ROUNDS_DIR = "rounds"  # beside the plan: results/plan/rounds/round_{r}.json
ROUND_KIND = "snakesweep-round"


def round_path(plan_dir: str | Path, r: int) -> Path:
    return Path(plan_dir, ROUNDS_DIR, f"round_{r}.json")


def read_round(path: str | Path) -> dict[str, Any]:
    return read_json(path)


def write_round(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Atomically: a kill while a round is chosen leaves no half file, so a resume chooses again."""
    atomic_write_json(path, doc)


def round_trial_ids(doc: Mapping[str, Any]) -> list[str]:
    return [t["trial"] for t in doc["trials"]]


def round_digest(doc: Mapping[str, Any] | None) -> str | None:
    """Names a round's choice; the next round records it as its `parent`, so a round file left from
    another search (or from an earlier choice) is never taken for this one's (:func:`chosen_rounds`)."""
    if doc is None:
        return None
    ids = [t["trial"] for t in doc["trials"]]
    import hashlib  # lazy: keeps step processes light (~6 ms), they never digest a round

    return hashlib.sha256(json.dumps([doc.get("parent"), doc["key"], ids]).encode()).hexdigest()[:12]


def chosen_rounds(plan_dir: str | Path, search: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rounds of this search chosen so far: round files 0, 1, ... while each exists, has the
    plan's search key and names the round before it as its parent."""
    docs: list[dict[str, Any]] = []
    for r in range(int(search.get("rounds") or 0)):
        doc = read_json_or_none(round_path(plan_dir, r))
        if not isinstance(doc, dict) or doc.get("kind") != ROUND_KIND or doc.get("key") != search.get("key") \
                or doc.get("round") != r or doc.get("parent") != round_digest(docs[-1] if docs else None):
            break
        docs.append(doc)
    return docs


def round_trials(plan_dir: str | Path, search: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every trial entry of the rounds chosen so far, round by round (what load_plan adds)."""
    seen: set[str] = set()
    out = []
    for doc in chosen_rounds(plan_dir, search):
        for t in doc["trials"]:
            if t["trial"] not in seen:
                seen.add(t["trial"])
                out.append(t)
    return out


def round_progress(plan: Mapping[str, Any] | None, plan_dir: str | Path) -> dict[str, Any] | None:
    """How far a search in rounds is (the plan's ``search`` has ``rounds_dir``): ``{"method",
    "rounds", "chosen", "trials" (ids of the chosen rounds' trials, in order), "later_trials" (the
    most trials the rounds not chosen yet can run)}``; None for any other plan. What preview,
    status and the end-of-run summary say about the rounds."""
    search = (plan or {}).get("search") or {}
    if not search.get("rounds_dir"):
        return None
    docs = chosen_rounds(plan_dir, search)
    ids: dict[str, None] = {}
    for doc in docs:
        for t in doc.get("trials") or []:
            ids.setdefault(t["trial"], None)
    per_round = [int(n) for n in search.get("configs_per_round") or []]
    seeds = int(search.get("seeds") or 1)
    return {"method": search.get("method"), "rounds": int(search.get("rounds") or len(per_round)),
            "chosen": len(docs), "trials": list(ids), "later_trials": sum(per_round[len(docs):]) * seeds}
