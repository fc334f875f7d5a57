"""The typed summary frame every report table is built from: one row per planned trial, its
parameters with their JSON types taken from the plan (a CSV cell cannot tell ``null`` from ``""``
or ``3`` from ``"3"``), ``status``, ``config_id`` and one column per metric."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from snakesweep.table import parse_value, py_value

from .values import config_params

if TYPE_CHECKING:
    import numpy as np
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
    as text first so nothing is guessed, then metrics are typed by :func:`metric_values`.

    Read with the csv module into one object block: pandas' reader takes seconds per call on a
    20,000-metric summary, and its frame of 20,000 string columns makes every later filter,
    copy and conversion slow (issue 17). Text cells as ``pd.read_csv(dtype=str,
    na_filter=False)`` reads them (a missing trailing cell is "")."""
    import csv

    import numpy as np
    import pandas as pd

    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise ValueError(f"{path}: empty, not even a header row (fix: rerun the collect rule)")
    header, width = _unique_names(rows[0]), len(rows[0])
    for i, r in enumerate(rows[1:], start=2):
        if len(r) > width:
            raise ValueError(f"{path}: row {i} has {len(r)} cells, the header {width} (fix: rerun the collect rule)")
    cells = np.array([r + [""] * (width - len(r)) for r in rows[1:]], dtype=object).reshape(len(rows) - 1, width)
    df = pd.DataFrame(cells, columns=header, dtype=object)
    return summary_frame(df, param_names_from(plan, df), plan, parse_text=True)


def _unique_names(names: Sequence[str]) -> list[str]:
    """Repeated column names made unique as pandas' reader does (``x``, ``x.1``, ``x.2``)."""
    seen: dict[str, int] = {}
    out = []
    taken = set(names)
    for n in names:
        if n in seen:
            k = seen[n]
            while f"{n}.{k}" in taken:
                k += 1
            seen[n] = k + 1
            n = f"{n}.{k}"
            taken.add(n)
        else:
            seen[n] = 1
        out.append(n)
    return out


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


class MetricMatrix(NamedTuple):
    """Metric columns converted together (rows x columns): ``values`` as :func:`metric_values`
    makes each column, ``present`` where a cell holds a value (not None, NaN, "" or "nan") and
    ``boolean`` where that value is a bool."""

    values: np.ndarray
    present: np.ndarray
    boolean: np.ndarray


def metric_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> MetricMatrix:
    """``frame[columns]`` as one float matrix, cell for cell what :func:`metric_values` gives
    column by column, in one pass: a 20,000-metric summary converted column by column costs
    minutes (issue 17). Numeric columns are cast in one block; every other cell is cleaned in
    one loop and parsed by one ``pd.to_numeric``."""
    import numpy as np
    import pandas as pd

    cols = list(columns)
    shape = (len(frame), len(cols))
    values = np.full(shape, np.nan)
    present = np.zeros(shape, dtype=bool)
    boolean = np.zeros(shape, dtype=bool)
    if not cols:
        return MetricMatrix(values, present, boolean)
    sub = frame[cols]
    sub.columns = range(len(cols))  # positions: a name such as "mean" or a repeated one cannot clash
    kinds = [dt.kind for dt in sub.dtypes]
    num = [j for j, k in enumerate(kinds) if k in "iuf"]
    other = [j for j, k in enumerate(kinds) if k not in "iuf"]
    if num:
        block = sub.iloc[:, num].to_numpy(dtype=float, na_value=np.nan)
        values[:, num] = block
        present[:, num] = ~np.isnan(block)
    if other:
        cells = sub.iloc[:, other].to_numpy(dtype=object).ravel()
        cleaned: list[Any] = []
        has: list[bool] = []
        flag: list[bool] = []
        for v in cells:
            kind = type(v)
            if kind is float:  # the common cells first: a JSON number, a CSV text
                is_bool, there = False, v == v
            elif kind is str:
                is_bool, there = False, v.strip().lower() not in ("", "nan")
            else:
                v = py_value(v)
                is_bool = isinstance(v, bool)
                there = v is not None and not (isinstance(v, str) and v.strip().lower() in ("", "nan"))
            cleaned.append(None if is_bool else v)
            flag.append(is_bool)
            has.append(there)
        # fromiter: a list cell stays one (unparsable) object, where np.array would unpack it
        parsed = pd.to_numeric(np.fromiter(cleaned, dtype=object, count=len(cleaned)), errors="coerce").astype(float)
        values[:, other] = parsed.reshape(len(frame), len(other))
        present[:, other] = np.array(has, dtype=bool).reshape(len(frame), len(other))
        boolean[:, other] = np.array(flag, dtype=bool).reshape(len(frame), len(other))
    return MetricMatrix(values, present, boolean)


def numeric_metrics(summary: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """The metrics that are numbers: some ok row has a value, and every non-empty value in an ok
    row is a number (not a bool, not a label such as ``energy_source``, ``driver_version``,
    ``flag_detail``). A column named like a label (``*_version``, ``*_source``, ...) never is."""
    return numeric_block(summary, metrics)[0]


def numeric_block(summary: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """:func:`numeric_metrics` and their values in the ok rows (ok rows x those metrics, as
    :func:`metric_values` makes them), decided for every column at once from one conversion."""
    import numpy as np

    ok = summary[summary["status"] == "ok"] if "status" in summary.columns else summary
    cand = [m for m in metrics if m in ok.columns and not m.endswith(LABEL_SUFFIXES)]
    mat = metric_matrix(ok, cand)
    keep = mat.present.any(axis=0) & ~mat.boolean.any(axis=0) & ~(mat.present & np.isnan(mat.values)).any(axis=0)
    return [m for m, k in zip(cand, keep) if k], mat.values[:, keep]


def metrics_with_values(summary: pd.DataFrame, param_names: Sequence[str]) -> list[str]:
    """The numeric metrics some ok trial produced: what a report can be made of."""
    return numeric_metrics(summary, metric_columns(summary, param_names))
