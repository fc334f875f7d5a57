"""Population-based training's lineage in the reports: lineage.csv (one row per member and
generation: which member's checkpoint it continued from, its outcome, its score and its
parameters) and the best member's schedule of parameters (:func:`snakesweep.pbt.ancestry`),
read from the round files' ``lineage`` lists (snakesweep.rounds owns their format).

A row's ``score`` is the member's own score in that generation: the mean objective over its
trials (one per seed) when every one of them is ok with a finite value, else empty (failed or
still running). The round files' own ``score`` of an entry is its score in the generation
before (what the selection saw); the two agree, one generation apart.

``python -m snakesweep.report.lineage --plan P --summary S --objective M --direction D --out F``
writes lineage.csv (rule report_lineage, workflow/rules/report.smk, a pbt sweep only).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep.results import atomic_write_text
from snakesweep.table import csv_text, param_cell

LINEAGE_FIELDS = ["member", "generation", "outcome", "continued_from", "score", "n_trials", "explore"]


def trial_values(summary: Any, metric: str) -> dict[str, float | None]:
    """trial id -> its objective value (ok trials with a finite value; None otherwise)."""
    from .frame import as_frame, metric_values

    df = as_frame(summary)
    if "trial" not in df.columns:
        return {}
    vals = metric_values(df[metric]) if metric in df.columns else [float("nan")] * len(df)
    status = df["status"] if "status" in df.columns else ["ok"] * len(df)
    return {str(t): float(v) if s == "ok" and math.isfinite(v) else None for t, s, v in zip(df["trial"], status, vals)}


def _generations(rounds: Sequence[Mapping]) -> list[list[Mapping]]:
    """Each round's lineage entries, while rounds have them (a pbt search's rounds)."""
    out = []
    for doc in rounds:
        lineage = doc.get("lineage")
        if not isinstance(lineage, list):
            break
        out.append([e for e in lineage if isinstance(e, Mapping)])
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return math.fsum(values) / len(values)  # type: ignore[arg-type]


def _explore_text(explore: Any) -> str:
    """{"x": {"from": 1.0, "to": 1.2, "how": "x1.2"}} -> "x: 1 -> 1.2 (x1.2)"."""
    if not isinstance(explore, Mapping):
        return ""
    return "; ".join(f"{k}: {param_cell(v.get('from'))} -> {param_cell(v.get('to'))} ({v.get('how')})"
                     for k, v in sorted(explore.items()) if isinstance(v, Mapping))


def lineage_rows(rounds: Sequence[Mapping], values: Mapping[str, float | None],
                 param_names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per member and generation, generation by generation, members in id order:
    member, generation, outcome (initial | kept | exploited | dead), continued_from (the member
    whose checkpoint of the generation before it trained on; empty in generation 0 and for a dead
    member), score (:mod:`module docstring <snakesweep.report.lineage>`), n_trials, explore (how
    an exploited member's parameters were perturbed), then one column per parameter of
    `param_names` (the generation's parameters; ``null`` for a dead member)."""
    gens = _generations(rounds)
    names = list(param_names) or sorted({k for g in gens for e in g for k in (e.get("params") or {})})
    rows = []
    for g, entries in enumerate(gens):
        for e in sorted(entries, key=lambda e: int(e.get("member", 0))):
            trials = [str(t) for t in e.get("trials") or []]
            parent = e.get("continued_from")
            params = e.get("params") or {}
            rows.append({
                "member": int(e["member"]), "generation": int(e.get("generation", g)),
                "outcome": e.get("outcome"),
                "continued_from": parent.get("member") if isinstance(parent, Mapping) else None,
                "score": _mean([values.get(t) for t in trials]), "n_trials": len(trials),
                "explore": _explore_text(e.get("explore")),
                **{k: params.get(k) for k in names},
            })
    return rows


def best_member(rows: Sequence[Mapping], direction: str) -> dict[str, Any] | None:
    """The row with the best score in the last generation where any member has one (ties: the
    lower member id); None without a score."""
    scored = [r for r in rows if r.get("score") is not None]
    if not scored:
        return None
    last = max(int(r["generation"]) for r in scored)
    pool = sorted((r for r in scored if int(r["generation"]) == last), key=lambda r: int(r["member"]))
    pick = max if direction == "max" else min
    best = pick(r["score"] for r in pool)
    return dict(next(r for r in pool if r["score"] == best))


def best_schedule(rounds: Sequence[Mapping], member: int, generation: int) -> list[dict[str, Any]]:
    """The schedule of parameters that trained `member`'s checkpoint of `generation`: from
    generation 0, which member's checkpoint was trained in each generation and with which
    parameters (:func:`snakesweep.pbt.ancestry` over the round files' lineage)."""
    from snakesweep.pbt import ancestry  # lazy: pbt -> space -> config loads pydantic

    gens = _generations(rounds)[: generation + 1]
    return ancestry([{int(e["member"]): e for e in g} for g in gens], member)


def lineage_csv(rows: Sequence[Mapping], param_names: Sequence[str] = ()) -> str:
    """The rows as CSV text: parameters as :func:`param_cell` (``null`` never blank), a missing
    score or parent empty, member ids as integers."""
    import pandas as pd

    names = list(param_names) or _row_params(rows)
    table = pd.DataFrame([{f: r.get(f) for f in [*LINEAGE_FIELDS, *names]} for r in rows],
                         columns=[*LINEAGE_FIELDS, *names])
    table["continued_from"] = table["continued_from"].astype("Int64")
    return csv_text(table, names)


def write_lineage(path: str | Path, rounds: Sequence[Mapping], values: Mapping[str, float | None],
                  param_names: Sequence[str] = ()) -> list[dict[str, Any]]:
    rows = lineage_rows(rounds, values, param_names)
    atomic_write_text(path, lineage_csv(rows, _row_params(rows)))
    return rows


def _row_params(rows: Sequence[Mapping]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            if k not in LINEAGE_FIELDS:
                seen.setdefault(k, None)
    return list(seen)


def space_params(search: Mapping | None) -> list[str]:
    """The parameters PBT explores (the sweep's space, from the plan's search block), in the
    space's order; [] without them."""
    space = (((search or {}).get("config") or {}).get("sweep") or {}).get("space") or {}
    return list(space) if isinstance(space, Mapping) else []


def main(argv: list[str] | None = None) -> int:
    from snakesweep.plan import load_plan

    from .frame import read_summary
    from .problems import Problems, error_reason, placeholder, problems_path, results_dir_of
    from .search_views import load_rounds
    from .values import check_objective

    ap = argparse.ArgumentParser(prog="python -m snakesweep.report.lineage",
                                 description="A pbt sweep's lineage.csv from its round files")
    ap.add_argument("--plan", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--objective", required=True)
    ap.add_argument("--direction", required=True, choices=["max", "min"])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    metric, _direction = check_objective(args.objective, args.direction)
    problems = Problems("report_lineage", problems_path(results_dir_of(args.out), "report_lineage"))
    try:
        plan = load_plan(args.plan)
        rows = write_lineage(args.out, load_rounds(args.plan, plan),
                             trial_values(read_summary(args.summary, plan), metric), space_params(plan.get("search")))
    except Exception as err:  # noqa: BLE001 - a report must never fail the sweep
        problems.add(args.out, error_reason(err))
        placeholder(args.out, error_reason(err))
        problems.write()
        return 0
    problems.write()
    print(f"report: lineage.csv, {len(rows)} member-generations", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
