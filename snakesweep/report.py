"""Answers a sweep exists for: which configuration is best, by how much, and at what cost.

Inputs are the rows of ``results/summary.csv`` (one per planned trial, all values strings as
read by ``csv.DictReader``; an empty string is a missing value) and of ``results/configs.csv``
(one per parameter combination with the seed removed, written by ``collect`` through
:func:`config_rows`). Outputs:

* ``best.json``: the best configuration by the objective's mean over seeds, its t-based 95%
  confidence interval, the runner-up, and Welch's t-test between their per-seed values. The
  verdict says "not significant" when p >= 0.05 or when either has fewer than 2 ok seeds.
* ``pareto.csv``: the configurations no other configuration dominates over the objective and
  the extra objectives (by config means; each objective's direction respected).
* ``importance.csv``: one-way ANOVA eta squared of the objective's config means, per swept
  parameter (see :func:`importance_rows`).

Command line (used by workflow/rules/report.smk)::

    python -m snakesweep.report --summary results/summary.csv --configs results/configs.csv \
        --plan results/plan/trials.json --objective eval_accuracy --direction max \
        --extra "energy_j_per_sample:min,latency_ms_p95:min" \
        --best results/best.json --pareto results/pareto.csv --importance results/importance.csv

Only the standard library and scipy (t quantiles) are used, so this stays fast at 10k trials.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Iterable, Sequence

from snakesweep.stats import mean_ci, welch_t_test

SEED = "seed"
STAT_SUFFIXES = ("mean", "std", "ci_low", "ci_high")
COUNT_COLUMNS = ("n_seeds", "n_ok", "n_failed", "n_pending")
CONFIDENCE = 0.95
ALPHA = 0.05
# When the sweep names no extra objective, the cost side of the Pareto front is training time.
DEFAULT_COST = ("train_time_s", "min")
_METRIC_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")

Objective = tuple[str, str]  # (metric, "max" | "min")


# ---------------------------------------------------------------------------- helpers


def to_float(value: Any) -> float | None:
    """A CSV cell as a float; None for empty, unparsable or NaN cells."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        f = float(value)
    else:
        s = str(value).strip()
        if not s:
            return None
        try:
            f = float(s)
        except ValueError:
            return None
    return None if math.isnan(f) else f


def parse_value(s: str) -> Any:
    """A CSV parameter cell back to int/float/bool/None where it reads as one, else the string."""
    if s == "":
        return None
    if s in ("True", "true"):
        return True
    if s in ("False", "false"):
        return False
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def config_params(param_names: Sequence[str]) -> list[str]:
    """The parameters that identify a configuration: every parameter except the seed."""
    return [p for p in param_names if p != SEED]


def config_id(params: dict[str, str]) -> str:
    """Short, stable id of a configuration from its parameter cells (sorted keys)."""
    canon = json.dumps(sorted((k, str(v)) for k, v in params.items()), separators=(",", ":"))
    return hashlib.sha1(canon.encode()).hexdigest()[:8]


def config_fieldnames(param_names: Sequence[str], metrics: Sequence[str]) -> list[str]:
    """Header of configs.csv, in the order :func:`config_rows` fills it."""
    cols = ["config_id", *config_params(param_names), *COUNT_COLUMNS]
    for m in metrics:
        cols.extend(f"{m}_{s}" for s in STAT_SUFFIXES)
    return cols


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


def _group(rows: Iterable[dict], keys: Sequence[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k, "") or "" for k in keys), []).append(row)
    return groups


# ---------------------------------------------------------------------------- configs.csv


def numeric_metrics(summary_rows: list[dict], metrics: Sequence[str]) -> list[str]:
    """The metrics whose non-empty cells in ok rows all read as numbers."""
    bad: set[str] = set()
    for r in summary_rows:
        if r.get("status") != "ok":
            continue
        for m in metrics:
            if m in bad:
                continue
            v = r.get(m)
            if v not in (None, "") and to_float(v) is None and str(v).strip().lower() != "nan":
                bad.add(m)
    return [m for m in metrics if m not in bad]


def config_rows(
    summary_rows: list[dict],
    param_names: list[str],
    metrics: list[str],
    confidence: float = CONFIDENCE,
) -> list[dict]:
    """Aggregate summary rows (one per trial) into one row per configuration (seed removed).

    Per configuration: ``config_id``, the parameter cells (as in the summary), ``n_seeds``
    (planned trials), ``n_ok``, ``n_failed``, ``n_pending``, and for every metric ``<m>_mean``,
    ``<m>_std``, ``<m>_ci_low``, ``<m>_ci_high``: mean, sample standard deviation and a
    two-sided t confidence interval over the *ok* trials only. Failed trials are counted,
    never averaged. Statistics are floats, or None where undefined (no value; std and CI
    need two values). Empty and NaN cells are missing values. A metric with any other
    non-numeric cell in an ok row (a label such as ``energy_source``) is not a number and
    gets no columns. Groups keep the order of their first trial in ``summary_rows``. Every
    row has the same keys, in the order of :func:`config_fieldnames` for the numeric metrics.
    """
    keys = config_params(param_names)
    metrics = numeric_metrics(summary_rows, metrics)
    out = []
    for key, rows in _group(summary_rows, keys).items():
        params = dict(zip(keys, key))
        ok = [r for r in rows if r.get("status") == "ok"]
        n_failed = sum(1 for r in rows if r.get("status") == "failed")
        row: dict[str, Any] = {"config_id": config_id(params), **params}
        row.update(
            n_seeds=len(rows), n_ok=len(ok), n_failed=n_failed, n_pending=len(rows) - len(ok) - n_failed
        )
        for m in metrics:
            s = mean_ci([to_float(r.get(m)) for r in ok], confidence)
            row[f"{m}_mean"], row[f"{m}_std"] = s.mean, s.std
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = s.ci_low, s.ci_high
        out.append(row)
    return out


# ---------------------------------------------------------------------------- best.json


def _better(direction: str):
    return (lambda a, b: a > b) if direction == "max" else (lambda a, b: a < b)


def _ranked(configs: list[dict], metric: str, direction: str) -> list[dict]:
    with_mean = [c for c in configs if to_float(c.get(f"{metric}_mean")) is not None]
    return sorted(
        with_mean,
        key=lambda c: to_float(c[f"{metric}_mean"]),
        reverse=(direction == "max"),
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _describe(config: dict, keys: Sequence[str], metric: str, seeds: list[float], typed: dict | None) -> dict:
    params = typed if typed is not None else {k: parse_value(config.get(k, "")) for k in keys}
    return {
        "config_id": config.get("config_id") or config_id({k: config.get(k, "") for k in keys}),
        "params": params,
        "n_seeds": int(to_float(config.get("n_seeds")) or 0),
        "n_ok": int(to_float(config.get("n_ok")) or 0),
        "n_failed": int(to_float(config.get("n_failed")) or 0),
        "mean": to_float(config.get(f"{metric}_mean")),
        "std": to_float(config.get(f"{metric}_std")),
        "ci_low": to_float(config.get(f"{metric}_ci_low")),
        "ci_high": to_float(config.get(f"{metric}_ci_high")),
        "values": seeds,
    }


def typed_params_by_config(plan: dict | None, keys: Sequence[str]) -> dict[tuple, dict]:
    """Map a configuration's key (parameter cells as strings) to its typed params from the plan.

    Keys are rebuilt the way the summary CSV writes cells (``str(value)``), so this is a
    best-effort lookup: a miss falls back to parsing the CSV cells.
    """
    out: dict[tuple, dict] = {}
    for t in (plan or {}).get("trials", []):
        p = t.get("params", {})
        key = tuple("" if p.get(k) is None else str(p.get(k)) for k in keys)
        out.setdefault(key, {k: p.get(k) for k in keys})
    return out


def best_report(
    summary_rows: list[dict],
    configs: list[dict],
    param_names: list[str],
    objective: Objective,
    alpha: float = ALPHA,
    plan: dict | None = None,
) -> dict:
    """The best configuration by the objective's mean, the runner-up and whether the gap is real.

    The test is Welch's two-sided t-test over the per-seed objective values of the two
    configurations (ok trials only). ``significant`` is True only when both have at least two
    ok seeds and p < alpha; the ``verdict`` sentence says "not significant" otherwise.
    """
    metric, direction = objective
    keys = config_params(param_names)
    per_config = _group((r for r in summary_rows if r.get("status") == "ok"), keys)
    typed = typed_params_by_config(plan, keys)
    ranked = _ranked(configs, metric, direction)

    def seeds_of(c: dict) -> list[float]:
        key = tuple(c.get(k, "") or "" for k in keys)
        vals = [to_float(r.get(metric)) for r in per_config.get(key, [])]
        return [v for v in vals if v is not None]

    def describe(c: dict) -> dict:
        key = tuple(c.get(k, "") or "" for k in keys)
        return _describe(c, keys, metric, seeds_of(c), typed.get(key))

    out: dict[str, Any] = {
        "schema_version": 1,
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
    if not ranked:
        out["verdict"] = f"no configuration has a result for {metric} yet"
        return out
    best = describe(ranked[0])
    out["best"] = best
    if len(ranked) == 1:
        out["verdict"] = (
            f"only one configuration has a result for {metric} "
            f"(mean {_fmt(best['mean'])}); nothing to compare it with"
        )
        return out
    runner = describe(ranked[1])
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
    """The objectives of the front: the objective plus the extras, or training time if none."""
    objs = [objective, *[e for e in extra if e[0] != objective[0]]]
    if len(objs) == 1 and objective[0] != DEFAULT_COST[0]:
        objs.append(DEFAULT_COST)
    return objs


def effective_objectives(
    configs: list[dict], objective: Objective, extra: Sequence[Objective]
) -> tuple[list[Objective], list[str]]:
    """The Pareto objectives that have a value at all, and the names of those left out.

    An extra objective no configuration has a mean for (energy where no counter was
    readable) would empty the front; it is dropped, and named so the report can say so.
    If no extra objective is left, training time is the cost, as in :func:`pareto_objectives`.
    """
    def has_values(metric: str) -> bool:
        return any(to_float(c.get(f"{metric}_mean")) is not None for c in configs)

    kept = [e for e in extra if e[0] != objective[0] and has_values(e[0])]
    dropped = [e[0] for e in extra if e[0] != objective[0] and not has_values(e[0])]
    return pareto_objectives(objective, kept), dropped


def pareto_rows(configs: list[dict], param_names: Sequence[str], objectives: Sequence[Objective]) -> list[dict]:
    """The non-dominated configurations by config means, best objective first.

    Configurations missing the mean of any objective cannot be placed and are left out.
    Each row: config_id, parameters, n_ok, then mean and CI of each objective.
    """
    keys = config_params(param_names)
    usable, points = [], []
    for c in configs:
        vals = [to_float(c.get(f"{m}_mean")) for m, _ in objectives]
        if all(v is not None for v in vals):
            usable.append(c)
            points.append(vals)
    front = [usable[i] for i in pareto_indices(points, [d for _, d in objectives])]
    m0, d0 = objectives[0]
    front.sort(key=lambda c: to_float(c[f"{m0}_mean"]), reverse=(d0 == "max"))
    rows = []
    for c in front:
        row = {"config_id": c.get("config_id", ""), **{k: c.get(k, "") for k in keys}, "n_ok": c.get("n_ok", "")}
        for m, _ in objectives:
            for s in ("mean", "ci_low", "ci_high"):
                row[f"{m}_{s}"] = c.get(f"{m}_{s}", "")
        rows.append(row)
    return rows


def pareto_fieldnames(param_names: Sequence[str], objectives: Sequence[Objective]) -> list[str]:
    cols = ["config_id", *config_params(param_names), "n_ok"]
    for m, _ in objectives:
        cols.extend(f"{m}_{s}" for s in ("mean", "ci_low", "ci_high"))
    return cols


# ---------------------------------------------------------------------------- importance.csv

IMPORTANCE_FIELDS = ["parameter", "eta_squared", "n_levels", "n_configs", "best_level", "best_level_mean"]


def swept_params(configs: list[dict], param_names: Sequence[str]) -> list[str]:
    """Parameters (seed excluded) that take more than one value across the configurations."""
    return [k for k in config_params(param_names) if len({c.get(k, "") for c in configs}) > 1]


def importance_rows(configs: list[dict], param_names: Sequence[str], objective: Objective) -> list[dict]:
    """How much of the objective's variance across configurations each swept parameter explains.

    Method: one-way ANOVA eta squared on the configuration means. For parameter p, the
    configurations that have a mean for the objective are grouped by their value of p;
    eta^2 = SS_between / SS_total, where SS_total is the sum of squared deviations of the
    config means from their grand mean and SS_between that of the group means, weighted by
    group size. It lies in [0, 1]; each parameter is looked at on its own (marginally), so
    in an unbalanced grid correlated parameters share credit, and interactions are not
    attributed to either parameter. Seeds are not a factor: seed noise is averaged into the
    config means first. Rows sorted by eta^2, largest first; eta^2 is empty when undefined
    (fewer than two levels with results, or all means equal).
    """
    from snakesweep.stats import eta_squared

    metric, direction = objective
    col = f"{metric}_mean"
    usable = [c for c in configs if to_float(c.get(col)) is not None]
    better = _better(direction)
    rows = []
    for p in swept_params(configs, param_names):
        levels: dict[str, list[float]] = {}
        for c in usable:
            levels.setdefault(c.get(p, ""), []).append(to_float(c[col]))
        eta = eta_squared(list(levels.values()))
        best_level, best_mean = None, None
        for level, vals in levels.items():
            m = math.fsum(vals) / len(vals)
            if best_mean is None or better(m, best_mean):
                best_level, best_mean = level, m
        rows.append(
            {
                "parameter": p,
                "eta_squared": eta,
                "n_levels": len(levels),
                "n_configs": sum(len(v) for v in levels.values()),
                "best_level": best_level if best_level is not None else "",
                "best_level_mean": best_mean,
            }
        )
    rows.sort(key=lambda r: -1.0 if r["eta_squared"] is None else r["eta_squared"], reverse=True)
    return rows


# ---------------------------------------------------------------------------- answer.html

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2933;margin:1.2em;max-width:70em;line-height:1.45}
h1{font-size:1.35em;margin:.2em 0 .6em} h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #d9e2ec;padding-bottom:.2em}
.verdict{padding:.7em 1em;border-radius:6px;font-size:1.02em}
.sig{background:#e3f9e5;border-left:5px solid #3f9142} .nosig{background:#fffbea;border-left:5px solid #de911d}
table{border-collapse:collapse;font-size:.9em;margin:.3em 0} th,td{padding:.25em .7em;text-align:right;border-bottom:1px solid #e4e7eb}
th{background:#f0f4f8;font-weight:600} td.l,th.l{text-align:left} tr.best td{font-weight:600;background:#f7fcf7}
.bar{display:inline-block;height:.75em;background:#486581;vertical-align:middle;margin-right:.4em}
.muted{color:#627d98;font-size:.88em} code{background:#f0f4f8;padding:0 .25em;border-radius:3px}
"""


def _h(x: Any) -> str:
    import html

    return html.escape("" if x is None else str(x))


def _num(x: Any, digits: int = 4) -> str:
    f = to_float(x)
    return "" if f is None else f"{f:.{digits}g}"


def _ci(c: dict, metric: str) -> str:
    lo, hi = to_float(c.get(f"{metric}_ci_low")), to_float(c.get(f"{metric}_ci_high"))
    return "" if lo is None or hi is None else f"[{lo:.4g}, {hi:.4g}]"


def render_answer_html(
    best: dict,
    configs: list[dict],
    param_names: Sequence[str],
    importance: list[dict],
    pareto: list[dict],
    objectives: Sequence[Objective],
    dropped: Sequence[str] = (),
    max_configs: int = 50,
) -> str:
    """One self-contained HTML page (inline CSS, escaped values) for the Snakemake report:
    the verdict, best vs runner-up, parameter importance, the Pareto front and the ranking."""
    metric, direction = objectives[0]
    swept = swept_params(configs, param_names) or config_params(param_names)
    fixed = [k for k in config_params(param_names) if k not in swept]
    word = "higher" if direction == "max" else "lower"
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep answer</title><style>{_CSS}</style></head><body>"]
    out.append(f"<h1>Which configuration is best by <code>{_h(metric)}</code> ({word} is better)?</h1>")
    cls = "sig" if best.get("significant") else "nosig"
    out.append(f"<p class='verdict {cls}'>{_h(best.get('verdict'))}</p>")
    if fixed and configs:
        fixed_txt = ", ".join(f"{_h(k)}={_h(configs[0].get(k))}" for k in fixed)
        out.append(f"<p class='muted'>Same in every configuration: {fixed_txt}.</p>")

    def head(extra: Sequence[str] = ()) -> str:
        cells = "".join(f"<th class='l'>{_h(k)}</th>" for k in swept)
        return f"<tr><th class='l'>config</th>{cells}{''.join(f'<th>{_h(e)}</th>' for e in extra)}</tr>"

    def params_cells(params: dict) -> str:
        return "".join(f"<td class='l'>{_h(params.get(k))}</td>" for k in swept)

    pair = [(lbl, best.get(key)) for lbl, key in (("best", "best"), ("runner-up", "runner_up")) if best.get(key)]
    if pair:
        out.append("<h2>Best and runner-up</h2><table>")
        out.append(head(["ok / planned seeds", "mean", "95% CI", "std", "per-seed values"]))
        for lbl, b in pair:
            vals = ", ".join(f"{v:.4g}" for v in b.get("values") or [])
            ci = "" if b.get("ci_low") is None else f"[{b['ci_low']:.4g}, {b['ci_high']:.4g}]"
            out.append(
                f"<tr class='{'best' if lbl == 'best' else ''}'><td class='l'>{_h(lbl)} <span class='muted'>{_h(b.get('config_id'))}</span></td>"
                f"{params_cells(b.get('params') or {})}<td>{b.get('n_ok')} / {b.get('n_seeds')}</td>"
                f"<td>{_num(b.get('mean'))}</td><td>{ci}</td><td>{_num(b.get('std'), 3)}</td><td>{_h(vals)}</td></tr>"
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

    out.append(f"<h2>Which parameters matter? (eta squared of {_h(metric)} over configuration means)</h2>")
    if importance:
        out.append("<table><tr><th class='l'>parameter</th><th class='l'>eta squared</th><th>levels</th>"
                   "<th class='l'>best level</th><th>its mean</th></tr>")
        for r in importance:
            eta = to_float(r.get("eta_squared"))
            bar = f"<span class='bar' style='width:{eta * 12:.2f}em'></span>{eta:.2f}" if eta is not None else "undefined"
            out.append(f"<tr><td class='l'>{_h(r.get('parameter'))}</td><td class='l'>{bar}</td><td>{_h(r.get('n_levels'))}</td>"
                       f"<td class='l'>{_h(r.get('best_level'))}</td><td>{_num(r.get('best_level_mean'))}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p class='muted'>No parameter is swept (only seeds), so there is nothing to rank.</p>")

    names = ", ".join(f"{m} ({d})" for m, d in objectives)
    out.append(f"<h2>Trade-offs: the Pareto front over {_h(names)}</h2>")
    if pareto:
        out.append("<table>" + head([f"{m} mean" for m, _ in objectives]))
        for r in pareto:
            out.append(f"<tr><td class='l'>{_h(r.get('config_id'))}</td>{params_cells(r)}"
                       + "".join(f"<td>{_num(r.get(f'{m}_mean'))}</td>" for m, _ in objectives) + "</tr>")
        out.append("</table>")
    else:
        out.append("<p class='muted'>No configuration has every objective yet.</p>")
    if dropped:
        out.append(f"<p class='muted'>Left out of the front because no configuration has a value: "
                   f"{_h(', '.join(dropped))} (not measured here; see the energy_source column of summary.csv).</p>")

    ranked = _ranked(configs, metric, direction)
    ranked_ids = {id(c) for c in ranked}
    missing = [c for c in configs if id(c) not in ranked_ids]
    out.append(f"<h2>All configurations by {_h(metric)}"
               + (f" (top {max_configs} of {len(ranked)})" if len(ranked) > max_configs else "") + "</h2>")
    out.append("<table>" + head(["ok / planned", "failed", "mean", "95% CI"]))
    best_id = (best.get("best") or {}).get("config_id")
    for c in ranked[:max_configs]:
        out.append(f"<tr class='{'best' if c.get('config_id') == best_id else ''}'><td class='l'>{_h(c.get('config_id'))}</td>"
                   f"{params_cells(c)}<td>{_h(c.get('n_ok'))} / {_h(c.get('n_seeds'))}</td><td>{_h(c.get('n_failed'))}</td>"
                   f"<td>{_num(c.get(f'{metric}_mean'))}</td><td>{_ci(c, metric)}</td></tr>")
    out.append("</table>")
    if missing:
        out.append(f"<p class='muted'>{len(missing)} configuration(s) have no {_h(metric)} yet "
                   "(all their seeds failed or are pending); results/configs.csv lists them.</p>")
    out.append("</body></html>")
    return "\n".join(out)


# ---------------------------------------------------------------------------- IO + CLI


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def temp_path_beside(path: Path) -> Path:
    """A fresh temp name beside `path` (created by the caller with mode 'x', so the umask applies)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _atomic_write(path: str | Path, write) -> None:
    """Write through a temp file and os.replace, so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(path)
    try:
        with open(tmp, "x", newline="") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_csv(path: str | Path, rows: list[dict], fieldnames: Sequence[str]) -> None:
    def w(f):
        writer = csv.DictWriter(f, fieldnames=list(fieldnames), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(r.get(k)) for k in fieldnames})

    _atomic_write(path, w)


def write_json(path: str | Path, obj: Any) -> None:
    def clean(o):
        if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list):
            return [clean(v) for v in o]
        return o

    _atomic_write(path, lambda f: f.write(json.dumps(clean(obj), indent=2) + "\n"))


def load_plan(path: str | Path | None) -> dict | None:
    if not path or not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())


def param_names_from(plan: dict | None, configs: list[dict]) -> list[str]:
    """Parameter names from the plan; otherwise the configs.csv columns before the counts."""
    if plan and plan.get("param_names"):
        return list(plan["param_names"])
    if not configs:
        return []
    cols = list(configs[0].keys())
    end = cols.index("n_seeds") if "n_seeds" in cols else len(cols)
    return [c for c in cols[:end] if c != "config_id"]


PLOT_NAMES = ("objective_vs_params", "heatmap", "pareto", "training_curves")


def report_targets(wildcards: Any = None, results: str = "results") -> list[str]:
    """Every file the report rules make (also usable as a Snakemake input function)."""
    return [
        f"{results}/best.json",
        f"{results}/pareto.csv",
        f"{results}/importance.csv",
        f"{results}/report/answer.html",
        *(f"{results}/plots/{name}.png" for name in PLOT_NAMES),
    ]


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
                f"metrics ({', '.join(known_metrics)}); the report fails if results/summary.csv lacks them",
                file=sys.stderr,
            )
    return params


def check_metrics_present(summary_rows: list[dict], objectives: Sequence[Objective]) -> None:
    """Fail with the list of available columns when an objective is not a summary column."""
    if not summary_rows:
        return
    cols = list(summary_rows[0].keys())
    missing = [m for m, _ in objectives if m not in cols]
    if missing:
        raise SystemExit(
            f"snakesweep.report: objective metric(s) {', '.join(missing)} not in results/summary.csv; "
            f"its columns are: {', '.join(cols)} (fix report: in the sweep file)"
        )


def write_reports_after_failure(settings: dict[str, str], results: str = "results", logs: str = "logs") -> list[str]:
    """For the workflow's ``onerror`` handler, after ``collect`` wrote the partial CSVs.

    Runs this module and ``snakesweep.plots`` as child processes (argument lists, no shell;
    matplotlib stays out of the Snakemake process) with the same arguments the report rules
    use, logging to logs/report/*.onerror.log. Returns the report files that exist
    afterwards; never raises, since a report must not mask the original failure.
    """
    import subprocess

    r = Path(results)
    if not (r / "summary.csv").exists() or not (r / "configs.csv").exists():
        return []
    common = ["--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"),
              "--plan", str(r / "plan" / "trials.json"), "--objective", settings["objective"],
              "--direction", settings["direction"], f"--extra={settings.get('extra', '')}"]
    tables = [*common, "--best", str(r / "best.json"), "--pareto", str(r / "pareto.csv"),
              "--importance", str(r / "importance.csv"), "--html", str(r / "report" / "answer.html")]
    plots = [*common, "--importance", str(r / "importance.csv"), "--pareto", str(r / "pareto.csv"),
             "--trials-dir", str(r / "trials"),
             *(x for name, f in zip(("objective", "heatmap", "pareto", "curves"), PLOT_NAMES)
               for x in (f"--out-{name}", str(r / "plots" / f"{f}.png")))]
    Path(logs, "report").mkdir(parents=True, exist_ok=True)
    for module, args in (("snakesweep.report", tables), ("snakesweep.plots", plots)):
        try:
            with open(Path(logs, "report", f"{module.split('.')[1]}.onerror.log"), "w") as log:
                done = subprocess.run([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                      timeout=600, check=False)
            if done.returncode != 0:
                break
        except (OSError, subprocess.SubprocessError):
            break
    return [t for t in report_targets(results=results) if Path(t).exists()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--summary", required=True)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--plan")
    ap.add_argument("--objective", required=True, help="metric column, e.g. eval_accuracy")
    ap.add_argument("--direction", required=True, choices=["max", "min"])
    ap.add_argument("--extra", default="", help="comma-separated metric:direction pairs")
    ap.add_argument("--best", required=True)
    ap.add_argument("--pareto", required=True)
    ap.add_argument("--importance", required=True)
    ap.add_argument("--html", help="also write a one-page HTML summary for the Snakemake report")
    args = ap.parse_args(argv)

    objective = check_objective(args.objective, args.direction)
    extra = parse_objectives(args.extra)
    summary = read_csv(args.summary)
    check_metrics_present(summary, [objective, *extra])
    configs = read_csv(args.configs)
    plan = load_plan(args.plan)
    names = param_names_from(plan, configs)

    best = best_report(summary, configs, names, objective, plan=plan)
    write_json(args.best, best)
    objs, dropped = effective_objectives(configs, objective, extra)
    if dropped:
        print(f"report: no values for {', '.join(dropped)}; the Pareto front leaves them out", file=sys.stderr)
    write_csv(args.pareto, pareto_rows(configs, names, objs), pareto_fieldnames(names, objs))
    importance = importance_rows(configs, names, objective)
    write_csv(args.importance, importance, IMPORTANCE_FIELDS)
    if args.html:
        front = read_csv(args.pareto)
        page = render_answer_html(best, configs, names, importance, front, objs, dropped)
        _atomic_write(args.html, lambda f: f.write(page))
    print(f"report: {len(configs)} configurations; {best['verdict']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
