"""Every planned trial's results -> results/summary.csv, from the sweep state (snakesweep/state.py,
which status and the preview read too), so the three never disagree. configs.csv, aggregated from
this table, is written by the reports (:func:`snakesweep.report.collect` does both for the rule).

summary.csv: ``trial``, ``status``, for a search ``round`` (and for halving ``budget``), the
parameters (cells as :mod:`snakesweep.table` writes them), the metrics of the steps that ran,
``config_id``, ``error`` and ``error_log``. A grid sweep has no search columns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .grid import config_id
from .plan import load_plan
from .results import atomic_write_text
from .state import SweepState, read_state
from .table import csv_text

if TYPE_CHECKING:
    import pandas as pd

BOOKKEEPING = ("trial", "status")
TRAILER = ("config_id", "error", "error_log")
SEARCH_COLUMNS = ("round", "budget")  # right after `status`, only for a search (search_columns)


def search_columns(plan: dict[str, Any]) -> tuple[str, ...]:
    """The search columns of summary.csv: none for a grid (its summary is unchanged), ``round``
    for every search, and ``budget`` too for halving (the only method with a budget ladder: an
    always-empty column for random/sobol/optuna would say nothing)."""
    search = plan.get("search")
    if not search:
        return ()
    return SEARCH_COLUMNS if search.get("method") == "halving" or search.get("ladder") else SEARCH_COLUMNS[:1]


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


def trial_row(state: SweepState, trial: str, params: dict[str, Any]) -> dict[str, Any]:
    """One summary row: status and reason from the state, the metrics of every selected step
    that has a valid result (scalars only; lists such as a training history stay in the JSON)."""
    status, cell = state.trial_status(trial)
    row: dict[str, Any] = {"trial": trial, "status": status, **params}
    for step in state.steps:
        rec = state.cells[trial][step].record
        if rec is not None and state.cells[trial][step].state in ("done", "stale"):
            row.update({k: v for k, v in rec["metrics"].items() if _scalar(v) and k not in TRAILER + BOOKKEEPING})
    row["error"], row["error_log"] = "", ""
    if status == "failed" and cell is not None:
        if cell.corrupt:
            row["error"] = f"{cell.step}: {cell.reason}"
            row["error_log"] = cell.result or ""
        else:
            err = cell.error or {}
            row["error"] = f"{cell.step}: {err.get('type') or 'error'}: {err.get('message') or ''}"
            row["error_log"] = err.get("log") or cell.log or ""
    return row


def summary_table(plan: dict[str, Any], state: SweepState) -> pd.DataFrame:
    """The typed summary: one row per planned trial, object columns (None stays None, 3 stays
    3), columns in the order summary.csv has them."""
    import numpy as np
    import pandas as pd

    names = list(plan.get("param_names") or [])
    extra = search_columns(plan)
    rows = []
    for t in plan["trials"]:
        row = trial_row(state, t["trial"], {n: t["params"].get(n) for n in names})
        row["config_id"] = config_id(t["params"])
        for c in extra:  # from the plan entry (load_plan: the round files), never from a metric
            row[c] = t.get(c)
        rows.append(row)
    metrics: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in BOOKKEEPING and key not in TRAILER and key not in names and key not in extra:
                metrics.setdefault(key, None)
    columns = [*BOOKKEEPING, *extra, *names, *metrics, *TRAILER]
    # one object block, row by row (fromiter keeps a list cell one object; numpy would unpack it):
    # a Series per column, or pandas' list-of-rows constructor, costs seconds at 20,000 metrics (issue 17)
    cells = np.empty((len(rows), len(columns)), dtype=object)
    for i, row in enumerate(rows):
        cells[i] = np.fromiter(map(row.get, columns), dtype=object, count=len(columns))
    return pd.DataFrame(cells, columns=columns, dtype=object)


def summary_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """:func:`summary_table`'s rows as dicts (its cells as they are: the table is all objects);
    ``to_dict("records")`` takes seconds on 20,000 columns."""
    columns = list(table.columns)
    return [dict(zip(columns, row)) for row in table.to_numpy(dtype=object).tolist()]


class Collected(NamedTuple):
    """collect's typed summary table (object columns) and the plan's parameter names."""

    table: pd.DataFrame
    param_names: list[str]


def collect_summary(plan_path: str | Path, results: str | Path, logs: str | Path, summary: str | Path,
                    root: str | Path | None = None) -> Collected:
    """Write summary.csv; return the typed table it was written from.

    `results` and `logs` are paths as the rules name them, relative to `root` (default: the
    current directory, where Snakemake runs)."""
    plan = load_plan(plan_path)
    results, logs = Path(results), Path(logs)
    if root is None:  # paths in the rows are relative to the directory that holds results/
        root = results.parent if results.is_absolute() else Path(".")
    root = Path(root)
    results = Path(os.path.relpath(results, root)) if results.is_absolute() else results
    logs = Path(os.path.relpath(logs, root)) if logs.is_absolute() else logs
    state = read_state(root, results=str(results), logs=str(logs), plan=plan, processes=False,
                       keep_records=True)
    table = summary_table(plan, state)
    names = list(plan.get("param_names") or [])
    atomic_write_text(summary, csv_text(table, names))
    return Collected(table, names)


def counts_line(rows: list[dict[str, Any]]) -> str:
    """The line the collect rule prints: trials ok, failed (corrupt among them), pending."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}
    corrupt = sum(": corrupt: " in (r.get("error") or "") for r in rows)
    return (f"snakesweep: {len(rows)} trials: {counts['ok']} ok, {counts['failed']} failed"
            + (f" ({corrupt} with a corrupt result file)" if corrupt else "") + f", {counts['pending']} pending")
