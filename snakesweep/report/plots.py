"""The report's figures, drawn headless with matplotlib's Agg backend.

The objective against each swept parameter, a heatmap over the two most important parameters,
the Pareto front, training curves, and a search's own figure (the halving ladder, or the
objective by trial order with the best so far). Every figure is written even when there is
nothing to draw or drawing fails: it then says why, and the reason is recorded. matplotlib is
imported only inside the functions."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from snakesweep.results import atomic_write_bytes, atomic_write_text, read_json_or_none
from snakesweep.stats import MIN_N_FOR_CI
from snakesweep.table import param_cell

from .cli import add_inputs, add_objectives, fail_all, load_reports
from .html import EFFICIENCY_METRICS, render_answer_html
from .problems import Problems, error_reason, guarded, problems_path, results_dir_of
from .search_views import halving_ladder, search_plot_name, search_progress
from .tables import Reports, config_records, config_view, swept_params
from .values import check_objective, config_params, is_number, level_key, parse_objectives, sorted_levels, to_float

MAX_PANELS = 24
DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": DPI, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9})
    return plt


def _save(fig, path: str | Path) -> None:
    """Render to memory, then write atomically with the umask's mode (results.atomic_write_bytes);
    the figure is closed whatever happens."""
    import io

    import matplotlib.pyplot as plt

    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), fsync=False)


def _message_figure(plt, title: str, message: str):
    fig, ax = plt.subplots(figsize=(6.4, 2.4), layout="constrained")
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return fig


def save_message(plt, path: str | Path, title: str, message: str) -> None:
    """A figure that says why there is no plot (written in the plot's place)."""
    _save(_message_figure(plt, title, message), path)


def _label(metric: str, direction: str) -> str:
    return f"{metric} ({'higher' if direction == 'max' else 'lower'} is better)"


def is_numeric(values: Sequence[Any]) -> bool:
    """True when every level is a number (not a bool, not null): then the axis is numeric."""
    vals = list(values)
    return bool(vals) and all(is_number(v) for v in vals)


def use_log_axis(values: Sequence[Any]) -> bool:
    """True for positive numbers whose largest is at least 100 times the smallest (2 decades)."""
    nums = [to_float(v) if not isinstance(v, str) else to_float(v) for v in values]
    if not nums or any(x is None or x <= 0 for x in nums):
        return False
    return max(nums) / min(nums) >= 100


def _errs(rows: list[dict], metric: str) -> tuple[list[float], list[float], list[float]]:
    means, lo, hi = [], [], []
    for c in rows:
        m = to_float(c.get(f"{metric}_mean"))
        a, b = to_float(c.get(f"{metric}_ci_low")), to_float(c.get(f"{metric}_ci_high"))
        means.append(m)
        lo.append(max(m - a, 0.0) if a is not None else 0.0)
        hi.append(max(b - m, 0.0) if b is not None else 0.0)
    return means, lo, hi


def _span(ns: Sequence[int]) -> str:
    lo, hi = min(ns), max(ns)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def interval_description(rows: list[dict], metric: str) -> tuple[str, bool]:
    """What the error bars on ``rows`` (the drawn configurations) are, from the rows themselves:
    (text, whether any bar is drawn). A bar is over seeds, or, for a configuration with one ok
    seed measured over several cycles, over that seed's cycles (configs.csv's ci_note)."""
    seeds, cycles, none = [], [], []
    for c in rows:
        has = to_float(c.get(f"{metric}_ci_low")) is not None and to_float(c.get(f"{metric}_ci_high")) is not None
        n_ok = int(to_float(c.get("n_ok")) or 0)
        n_cyc = to_float(c.get("cycles"))
        if not has:
            none.append(n_ok)
        elif n_ok == 1 and n_cyc is not None and n_cyc >= 2:
            cycles.append(int(n_cyc))
        else:
            seeds.append(n_ok)
    parts = []
    if seeds:
        parts.append(f"95% t CI over {_span(seeds)} ok seeds")
    if cycles:
        parts.append(f"95% t CI over {_span(cycles)} measurement cycles of one seed")
    if not parts:
        ns = _span(none) if none else "0"
        return (f"no error bars: {ns} ok seed(s) per configuration, an interval needs >= {MIN_N_FOR_CI}", False)
    text = "error bars: " + " / ".join(parts)
    if none:
        text += f"; {len(none)} of {len(rows)} point(s) without a bar (fewer than {MIN_N_FOR_CI} values)"
    return text, True


def best_config(configs: list[dict], metric: str, direction: str) -> dict | None:
    usable = [c for c in configs if to_float(c.get(f"{metric}_mean")) is not None]
    if not usable:
        return None
    pick = max if direction == "max" else min
    return pick(usable, key=lambda c: to_float(c[f"{metric}_mean"]))


def no_objective_message(rep: Reports) -> str | None:
    """Why the objective cannot be drawn (None when some configuration has it)."""
    metric = rep.objective[0]
    if rep.best.get("best") is not None:
        return None
    return rep.best.get("verdict") or f"no configuration has a result for {metric} yet"


def _positions(levels: list[Any]) -> tuple[dict[str, float], bool]:
    numeric = is_numeric(levels)
    return {level_key(lv): (float(lv) if numeric else float(i)) for i, lv in enumerate(levels)}, numeric


# ---------------------------------------------------------------------------- objective vs params


def plot_objective_vs_params(plt, rep: Reports, path) -> None:
    metric, direction = rep.objective
    configs = config_records(rep.configs, rep.param_names, [metric])
    col = f"{metric}_mean"
    usable = [c for c in configs if to_float(c.get(col)) is not None]
    swept = swept_params(rep.configs, rep.param_names)
    best = best_config(configs, metric, direction)
    if best is None:
        save_message(plt, path, f"{metric} vs parameters", no_objective_message(rep) or "no result yet")
        return
    if not swept:
        fig, ax = plt.subplots(figsize=(4.5, 3.5), layout="constrained")
        means, lo, hi = _errs([best], metric)
        ax.errorbar([0], means, yerr=[lo, hi], fmt="o", capsize=5, color="C0")
        ax.set_xticks([0], ["the only configuration"])
        ax.set_ylabel(_label(metric, direction))
        text, _ = interval_description([best], metric)
        ax.set_title(f"{metric}: mean of the only configuration\n({text})", fontsize=9)
        _save(fig, path)
        return
    n = len(swept)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    drawn: dict[str, dict] = {}  # the configurations drawn with their interval, over every panel
    for ax, p in zip(axes.flat, swept):
        levels = sorted_levels(c.get(p) for c in configs)
        pos, numeric = _positions(levels)
        ax.scatter([pos[level_key(c.get(p))] for c in usable], [to_float(c[col]) for c in usable], s=14,
                   color="0.6", alpha=0.6, label="every configuration", zorder=2)
        others = [q for q in swept if q != p]
        line = [c for c in usable if all(level_key(c.get(q)) == level_key(best.get(q)) for q in others)]
        line.sort(key=lambda c: pos[level_key(c.get(p))])
        means, lo, hi = _errs(line, metric)
        drawn.update((str(c.get("config_id")), c) for c in line)
        bars = interval_description(line, metric)[1]
        label = ("slice through best" if others else "mean") + (", 95% CI" if bars else "")
        ax.errorbar([pos[level_key(c.get(p))] for c in line], means, yerr=[lo, hi], fmt="-o", capsize=4,
                    color="C0", zorder=3, label=label)
        ax.scatter([pos[level_key(best.get(p))]], [to_float(best[col])], marker="*", s=160, color="C3",
                   zorder=4, label="best")
        if numeric and use_log_axis(levels):
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(list(range(len(levels))), [param_cell(v) for v in levels],
                          rotation=30 if len(levels) > 4 else 0)
        ax.set_xlabel(p)
        ax.set_ylabel(_label(metric, direction))
    axes.flat[0].legend(fontsize=7, loc="best")
    failed = len(configs) - len(usable)
    note = f"; {failed} configuration(s) without results not shown" if failed else ""
    text, _ = interval_description(list(drawn.values()), metric)
    fig.suptitle(f"{metric} vs each swept parameter\n({text}{note})", fontsize=10)
    _save(fig, path)


# ---------------------------------------------------------------------------- heatmap


def heatmap_grid(configs: list[dict], p1: str, p2: str | None, metric: str):
    """Rows = levels of p1, columns = levels of p2 (one column when p2 is None), in
    :func:`sorted_levels` order; cell = mean of the configuration means (None when empty)."""
    col = f"{metric}_mean"
    rows_l = sorted_levels(c.get(p1) for c in configs)
    cols_l = sorted_levels(c.get(p2) for c in configs) if p2 else [None]
    cells: dict[tuple[str, str], list[float]] = {}
    for c in configs:
        v = to_float(c.get(col))
        if v is not None:
            cells.setdefault((level_key(c.get(p1)), level_key(c.get(p2)) if p2 else level_key(None)), []).append(v)
    grid = []
    for r in rows_l:
        row = []
        for k in cols_l:
            vals = cells.get((level_key(r), level_key(k)))
            row.append(math.fsum(vals) / len(vals) if vals else None)
        grid.append(row)
    return rows_l, cols_l, grid


def plot_heatmap(plt, rep: Reports, path) -> None:
    import numpy as np

    metric, direction = rep.objective
    configs = config_records(rep.configs, rep.param_names, [metric])
    swept = swept_params(rep.configs, rep.param_names)
    ranked = [r for r in rep.importance["parameter"] if r in swept] if not rep.importance.empty else []
    ranked += [p for p in swept if p not in ranked]
    if not ranked:
        save_message(plt, path, "heatmap", "no swept parameter: a heatmap needs at least one")
        return
    if not any(to_float(c.get(f"{metric}_mean")) is not None for c in configs):
        save_message(plt, path, "heatmap", no_objective_message(rep) or f"no result for {metric} yet")
        return
    p1 = ranked[0]
    p2 = ranked[1] if len(ranked) > 1 else None
    rows_l, cols_l, grid = heatmap_grid(configs, p1, p2, metric)
    data = np.ma.masked_invalid(np.array([[np.nan if v is None else v for v in r] for r in grid], dtype=float))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(cols_l) + 2.5), max(2.5, 0.5 * len(rows_l) + 1.8)),
                           layout="constrained")
    cmap = plt.get_cmap("viridis" if direction == "max" else "viridis_r").copy()
    cmap.set_bad("0.85")
    im = ax.imshow(data, cmap=cmap, aspect="auto")
    ax.grid(False)
    ax.set_yticks(range(len(rows_l)), [param_cell(v) for v in rows_l])
    ax.set_ylabel(p1)
    if p2:
        ax.set_xticks(range(len(cols_l)), [param_cell(v) for v in cols_l], rotation=30 if len(cols_l) > 5 else 0)
        ax.set_xlabel(p2)
    else:
        ax.set_xticks([])
        ax.set_xlabel("(only one swept parameter)")
    if len(rows_l) * len(cols_l) <= 150:
        finite = data.compressed()
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0
        for i, r in enumerate(grid):
            for j, v in enumerate(r):
                if v is None:
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="0.3")
                else:
                    dark = (v < mid) == (direction == "max")
                    ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=f"mean {_label(metric, direction)}")
    others = [p for p in swept if p not in (p1, p2)]
    title = f"{metric} by {p1}" + (f" and {p2}" if p2 else "")
    if others:
        title += f"\n(averaged over {', '.join(others)})"
    ax.set_title(title)
    _save(fig, path)


# ---------------------------------------------------------------------------- pareto


def plot_pareto(plt, rep: Reports, path) -> None:
    objectives, dropped = rep.objectives, rep.dropped
    if len(objectives) < 2:
        why = ("no trade-off requested: set report.extra_objectives, e.g. {metric: latency_ms_p95, direction: min}"
               if not dropped else f"no configuration has a value for {', '.join(dropped)}: nothing to trade off")
        save_message(plt, path, "Pareto front", why)
        return
    (m0, d0), (m1, d1) = objectives[0], objectives[1]
    configs = config_records(rep.configs, rep.param_names, [m0, m1])
    pts = [c for c in configs if to_float(c.get(f"{m0}_mean")) is not None and to_float(c.get(f"{m1}_mean")) is not None]
    if not pts:
        save_message(plt, path, "Pareto front", no_objective_message(rep) or f"no configuration has both {m0} and {m1} yet")
        return
    front_ids = set(rep.pareto["config_id"]) if not rep.pareto.empty else set()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    xs = [to_float(c[f"{m1}_mean"]) for c in pts]
    ys = [to_float(c[f"{m0}_mean"]) for c in pts]
    on = [c.get("config_id") in front_ids for c in pts]
    ax.scatter([x for x, f in zip(xs, on) if not f], [y for y, f in zip(ys, on) if not f], s=22,
               color="0.6", label="dominated", zorder=2)
    fx = [x for x, f in zip(xs, on) if f]
    fy = [y for y, f in zip(ys, on) if f]
    ax.scatter(fx, fy, s=46, color="C3", edgecolor="black", label="Pareto front", zorder=3)
    if len(objectives) == 2 and len(fx) > 1:
        order = sorted(range(len(fx)), key=lambda i: fx[i])
        ax.step([fx[i] for i in order], [fy[i] for i in order], where="post", color="C3", alpha=0.6, zorder=2)
    if use_log_axis(xs):
        ax.set_xscale("log")
    ax.set_xlabel(_label(m1, d1))
    ax.set_ylabel(_label(m0, d0))
    title = f"{m0} vs {m1}: {len(fx)} of {len(pts)} configurations non-dominated"
    if len(objectives) > 2:
        title += f"\n(front over {len(objectives)} objectives, shown on the first two)"
    if dropped:
        title += f"\n(no values for {', '.join(dropped)}: left out)"
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path)


# ---------------------------------------------------------------------------- training curves


def load_history(trials_dir: str | Path, trial: str) -> list[tuple[float, float]] | None:
    """(epoch, loss) pairs from a trial's train.json; None when missing, unreadable or not ok."""
    rec = read_json_or_none(Path(trials_dir) / trial / "train.json")
    if rec is None or rec.get("status", "ok") != "ok":
        return None
    hist = (rec.get("metrics") or {}).get("history") or []
    out = []
    for h in hist:
        e, loss = to_float(h.get("epoch")), h.get("loss")
        loss = to_float(loss)
        if e is not None:
            out.append((e, float("nan") if loss is None else loss))
    return out or None


def _short(params: dict[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={param_cell(params.get(k))}" for k in keys)


def plot_training_curves(plt, rep: Reports, plan: dict | None, trials_dir, path) -> None:
    metric, direction = rep.objective
    if "train" not in rep.steps:
        save_message(plt, path, "training curves",
                     f"this sweep has no train step (sweep.steps: {', '.join(rep.steps)}): nothing was trained")
        return
    keys = config_params(rep.param_names)
    swept = swept_params(rep.configs, rep.param_names) or keys
    trials = (plan or {}).get("trials", [])
    groups: dict[tuple, list[tuple[dict, list]]] = {}
    missing = 0
    for t in trials:
        hist = load_history(trials_dir, t.get("trial", ""))
        if hist is None:
            missing += 1
            continue
        p = t.get("params", {})
        groups.setdefault(tuple(level_key(p.get(k)) for k in keys), []).append((p, hist))
    if not groups:
        save_message(plt, path, "training curves", "no finished training run with a loss history yet")
        return
    all_losses = [loss for g in groups.values() for _, h in g for _, loss in h if not math.isnan(loss)]
    logy = bool(all_losses) and min(all_losses) > 0 and max(all_losses) / min(all_losses) >= 100
    note = f"; {missing} trial(s) without a finished train step not shown" if missing else ""
    if len(groups) <= MAX_PANELS:
        n = len(groups)
        ncols = min(4, n)
        nrows = math.ceil(n / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.7 * nrows), squeeze=False,
                                 sharex=True, sharey=True, layout="constrained")
        for ax in axes.flat[n:]:
            ax.axis("off")
        for idx, (ax, members) in enumerate(zip(axes.flat, groups.values())):
            for p, hist in members:
                ax.plot([e for e, _ in hist], [loss for _, loss in hist], marker=".", lw=1.2,
                        label=f"seed {p.get('seed', '?')}")
            ax.set_title(_short(members[0][0], swept) or "all trials", fontsize=8)
            if logy:
                ax.set_yscale("log")
            if idx == 0 and len(members) <= 6:
                ax.legend(fontsize=6)
        from matplotlib.ticker import MaxNLocator

        for ax in axes[-1]:
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in axes[:, 0]:
            ax.set_ylabel("training loss")
        fig.suptitle(f"Training loss per epoch, one panel per configuration, one line per seed{note}")
    else:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        by_key = {tuple(level_key(c.get(k)) for k in keys): to_float(c.get(f"{metric}_mean"))
                  for c in config_records(rep.configs, rep.param_names, [metric])}
        vals = [v for v in by_key.values() if v is not None]
        norm = Normalize(min(vals), max(vals)) if vals else Normalize(0, 1)
        cmap = plt.get_cmap("viridis" if direction == "max" else "viridis_r")
        fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
        for key, members in groups.items():
            v = by_key.get(key)
            color = cmap(norm(v)) if v is not None else "0.6"
            for _, hist in members:
                ax.plot([e for e, _ in hist], [loss for _, loss in hist], lw=0.8, alpha=0.6, color=color)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=f"config mean {_label(metric, direction)}")
        from matplotlib.ticker import MaxNLocator

        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("training loss")
        if logy:
            ax.set_yscale("log")
        ax.set_title(f"Training loss per epoch of {sum(len(g) for g in groups.values())} trials{note}")
    _save(fig, path)


# ---------------------------------------------------------------------------- a search


def plot_halving_ladder(plt, rep: Reports, path) -> None:
    metric, direction = rep.objective
    search = rep.search or {}
    param = search.get("budget_param") or "budget"
    ladder = halving_ladder(rep)
    title = "successive halving"
    if not ladder:
        save_message(plt, path, title, "no round of the search has been chosen yet (results/plan/rounds/)")
        return
    if not any(st["score"] is not None for e in ladder for st in e["steps"]):
        save_message(plt, path, title, f"no configuration has a score ({metric}) yet")
        return
    budgets = [b for b in search.get("ladder") or [] if is_number(b)]
    scores = [st["score"] for e in ladder for st in e["steps"] if st["score"] is not None]
    lo, hi = min(scores), max(scores)
    floor = lo - 0.06 * ((hi - lo) or abs(lo) or 1.0)  # where failed configurations are marked
    fig, ax = plt.subplots(figsize=(7.2, 4.8), layout="constrained")
    stopped_n = failed_n = 0
    for e in reversed(ladder):  # the furthest configurations drawn last, on top
        pts = [(to_float(st["budget"]), st["score"]) for st in e["steps"] if st["score"] is not None]
        last = e["steps"][-1]
        winner = e["outcome"] == "winner"
        reached = e["last_round"]
        color = "C3" if winner else plt.get_cmap("viridis")(reached / max(1, len(budgets) - 1)) if budgets else "C0"
        if pts:
            ax.plot([b for b, _ in pts], [v for _, v in pts], "-o", ms=3.5, lw=2.2 if winner else 1.0,
                    color=color, alpha=1.0 if winner else 0.75, zorder=4 if winner else 2)
        if last["outcome"] == "stopped" and pts:
            stopped_n += 1
            ax.scatter([pts[-1][0]], [pts[-1][1]], marker="x", s=36, color="0.25", zorder=3)
        elif last["outcome"] == "failed":
            failed_n += 1
            ax.scatter([to_float(last["budget"])], [floor], marker="x", s=40, color="C3", zorder=3)
            if pts:
                ax.plot([pts[-1][0], to_float(last["budget"])], [pts[-1][1], floor], ":", color="C3", lw=0.8)
        if winner and pts:
            ax.scatter([pts[-1][0]], [pts[-1][1]], marker="*", s=220, color="C3", edgecolor="black", zorder=5)
    if budgets and max(budgets) / max(min(budgets), 1e-12) >= 8:
        ax.set_xscale("log")
    if budgets:
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.minorticks_off()
    ax.set_xlabel(f"{param} (the budget; round r trains at the r-th value)")
    ax.set_ylabel(f"mean {_label(metric, direction)}")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="x", ls="", color="0.25", label=f"stopped ({stopped_n})")]
    if failed_n:
        handles.append(Line2D([], [], marker="x", ls="", color="C3", label=f"failed ({failed_n}; drawn at the bottom)"))
    if any(e["outcome"] == "winner" for e in ladder):
        handles.append(Line2D([], [], marker="*", ls="", ms=12, color="C3", markeredgecolor="black",
                              label="winner at the top budget"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    n_rounds = len(budgets) or len(rep.rounds)
    ax.set_title(f"Successive halving (eta {search.get('eta', '?')}): {len(ladder)} configurations, "
                 f"{len(rep.rounds)} of {n_rounds} rounds chosen\n"
                 "each line is one configuration until the round it was stopped")
    _save(fig, path)


def plot_search_progress(plt, rep: Reports, path) -> None:
    metric, direction = rep.objective
    method = (rep.search or {}).get("method", "search")
    progress = search_progress(rep)
    title = f"{method}: {metric} by trial"
    ok = [p for p in progress if p["value"] is not None]
    if not progress:
        save_message(plt, path, title, "no trial has been chosen yet")
        return
    if not ok:
        save_message(plt, path, title, no_objective_message(rep) or f"no trial has a value of {metric} yet")
        return
    rounds = sorted({p["round"] for p in progress}, key=lambda r: to_float(r) or 0.0)
    fig, ax = plt.subplots(figsize=(7.2, 4.4), layout="constrained")
    cmap = plt.get_cmap("viridis")
    for i, r in enumerate(rounds):
        pts = [p for p in ok if p["round"] == r]
        ax.scatter([p["n"] for p in pts], [p["value"] for p in pts], s=18, alpha=0.8, zorder=2,
                   color=(f"C{i}" if len(rounds) <= 10 else cmap(i / (len(rounds) - 1))) if len(rounds) > 1 else "C0",
                   label=f"round {r}" if len(rounds) > 1 else "a trial")
    best = [(p["n"], p["best"]) for p in progress if p["best"] is not None]
    ax.step([n for n, _ in best] + [len(progress)], [b for _, b in best] + [best[-1][1]], where="post",
            color="C3", lw=1.6, zorder=3, label=f"best so far ({'max' if direction == 'max' else 'min'})")
    if len(rounds) > 1:
        for r in rounds[1:]:
            start = next(p["n"] for p in progress if p["round"] == r)
            ax.axvline(start - 0.5, color="0.7", lw=0.8, ls="--", zorder=1)
    failed = len(progress) - len(ok)
    ax.set_xlabel("trial (in the order the search chose them: round, then position)")
    ax.set_ylabel(_label(metric, direction))
    ax.set_xlim(0.5, len(progress) + 0.5)
    ax.legend(fontsize=7, loc="best", ncol=2 if len(rounds) > 6 else 1)
    ax.set_title(f"{method}: {metric} of {len(ok)} ok trial(s) and the best so far"
                 + (f"\n({failed} trial(s) without a value, failed or pending, not shown)" if failed else ""))
    _save(fig, path)


def plot_search(plt, rep: Reports, path) -> None:
    """The search method's figure (:func:`search_plot_name`)."""
    method = (rep.search or {}).get("method")
    name = search_plot_name(method)
    if name is None:
        save_message(plt, path, "search", "this sweep is a grid: it has no search figure")
    elif name == "halving_ladder":
        plot_halving_ladder(plt, rep, path)
    else:
        plot_search_progress(plt, rep, path)


# ---------------------------------------------------------------------------- drawing one figure


def draw(plt, problems: Problems, path: str | Path, title: str, draw_fn) -> None:
    """Draw one figure; if drawing fails, a figure saying why takes its place (and the problem
    is recorded); if even that fails, a plain placeholder PNG. Never a stale file."""
    try:
        draw_fn()
    except Exception as err:  # noqa: BLE001 - a plot must never fail the sweep
        why = error_reason(err)
        problems.add(path, why)
        guarded(problems, path, lambda: save_message(plt, path, title, f"could not be drawn: {why}"))


# ---------------------------------------------------------------------------- CLI


def plots_main(argv: list[str] | None = None) -> int:
    """Draw the four figures, a search's own with --out-search, and answer.html with them embedded
    (given --html); problems go to results/report/problems.report_plots.json."""
    ap = argparse.ArgumentParser(prog="python -m snakesweep.report.plots", description=__doc__.split("\n\n")[0])
    add_inputs(ap, "accepted for the rule's dependency; recomputed from the summary")
    ap.add_argument("--trials-dir", default="results/trials")
    add_objectives(ap)
    ap.add_argument("--out-objective", required=True)
    ap.add_argument("--out-heatmap", required=True)
    ap.add_argument("--out-pareto", required=True)
    ap.add_argument("--out-curves", required=True)
    ap.add_argument("--out-search", help="a search's figure: the halving ladder, or the objective by trial "
                    "order with the best so far (the workflow passes it only for a search)")
    ap.add_argument("--html", help="write answer.html with these figures embedded")
    ap.add_argument("--problems", help="default: results/report/problems.report_plots.json")
    args = ap.parse_args(argv)

    objective = check_objective(args.objective, args.direction)
    extra = parse_objectives(args.extra)
    outs = {"objective_vs_params": args.out_objective, "heatmap": args.out_heatmap,
            "pareto": args.out_pareto, "training_curves": args.out_curves}
    if args.out_search:
        outs["search"] = args.out_search
    problems = Problems("report_plots", Path(args.problems or problems_path(results_dir_of(args.out_objective), "report_plots")))
    try:
        plan, rep = load_reports(args, objective, extra)
        # the figures and answer.html read the objectives' and the efficiency columns only: a
        # 20,000-metric sweep's other 80,000 statistic columns stay out of every view
        shown = [objective[0], *(m for m, _ in rep.objectives), *EFFICIENCY_METRICS]
        rep = replace(rep, configs=config_view(rep.configs, rep.param_names, shown))
        if args.out_search:  # named after what it is, for answer.html's caption
            outs[search_plot_name((rep.search or {}).get("method")) or "search"] = outs.pop("search")
        plt = _plt()
    except Exception as err:  # noqa: BLE001 - a report must never fail the sweep
        return fail_all(problems, [*outs.values(), *([args.html] if args.html else [])], err)
    draw(plt, problems, outs["objective_vs_params"], f"{objective[0]} vs parameters",
              lambda: plot_objective_vs_params(plt, rep, outs["objective_vs_params"]))
    draw(plt, problems, outs["heatmap"], "heatmap", lambda: plot_heatmap(plt, rep, outs["heatmap"]))
    draw(plt, problems, outs["pareto"], "Pareto front", lambda: plot_pareto(plt, rep, outs["pareto"]))
    draw(plt, problems, outs["training_curves"], "training curves",
              lambda: plot_training_curves(plt, rep, plan, args.trials_dir, outs["training_curves"]))
    if args.out_search:
        draw(plt, problems, args.out_search, "search", lambda: plot_search(plt, rep, args.out_search))
    if args.html:
        guarded(problems, args.html, lambda: atomic_write_text(args.html, render_answer_html(rep, outs)))
    problems.write()
    print(f"plots: {len(rep.configs)} configurations drawn", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(plots_main())
