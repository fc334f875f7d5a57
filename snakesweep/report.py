"""Answers a sweep exists for: which configuration is best, by how much, and at what cost.

Every table is a pandas DataFrame built from the *typed* summary: one row per planned trial,
its parameters with their JSON types (None, bool, int, float, str, list) taken from the plan
(results/plan/trials.json; a CSV cell cannot tell ``null`` from ``""`` or ``3`` from ``"3"``),
``status``, ``config_id`` and one column per metric. Outputs:

* ``configs.csv`` (:func:`write_configs`): one row per configuration (the seed removed):
  counts, and for every numeric metric mean, std and a *usable* 95% interval
  (:func:`config_table` documents the rule: none below 3 ok values, clipped to a known range).
* ``best.json``: the best configuration by the objective's mean over seeds, the runner-up, and
  Welch's t-test between their per-seed values; "not significant" when p >= 0.05 or when
  either has fewer than 2 ok seeds. When no trial produced the objective it says so and lists
  the metrics that do exist.
* ``pareto.csv``: the configurations no other one dominates over ``report.objective`` plus
  ``report.extra_objectives``. There is no hidden default cost: with no extra objective
  there is no trade-off, and the file has its header only.
* ``importance.csv``: one-way ANOVA eta squared of the objective's config means, per swept
  parameter.
* ``answer.html``: the answer on one page, with the plots embedded (base64 PNG) when drawn
  by ``python -m snakesweep.plots --html``.

A search (issue 10; the plan's ``search`` block, trials of halving/optuna rounds added by
:func:`snakesweep.plan.load_plan`): summary.csv has ``round`` (and for halving ``budget``)
after ``status``, which are neither parameters nor metrics. For halving, the budget parameter
(``epochs``) is a parameter like any other, so a configuration at 1 and at 27 epochs is two
rows of configs.csv (two measurements), and best.json ranks only the configurations at the
largest budget any configuration finished (the top of the ladder once the search is done;
``best.json: scope`` says which): a 1-epoch score is not comparable with a 27-epoch one.
answer.html adds the halving ladder (:func:`halving_ladder`: every configuration's score per
round and whether it was promoted, stopped or failed, from the round files) or, for
random/sobol/optuna, the best so far (:func:`search_progress`).

Parameter values are shown as JSON: ``null``, ``true``, ``[1, 2]``; strings as they are.
Mixed-type levels sort numbers first (by value), then the rest by their JSON text.

A report never fails a sweep whose trials are fine: an output that cannot be made is
replaced by a file that says why (no stale file from an earlier sweep stays in its place),
and the reason is recorded in ``results/report/problems.<rule>.json``, which
:func:`report_problem_lines` turns into the run's final lines.

pandas is imported inside functions: the Snakefile imports this module on every parse.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html as _html
import json
import math
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from snakesweep.results import atomic_write_bytes
from snakesweep.stats import MIN_N_FOR_CI, welch_t_test

if TYPE_CHECKING:
    import pandas as pd

SEED = "seed"
STAT_SUFFIXES = ("mean", "std", "ci_low", "ci_high")
COUNT_COLUMNS = ("n_seeds", "n_ok", "n_failed", "n_pending")
CI_NOTE = "ci_note"
CONFIDENCE = 0.95
ALPHA = 0.05
# summary.csv columns that are neither parameters nor metrics
NON_METRIC_COLUMNS = frozenset({"trial", "status", "config_id", "error", "error_log", "reason", "state",
                                "round", "budget"})  # round, budget: a search's summary (collect.search_columns)
FAILED_STATUSES = frozenset({"failed", "corrupt"})
# Labels, never averaged even when a value looks like a number (nvml_version "12.535").
LABEL_SUFFIXES = ("_version", "_source", "_detail", "_name", "_id", "_host", "_device")
# Efficiency columns answer.html shows when measured (first the ones present).
EFFICIENCY_METRICS = ("latency_ms_p50", "latency_ms_p95", "throughput_sps", "energy_j_per_sample", "peak_mem_mb")
_METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# Metrics with a known range: [0, 1] for accuracy-like scores, >= 0 for costs.
_UNIT_RE = re.compile(r"(accuracy|(^|_)(acc|f1|precision|recall|auc|auroc|iou|dice|top\d+)($|_))", re.I)
_NONNEG_RE = re.compile(
    r"((^|_)(latency|throughput|energy|time|mem|memory|duration|window|loss|mse|mae|rmse)($|_)|_s$|_ms$|_mb$|_sps$)", re.I
)

Objective = tuple[str, str]  # (metric, "max" | "min")


# ---------------------------------------------------------------------------- values


def py_value(v: Any) -> Any:
    """A cell as a plain JSON value: numpy scalars unboxed; NaN/NA (pandas' 'missing') -> None."""
    if v is None or isinstance(v, (str, bool, list, dict)):
        return v
    if type(v).__name__ in ("NAType", "NaTType"):
        return None
    if hasattr(v, "item") and not isinstance(v, (int, float)):
        try:
            v = v.item()
        except (AttributeError, ValueError):
            return v
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, tuple):
        return list(v)
    return v


def is_number(v: Any) -> bool:
    v = py_value(v)
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def param_cell(v: Any) -> str:
    """How a parameter value is written in every CSV and table: its JSON text, strings as-is.

    None -> ``null``, True -> ``true``, 0.001 -> ``0.001``, [1, 2] -> ``[1, 2]``, "a,b" -> ``a,b``
    (the CSV writer quotes it). Never blank: a blank cell would hide a ``null``.
    """
    v = py_value(v)
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def level_key(v: Any) -> str:
    """The identity of a parameter level: its canonical JSON (3 and 3.0 are one level)."""
    from snakesweep.grid import canonical_json

    v = py_value(v)
    try:
        return canonical_json(v)
    except (TypeError, ValueError):
        return json.dumps(str(v))


def level_sort_key(v: Any) -> tuple:
    """Deterministic order of mixed-type levels: numbers first by value, then the rest by JSON text."""
    v = py_value(v)
    if is_number(v):
        return (0, float(v), "")
    return (1, 0.0, json.dumps(v, sort_keys=True, default=str))


def sorted_levels(values: Iterable[Any]) -> list[Any]:
    """Distinct levels (by :func:`level_key`), in :func:`level_sort_key` order."""
    seen: dict[str, Any] = {}
    for v in values:
        seen.setdefault(level_key(v), py_value(v))
    return sorted(seen.values(), key=level_sort_key)


def parse_value(s: Any) -> Any:
    """A CSV parameter cell back to a JSON value where it reads as one (``null``, ``true``, 3,
    [1, 2]), else the string; used only when the plan (the typed source) is not available."""
    if not isinstance(s, str):
        return py_value(s)
    if s == "":
        return None
    if s in ("True", "False"):
        return s == "True"
    if s in ("null", "true", "false") or s[:1] in "[{-0123456789":
        try:
            return json.loads(s)
        except ValueError:
            pass
    try:
        return float(s) if s.lower() not in ("nan", "inf", "-inf", "infinity") else s
    except ValueError:
        return s


def to_float(value: Any) -> float | None:
    """A cell as a float; None for empty, unparsable, boolean or NaN cells."""
    value = py_value(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        f = float(value)
    else:
        s = str(value).strip()
        if not s or s in ("True", "False"):
            return None
        try:
            f = float(s)
        except ValueError:
            return None
    return None if math.isnan(f) else f


def config_params(param_names: Sequence[str]) -> list[str]:
    """The parameters that identify a configuration: every parameter except the seed."""
    return [p for p in param_names if p != SEED]


def config_id(params: Mapping[str, Any]) -> str:
    """Short, stable id of a configuration: a hash of the canonical JSON of its typed parameters.

    The ``seed`` key is ignored, so a trial's full params give its configuration's id. Missing
    values (None, NaN) are ``null``; numbers are normalised as in trial ids (3 == 3.0). collect
    writes this id into summary.csv's ``config_id`` column; configs.csv, pareto.csv and best.json
    use the same one, so the files join.
    """
    from snakesweep.grid import canonical_json

    canon = canonical_json({str(k): py_value(v) for k, v in params.items() if k != SEED})
    return hashlib.sha1(canon.encode()).hexdigest()[:8]


def check_objective(metric: str, direction: str) -> Objective:
    if not _METRIC_RE.match(metric or ""):
        raise ValueError(f"objective metric {metric!r} is not a metric column name")
    if direction not in ("max", "min"):
        raise ValueError(f"objective direction {direction!r}: use 'max' or 'min'")
    return (metric, direction)


def parse_objectives(spec: str) -> list[Objective]:
    """'energy_j_per_sample:min,latency_ms_p95:min' -> [(metric, direction), ...]."""
    out = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        metric, _, direction = part.rpartition(":")
        out.append(check_objective(metric, direction))
    return out


def known_range(metric: str, values: Iterable[float] = ()) -> tuple[float | None, float | None]:
    """A metric's known range from its name: [0, 1] for accuracy-like scores (accuracy, f1, auc,
    precision, recall, iou), [0, inf) for costs (latency, throughput, energy, time, memory,
    loss). A guess from a name is only trusted while every observed value lies inside it
    (an accuracy reported in percent gets no upper bound)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if _UNIT_RE.search(metric) and all(0.0 <= v <= 1.0 for v in vals):
        return (0.0, 1.0)
    if (_UNIT_RE.search(metric) or _NONNEG_RE.search(metric)) and all(v >= 0.0 for v in vals):
        return (0.0, None)
    return (None, None)


# ---------------------------------------------------------------------------- the typed summary


def _frame(data: Any) -> "pd.DataFrame":
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    return pd.DataFrame(list(data or []))


def _object_column(values: Iterable[Any]) -> "pd.Series":
    import pandas as pd

    return pd.Series([py_value(v) for v in values], dtype=object)


def summary_frame(
    summary: Any, param_names: Sequence[str], plan: Mapping | None = None, parse_text: bool = False
) -> "pd.DataFrame":
    """The summary with typed parameter columns (object dtype, None for null) and ``config_id``.

    ``summary`` is a DataFrame or a list of row dicts (collect's rows, or CSV rows). With a
    plan, each trial's parameters are taken from it by trial id: the plan holds their JSON
    types, which a CSV (and pandas' float inference: [3, None] -> [3.0, NaN]) loses. Cells of
    trials not in the plan are kept as they are (typed rows from collect), or, with
    ``parse_text`` (text read from a CSV), parsed with :func:`parse_value`. An existing ``config_id`` column
    (written by collect with :func:`config_id`) is kept so the files join; else it is added.
    """
    df = _frame(summary).copy()
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
        df[p] = _object_column(out)
    keys = config_params(param_names)
    have = "config_id" in df.columns and df["config_id"].map(lambda v: bool(py_value(v))).all()
    if not have:
        rows = df[keys].to_dict("records") if keys else [{}] * len(df)
        df["config_id"] = [config_id(r) for r in rows]
    return df


def read_summary(path: str | Path, plan: Mapping | None = None) -> "pd.DataFrame":
    """results/summary.csv as the typed summary (see :func:`summary_frame`); every cell is read
    as text first so nothing is guessed, then metrics are typed by :func:`metric_values`."""
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    return summary_frame(df, param_names_from(plan, df), plan, parse_text=True)


def metric_columns(summary: "pd.DataFrame", param_names: Sequence[str]) -> list[str]:
    """Every column that is neither bookkeeping nor a parameter."""
    skip = NON_METRIC_COLUMNS | set(param_names)
    return [c for c in summary.columns if c not in skip]


def metric_values(column: "pd.Series") -> "pd.Series":
    """A metric column as floats (NaN where missing, a label, a bool or not a number)."""
    import pandas as pd

    if column.dtype.kind in "iuf":
        return column.astype(float)
    cleaned = column.map(lambda v: None if isinstance(py_value(v), bool) or py_value(v) is None else v)
    return pd.to_numeric(cleaned, errors="coerce").astype(float)


def numeric_metrics(summary: "pd.DataFrame", metrics: Sequence[str]) -> list[str]:
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
        present = _object_column(present)
        if metric_values(present).notna().all():
            out.append(m)
    return out


def metrics_with_values(summary: "pd.DataFrame", param_names: Sequence[str]) -> list[str]:
    """The numeric metrics some ok trial produced: what a report can be made of."""
    return numeric_metrics(summary, metric_columns(summary, param_names))


# ---------------------------------------------------------------------------- configs.csv


def config_table(
    summary: Any,
    param_names: Sequence[str],
    confidence: float = CONFIDENCE,
    plan: Mapping | None = None,
) -> "pd.DataFrame":
    """Aggregate trials into one row per configuration (the seed removed), in first-trial order.

    Columns: ``config_id``, the typed parameters, ``n_seeds`` (planned trials), ``n_ok``,
    ``n_failed`` (failed or corrupt), ``n_pending`` (the rest); then for every *numeric* metric
    ``<m>_mean``, ``<m>_std``, ``<m>_ci_low``, ``<m>_ci_high`` over the ok trials only (failed
    trials are counted, never averaged); then ``ci_note``. A column empty in every row is left
    out (a metric no ok trial has, std where every configuration has one seed, ...).

    Intervals a reader can use: the two-sided t interval of the mean (seeds are few, so t, not
    normal), but

    * only from 3 ok values (``stats.MIN_N_FOR_CI``): with 2 the t quantile is 12.7 and an
      accuracy interval spans e.g. [-0.97, 1.57]. Below that the interval is empty and
      ``ci_note`` says "n too small";
    * clipped to the metric's known range (:func:`known_range`: accuracy-like in [0, 1], costs
      >= 0), and ``ci_note`` says which metric was clipped. Clipping removes only impossible
      values, so the interval covers no less than the t interval did.
    """
    import numpy as np
    import pandas as pd

    from snakesweep.stats import t_half_width

    df = summary_frame(summary, param_names, plan)
    keys = config_params(param_names)
    first = df.drop_duplicates("config_id")
    out = pd.DataFrame({"config_id": list(first["config_id"])})
    for k in keys:
        out[k] = _object_column(first[k])
    ids = out["config_id"]
    status = df["status"]
    by = df["config_id"]

    def per_config(series: "pd.Series") -> "np.ndarray":
        return series.groupby(by, sort=False).sum().reindex(ids).fillna(0).astype(int).to_numpy()

    out["n_seeds"] = per_config(pd.Series(1, index=df.index))
    out["n_ok"] = per_config(status == "ok")
    out["n_failed"] = per_config(status.isin(FAILED_STATUSES))
    out["n_pending"] = out["n_seeds"] - out["n_ok"] - out["n_failed"]

    ok = df[status == "ok"]
    small: dict[str, list[tuple[str, int]]] = {}
    clipped: dict[str, list[tuple[str, tuple]]] = {}
    for m in numeric_metrics(df, metric_columns(df, param_names)):
        vals = metric_values(ok[m])
        g = vals.groupby(ok["config_id"], sort=False)
        n = g.count().reindex(ids).fillna(0).to_numpy()
        mean = g.mean().reindex(ids).to_numpy(dtype=float)
        std = g.std(ddof=1).reindex(ids).to_numpy(dtype=float)
        half = t_half_width(np.nan_to_num(std), n, confidence)
        usable = n >= MIN_N_FOR_CI
        lo = np.where(usable, mean - half, np.nan)
        hi = np.where(usable, mean + half, np.nan)
        low, high = known_range(m, vals.dropna().tolist())
        with np.errstate(invalid="ignore"):
            cut = np.zeros(len(ids), dtype=bool)
            if low is not None:
                cut |= lo < low
                lo = np.where(lo < low, low, lo)
            if high is not None:
                cut |= hi > high
                hi = np.where(hi > high, high, hi)
        out[f"{m}_mean"], out[f"{m}_std"] = mean, np.where(n >= 2, std, np.nan)
        out[f"{m}_ci_low"], out[f"{m}_ci_high"] = lo, hi
        for cid, k, c in zip(ids, n, cut):
            if 0 < k < MIN_N_FOR_CI:
                small.setdefault(cid, []).append((m, int(k)))
            if c:
                clipped.setdefault(cid, []).append((m, (low, high)))
    out[CI_NOTE] = [_ci_note(small.get(cid, []), clipped.get(cid, [])) for cid in ids]
    fixed = {"config_id", *keys, *COUNT_COLUMNS}
    empty = [c for c in out.columns if c not in fixed and out[c].map(lambda v: py_value(v) in (None, "")).all()]
    return out.drop(columns=empty)


def _ci_note(small: list[tuple[str, int]], clipped: list[tuple[str, tuple]]) -> str:
    parts = []
    if small:
        ns = {k for _, k in small}
        if len(ns) == 1:
            parts.append(f"n too small for an interval ({ns.pop()} ok value(s); need >= {MIN_N_FOR_CI})")
        else:
            listed = ", ".join(f"{m} (n={k})" for m, k in small)
            parts.append(f"n too small for an interval: {listed}; need >= {MIN_N_FOR_CI}")
    for m, (low, high) in clipped:
        rng = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        parts.append(f"{m} interval clipped to its known range {rng}")
    return "; ".join(parts)


def config_rows(
    summary_rows: list[dict],
    param_names: list[str],
    metrics: list[str] | None = None,
    confidence: float = CONFIDENCE,
) -> list[dict]:
    """Deprecated: :func:`config_table` as a list of dicts, for collect until it calls
    :func:`write_configs`. ``metrics`` is ignored (numeric metrics are detected)."""
    df = summary_frame(summary_rows, param_names, parse_text=True)
    table = config_table(df, param_names, confidence)
    return [{k: py_value(v) for k, v in r.items()} for r in table.to_dict("records")]


def csv_text(table: "pd.DataFrame", param_names: Sequence[str] = ()) -> str:
    """A table as CSV text: parameters as :func:`param_cell`, missing values empty, floats
    with full precision (repr), labels as they are."""
    out = table.copy()
    params = set(param_names)
    for c in out.columns:
        if c in params or c in ("best_level",):
            out[c] = out[c].map(param_cell)
        elif out[c].dtype == object:
            out[c] = out[c].map(lambda v: "" if py_value(v) is None else (repr(v) if isinstance(py_value(v), float) else py_value(v)))
    return out.to_csv(index=False, na_rep="", lineterminator="\n", float_format=None)


def write_configs(summary: "pd.DataFrame", param_names: list[str], path: str | Path) -> "pd.DataFrame":
    """Write results/configs.csv from collect's summary DataFrame; return the (typed) table.

    ``summary``: one row per planned trial with ``trial``, ``status``, the parameters (typed
    values; build the columns with dtype=object so [3, None] does not become [3.0, NaN]),
    optionally ``config_id``, and the metrics. See :func:`config_table` for the columns and
    the interval rule. Atomic and umask-respecting, like every file the sweep writes.
    """
    table = config_table(summary, param_names)
    atomic_write_text(path, csv_text(table, param_names))
    return table


# ---------------------------------------------------------------------------- best.json


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def ranked_configs(configs: "pd.DataFrame", metric: str, direction: str) -> "pd.DataFrame":
    """Configurations with a mean for ``metric``, best first (stable for ties)."""
    col = f"{metric}_mean"
    if configs.empty or col not in configs.columns:
        return configs.iloc[0:0]
    has = configs[metric_values(configs[col]).notna()].copy()
    has["_m"] = metric_values(has[col])
    return has.sort_values("_m", ascending=(direction == "min"), kind="stable").drop(columns="_m")


def best_report(
    summary: Any,
    configs: Any,
    param_names: Sequence[str],
    objective: Objective,
    alpha: float = ALPHA,
    plan: Mapping | None = None,
) -> dict:
    """The best configuration by the objective's mean, the runner-up and whether the gap is real.

    The test is Welch's two-sided t-test over the per-seed objective values of the two
    configurations (ok trials only). ``significant`` is True only when both have at least two
    ok seeds and p < alpha; the ``verdict`` sentence says "not significant" otherwise. When no
    ok trial produced the objective, ``verdict`` and ``problem`` say so and
    ``available_metrics`` lists the metrics that do have values.
    """
    metric, direction = objective
    df = summary_frame(summary, param_names, plan)
    configs = _frame(configs)
    keys = config_params(param_names)
    ranked = ranked_configs(configs, metric, direction)
    ok = df[df["status"] == "ok"]
    values = metric_values(ok[metric]) if metric in ok.columns else None

    def seeds_of(cid: str) -> list[float]:
        if values is None:
            return []
        return [float(v) for v in values[ok["config_id"] == cid].dropna()]

    def describe(c: Mapping) -> dict:
        return {
            "config_id": c.get("config_id"),
            "params": {k: py_value(c.get(k)) for k in keys},
            "n_seeds": int(to_float(c.get("n_seeds")) or 0),
            "n_ok": int(to_float(c.get("n_ok")) or 0),
            "n_failed": int(to_float(c.get("n_failed")) or 0),
            "mean": to_float(c.get(f"{metric}_mean")),
            "std": to_float(c.get(f"{metric}_std")),
            "ci_low": to_float(c.get(f"{metric}_ci_low")),
            "ci_high": to_float(c.get(f"{metric}_ci_high")),
            "ci_note": py_value(c.get(CI_NOTE)) or None,
            "values": seeds_of(c.get("config_id")),
        }

    out: dict[str, Any] = {
        "schema_version": 2,
        "objective": {"metric": metric, "direction": direction},
        "confidence": CONFIDENCE,
        "alpha": alpha,
        "n_configs": len(configs),
        "n_configs_with_results": len(ranked),
        "best": None,
        "runner_up": None,
        "difference": None,
        "test": None,
        "significant": False,
        "verdict": "",
        "note": (
            "The best configuration is picked after looking at all of them, so the p-value of "
            "best versus runner-up is optimistic when many configurations were compared."
        ),
    }
    if ranked.empty:
        if ok.empty:
            out["verdict"] = f"no configuration has a result for {metric} yet (no trial finished ok)"
        else:
            have = metrics_with_values(df, param_names)
            out["available_metrics"] = have
            out["problem"] = out["verdict"] = (
                f"no trial produced the objective {metric} ({len(ok)} trial(s) finished ok); "
                f"metrics with values: {', '.join(have) or 'none'} "
                "(fix: set report.objective.metric to one of them)"
            )
        return out
    rows = ranked.to_dict("records")
    best = describe(rows[0])
    out["best"] = best
    if len(rows) == 1:
        out["verdict"] = (
            f"only one configuration has a result for {metric} "
            f"(mean {_fmt(best['mean'])}); nothing to compare it with"
        )
        return out
    runner = describe(rows[1])
    out["runner_up"] = runner
    diff = best["mean"] - runner["mean"]
    out["difference"] = diff
    w = welch_t_test(best["values"], runner["values"])
    out["test"] = {
        "name": "Welch's t-test (two-sided, unequal variances)",
        "t": w.t,
        "df": w.df,
        "p_value": w.p_value,
        "undefined_because": w.reason,
    }
    word = "higher" if direction == "max" else "lower"
    means = f"mean {_fmt(best['mean'])} vs {_fmt(runner['mean'])}"
    if w.p_value is None:
        out["verdict"] = (
            f"not significant: the test cannot be run ({w.reason}; best has {best['n_ok']} ok "
            f"seed(s), runner-up {runner['n_ok']}); {metric} {means}, so the ranking is not evidence"
        )
    elif w.p_value < alpha:
        out["significant"] = True
        out["verdict"] = (
            f"significant: config {best['config_id']} has a {word} {metric} than the runner-up "
            f"{runner['config_id']} ({means}, Welch p = {w.p_value:.3g} < {alpha})"
        )
    else:
        out["verdict"] = (
            f"not significant: config {best['config_id']} and the runner-up {runner['config_id']} "
            f"differ by {_fmt(abs(diff))} in {metric} ({means}, Welch p = {w.p_value:.3g} >= {alpha}); "
            "the difference is within seed noise"
        )
    return out


# ---------------------------------------------------------------------------- pareto.csv


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b: at least as good everywhere, strictly better somewhere (values as 'max')."""
    strictly = False
    for x, y in zip(a, b):
        if x < y:
            return False
        if x > y:
            strictly = True
    return strictly


def pareto_indices(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points; each coordinate maximised or minimised per direction.

    Points are sorted lexicographically best-first, so any point dominating another comes
    before it; dominance is transitive, so comparing each point against the front found so
    far suffices (O(n * front size)). Points equal in every objective are all kept.
    """
    signed = [tuple(v if d == "max" else -v for v, d in zip(p, directions)) for p in points]
    order = sorted(range(len(signed)), key=lambda i: signed[i], reverse=True)
    front: list[int] = []
    for i in order:
        if not any(_dominates(signed[j], signed[i]) for j in front):
            front.append(i)
    return sorted(front)


def pareto_objectives(objective: Objective, extra: Sequence[Objective]) -> list[Objective]:
    """The objectives of the front: ``report.objective`` plus ``report.extra_objectives``.

    No hidden default: without an extra objective there is no trade-off (one objective's
    "front" is just the best configuration), and the report says to set extra_objectives.
    """
    seen = {objective[0]}
    out = [objective]
    for e in extra:
        if e[0] not in seen:
            seen.add(e[0])
            out.append(e)
    return out


def effective_objectives(configs: Any, objective: Objective, extra: Sequence[Objective]) -> tuple[list[Objective], list[str]]:
    """The Pareto objectives that have a value at all, and the names of those left out.

    An extra objective no configuration has a mean for (energy where no counter was readable,
    latency in a sweep without a measure step) would empty the front: it is dropped, and
    named so the report can say so.
    """
    configs = _frame(configs)

    def has_values(metric: str) -> bool:
        col = f"{metric}_mean"
        return col in configs.columns and metric_values(configs[col]).notna().any()

    objs = pareto_objectives(objective, extra)
    kept = [objs[0], *(e for e in objs[1:] if has_values(e[0]))]
    dropped = [e[0] for e in objs[1:] if not has_values(e[0])]
    return kept, dropped


def pareto_fieldnames(param_names: Sequence[str], objectives: Sequence[Objective]) -> list[str]:
    cols = ["config_id", *config_params(param_names), "n_ok"]
    for m, _ in objectives:
        cols.extend(f"{m}_{s}" for s in ("mean", "ci_low", "ci_high"))
    return cols


def pareto_table(configs: Any, param_names: Sequence[str], objectives: Sequence[Objective]) -> "pd.DataFrame":
    """The non-dominated configurations by config means, best objective first.

    Needs at least two objectives (else: no rows). Configurations missing the mean of any
    objective cannot be placed and are left out. Columns: :func:`pareto_fieldnames`.
    """
    import pandas as pd

    configs = _frame(configs)
    cols = pareto_fieldnames(param_names, objectives)
    if len(objectives) < 2 or configs.empty:
        return pd.DataFrame(columns=cols)
    means = pd.DataFrame({m: metric_values(configs[f"{m}_mean"]) if f"{m}_mean" in configs.columns
                          else float("nan") for m, _ in objectives}, index=configs.index)
    usable = configs[means.notna().all(axis=1)]
    points = means.loc[usable.index].to_numpy().tolist()
    front = usable.iloc[pareto_indices(points, [d for _, d in objectives])].copy()
    m0, d0 = objectives[0]
    front = ranked_configs(front, m0, d0)
    out = pd.DataFrame(index=front.index)
    for c in cols:
        out[c] = front[c] if c in front.columns else float("nan")
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------- importance.csv

IMPORTANCE_FIELDS = ["parameter", "eta_squared", "n_levels", "n_configs", "best_level", "best_level_mean"]


def swept_params(configs: Any, param_names: Sequence[str]) -> list[str]:
    """Parameters (seed excluded) that take more than one value across the configurations."""
    configs = _frame(configs)
    return [k for k in config_params(param_names)
            if k in configs.columns and len({level_key(v) for v in configs[k]}) > 1]


def importance_table(configs: Any, param_names: Sequence[str], objective: Objective) -> "pd.DataFrame":
    """How much of the objective's variance across configurations each swept parameter explains.

    Method: one-way ANOVA eta squared on the configuration means. For parameter p, the
    configurations that have a mean for the objective are grouped by their value of p;
    eta^2 = SS_between / SS_total, where SS_total is the sum of squared deviations of the
    config means from their grand mean and SS_between that of the group means, weighted by
    group size. It lies in [0, 1]; each parameter is looked at on its own (marginally), so
    in an unbalanced grid correlated parameters share credit, and interactions are not
    attributed to either parameter. Seeds are not a factor: seed noise is averaged into the
    config means first. Rows sorted by eta^2, largest first; eta^2 is empty when undefined
    (fewer than two levels with results, or all means equal). ``best_level`` is typed
    (None for a ``null`` level); ties go to the first level in :func:`level_sort_key` order.
    """
    import pandas as pd

    from snakesweep.stats import eta_squared

    configs = _frame(configs)
    metric, direction = objective
    col = f"{metric}_mean"
    rows = []
    if col in configs.columns:
        means = metric_values(configs[col])
        usable = configs[means.notna()]
        umeans = means[means.notna()]
        for p in swept_params(configs, param_names):
            levels: dict[str, list[float]] = {}
            typed: dict[str, Any] = {}
            for v, m in zip(usable[p], umeans):
                levels.setdefault(level_key(v), []).append(float(m))
                typed.setdefault(level_key(v), py_value(v))
            eta = eta_squared(list(levels.values()))
            best_level, best_mean = None, None
            for key in sorted(levels, key=lambda k: level_sort_key(typed[k])):
                m = math.fsum(levels[key]) / len(levels[key])
                if best_mean is None or (m > best_mean if direction == "max" else m < best_mean):
                    best_level, best_mean = typed[key], m
            rows.append({"parameter": p, "eta_squared": eta, "n_levels": len(levels),
                         "n_configs": sum(len(v) for v in levels.values()),
                         "best_level": best_level, "best_level_mean": best_mean})
    rows.sort(key=lambda r: -1.0 if r["eta_squared"] is None else r["eta_squared"], reverse=True)
    table = pd.DataFrame(rows, columns=IMPORTANCE_FIELDS)
    table["best_level"] = _object_column(r["best_level"] for r in rows)
    return table


# ---------------------------------------------------------------------------- all reports at once


@dataclass
class Reports:
    """Everything the report rules write, computed once from the typed summary."""

    summary: "pd.DataFrame"
    param_names: list[str]
    steps: list[str]
    objective: Objective
    configs: "pd.DataFrame"
    best: dict
    objectives: list[Objective]
    dropped: list[str]
    pareto: "pd.DataFrame"
    importance: "pd.DataFrame"
    notes: list[str] = field(default_factory=list)
    # issue 10: the plan's search block (None for a grid), the trials in plan order (round, then
    # position: load_plan's order) and the round files chosen so far (halving/optuna)
    search: dict | None = None
    plan_trials: list[dict] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)


def param_names_from(plan: Mapping | None, summary: Any = None) -> list[str]:
    """Parameter names from the plan; else the summary's columns between ``status`` and the
    first known metric (a fallback for a missing plan)."""
    if plan and plan.get("param_names"):
        return list(plan["param_names"])
    cols = list(_frame(summary).columns) if summary is not None else []
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


def top_budget_scope(configs: "pd.DataFrame", search: Mapping, metric: str) -> tuple["pd.DataFrame", dict] | None:
    """Halving: the configurations at the largest budget where some configuration has a mean of
    ``metric`` (the top of the ladder once the search is done), and a description of that
    scope for best.json. None when the budget parameter is not a column (nothing to scope)."""
    param = search.get("budget_param")
    col = f"{metric}_mean"
    if not param or param not in configs.columns:
        return None
    ladder = list(search.get("ladder") or [])
    have = configs[metric_values(configs[col]).notna()] if col in configs.columns else configs.iloc[0:0]
    budgets = [to_float(v) for v in have[param]] if not have.empty else []
    budgets = [b for b in budgets if b is not None]
    if not budgets:
        return None
    top = max(budgets)
    scoped = configs[[to_float(v) == top for v in configs[param]]]
    top_of_ladder = to_float(ladder[-1]) if ladder else None
    value = int(top) if float(top).is_integer() else top
    done = top_of_ladder is None or top >= top_of_ladder
    text = (f"halving: ranked among the configurations trained at the top budget ({param} = {value:g})"
            if done else
            f"halving: the search has not reached the top budget ({param} = {ladder[-1]:g}) yet; ranked among "
            f"the configurations at the largest budget reached so far ({param} = {value:g})")
    scope = {"budget_param": param, "budget": value, "top_of_ladder": ladder[-1] if ladder else None,
             "complete": done, "n_configs": int(len(scoped)), "text": text}
    return scoped, scope


def compute_reports(summary: Any, plan: Mapping | None, objective: Objective, extra: Sequence[Objective],
                    rounds: Sequence[Mapping] = ()) -> Reports:
    """The typed summary -> configs, best, Pareto front and importance (no IO). `rounds`: a
    search's round files (:func:`load_rounds`), for the halving ladder."""
    names = param_names_from(plan, summary)
    df = summary_frame(summary, names, plan)
    configs = config_table(df, names)
    search = dict((plan or {}).get("search") or {}) or None
    scope = top_budget_scope(configs, search, objective[0]) if search and search.get("method") == "halving" else None
    if scope is not None:
        # halving: a 1-epoch score is no rival of a 27-epoch one (module docstring)
        best = best_report(df, scope[0], names, objective)
        best["scope"] = scope[1]
        best["verdict"] = f"{scope[1]['text']}: {best['verdict']}"
    else:
        best = best_report(df, configs, names, objective)
    objs, dropped = effective_objectives(configs, objective, extra)
    notes = []
    if not extra:
        notes.append("no trade-off requested: the Pareto front needs report.extra_objectives "
                     "(e.g. {metric: latency_ms_p95, direction: min}); pareto.csv has its header only")
    elif dropped:
        notes.append(f"left out of the Pareto front because no configuration has a value: {', '.join(dropped)}")
    return Reports(
        summary=df, param_names=names, steps=list((plan or {}).get("steps") or ["train", "eval", "measure"]),
        objective=objective, configs=configs, best=best, objectives=objs, dropped=dropped,
        pareto=pareto_table(configs, names, objs), importance=importance_table(configs, names, objective),
        notes=notes, search=search, plan_trials=list((plan or {}).get("trials") or []), rounds=list(rounds),
    )


# ---------------------------------------------------------------------------- a search (issue 10)

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
    from snakesweep.plan import chosen_rounds

    return chosen_rounds(Path(plan_path).parent, search)


def _config_key(params: Mapping, drop: Iterable[str]) -> str:
    from snakesweep.grid import canonical_json

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


# ---------------------------------------------------------------------------- answer.html

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2933;margin:1.2em;max-width:70em;line-height:1.45}
h1{font-size:1.35em;margin:.2em 0 .6em} h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #d9e2ec;padding-bottom:.2em}
.verdict{padding:.7em 1em;border-radius:6px;font-size:1.02em}
.sig{background:#e3f9e5;border-left:5px solid #3f9142} .nosig{background:#fffbea;border-left:5px solid #de911d}
.problem{background:#ffe3e3;border-left:5px solid #cf1124;padding:.5em 1em;border-radius:6px}
table{border-collapse:collapse;font-size:.9em;margin:.3em 0} th,td{padding:.25em .7em;text-align:right;border-bottom:1px solid #e4e7eb}
th{background:#f0f4f8;font-weight:600} td.l,th.l{text-align:left} tr.best td{font-weight:600;background:#f7fcf7}
.bar{display:inline-block;height:.75em;background:#486581;vertical-align:middle;margin-right:.4em}
.muted{color:#627d98;font-size:.88em} code{background:#f0f4f8;padding:0 .25em;border-radius:3px}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #e4e7eb} figcaption{color:#627d98;font-size:.88em}
"""


def _h(x: Any) -> str:
    return _html.escape("" if x is None else str(x))


def _hp(x: Any) -> str:
    """A parameter value for HTML: its :func:`param_cell` text (``null`` for None), escaped."""
    return _html.escape(param_cell(x))


def _num(x: Any, digits: int = 4) -> str:
    f = to_float(x)
    return "" if f is None else f"{f:.{digits}g}"


def _ci(c: Mapping, metric: str) -> str:
    lo, hi = to_float(c.get(f"{metric}_ci_low")), to_float(c.get(f"{metric}_ci_high"))
    return "" if lo is None or hi is None else f"[{lo:.4g}, {hi:.4g}]"


PLOT_NAMES = ("objective_vs_params", "heatmap", "pareto", "training_curves")  # every sweep's
PLOT_TITLES = {
    "objective_vs_params": "The objective against each swept parameter",
    "heatmap": "The objective over the two most important parameters",
    "pareto": "The Pareto front",
    "training_curves": "Training curves",
    # a search's own figure (search_plot_name), only for that method
    "halving_ladder": "Successive halving: each configuration's score per budget, until it was stopped",
    "search_progress": "The objective against trial order, with the best so far",
}


def render_answer_html(rep: Reports, plots: Mapping[str, str | Path] | None = None, max_configs: int = 50) -> str:
    """One self-contained HTML page (inline CSS, escaped values, plots as base64 PNGs) for the
    Snakemake report: the verdict, best vs runner-up, importance, Pareto front, the ranking with
    the efficiency columns that were measured, and the plots."""
    best, configs, names = rep.best, rep.configs, rep.param_names
    metric, direction = rep.objective
    swept = swept_params(configs, names) or config_params(names)
    fixed = [k for k in config_params(names) if k not in swept]
    word = "higher" if direction == "max" else "lower"
    crow = configs.to_dict("records")
    eff = [m for m in EFFICIENCY_METRICS if m != metric and f"{m}_mean" in configs.columns]
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep answer</title><style>{_CSS}</style></head><body>"]
    out.append(f"<h1>Which configuration is best by <code>{_h(metric)}</code> ({word} is better)?</h1>")
    cls = "problem" if best.get("problem") else "sig" if best.get("significant") else "nosig"
    out.append(f"<p class='verdict {cls}'>{_h(best.get('verdict'))}</p>")
    if fixed and crow:
        fixed_txt = ", ".join(f"{_h(k)}={_hp(crow[0].get(k))}" for k in fixed)
        out.append(f"<p class='muted'>Same in every configuration: {fixed_txt}.</p>")

    def head(extra: Sequence[str] = ()) -> str:
        cells = "".join(f"<th class='l'>{_h(k)}</th>" for k in swept)
        return f"<tr><th class='l'>config</th>{cells}{''.join(f'<th>{_h(e)}</th>' for e in extra)}</tr>"

    def params_cells(params: Mapping) -> str:
        return "".join(f"<td class='l'>{_hp(params.get(k))}</td>" for k in swept)

    by_id = {c.get("config_id"): c for c in crow}
    pair = [(lbl, best.get(key)) for lbl, key in (("best", "best"), ("runner-up", "runner_up")) if best.get(key)]
    if pair:
        out.append("<h2>Best and runner-up</h2><table>")
        out.append(head(["ok / planned seeds", "mean", "95% CI", "std", "per-seed values", *(f"{m} mean" for m in eff)]))
        for lbl, b in pair:
            vals = ", ".join(f"{v:.4g}" for v in b.get("values") or [])
            ci = "" if b.get("ci_low") is None else f"[{b['ci_low']:.4g}, {b['ci_high']:.4g}]"
            ci = ci or f"<span class='muted'>{_h(b.get('ci_note') or '')}</span>"
            c = by_id.get(b.get("config_id"), {})
            out.append(
                f"<tr class='{'best' if lbl == 'best' else ''}'><td class='l'>{_h(lbl)} <span class='muted'>{_h(b.get('config_id'))}</span></td>"
                f"{params_cells(b.get('params') or {})}<td>{b.get('n_ok')} / {b.get('n_seeds')}</td>"
                f"<td>{_num(b.get('mean'))}</td><td>{ci}</td><td>{_num(b.get('std'), 3)}</td><td>{_h(vals)}</td>"
                + "".join(f"<td>{_num(c.get(f'{m}_mean'))}</td>" for m in eff) + "</tr>"
            )
        out.append("</table>")
        test = best.get("test") or {}
        if test:
            if test.get("p_value") is not None:
                out.append(
                    f"<p class='muted'>{_h(test.get('name'))}: t = {to_float(test.get('t')):.2f}, df = {to_float(test.get('df')):.1f}, "
                    f"p = {_num(test.get('p_value'), 3)} (alpha {best.get('alpha')}). {_h(best.get('note'))}</p>"
                )
            else:
                out.append(f"<p class='muted'>{_h(test.get('name'))}: undefined ({_h(test.get('undefined_because'))}).</p>")

    out += search_html(rep, max_configs)

    out.append(f"<h2>Which parameters matter? (eta squared of {_h(metric)} over configuration means)</h2>")
    if not rep.importance.empty:
        out.append("<table><tr><th class='l'>parameter</th><th class='l'>eta squared</th><th>levels</th>"
                   "<th class='l'>best level</th><th>its mean</th></tr>")
        for r in rep.importance.to_dict("records"):
            eta = to_float(r.get("eta_squared"))
            bar = f"<span class='bar' style='width:{eta * 12:.2f}em'></span>{eta:.2f}" if eta is not None else "undefined"
            out.append(f"<tr><td class='l'>{_h(r.get('parameter'))}</td><td class='l'>{bar}</td><td>{_h(r.get('n_levels'))}</td>"
                       f"<td class='l'>{_hp(r.get('best_level'))}</td><td>{_num(r.get('best_level_mean'))}</td></tr>")
        out.append("</table>")
    elif best.get("best") is None:
        out.append(f"<p class='muted'>Nothing to rank without values of {_h(metric)}.</p>")
    else:
        out.append("<p class='muted'>No parameter is swept (only seeds), so there is nothing to rank.</p>")

    objs = rep.objectives
    names_txt = ", ".join(f"{m} ({d})" for m, d in objs)
    out.append(f"<h2>Trade-offs: the Pareto front over {_h(names_txt)}</h2>")
    if len(objs) < 2:
        out.append("<p class='muted'>No trade-off to show: set <code>report.extra_objectives</code> "
                   "(e.g. <code>{metric: latency_ms_p95, direction: min}</code>) to get a Pareto front.</p>")
    elif not rep.pareto.empty:
        out.append("<table>" + head([f"{m} mean" for m, _ in objs]))
        for r in rep.pareto.to_dict("records"):
            out.append(f"<tr><td class='l'>{_h(r.get('config_id'))}</td>{params_cells(r)}"
                       + "".join(f"<td>{_num(r.get(f'{m}_mean'))}</td>" for m, _ in objs) + "</tr>")
        out.append("</table>")
    else:
        out.append("<p class='muted'>No configuration has every objective yet.</p>")
    if rep.dropped:
        out.append(f"<p class='muted'>Left out of the front because no configuration has a value: "
                   f"{_h(', '.join(rep.dropped))} (not measured in this sweep; see summary.csv).</p>")

    ranked = ranked_configs(configs, metric, direction).to_dict("records")
    missing = len(crow) - len(ranked)
    if ranked:
        out.append(f"<h2>All configurations by {_h(metric)}"
                   + (f" (top {max_configs} of {len(ranked)})" if len(ranked) > max_configs else "") + "</h2>")
        out.append("<table>" + head(["ok / planned", "failed", "mean", "95% CI", *(f"{m} mean" for m in eff)]))
        best_id = (best.get("best") or {}).get("config_id")
        for c in ranked[:max_configs]:
            ci = _ci(c, metric) or f"<span class='muted'>{_h(c.get(CI_NOTE) or '')}</span>"
            out.append(f"<tr class='{'best' if c.get('config_id') == best_id else ''}'><td class='l'>{_h(c.get('config_id'))}</td>"
                       f"{params_cells(c)}<td>{_h(c.get('n_ok'))} / {_h(c.get('n_seeds'))}</td><td>{_h(c.get('n_failed'))}</td>"
                       f"<td>{_num(c.get(f'{metric}_mean'))}</td><td>{ci}</td>"
                       + "".join(f"<td>{_num(c.get(f'{m}_mean'))}</td>" for m in eff) + "</tr>")
        out.append("</table>")
    if missing:
        out.append(f"<p class='muted'>{missing} configuration(s) have no {_h(metric)} "
                   "(their seeds failed, are pending, or did not report it); results/configs.csv lists them.</p>")
    out.append(f"<p class='muted'>Intervals: two-sided 95% t intervals over ok seeds, only from {MIN_N_FOR_CI} "
               "ok values, clipped to a metric's known range (see results/configs.csv, column ci_note).</p>")
    for note in rep.notes:
        out.append(f"<p class='muted'>{_h(note)}</p>")
    shown = [(n, Path(p)) for n, p in (plots or {}).items() if p and Path(p).is_file()]
    if shown:
        out.append("<h2>Plots</h2>")
        for name, path in shown:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{_h(name)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{_h(PLOT_TITLES.get(name, name))} ({_h(path.name)})</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def search_html(rep: Reports, max_rows: int = 50) -> list[str]:
    """answer.html's search section (nothing for a grid): the halving ladder as a table, or for
    random/sobol/optuna where the best so far was found."""
    search = rep.search or {}
    method = search.get("method")
    if not method:
        return []
    metric, direction = rep.objective
    out: list[str] = []
    if method == "halving":
        ladder = halving_ladder(rep)
        param = search.get("budget_param") or "budget"
        budgets = list(search.get("ladder") or [])
        out.append("<h2>Successive halving: which configurations were stopped when</h2>")
        if not ladder:
            out.append("<p class='muted'>No round has been chosen yet (results/plan/rounds/).</p>")
            return out
        keys = sorted({k for e in ladder for k in e["params"]})
        shown = [k for k in keys if len({level_key(e["params"].get(k)) for e in ladder}) > 1] or keys
        counts = [sum(any(st["round"] == r for st in e["steps"]) for e in ladder) for r in range(len(budgets))]
        out.append(f"<p class='muted'>{_h(metric)} ({'higher' if direction == 'max' else 'lower'} is better), "
                   f"mean over seeds, per round; {_h(param)} ladder {' &rarr; '.join(f'{b:g}' for b in budgets)}; "
                   f"configurations per round {' &rarr; '.join(str(c) for c in counts[:len(rep.rounds)])}"
                   f" ({len(rep.rounds)} of {len(budgets)} rounds chosen; eta {_h(search.get('eta'))}). "
                   "Bold: promoted to the next round; struck through: stopped there.</p>")
        out.append("<table><tr>" + "".join(f"<th class='l'>{_h(k)}</th>" for k in shown)
                   + "".join(f"<th>{_h(param)} = {b:g}</th>" for b in budgets) + "<th class='l'>outcome</th></tr>")
        for e in ladder[:max_rows]:
            by_round = {st["round"]: st for st in e["steps"]}
            cells = []
            for r in range(len(budgets)):
                st = by_round.get(r)
                if st is None:
                    cells.append("<td></td>")
                    continue
                o, sc = st["outcome"], _num(st["score"])
                text = {"failed": "failed", "pending": "running"}.get(o, sc or "n/a")
                if o == "promoted":
                    text = f"<b>{text}</b>"
                elif o == "stopped":
                    text = f"<s>{text}</s>"
                cells.append(f"<td title='{_h(o)}'>{text}</td>")
            cls = "best" if e["outcome"] == "winner" else ""
            out.append(f"<tr class='{cls}'>" + "".join(f"<td class='l'>{_hp(e['params'].get(k))}</td>" for k in shown)
                       + "".join(cells) + f"<td class='l'>{_h(e['text'])}</td></tr>")
        out.append("</table>")
        if len(ladder) > max_rows:
            out.append(f"<p class='muted'>{len(ladder) - max_rows} more configuration(s) stopped earlier: "
                       "results/plan/rounds/round_*.json lists every verdict.</p>")
        return out
    progress = search_progress(rep)
    ok = [p for p in progress if p["value"] is not None]
    rounds = {p["round"] for p in progress}
    out.append(f"<h2>The search: {_h(method)}, {len(progress)} trials"
               + (f" in {len(rounds)} rounds" if len(rounds) > 1 else "") + "</h2>")
    if not ok:
        out.append(f"<p class='muted'>No trial has a value of {_h(metric)} yet.</p>")
        return out
    best = ok[-1]["best"]
    first = next(p for p in ok if p["value"] == best)
    out.append(f"<p class='muted'>The best {_h(metric)} per trial so far, {_num(best)}, was first reached at trial "
               f"{first['n']} of {len(progress)} (round {_h(first['round'])}); {len(ok)} trial(s) ok. "
               "The figure <i>search_progress</i> shows every trial's value and the best so far, in the order "
               "the search chose them.</p>")
    return out


# ---------------------------------------------------------------------------- IO


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic, umask-respecting (see results.atomic_write_bytes); no fsync: reports are redone."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=False)


def write_table(path: str | Path, table: "pd.DataFrame", param_names: Sequence[str] = ()) -> None:
    atomic_write_text(path, csv_text(table, param_names))


def _clean_json(o: Any) -> Any:
    o = py_value(o)
    if isinstance(o, float) and math.isinf(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_json(v) for v in o]
    return o


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean_json(obj), indent=2, default=str) + "\n")


def load_plan(path: str | Path | None) -> dict | None:
    """The plan as :func:`snakesweep.plan.load_plan` reads it: for halving/optuna, with the trials
    of the rounds chosen so far (trials.json alone has none of them). None without a plan."""
    if not path or not Path(path).exists():
        return None
    from snakesweep.plan import load_plan as load

    return load(path)


def read_csv(path: str | Path) -> list[dict]:
    """A CSV as text rows (for tests and tools; the reports read through pandas)."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- problems


def problems_path(results: str | Path, rule: str) -> Path:
    """Where a report rule records the outputs it could not make: results/report/problems.<rule>.json."""
    return Path(results) / "report" / f"problems.{rule}.json"


def results_dir_of(output: str | Path) -> Path:
    """results/ from one of its report outputs (results/best.json, results/plots/x.png, ...)."""
    p = Path(output).parent
    return p.parent if p.name in ("plots", "report") else p


@dataclass
class Problems:
    """The outputs a report rule could not make, and why; always written (empty when all is
    well), so a problem from an earlier run never outlives its cause."""

    rule: str
    path: Path
    items: list[dict] = field(default_factory=list)

    def add(self, output: str | Path, message: str) -> None:
        self.items.append({"rule": self.rule, "output": str(output), "message": message})
        print(f"{self.rule}: {output}: {message}", file=sys.stderr)

    def write(self) -> None:
        write_json(self.path, {"rule": self.rule, "problems": self.items})


def _reason(err: BaseException) -> str:
    tail = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    where = f" (at {Path(tail[0].filename).name}:{tail[0].lineno})" if tail else ""
    return f"{type(err).__name__}: {err}{where}"


def placeholder(path: str | Path, message: str) -> None:
    """Replace an output that could not be made by a file that says why (so no stale file from an
    earlier sweep stays in its place, and the rule's outputs exist)."""
    p = Path(path)
    text = f"report could not be made: {message}"
    if p.suffix == ".png":
        atomic_write_bytes(p, message_png(), fsync=False)
    elif p.suffix == ".json":
        write_json(p, {"schema_version": 2, "problem": text})
    elif p.suffix == ".csv":
        atomic_write_text(p, csv_text(_frame([{"report_problem": text}])))
    else:
        atomic_write_text(p, f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep answer</title></head>"
                             f"<body><p>{_h(text)}</p></body></html>\n")


def message_png() -> bytes:
    """A small valid PNG (grey bar) for when matplotlib itself cannot draw: standard library only."""
    import struct
    import zlib

    w, h = 240, 24
    raw = b"".join(b"\x00" + bytes([200, 200, 200]) * w for _ in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def guarded(problems: Problems, output: str | Path, make: Callable[[], Any]) -> Any:
    """Run `make` (which writes `output`); on any error, record it and write a placeholder."""
    try:
        return make()
    except Exception as err:  # noqa: BLE001 - a report must never fail the sweep
        problems.add(output, _reason(err))
        try:
            placeholder(output, _reason(err))
        except Exception:  # noqa: BLE001 - then at least no stale file
            try:
                Path(output).unlink(missing_ok=True)
            except OSError:
                pass
        return None


def read_problems(results: str | Path = "results") -> list[dict]:
    out: list[dict] = []
    for f in sorted((Path(results) / "report").glob("problems.*.json")):
        try:
            out.extend(json.loads(f.read_text()).get("problems") or [])
        except (OSError, ValueError, AttributeError):
            out.append({"rule": f.stem, "output": str(f), "message": "unreadable problems file"})
    return out


def report_problem_lines(results: str | Path = "results") -> list[str]:
    """The lines an onsuccess/onerror handler prints when a report could not be made (empty when
    every report was made): which report, and why. The trials are not the cause."""
    items = read_problems(results)
    if not items:
        return []
    lines = [f"snakesweep: {len(items)} report output(s) could not be made (the trials are not affected; "
             "each file now says why):"]
    lines += [f"  {i.get('output')} ({i.get('rule')}): {i.get('message')}" for i in items]
    return lines


# ---------------------------------------------------------------------------- workflow helpers


def report_targets(wildcards: Any = None, results: str = "results", search: str | None = None) -> list[str]:
    """Every file the report rules make (also usable as a Snakemake input function); `search`
    (the search method) adds its figure (:func:`search_plot_name`; none for a grid)."""
    extra = search_plot_name(search)
    return [
        f"{results}/best.json",
        f"{results}/pareto.csv",
        f"{results}/importance.csv",
        f"{results}/report/answer.html",
        *(f"{results}/plots/{name}.png" for name in PLOT_NAMES),
        *([f"{results}/plots/{extra}.png"] if extra else []),
    ]


def search_plot_output(method: str | None, results: str = "results") -> dict[str, str]:
    """For report.smk: ``{"search": path}`` of a search's figure, {} for a grid (the rule's
    outputs are fixed at parse time; a grid sweep gets no figure it has no use for)."""
    name = search_plot_name(method)
    return {"search": f"{results}/plots/{name}.png"} if name else {}


def report_settings_params(config: dict) -> dict[str, str]:
    """The report settings of a Snakemake config as validated command-line strings.

    Metric names must be column names (letters, digits, '_' and '.'), directions 'max' or
    'min'; anything else raises ValueError, so the rule never hands odd text to the shell.
    """
    rep = (config or {}).get("report") or {}
    obj = rep.get("objective") or {}
    objective = check_objective(obj.get("metric", "eval_accuracy"), obj.get("direction", "max"))
    extra = [check_objective(e.get("metric", ""), e.get("direction", "min")) for e in rep.get("extra_objectives") or []]
    return {
        "objective": objective[0],
        "direction": objective[1],
        "extra": ", ".join(f"{m}:{d}" for m, d in extra),
    }


def workflow_report_settings(config: dict, known_metrics: Sequence[str] = ()) -> dict[str, str]:
    """:func:`report_settings_params` for the Snakefile: a bad name ends the run with one
    readable message (no traceback); a metric not among ``known_metrics`` gets a warning,
    since measurement may add columns the list does not know."""
    try:
        params = report_settings_params(config)
    except ValueError as err:
        print(f"snakesweep: invalid report settings: {err}", file=sys.stderr)
        sys.exit(1)
    if known_metrics:
        names = [params["objective"], *(m for m, _ in parse_objectives(params["extra"]))]
        unknown = [n for n in names if n not in known_metrics]
        if unknown:
            print(
                f"snakesweep: warning: report metric(s) {', '.join(unknown)} are not among the known "
                f"metrics ({', '.join(known_metrics)}); if no trial produces them, the report says so",
                file=sys.stderr,
            )
    return params


def report_command_args(settings: Mapping[str, str], results: str = "results",
                        search: str | None = None) -> tuple[list[str], list[str]]:
    """The argument lists of `python -m snakesweep.report` and `python -m snakesweep.plots`,
    as the report rules pass them (answer.html is made by the plots, which it embeds);
    `search`: the search method, whose figure is drawn with --out-search."""
    r = Path(results)
    common = ["--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"),
              "--plan", str(r / "plan" / "trials.json"), "--objective", settings["objective"],
              "--direction", settings["direction"], f"--extra={settings.get('extra', '')}"]
    tables = [*common, "--best", str(r / "best.json"), "--pareto", str(r / "pareto.csv"),
              "--importance", str(r / "importance.csv")]
    plots = [*common, "--trials-dir", str(r / "trials"), "--html", str(r / "report" / "answer.html"),
             *(x for name, f in zip(("objective", "heatmap", "pareto", "curves"), PLOT_NAMES)
               for x in (f"--out-{name}", str(r / "plots" / f"{f}.png")))]
    extra = search_plot_name(search)
    if extra:
        plots += ["--out-search", str(r / "plots" / f"{extra}.png")]
    return tables, plots


def plan_search_method(results: str | Path = "results") -> str | None:
    """The search method of the plan on disk (None for a grid or without a plan)."""
    try:
        search = json.loads(Path(results, "plan", "trials.json").read_text()).get("search") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return search.get("method") if isinstance(search, dict) else None


def write_reports_after_failure(settings: dict[str, str], results: str = "results", logs: str = "logs") -> list[str]:
    """For the workflow's ``onerror`` handler, after ``collect`` wrote the partial CSVs.

    Runs this module and ``snakesweep.plots`` as child processes (argument lists, no shell;
    matplotlib stays out of the Snakemake process), logging to logs/report/*.onerror.log.
    The old report files are removed first, and any a child could not write is replaced by a
    file saying why (recorded in results/report/problems.onerror.json): no stale report from
    an earlier sweep survives. Returns the report files that exist afterwards; never raises.
    """
    import subprocess

    r = Path(results)
    if not (r / "summary.csv").exists():
        return []
    search = plan_search_method(results)
    targets = report_targets(results=results, search=search)
    problems = Problems("onerror", problems_path(results, "onerror"))
    try:
        for t in targets:
            Path(t).unlink(missing_ok=True)
        tables, plots = report_command_args(settings, results, search)
        Path(logs, "report").mkdir(parents=True, exist_ok=True)
        for module, args in (("snakesweep.report", tables), ("snakesweep.plots", plots)):
            log_path = Path(logs, "report", f"{module.split('.')[1]}.onerror.log")
            try:
                with open(log_path, "w") as log:
                    done = subprocess.run([sys.executable, "-m", module, *args], stdout=log,
                                          stderr=subprocess.STDOUT, timeout=600, check=False)
                if done.returncode != 0:
                    problems.add(module, f"exited with status {done.returncode} (log: {log_path})")
            except (OSError, subprocess.SubprocessError) as err:
                problems.add(module, f"{_reason(err)} (log: {log_path})")
        for t in targets:
            if not Path(t).exists():
                problems.add(t, "not written by the report (see logs/report/*.onerror.log)")
                placeholder(t, "not written by the report (see logs/report/*.onerror.log)")
        problems.write()
    except Exception as err:  # noqa: BLE001 - never mask the original failure
        print(f"snakesweep: reports after failure: {_reason(err)}", file=sys.stderr)
    return [t for t in targets if Path(t).exists()]


# ---------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """best.json, pareto.csv, importance.csv (and answer.html without plots if --html is given).

    Exits 0 whenever the arguments are valid: an output that cannot be made is replaced by a
    file saying why and recorded in results/report/problems.report_tables.json.
    """
    ap = argparse.ArgumentParser(prog="python -m snakesweep.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--summary", required=True)
    ap.add_argument("--configs", help="accepted for the rule's dependency; configs are recomputed from the summary")
    ap.add_argument("--plan")
    ap.add_argument("--objective", required=True, help="metric column, e.g. eval_accuracy")
    ap.add_argument("--direction", required=True, choices=["max", "min"])
    ap.add_argument("--extra", default="", help="comma-separated metric:direction pairs")
    ap.add_argument("--best", required=True)
    ap.add_argument("--pareto", required=True)
    ap.add_argument("--importance", required=True)
    ap.add_argument("--html", help="also write answer.html (without plots; snakesweep.plots --html embeds them)")
    ap.add_argument("--problems", help="default: results/report/problems.report_tables.json")
    args = ap.parse_args(argv)

    objective = check_objective(args.objective, args.direction)
    extra = parse_objectives(args.extra)
    outputs = [args.best, args.pareto, args.importance, *([args.html] if args.html else [])]
    problems = Problems("report_tables", Path(args.problems or problems_path(results_dir_of(args.best), "report_tables")))
    try:
        plan = load_plan(args.plan)
        rep = compute_reports(read_summary(args.summary, plan), plan, objective, extra, load_rounds(args.plan, plan))
    except Exception as err:  # noqa: BLE001
        for out in outputs:
            problems.add(out, _reason(err))
            placeholder(out, _reason(err))
        problems.write()
        return 0
    if rep.best.get("problem"):
        problems.add(args.best, rep.best["problem"])
    guarded(problems, args.best, lambda: write_json(args.best, rep.best))
    guarded(problems, args.pareto, lambda: write_table(args.pareto, rep.pareto, rep.param_names))
    guarded(problems, args.importance, lambda: write_table(args.importance, rep.importance))
    if args.html:
        guarded(problems, args.html, lambda: atomic_write_text(args.html, render_answer_html(rep)))
    problems.write()
    for note in rep.notes:
        print(f"report: {note}", file=sys.stderr)
    print(f"report: {len(rep.configs)} configurations; {rep.best['verdict']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
