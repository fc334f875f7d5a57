"""Every planned trial's results -> results/summary.csv and results/configs.csv.

Runs as the `collect` rule, and from the workflow's `onerror` handler after a run with
failures, so the CSVs always list every planned trial with its status and reason.

The rows come from the sweep state (snakesweep/state.py, the reading status and the preview
use too): a trial is ``ok`` when every step the plan selected (``plan["steps"]``; all three in
older plans) has a valid result, ``failed`` at its first failed step (an error record, or a
corrupt result file: the path and the parse error are the reason), else ``pending``. A corrupt
file is that trial's problem only: the other trials aggregate as usual, and the next run redoes
the step (the workflow sets corrupt results aside at parse time: state.reconcile).

summary.csv: ``trial``, ``status``, for a search (``plan["search"]``, issue 10) ``round`` (the
round that chose the trial: 0 for random/sobol, 0, 1, ... for halving/optuna, in the order
:func:`snakesweep.plan.load_plan` lists them) and for halving ``budget`` (the round's value of
the budget parameter), then the parameters (as JSON text: ``null``, ``true``, ``[1, 2]``;
strings as they are, quoted by the CSV writer when needed; the exact JSON types come back from
the plan, see report.read_summary), the metrics of the steps that ran (columns derived from the
records, in step order; nothing for steps that were not selected), ``config_id`` (the
configuration, joining configs.csv), ``error`` and ``error_log``. It is built as a pandas
DataFrame, which report.write_configs aggregates into configs.csv. A grid sweep's files are
exactly what they were before searches existed (no search columns).

configs.csv and halving: the budget parameter (e.g. ``epochs``) is a parameter of the trial
like any other (it is in the plan's ``param_names``), so ``config_id`` includes it and one
configuration at 1 and at 27 epochs is two rows of configs.csv: they are different
measurements, and averaging them would mix a 1-epoch accuracy into a 27-epoch one. The
reports rank halving's best among the configurations at the largest budget reached
(report.compute_reports).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .plan import load_plan
from .results import atomic_write_text
from .state import SweepState, read_state

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


def summary_table(plan: dict[str, Any], state: SweepState) -> "pd.DataFrame":
    """The typed summary: one row per planned trial, object columns (None stays None, 3 stays
    3), columns in the order summary.csv has them."""
    import pandas as pd

    from .report import config_id

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
    data = {c: pd.Series([r.get(c) for r in rows], dtype=object) for c in columns}
    return pd.DataFrame(data, columns=columns)


def collect(plan_path: str | Path, results: str | Path, logs: str | Path, summary: str | Path,
            configs: str | Path, root: str | Path | None = None) -> list[dict[str, Any]]:
    """Write summary.csv and configs.csv; return the summary rows (dicts, typed values).

    `results` and `logs` are paths as the rules name them, relative to `root` (default: the
    current directory, where Snakemake runs)."""
    from . import report

    plan = load_plan(plan_path)
    results, logs = Path(results), Path(logs)
    if root is None:  # paths in the rows are relative to the directory that holds results/
        root = results.parent if results.is_absolute() else Path(".")
    root = Path(root)
    results = Path(os.path.relpath(results, root)) if results.is_absolute() else results
    logs = Path(os.path.relpath(logs, root)) if logs.is_absolute() else logs
    state = read_state(root, results=str(results), logs=str(logs), plan=plan, processes=False,
                       benchmarks=False, keep_records=True)
    table = summary_table(plan, state)
    names = list(plan.get("param_names") or [])
    atomic_write_text(summary, report.csv_text(table, names))
    if hasattr(report, "write_configs"):
        report.write_configs(table, names, configs)
    else:  # pragma: no cover - until report.write_configs exists everywhere
        rows = report.config_rows(table.to_dict("records"), names)
        report.write_csv(configs, rows, list(rows[0]) if rows else [])
    return table.to_dict("records")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.collect")
    ap.add_argument("--plan", required=True)
    ap.add_argument("--results", help="results directory (default: the plan's results/)")
    ap.add_argument("--logs", default="logs")
    ap.add_argument("--summary", required=True)
    ap.add_argument("--configs", required=True)
    a = ap.parse_args(argv)
    results = a.results or str(Path(a.plan).parent.parent)  # results/plan/trials.json -> results
    rows = collect(a.plan, results, a.logs, a.summary, a.configs)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}
    corrupt = sum(": corrupt: " in (r.get("error") or "") for r in rows)
    print(f"snakesweep: {len(rows)} trials: {counts['ok']} ok, {counts['failed']} failed"
          + (f" ({corrupt} with a corrupt result file)" if corrupt else "") + f", {counts['pending']} pending")
    return 0


if __name__ == "__main__":
    sys.exit(main())
