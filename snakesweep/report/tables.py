"""The report's tables, computed once from the typed summary (:func:`compute_reports`):

* configs.csv (:func:`config_table`): one row per configuration (the seed removed), counts and
  for every numeric metric mean, std and a usable 95% interval;
* best.json (:func:`best_report`): best vs runner-up by the objective's mean, Welch's t-test;
  for halving, ranked only at the largest budget reached (:func:`top_budget_scope`);
* pareto.csv (:func:`pareto_table`) over ``report.objective`` plus ``report.extra_objectives``;
* importance.csv (:func:`importance_table`): one-way ANOVA eta squared per swept parameter."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakesweep.measure import CYCLE_CI_NOTE, CYCLE_INDEX_KEYS, CYCLE_STAT_SUFFIXES, FACT_KEYS
from snakesweep.results import atomic_write_text
from snakesweep.stats import MIN_N_FOR_CI, welch_from_stats, welch_t_test
from snakesweep.table import csv_text, py_value

from .frame import (
    FAILED_STATUSES,
    as_frame,
    metric_columns,
    metric_matrix,
    metric_values,
    metrics_with_values,
    numeric_block,
    object_column,
    param_names_from,
    summary_frame,
)
from .values import Objective, config_params, known_range, level_key, level_sort_key, to_float

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


STAT_SUFFIXES = ("mean", "std", "ci_low", "ci_high")
COUNT_COLUMNS = ("n_seeds", "n_ok", "n_failed", "n_pending")
CI_NOTE = "ci_note"
# the most metrics a note (ci_note, a verdict) names one by one; more are counted, not listed
NOTE_METRICS = 50
# summary.csv columns that are kept per configuration as they are, never averaged: a workload's
# exact facts (param_count, ...) and the number of measurement cycles per trial. The value is the
# one every ok trial of the configuration agrees on (empty where they disagree).
KEPT_COLUMNS = (*FACT_KEYS, "cycles")
# a trial's own cycle statistics of a metric m (measure.aggregate_cycles): m_std, m_ci_low,
# m_ci_high, and the note; the cycle index. None of them is a metric to average.
CYCLE_SUFFIXES = tuple(f"_{s}" for s in CYCLE_STAT_SUFFIXES)


def cycle_stat_columns(columns: Sequence[str]) -> set[str]:
    """The columns of ``columns`` that are a trial's statistics, not metrics: ``<m>_std`` beside a
    column ``m``, every ``*_ci_low`` / ``*_ci_high`` (interval bounds are never averaged), the
    cycle note and the cycle index."""
    cols = set(columns)
    out = {c for c in cols if c.endswith(("_ci_low", "_ci_high"))}
    out |= {c for c in cols if c.endswith("_std") and c.removesuffix("_std") in cols}
    return out | ({CYCLE_CI_NOTE, *CYCLE_INDEX_KEYS} & cols)


def cycle_metrics(columns: Sequence[str]) -> set[str]:
    """Metrics with per-trial cycle statistics (a ``<m>_ci_low`` column beside ``m``)."""
    cols = set(columns)
    return {c for c in cols if f"{c}_ci_low" in cols and f"{c}_std" in cols}
CONFIDENCE = 0.95
ALPHA = 0.05


# ---------------------------------------------------------------------------- configs.csv


def config_table(
    summary: Any,
    param_names: Sequence[str],
    confidence: float = CONFIDENCE,
    plan: Mapping | None = None,
) -> pd.DataFrame:
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
    import pandas as pd

    df = summary_frame(summary, param_names, plan)
    keys = config_params(param_names)
    first = df.drop_duplicates("config_id")
    out = pd.DataFrame({"config_id": list(first["config_id"])})
    for k in keys:
        out[k] = object_column(first[k])
    ids = out["config_id"]
    status = df["status"]
    by = df["config_id"]

    def per_config(series: pd.Series) -> np.ndarray:
        return series.groupby(by, sort=False).sum().reindex(ids).fillna(0).astype(int).to_numpy()

    out["n_seeds"] = per_config(pd.Series(1, index=df.index))
    out["n_ok"] = per_config(status == "ok")
    out["n_failed"] = per_config(status.isin(FAILED_STATUSES))
    out["n_pending"] = out["n_seeds"] - out["n_ok"] - out["n_failed"]

    ok = df[status == "ok"]
    all_metrics = metric_columns(df, param_names)
    stats_cols = cycle_stat_columns(all_metrics)
    kept = [c for c in all_metrics if c in KEPT_COLUMNS]
    for c in kept:  # facts and the cycle count: the configuration's one value, never a mean
        out[c] = object_column(_common_per_config(ok, c, ids))
    metrics, values = numeric_block(df, [c for c in all_metrics if c not in stats_cols and c not in kept])
    stats = _metric_stats(ok, metrics, values, ids, confidence, cycle_metrics(all_metrics))
    if stats is not None:  # one float block joined once: a column inserted per metric fragments the frame
        out = pd.concat([out, stats.frame], axis=1)
    cycles_of = dict(zip(ids, _common_per_config(ok, "cycles", ids))) if "cycles" in ok.columns else {}
    notes = stats.notes if stats is not None else {}
    out[CI_NOTE] = [_ci_note(*notes.get(cid, ([], [], [])), cycles_of.get(cid)) for cid in ids]
    fixed = {"config_id", *keys, *COUNT_COLUMNS}
    listed = {*kept, CI_NOTE}  # the stat columns were dropped when empty by _metric_stats
    empty = [c for c in out.columns if c in listed and c not in fixed
             and out[c].map(lambda v: py_value(v) in (None, "")).all()]
    return out.drop(columns=empty)


@dataclass
class _Stats:
    """:func:`_metric_stats`: the non-empty stat columns, and per configuration the metrics its
    ci_note names (small n, clipped, over cycles)."""

    frame: pd.DataFrame
    notes: dict[str, tuple[list[tuple[str, int]], list[tuple[str, tuple]], list[str]]]


def _metric_stats(ok: pd.DataFrame, metrics: Sequence[str], values: np.ndarray, ids: pd.Series,
                  confidence: float, with_cycles: set[str]) -> _Stats | None:
    """Mean, std and the interval of every metric per configuration, from one groupby over the
    ok trials' float matrix ``values`` (ok rows x metrics: :func:`numeric_block`); the rules of
    :func:`config_table`. None without metrics."""
    import numpy as np
    import pandas as pd

    from snakesweep.stats import t_half_width

    if not metrics:
        return None
    frame = pd.DataFrame(values, index=ok.index)
    g = frame.groupby(ok["config_id"], sort=False)
    n = g.count().reindex(ids).fillna(0).to_numpy()
    mean = np.full(n.shape, np.nan)
    # pandas sums a block without a missing value plainly (sorted groups) and one with a missing
    # value with compensation: grouped in blocks that agree on it, each column's mean is the one
    # its own column gets (configs.csv byte for byte as one groupby per metric wrote it)
    missing = np.isnan(values).any(axis=0)
    for cols in (np.flatnonzero(missing), np.flatnonzero(~missing)):
        if cols.size:
            part = frame.iloc[:, cols].groupby(ok["config_id"], sort=False).mean()
            mean[:, cols] = part.reindex(ids).to_numpy(dtype=float)
    std = g.std(ddof=1).reindex(ids).to_numpy(dtype=float)
    half = t_half_width(np.nan_to_num(std), n, confidence)
    usable = n >= MIN_N_FOR_CI
    lo = np.where(usable, mean - half, np.nan)
    hi = np.where(usable, mean + half, np.nan)
    std = np.where(n >= 2, std, np.nan)
    one_seed = np.zeros(mean.shape, dtype=bool)
    cyc = [j for j, m in enumerate(metrics) if m in with_cycles]
    if cyc:
        # one ok seed measured over several cycles: the interval is the trial's own, over its
        # cycles (measurement noise only), computed by aggregate_cycles with the same rules
        ok_first = ok.drop_duplicates("config_id").set_index("config_id")
        c_lo, c_hi, c_std = (_trial_stats(ok_first, [f"{metrics[j]}_{sfx}" for j in cyc], ids)
                             for sfx in ("ci_low", "ci_high", "std"))
        one = (n[:, cyc] == 1) & ~np.isnan(c_std)
        one_seed[:, cyc] = one
        lo[:, cyc] = np.where(one, c_lo, lo[:, cyc])
        hi[:, cyc] = np.where(one, c_hi, hi[:, cyc])
        std[:, cyc] = np.where(one, c_std, std[:, cyc])
    ranges = _known_ranges(metrics, values)
    low = np.array([np.nan if r[0] is None else r[0] for r in ranges])
    high = np.array([np.nan if r[1] is None else r[1] for r in ranges])
    with np.errstate(invalid="ignore"):  # NaN for "no bound": every comparison with it is False
        cut = (lo < low) | (hi > high)
        lo = np.where(lo < low, low, lo)
        hi = np.where(hi > high, high, hi)
    notes: dict[str, tuple[list, list, list]] = {}
    id_list = list(ids)

    def note(i: int) -> tuple[list, list, list]:
        return notes.setdefault(id_list[i], ([], [], []))

    small = (one_seed & np.isnan(lo)) | (~one_seed & (n > 0) & (n < MIN_N_FOR_CI))
    for i, j in zip(*np.nonzero(one_seed)):
        note(i)[2].append(metrics[j])
    for i, j in zip(*np.nonzero(small)):
        note(i)[0].append((metrics[j], 1 if one_seed[i, j] else int(n[i, j])))
    for i, j in zip(*np.nonzero(cut)):
        note(i)[1].append((metrics[j], ranges[j]))
    block = np.stack([mean, std, lo, hi], axis=2).reshape(len(ids), 4 * len(metrics))
    names = [f"{m}_{sfx}" for m in metrics for sfx in STAT_SUFFIXES]
    full = ~np.isnan(block).all(axis=0)  # a column empty in every row is left out
    frame = pd.DataFrame(block[:, full], columns=[c for c, f in zip(names, full) if f], index=range(len(ids)))
    return _Stats(frame, notes)


def _known_ranges(metrics: Sequence[str], values: np.ndarray) -> list[tuple[float | None, float | None]]:
    """:func:`known_range` of each metric over its observed values (only their extremes decide)."""
    import numpy as np

    have = ~np.isnan(values)
    some = have.any(axis=0)
    with np.errstate(invalid="ignore"):
        lows = np.where(have, values, np.inf).min(axis=0, initial=np.inf)
        highs = np.where(have, values, -np.inf).max(axis=0, initial=-np.inf)
    return [known_range(m, [lows[j], highs[j]] if some[j] else []) for j, m in enumerate(metrics)]


def _trial_stats(ok_first: pd.DataFrame, columns: Sequence[str], ids: pd.Series) -> np.ndarray:
    """``columns`` of each configuration's first ok trial (configs x columns; NaN for a
    configuration without one or a column it lacks)."""
    import numpy as np
    import pandas as pd

    have = [c for c in columns if c in ok_first.columns]
    frame = pd.DataFrame(metric_matrix(ok_first, have).values, index=ok_first.index, columns=have)
    return frame.reindex(index=list(ids), columns=list(columns)).to_numpy(dtype=float, na_value=np.nan)


def _common_per_config(ok: pd.DataFrame, column: str, ids: Sequence[str]) -> list[Any]:
    """The value of ``column`` every ok trial of each configuration agrees on (None otherwise)."""
    seen: dict[str, set] = {}
    first: dict[str, Any] = {}
    for cid, v in zip(ok["config_id"], ok[column]):
        v = py_value(v)
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        f = to_float(v)
        key = f if f is not None else str(v)
        seen.setdefault(cid, set()).add(key)
        first.setdefault(cid, (int(f) if f is not None and f.is_integer() else f) if f is not None else v)
    return [first[cid] if len(seen.get(cid, ())) == 1 else None for cid in ids]


def _listed(items: Sequence[str], where: str) -> str:
    """``items`` joined, at most :data:`NOTE_METRICS` of them, then how many more and ``where``
    they all are: a note naming 20,000 metrics in every row of configs.csv (and answer.html)
    says nothing."""
    shown = ", ".join(items[:NOTE_METRICS])
    more = len(items) - NOTE_METRICS
    return shown + (f" and {more} more ({where})" if more > 0 else "")


def _ci_note(small: list[tuple[str, int]], clipped: list[tuple[str, tuple]], over_cycles: Sequence[str] = (),
             cycles: Any = None) -> str:
    parts = []
    if over_cycles:
        n = f"{int(to_float(cycles))} " if to_float(cycles) is not None else ""
        parts.append(f"one ok seed: intervals over its {n}measurement cycles (measurement noise only) for "
                     + _listed(list(over_cycles), "the columns of configs.csv"))
    if small:
        ns = {k for _, k in small}
        if len(ns) == 1:
            parts.append(f"n too small for an interval ({ns.pop()} ok value(s); need >= {MIN_N_FOR_CI})")
        else:
            listed = _listed([f"{m} (n={k})" for m, k in small], "the columns of configs.csv")
            parts.append(f"n too small for an interval: {listed}; need >= {MIN_N_FOR_CI}")
    for m, (low, high) in clipped[:NOTE_METRICS]:
        rng = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        parts.append(f"{m} interval clipped to its known range {rng}")
    if len(clipped) > NOTE_METRICS:
        parts.append(f"{len(clipped) - NOTE_METRICS} more metric interval(s) clipped to their known range "
                     "(the columns of configs.csv)")
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


def write_configs(summary: pd.DataFrame, param_names: list[str], path: str | Path) -> pd.DataFrame:
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


def config_view(configs: pd.DataFrame, param_names: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """configs.csv with only the statistics of ``metrics`` (every other column kept): what a view
    reads. A copy, a sort or rows as dicts of every column cost seconds per call on a
    20,000-metric sweep (80,000 statistic columns)."""
    wanted = {f"{m}_{sfx}" for m in metrics for sfx in STAT_SUFFIXES}
    params = set(param_names)
    stat_like = tuple(f"_{sfx}" for sfx in STAT_SUFFIXES)
    keep = [i for i, c in enumerate(configs.columns) if c in wanted or c in params or not str(c).endswith(stat_like)]
    return configs.iloc[:, keep]  # by position: 80,000 names looked up again would cost more than the view


def config_records(configs: pd.DataFrame, param_names: Sequence[str], metrics: Sequence[str]) -> list[dict]:
    """:func:`config_view` as one dict per configuration."""
    return config_view(configs, param_names, metrics).to_dict("records")


def ranked_configs(configs: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
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
    configs = as_frame(configs)
    keys = config_params(param_names)
    ranked = ranked_configs(configs, metric, direction)
    ok = df[df["status"] == "ok"]
    values = metric_values(ok[metric]) if metric in ok.columns else None

    def seeds_of(cid: str) -> list[float]:
        if values is None:
            return []
        return [float(v) for v in values[ok["config_id"] == cid].dropna()]

    def cycles_of(cid: str) -> dict | None:
        """One ok seed measured over >= 2 cycles: that trial's cycle statistics of the objective."""
        if f"{metric}_std" not in ok.columns or "cycles" not in ok.columns:
            return None
        rows = ok[ok["config_id"] == cid]
        if len(rows) != 1:
            return None
        r = rows.iloc[0]
        n, std, mean = to_float(r.get("cycles")), to_float(r.get(f"{metric}_std")), to_float(r.get(metric))
        if n is None or n < 2 or std is None or mean is None:
            return None
        return {"n": int(n), "mean": mean, "std": std}

    def describe(c: Mapping) -> dict:
        cyc = cycles_of(c.get("config_id"))
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
            # what std and the interval are over: seeds, or the one seed's measurement cycles
            "over": "cycles" if cyc else "seeds",
            "n_cycles": cyc["n"] if cyc else None,
            "values": seeds_of(c.get("config_id")),
            "_cycles": cyc,
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
                f"metrics with values: {_listed(have, 'best.json available_metrics lists them all') or 'none'} "
                "(fix: set report.objective.metric to one of them)"
            )
        return out
    rows = config_records(ranked.iloc[:2], param_names, [metric])
    best = describe(rows[0])
    out["best"] = best
    if len(rows) == 1:
        best.pop("_cycles")
        out["verdict"] = (
            f"only one configuration has a result for {metric} "
            f"(mean {_fmt(best['mean'])}); nothing to compare it with"
        )
        return out
    runner = describe(rows[1])
    out["runner_up"] = runner
    diff = best["mean"] - runner["mean"]
    out["difference"] = diff
    cb, cr = best.pop("_cycles"), runner.pop("_cycles")
    if cb and cr:
        # one seed each, several cycles each: the cycles are the only repeated values there are
        w = welch_from_stats(cb["mean"], cb["std"], cb["n"], cr["mean"], cr["std"], cr["n"])
        name = ("Welch's t-test over measurement cycles (two-sided, unequal variances; one seed per "
                "configuration, so it covers measurement noise, not seed noise)")
        over, unit = "cycles", "cycle"
        counts = f"best has {cb['n']} cycles, runner-up {cr['n']}"
        noise = "measurement noise"
    else:
        w = welch_t_test(best["values"], runner["values"])
        name = "Welch's t-test (two-sided, unequal variances)"
        over, unit = "seeds", "seed"
        counts = f"best has {best['n_ok']} ok seed(s), runner-up {runner['n_ok']}"
        noise = "seed noise"
    out["test"] = {
        "name": name,
        "over": over,
        "n_best": w.n_a,
        "n_runner_up": w.n_b,
        "t": w.t,
        "df": w.df,
        "p_value": w.p_value,
        "undefined_because": w.reason,
    }
    word = "higher" if direction == "max" else "lower"
    means = f"mean {_fmt(best['mean'])} vs {_fmt(runner['mean'])}"
    via = f", Welch over {unit}s" if over == "cycles" else ", Welch"
    if w.p_value is None:
        out["verdict"] = (
            f"not significant: the test cannot be run ({w.reason}; {counts}); "
            f"{metric} {means}, so the ranking is not evidence"
        )
    elif w.p_value < alpha:
        out["significant"] = True
        out["verdict"] = (
            f"significant: config {best['config_id']} has a {word} {metric} than the runner-up "
            f"{runner['config_id']} ({means}{via} p = {w.p_value:.3g} < {alpha})"
        )
    else:
        out["verdict"] = (
            f"not significant: config {best['config_id']} and the runner-up {runner['config_id']} "
            f"differ by {_fmt(abs(diff))} in {metric} ({means}{via} p = {w.p_value:.3g} >= {alpha}); "
            f"the difference is within {noise}"
        )
    if over == "cycles":
        out["verdict"] += " (one seed per configuration: tested over its measurement cycles)"
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
    configs = as_frame(configs)

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


def pareto_table(configs: Any, param_names: Sequence[str], objectives: Sequence[Objective]) -> pd.DataFrame:
    """The non-dominated configurations by config means, best objective first.

    Needs at least two objectives (else: no rows). Configurations missing the mean of any
    objective cannot be placed and are left out. Columns: :func:`pareto_fieldnames`.
    """
    import pandas as pd

    configs = as_frame(configs)
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
    configs = as_frame(configs)
    return [k for k in config_params(param_names)
            if k in configs.columns and len({level_key(v) for v in configs[k]}) > 1]


# Keys a search adds to a trial that record its selection, not an effect (never a factor).
SELECTION_KEYS = ("member", "generation", "bracket", "rung")


def selection_params(search: Mapping | None) -> list[str]:
    """The parameters whose values a search chooses by selection, not as a factor: the budget
    parameter of halving, hyperband and pbt (which configurations reach a larger budget is the
    search's verdict on their score at the smaller one, so the budget's eta squared would only
    measure who survived), and PBT's member/generation and Hyperband's bracket/rung if a trial
    carries them as parameters. [] for a grid, random, sobol or optuna."""
    search = search or {}
    if search.get("method") not in ("halving", "hyperband", "pbt"):
        return []
    return [p for p in (search.get("budget_param"), *SELECTION_KEYS) if p]


def selection_note(left_out: Sequence[str], method: str | None) -> str:
    """The caveat for the parameters :func:`importance_table` left out."""
    return (f"left out of importance: {', '.join(left_out)} (in a {method} search the budget a configuration "
            "reaches is the search's selection by its earlier score, so its eta squared would measure which "
            "configurations survived, not the budget's effect)")


def importance_table(configs: Any, param_names: Sequence[str], objective: Objective,
                     exclude: Sequence[str] = ()) -> pd.DataFrame:
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
    ``exclude``: parameters that are no factor (:func:`selection_params`), never a row.
    """
    import pandas as pd

    from snakesweep.stats import eta_squared

    configs = as_frame(configs)
    metric, direction = objective
    col = f"{metric}_mean"
    rows = []
    if col in configs.columns:
        means = metric_values(configs[col])
        usable = configs[means.notna()]
        umeans = means[means.notna()]
        for p in [p for p in swept_params(configs, param_names) if p not in set(exclude)]:
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
    table["best_level"] = object_column(r["best_level"] for r in rows)
    return table


# ---------------------------------------------------------------------------- all reports at once


@dataclass
class Reports:
    """Everything the report rules write, computed once from the typed summary."""

    summary: pd.DataFrame
    param_names: list[str]
    steps: list[str]
    objective: Objective
    configs: pd.DataFrame
    best: dict
    objectives: list[Objective]
    dropped: list[str]
    pareto: pd.DataFrame
    importance: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # the plan's search block (None for a grid), the trials in plan order (round, then
    # position: load_plan's order) and the round files chosen so far (halving/optuna)
    search: dict | None = None
    plan_trials: list[dict] = field(default_factory=list)
    rounds: list[dict] = field(default_factory=list)
    # swept parameters left out of importance because the search chose them (selection_params)
    importance_left_out: list[str] = field(default_factory=list)


def top_budget_scope(configs: pd.DataFrame, search: Mapping, metric: str) -> tuple[pd.DataFrame, dict] | None:
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
    swept = set(swept_params(configs, names))
    left_out = [p for p in selection_params(search) if p in swept]
    if left_out:
        notes.append(selection_note(left_out, (search or {}).get("method")))
    return Reports(
        summary=df, param_names=names, steps=list((plan or {}).get("steps") or ["train", "eval", "measure"]),
        objective=objective, configs=configs, best=best, objectives=objs, dropped=dropped,
        pareto=pareto_table(configs, names, objs), importance=importance_table(configs, names, objective, left_out),
        notes=notes, search=search, plan_trials=list((plan or {}).get("trials") or []), rounds=list(rounds),
        importance_left_out=left_out,
    )
