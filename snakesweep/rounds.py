"""The round files of a search in rounds (halving, optuna): results/plan/rounds/round_{r}.json.

Their one owner: where they are, their reader and writer, and which of them belong to the plan's
search. Standard library (and results) only: every step reads the plan, which adds these trials.
"""

from __future__ import annotations

import json
import os
import re
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


def round_is_next(doc: Any, r: int, search: Mapping[str, Any], earlier: list[dict[str, Any]]) -> bool:
    """Whether `doc` is round r of this search, chosen after `earlier` (rounds 0..r-1): a round
    file with the plan's search key and method that names round r-1 as its parent. A file left by
    another search of the same sweep (a switched method, other settings) or by an earlier choice
    is not; readers ignore it and the next run chooses round r again (:func:`foreign_rounds`)."""
    return (isinstance(doc, dict) and doc.get("kind") == ROUND_KIND and doc.get("key") == search.get("key")
            and doc.get("round") == r and (search.get("method") is None or doc.get("method") == search.get("method"))
            and doc.get("parent") == round_digest(earlier[-1] if earlier else None)
            and isinstance(doc.get("trials"), list))


def chosen_rounds(plan_dir: str | Path, search: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rounds of this search chosen so far: round files 0, 1, ... while each exists, has the
    plan's search key and names the round before it as its parent (:func:`round_is_next`)."""
    docs: list[dict[str, Any]] = []
    for r in range(int(search.get("rounds") or 0)):
        doc = read_json_or_none(round_path(plan_dir, r))
        if not round_is_next(doc, r, search, docs):
            break
        docs.append(doc)
    return docs


ROUND_FILE = re.compile(r"^round_(\d+)\.json$")


def foreign_rounds(plan_dir: str | Path, search: Mapping[str, Any] | None) -> list[Path]:
    """The round files under `plan_dir` that are not rounds of this search chosen so far (another
    method's or settings' rounds, or rounds chosen after an earlier round that has changed): what
    the workflow removes before a run, so that Snakemake chooses those rounds again instead of
    taking another search's file for this one's. A file of this search beyond its `rounds` is
    kept (raising `rounds` again keeps it). No search in rounds: every round file is foreign."""
    try:
        names = [e.name for e in os.scandir(Path(plan_dir, ROUNDS_DIR))]
    except OSError:
        return []
    if not search or not search.get("rounds_dir"):
        return sorted(Path(plan_dir, ROUNDS_DIR, n) for n in names if ROUND_FILE.match(n))
    docs = chosen_rounds(plan_dir, search)
    chain = {**search, "rounds": 1 << 30}  # the same chain read on past `rounds`
    longer = chosen_rounds(plan_dir, chain) if len(docs) == int(search.get("rounds") or 0) else docs
    out = []
    for n in names:
        m = ROUND_FILE.match(n)
        if m and int(m.group(1)) >= len(longer):
            out.append(Path(plan_dir, ROUNDS_DIR, n))
    return sorted(out)


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
