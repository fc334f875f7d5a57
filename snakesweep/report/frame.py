"""The typed summary frame every report table is built from: one row per planned trial, its
parameters with their JSON types taken from the plan (a CSV cell cannot tell ``null`` from ``""``
or ``3`` from ``"3"``), ``status``, ``config_id`` and one column per metric."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakesweep.table import parse_value, py_value

from .values import config_params

if TYPE_CHECKING:
    import pandas as pd


# summary.csv columns that are neither parameters nor metrics
NON_METRIC_COLUMNS = frozenset({"trial", "status", "config_id", "error", "error_log", "reason", "state",
                                "round", "budget"})  # round, budget: a search's summary (collect.search_columns)
FAILED_STATUSES = frozenset({"failed", "corrupt"})
# Labels, never averaged even when a value looks like a number (nvml_version "12.535").
LABEL_SUFFIXES = ("_version", "_source", "_detail", "_name", "_id", "_host", "_device")


def as_frame(data: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    return pd.DataFrame(list(data or []))


def object_column(values: Iterable[Any]) -> pd.Series:
    import pandas as pd

    return pd.Series([py_value(v) for v in values], dtype=object)


def summary_frame(
    summary: Any, param_names: Sequence[str], plan: Mapping | None = None, parse_text: bool = False
) -> pd.DataFrame:
    """The summary with typed parameter columns (object dtype, None for null) and ``config_id``.

    ``summary`` is a DataFrame or a list of row dicts (collect's rows, or CSV rows). With a
    plan, each trial's parameters are taken from it by trial id: the plan holds their JSON
    types, which a CSV (and pandas' float inference: [3, None] -> [3.0, NaN]) loses. Cells of
    trials not in the plan are kept as they are (typed rows from collect), or, with
    ``parse_text`` (text read from a CSV), parsed with :func:`parse_value`. An existing ``config_id`` column
    (written by collect with :func:`config_id`) is kept so the files join; else it is added.
    """
    df = as_frame(summary).copy()
    df.index = range(len(df))
    if "status" not in df.columns:
        df["status"] = "ok"
    df["status"] = df["status"].map(lambda s: "" if py_value(s) is None else str(s))
    typed = {t.get("trial"): t.get("params") or {} for t in (plan or {}).get("trials", [])}
    trials = list(df["trial"]) if "trial" in df.columns else [None] * len(df)
    for p in param_names:
        cells = list(df[p]) if p in df.columns else [None] * len(df)
        if p in df.columns and df[p].dtype.kind == "f":
            # pandas turned [3, None] into [3.0, NaN]; integral floats are ints in the sweep's
            # canonical form (trial ids hash 3.0 as 3), so show them as 3
            cells = [None if c != c else int(c) if float(c).is_integer() and abs(c) < 2**53 else float(c) for c in cells]
        out = []
        for trial, cell in zip(trials, cells):
            if trial in typed:
                out.append(typed[trial].get(p))
            else:
                out.append(parse_value(cell) if parse_text else cell)
        df[p] = object_column(out)
    keys = config_params(param_names)
    have = "config_id" in df.columns and df["config_id"].map(lambda v: bool(py_value(v))).all()
    if not have:
        from snakesweep.grid import config_id  # lazy: grid loads pydantic, which the end-of-run summary never needs

        rows = df[keys].to_dict("records") if keys else [{}] * len(df)
        df["config_id"] = [config_id(r) for r in rows]
    return df


def read_summary(path: str | Path, plan: Mapping | None = None) -> pd.DataFrame:
    """results/summary.csv as the typed summary (see :func:`summary_frame`); every cell is read
    as text first so nothing is guessed, then metrics are typed by :func:`metric_values`."""
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    return summary_frame(df, param_names_from(plan, df), plan, parse_text=True)


def param_names_from(plan: Mapping | None, summary: Any = None) -> list[str]:
    """Parameter names from the plan; else the summary's columns between ``status`` and the
    first known metric (a fallback for a missing plan)."""
    if plan and plan.get("param_names"):
        return list(plan["param_names"])
    cols = list(as_frame(summary).columns) if summary is not None else []
    if "status" not in cols:
        return []
    out = []
    start = cols.index("status") + 1
    while start < len(cols) and cols[start] in ("round", "budget"):  # a search's columns
        start += 1
    for c in cols[start:]:
        if c in NON_METRIC_COLUMNS or c.startswith(("train_", "eval_", "latency_", "throughput", "energy_")):
            break
        out.append(c)
    return out


def metric_columns(summary: pd.DataFrame, param_names: Sequence[str]) -> list[str]:
    """Every column that is neither bookkeeping nor a parameter."""
    skip = NON_METRIC_COLUMNS | set(param_names)
    return [c for c in summary.columns if c not in skip]


def metric_values(column: pd.Series) -> pd.Series:
    """A metric column as floats (NaN where missing, a label, a bool or not a number)."""
    import pandas as pd

    if column.dtype.kind in "iuf":
        return column.astype(float)
    cleaned = column.map(lambda v: None if isinstance(py_value(v), bool) or py_value(v) is None else v)
    return pd.to_numeric(cleaned, errors="coerce").astype(float)


def numeric_metrics(summary: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """The metrics that are numbers: some ok row has a value, and every non-empty value in an ok
    row is a number (not a bool, not a label such as ``energy_source``, ``driver_version``,
    ``flag_detail``). A column named like a label (``*_version``, ``*_source``, ...) never is."""
    ok = summary[summary["status"] == "ok"] if "status" in summary.columns else summary
    out = []
    for m in metrics:
        if m not in ok.columns or m.endswith(LABEL_SUFFIXES):
            continue
        raw = [py_value(v) for v in ok[m]]
        present = [v for v in raw if v is not None and not (isinstance(v, str) and v.strip().lower() in ("", "nan"))]
        if not present or any(isinstance(v, bool) for v in present):
            continue
        present = object_column(present)
        if metric_values(present).notna().all():
            out.append(m)
    return out


def metrics_with_values(summary: pd.DataFrame, param_names: Sequence[str]) -> list[str]:
    """The numeric metrics some ok trial produced: what a report can be made of."""
    return numeric_metrics(summary, metric_columns(summary, param_names))
