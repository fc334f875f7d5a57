"""answer.html: the sweep's answer on one self-contained page (inline CSS, escaped values, the
plots embedded as base64 PNGs when drawn by the plots main with ``--html``)."""

from __future__ import annotations

import base64
import html as _html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep.stats import MIN_N_FOR_CI
from snakesweep.table import param_cell

from .lineage import LINEAGE_FIELDS, best_member, best_schedule, lineage_rows, space_params, trial_values
from .search_views import halving_ladder, search_progress
from .tables import CI_NOTE, Reports, config_view, ranked_configs, swept_params
from .values import config_params, level_key, to_float

# Efficiency columns answer.html shows when measured (first the ones present).
EFFICIENCY_METRICS = ("latency_ms_p50", "latency_ms_p95", "throughput_sps", "energy_j_per_sample", "peak_mem_mb")
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2933;margin:1.2em;max-width:70em;line-height:1.45}
h1{font-size:1.35em;margin:.2em 0 .6em} h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #d9e2ec;padding-bottom:.2em}
.verdict{padding:.7em 1em;border-radius:6px;font-size:1.02em}
.sig{background:#e3f9e5;border-left:5px solid #3f9142} .nosig{background:#fffbea;border-left:5px solid #de911d}
.problem{background:#ffe3e3;border-left:5px solid #cf1124;padding:.5em 1em;border-radius:6px}
table{border-collapse:collapse;font-size:.86em;margin:.3em 0;max-width:100%} th,td{padding:.22em .5em;text-align:right;border-bottom:1px solid #e4e7eb}
td{white-space:nowrap} td.l,td.vals{white-space:normal}
th{background:#f0f4f8;font-weight:600;vertical-align:bottom} td.l,th.l{text-align:left} tr.best td{font-weight:600;background:#f7fcf7}
td.vals{max-width:14em;font-size:.92em} sup.n{color:#9b2c2c;font-weight:600;margin-left:.1em}
ol.notes{color:#627d98;font-size:.84em;margin:.2em 0 .8em;padding-left:1.6em} ol.notes li{margin:.1em 0}
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


def _hh(name: Any) -> str:
    """A column name for a header: escaped; it wraps at its spaces (``latency_ms_p95`` / ``mean``),
    so the column is as wide as its longest word, not its whole header."""
    return _h(name)


class _Notes:
    """A table's notes, each written once under the table (numbered) and marked in its cells with
    the number: a note repeated in every row ("n too small ...") would wrap to lines per row."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, note: Any) -> str:
        text = str(note or "").strip()
        if not text:
            return ""
        if text not in self.texts:
            self.texts.append(text)
        i = self.texts.index(text) + 1
        return f"<sup class='n' title='{_h(text)}'>{i}</sup>"

    def cell(self, interval: str, note: Any) -> str:
        """An interval cell: the interval (or "n/a"), marked with its note."""
        return (interval or "<span class='muted'>n/a</span>") + self.mark(note)

    def html(self) -> str:
        if not self.texts:
            return ""
        return "<ol class='notes'>" + "".join(f"<li>{_h(t)}</li>" for t in self.texts) + "</ol>"


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
    eff = [m for m in EFFICIENCY_METRICS if m != metric and f"{m}_mean" in configs.columns]
    configs = config_view(configs, names, [metric, *eff])  # the columns shown, of maybe 80,000
    crow = configs.to_dict("records")
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Sweep answer</title><style>{_CSS}</style></head><body>"]
    out.append(f"<h1>Which configuration is best by <code>{_h(metric)}</code> ({word} is better)?</h1>")
    cls = "problem" if best.get("problem") else "sig" if best.get("significant") else "nosig"
    out.append(f"<p class='verdict {cls}'>{_h(best.get('verdict'))}</p>")
    if fixed and crow:
        fixed_txt = ", ".join(f"{_h(k)}={_hp(crow[0].get(k))}" for k in fixed)
        out.append(f"<p class='muted'>Same in every configuration: {fixed_txt}.</p>")

    def head(extra: Sequence[str] = ()) -> str:
        cells = "".join(f"<th class='l'>{_hh(k)}</th>" for k in swept)
        return f"<tr><th class='l'>config</th>{cells}{''.join(f'<th>{_hh(e)}</th>' for e in extra)}</tr>"

    def params_cells(params: Mapping) -> str:
        return "".join(f"<td class='l'>{_hp(params.get(k))}</td>" for k in swept)

    by_id = {c.get("config_id"): c for c in crow}
    pair = [(lbl, best.get(key)) for lbl, key in (("best", "best"), ("runner-up", "runner_up")) if best.get(key)]
    if pair:
        out.append("<h2>Best and runner-up</h2><table>")
        over_cycles = all(b.get("over") == "cycles" for _, b in pair)
        out.append(head(["ok / planned seeds", "mean", "95% CI", "std",
                         "per-cycle mean of the one seed" if over_cycles else "per-seed values",
                         *(f"{m} mean" for m in eff)]))
        notes = _Notes()
        for lbl, b in pair:
            vals = ", ".join(f"{v:.4g}" for v in b.get("values") or [])
            ci = "" if b.get("ci_low") is None else f"[{b['ci_low']:.4g}, {b['ci_high']:.4g}]"
            note = b.get("ci_note") or ""
            if b.get("over") == "cycles":
                note = f"std and interval over the {b.get('n_cycles')} measurement cycles of the one ok seed" + (
                    f" ({note})" if note and not ci else "")
            c = by_id.get(b.get("config_id"), {})
            out.append(
                f"<tr class='{'best' if lbl == 'best' else ''}'><td class='l'>{_h(lbl)} <span class='muted'>{_h(b.get('config_id'))}</span></td>"
                f"{params_cells(b.get('params') or {})}<td>{b.get('n_ok')} / {b.get('n_seeds')}</td>"
                f"<td>{_num(b.get('mean'))}</td><td>{notes.cell(ci, note)}</td><td>{_num(b.get('std'), 3)}</td>"
                f"<td class='vals'>{_h(vals)}</td>"
                + "".join(f"<td>{_num(c.get(f'{m}_mean'))}</td>" for m in eff) + "</tr>"
            )
        out.append("</table>" + notes.html())
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
    if rep.importance_left_out:
        out.append(f"<p class='muted'>Not ranked: {_h(', '.join(rep.importance_left_out))}. In a "
                   f"{_h((rep.search or {}).get('method'))} search the budget a configuration reaches is chosen by "
                   "its score at the budget before, so its eta squared would measure which configurations "
                   "survived the selection, not the budget's effect on the objective.</p>")
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

    ranked_all = ranked_configs(configs, metric, direction)
    ranked = ranked_all.iloc[:max_configs].to_dict("records")
    missing = len(crow) - len(ranked_all)
    if ranked:
        out.append(f"<h2>All configurations by {_h(metric)}"
                   + (f" (top {max_configs} of {len(ranked_all)})" if len(ranked_all) > max_configs else "") + "</h2>")
        out.append("<table>" + head(["ok / planned", "failed", "mean", "95% CI", *(f"{m} mean" for m in eff)]))
        best_id = (best.get("best") or {}).get("config_id")
        notes = _Notes()
        for c in ranked[:max_configs]:
            ci = notes.cell(_ci(c, metric), c.get(CI_NOTE))
            out.append(f"<tr class='{'best' if c.get('config_id') == best_id else ''}'><td class='l'>{_h(c.get('config_id'))}</td>"
                       f"{params_cells(c)}<td>{_h(c.get('n_ok'))} / {_h(c.get('n_seeds'))}</td><td>{_h(c.get('n_failed'))}</td>"
                       f"<td>{_num(c.get(f'{metric}_mean'))}</td><td>{ci}</td>"
                       + "".join(f"<td>{_num(c.get(f'{m}_mean'))}</td>" for m in eff) + "</tr>")
        out.append("</table>" + notes.html())
    if missing:
        out.append(f"<p class='muted'>{missing} configuration(s) have no {_h(metric)} "
                   "(their seeds failed, are pending, or did not report it); results/configs.csv lists them.</p>")
    out.append(f"<p class='muted'>Intervals: two-sided 95% t intervals over ok seeds (for a configuration with one "
               f"ok seed measured over several cycles: over its cycles), only from {MIN_N_FOR_CI} values, clipped to "
               "a metric's known range; a numbered mark points to the note under its table (configs.csv, column "
               "ci_note).</p>")
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
    if method == "pbt":
        out += lineage_html(rep, max_rows)
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


def lineage_html(rep: Reports, max_rows: int = 50) -> list[str]:
    """answer.html's PBT section: every member's score per generation, with the member whose
    checkpoint it continued from when it exploited another (lineage.csv has every field), and
    the best member's schedule of parameters (snakesweep.pbt.ancestry)."""
    metric, direction = rep.objective
    names = space_params(rep.search)
    rows = lineage_rows(rep.rounds, trial_values(rep.summary, metric), names)
    names = names or [k for k in (rows[0] if rows else {}) if k not in LINEAGE_FIELDS]
    pb = (rep.search or {}).get("pbt") or {}
    out = ["<h2>Population-based training: each member's lineage</h2>"]
    if not rows:
        out.append("<p class='muted'>No generation has been chosen yet (plan/rounds/).</p>")
        return out
    gens = sorted({r["generation"] for r in rows})
    members = sorted({r["member"] for r in rows})
    cell = {(r["member"], r["generation"]): r for r in rows}
    out.append(f"<p class='muted'>{_h(metric)} ({'higher' if direction == 'max' else 'lower'} is better), mean over "
               f"seeds, per member and generation ({len(gens)} of {_h(pb.get('generations'))} generations chosen; "
               f"{_h(pb.get('param'))} += {_h(pb.get('step'))} per generation; quantile {_h(pb.get('quantile'))}). "
               "<b>&larr; m</b>: this generation continued from member m's checkpoint with perturbed parameters "
               "(exploit and explore); struck through: dead (failed, no donor). lineage.csv lists every "
               "member's parameters per generation.</p>")
    out.append("<table><tr><th class='l'>member</th>" + "".join(f"<th>generation {g}</th>" for g in gens) + "</tr>")
    for m in members[:max_rows]:
        cells = []
        for g in gens:
            r = cell.get((m, g))
            if r is None:
                cells.append("<td></td>")
                continue
            text = _num(r["score"]) or "n/a"
            if r["outcome"] == "exploited":
                text = f"<b>&larr; {_h(r['continued_from'])}</b> {text}"
            elif r["outcome"] == "dead":
                text = "<s>dead</s>"
            title = ", ".join(f"{k}={param_cell(r.get(k))}" for k in names) + (f"; {r['explore']}" if r["explore"] else "")
            cells.append(f"<td title='{_h(title)}'>{text}</td>")
        out.append(f"<tr><td class='l'>{_h(m)}</td>{''.join(cells)}</tr>")
    out.append("</table>")
    best = best_member(rows, direction)
    if best is None:
        out.append(f"<p class='muted'>No member has a value of {_h(metric)} yet.</p>")
        return out
    schedule = best_schedule(rep.rounds, best["member"], best["generation"])
    out.append(f"<p class='muted'>The best member of generation {_h(best['generation'])}: member {_h(best['member'])}, "
               f"{_h(metric)} {_num(best['score'])}. The schedule of parameters that trained its checkpoint "
               "(whose checkpoint each generation trained, oldest first):</p>")
    out.append("<table><tr><th>generation</th><th>member</th>" + "".join(f"<th class='l'>{_h(k)}</th>" for k in names) + "</tr>")
    for step in schedule:
        params = step.get("params") or {}
        out.append(f"<tr><td>{_h(step['generation'])}</td><td>{_h(step['member'])}</td>"
                   + "".join(f"<td class='l'>{_hp(params.get(k))}</td>" for k in names) + "</tr>")
    out.append("</table>")
    return out
