"""Did my change make it better or worse, beyond noise? ``python -m snakesweep.compare OLD NEW``.

OLD and NEW each name a sweep: a sweep file, a sweep's directory, or a checkout (its default
sweep; :func:`snakesweep.layout.find_sweep`). Configurations are matched by their parameters,
the seed aside (summary.csv's ``config_id``). Per matched configuration and metric (the report
objective and extra objectives by default, ``--metric`` for others) the old and new mean with
their intervals, the difference new - old, Welch's two-sided t-test over the ok seeds (over the
measurement cycles where a side has one ok seed that was measured over several), the p-values
adjusted across every test of the comparison by Holm's step-down method, and a verdict:
``improved`` / ``regressed`` (adjusted p < alpha, by the direction of the metric),
``no significant change``, or ``not testable`` (the reason: fewer than two values on a side, no
spread at all). Configurations in only one sweep are listed, and what differs between the
sweeps besides their results (workload, code digest, settings, versions, host and device).

``--fail-on regressed`` exits 1 when any regression is found (a CI gate); 2 is a usage or
input error, printed as one line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .layout import find_sweep
from .markdown import num, params_text, table
from .plan import load_plan
from .report.frame import metric_values, read_summary
from .report.values import config_params, known_range
from .results import CYCLE_FILE, STEPS, read_json_or_none
from .stats import usable_interval, welch_t_test

ALPHA = 0.05
VERDICTS = ("improved", "regressed", "no significant change", "not testable")
# plan keys whose difference changes what a trial computes or measures
SETTING_KEYS = ("workload", "steps", "device", "measure", "timeout_s", "failures", "search", "param_names")


@dataclass
class Sweep:
    """One side of a comparison, read from its directory."""

    arg: str
    root: Path
    dir: Path
    plan: dict[str, Any]
    summary: Any  # pandas.DataFrame, typed (snakesweep.report.frame.read_summary)
    param_names: list[str]
    objectives: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.plan.get("sweep_name") or self.dir.name)


def _objectives_of(raw: Any) -> list[tuple[str, str]]:
    """[(metric, direction)] of a ``report:`` block (a sweep file's, or a plan's)."""
    out: list[tuple[str, str]] = []
    if not isinstance(raw, Mapping):
        return out
    items = [raw.get("objective") or {"metric": "eval_accuracy", "direction": "max"}, *(raw.get("extra_objectives") or [])]
    for o in items:
        if isinstance(o, Mapping) and isinstance(o.get("metric"), str):
            pair = (o["metric"], o.get("direction") if o.get("direction") in ("max", "min") else "max")
            if pair[0] not in [m for m, _ in out]:
                out.append(pair)
    return out


def _sweep_file_report(path: Path) -> Any:
    import yaml  # lazy: only when a sweep is named by its file

    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return raw.get("report", {}) if isinstance(raw, Mapping) else None


def load_sweep(arg: str, cwd: str | Path = ".") -> Sweep:
    """The sweep `arg` names, with its plan, typed summary and objectives. The objectives come
    from the plan's ``report`` block when it has one, else from the sweep file when `arg` is one,
    else from best.json's objective."""
    root, rel = find_sweep(arg, cwd)
    d = Path(root, rel)
    plan_path = d / "plan" / "trials.json"
    plan = load_plan(plan_path, missing_ok=True)
    if plan is None:
        raise ConfigError(f"{arg}: no readable plan at {plan_path} (fix: run the sweep first, or name a sweep's directory)")
    if not (d / "summary.csv").is_file():
        raise ConfigError(f"{arg}: no {d / 'summary.csv'} (fix: run the sweep, or `snakemake --cores 1 {rel}/summary.csv`)")
    summary = read_summary(d / "summary.csv", plan)
    names = list(plan.get("param_names") or [])
    objectives = _objectives_of(plan.get("report"))
    if not objectives and Path(arg).is_file():
        objectives = _objectives_of(_sweep_file_report(Path(arg)))
    if not objectives:
        best = read_json_or_none(d / "best.json")
        objectives = _objectives_of({"objective": best.get("objective")}) if isinstance(best, Mapping) else []
    return Sweep(arg, Path(root), d, plan, summary, names, objectives)


# ---------------------------------------------------------------------------- statistics


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (controls the family-wise error rate); None stays None."""
    idx = sorted((i for i, p in enumerate(p_values) if p is not None), key=lambda i: p_values[i])
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def _cycle_values(sweep: Sweep, trial: str, metric: str) -> list[float]:
    """A trial's per-cycle values of `metric` (trials/<id>/cycles/<step>.<c>.json), in cycle order."""
    folder = sweep.dir / "trials" / trial / "cycles"
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return []
    found = []
    for n in names:
        m = CYCLE_FILE.match(n)
        rec = read_json_or_none(folder / n) if m else None
        v = (rec.get("metrics") or {}).get(metric) if isinstance(rec, Mapping) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            found.append((int(m.group("cycle")), float(v)))
    return [v for _, v in sorted(found)]


def _values(sweep: Sweep, rows: Any, metric: str) -> tuple[list[float], str]:
    """The values one configuration's test uses, and over what ("seeds" or "cycles")."""
    if metric not in rows.columns:
        return [], "seeds"
    vals = [v for v in metric_values(rows[metric]) if not math.isnan(v)]
    if len(rows) == 1:
        cycles = _cycle_values(sweep, str(rows["trial"].iloc[0]), metric)
        if len(cycles) >= 2:
            return cycles, "cycles"
    return vals, "seeds"


@dataclass
class Row:
    config_id: str
    params: dict[str, Any]
    metric: str
    direction: str
    old: Any  # snakesweep.stats.Interval
    new: Any
    basis: str
    difference: float | None
    p_value: float | None
    p_adjusted: float | None = None
    verdict: str = "not testable"
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "params": self.params, "config_id": self.config_id, "metric": self.metric, "direction": self.direction,
            "old_mean": self.old.mean, "old_ci": [self.old.ci_low, self.old.ci_high], "old_n": self.old.n,
            "new_mean": self.new.mean, "new_ci": [self.new.ci_low, self.new.ci_high], "new_n": self.new.n,
            "over": self.basis, "difference": self.difference, "p_value": self.p_adjusted,
            "p_value_unadjusted": self.p_value, "verdict": self.verdict, "reason": self.reason,
        }


@dataclass
class Comparison:
    old: Sweep
    new: Sweep
    rows: list[Row]
    only_old: list[dict[str, Any]]
    only_new: list[dict[str, Any]]
    differences: list[tuple[str, Any, Any]]
    metrics: list[tuple[str, str]]
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.rows)


def _configs(sweep: Sweep) -> dict[str, tuple[dict[str, Any], Any]]:
    """{config_id: (params without the seed, its ok rows)}, every planned configuration."""
    df = sweep.summary
    keys = config_params(sweep.param_names)
    out: dict[str, tuple[dict[str, Any], Any]] = {}
    for cid, rows in df.groupby("config_id", sort=False):
        first = rows.iloc[0]
        out[str(cid)] = ({k: first[k] for k in keys if k in rows.columns}, rows[rows["status"] == "ok"])
    return out


def _direction(metric: str, *sweeps: Sweep, given: str | None = None) -> str | None:
    if given:
        return given
    for s in sweeps:
        for m, d in s.objectives:
            if m == metric:
                return d
    return None


def compare(old: Sweep, new: Sweep, metrics: Sequence[str] = (), alpha: float = ALPHA) -> Comparison:
    """Every matched configuration x metric, tested and adjusted (see the module docstring)."""
    notes: list[str] = []
    if metrics:
        chosen = []
        for spec in metrics:
            m, _, d = spec.partition(":")
            direction = _direction(m, old, new, given=d or None)
            if direction not in ("max", "min"):
                raise ConfigError(f"--metric {spec}: no direction for {m!r} in either sweep's report settings "
                                  f"(fix: --metric {m}:max or --metric {m}:min)")
            chosen.append((m, direction))
    else:
        chosen = list(old.objectives)
        for m, d in new.objectives:
            if m not in [c for c, _ in chosen]:
                chosen.append((m, d))
        for m, d in chosen:
            other = _direction(m, new) if (m, d) in old.objectives else _direction(m, old)
            if other and other != d:
                notes.append(f"{m}: the sweeps disagree on its direction; {d} is used")
        if not chosen:
            raise ConfigError("neither sweep names an objective (no report settings in the plan, no best.json; "
                              "fix: --metric METRIC:max or METRIC:min)")
    a, b = _configs(old), _configs(new)
    rows: list[Row] = []
    for cid, (params, old_rows) in a.items():
        if cid not in b:
            continue
        new_rows = b[cid][1]
        for m, d in chosen:
            va, basis_a = _values(old, old_rows, m)
            vb, basis_b = _values(new, new_rows, m)
            bounds = known_range(m, [*va, *vb])
            ia, ib = usable_interval(va, bounds=bounds), usable_interval(vb, bounds=bounds)
            test = welch_t_test(vb, va)
            basis = basis_a if basis_a == basis_b else f"{basis_a} (old), {basis_b} (new)"
            rows.append(Row(cid, params, m, d, ia, ib, basis, test.mean_diff, test.p_value,
                            reason=test.reason))
    for r, p in zip(rows, holm([r.p_value for r in rows])):
        r.p_adjusted = p
        if p is None:
            r.verdict = "not testable"
        elif p < alpha and r.difference is not None and r.difference != 0:
            better = r.difference > 0 if r.direction == "max" else r.difference < 0
            r.verdict = "improved" if better else "regressed"
        else:
            r.verdict = "no significant change"
    only_old = [{"config_id": cid, "params": a[cid][0]} for cid in a if cid not in b]
    only_new = [{"config_id": cid, "params": b[cid][0]} for cid in b if cid not in a]
    return Comparison(old, new, rows, only_old, only_new, differences(old, new), chosen, alpha, notes)


# ---------------------------------------------------------------------------- what else differs


def code_digest(sweep: Sweep) -> str | None:
    """The plan's own code digest when it records one; else a digest of the workload's source
    files as they are now (a user module file, a command's `sources`)."""
    for key in ("code_digest", "workload_digest"):
        if sweep.plan.get(key):
            return str(sweep.plan[key])
    from .state import workload_sources  # lazy: only when the plan records no digest

    files = sorted({f for fs in workload_sources(sweep.plan, sweep.root).values() for f in fs})
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        try:
            h.update(f.encode() + b"\0" + Path(sweep.root, f).read_bytes() + b"\0")
        except OSError:
            h.update(f.encode() + b"\0missing\0")
    return h.hexdigest()[:12] + " (of the files now)"


def record_facts(sweep: Sweep) -> dict[str, list[str]]:
    """The distinct host, device and library versions over the sweep's result records."""
    facts: dict[str, set[str]] = {}
    trials = sweep.summary.loc[sweep.summary["status"] == "ok", "trial"]
    for trial in trials:
        for step in STEPS:
            rec = read_json_or_none(sweep.dir / "trials" / str(trial) / f"{step}.json")
            if not isinstance(rec, Mapping):
                continue
            for key in ("host", "device"):
                if rec.get(key) is not None:
                    facts.setdefault(key, set()).add(str(rec[key]))
            for lib, version in (rec.get("versions") or {}).items():
                if version is not None:
                    facts.setdefault(f"versions.{lib}", set()).add(str(version))
    return {k: sorted(v) for k, v in sorted(facts.items())}


def _short(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def differences(old: Sweep, new: Sweep) -> list[tuple[str, Any, Any]]:
    """(what, old, new) for everything but the results that differs between the two sweeps."""
    out = []
    if old.name != new.name:
        out.append(("sweep name", old.name, new.name))
    for key in SETTING_KEYS:
        a, b = old.plan.get(key), new.plan.get(key)
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            out.append((f"plan: {key}", a, b))
    ca, cb = code_digest(old), code_digest(new)
    if ca != cb:
        out.append(("workload code digest", ca, cb))
    fa, fb = record_facts(old), record_facts(new)
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            out.append((key, _short(fa.get(key)), _short(fb.get(key))))
    return out


# ---------------------------------------------------------------------------- output


def _mean_ci(iv: Any) -> str:
    if iv.mean is None:
        return "no value"
    if iv.ci_low is None:
        return f"{num(iv.mean)} (n={iv.n}, {iv.note})"
    return f"{num(iv.mean)} [{num(iv.ci_low)}, {num(iv.ci_high)}] (n={iv.n})"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _method_line(c: Comparison) -> str:
    tested = sum(r.p_value is not None for r in c.rows)
    return (f"Welch's two-sided t-test of new - old per configuration and metric, over the ok seeds (over the "
            f"measurement cycles where a side has one ok seed); p-values Holm-adjusted across the {tested} "
            f"tests of this comparison; significant at adjusted p < {c.alpha:g}.")


def _verdict_line(c: Comparison) -> str:
    return (f"{c.count('regressed')} regressed, {c.count('improved')} improved, {c.count('no significant change')} "
            f"no significant change, {c.count('not testable')} not testable, of {len(c.rows)} "
            f"(configuration, metric) pairs in {len({r.config_id for r in c.rows})} matched configurations")


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)


def render_text(c: Comparison) -> str:
    lines = [f"compare: old {c.old.name} ({c.old.dir}) vs new {c.new.name} ({c.new.dir})",
             "metrics: " + ", ".join(f"{m} ({d})" for m, d in c.metrics), _method_line(c), ""]
    for r in c.rows:
        why = f"; {r.reason}" if r.reason and r.verdict == "not testable" else ""
        lines.append(f"  {params_text(r.params)}  {r.metric}: old {_mean_ci(r.old)} -> new {_mean_ci(r.new)}; "
                     f"difference {num(r.difference)}; p {_p(r.p_adjusted)} (over {r.basis}): {r.verdict}{why}")
    for label, items in (("only in old", c.only_old), ("only in new", c.only_new)):
        for item in items:
            lines.append(f"  {label}: {params_text(item['params'])} (config {item['config_id']})")
    lines += ["", "verdict: " + _verdict_line(c)]
    if c.differences:
        lines.append("what differs besides the results:")
        lines += [f"  {what}: {_value(a)} -> {_value(b)}" for what, a, b in c.differences]
    else:
        lines.append("what differs besides the results: nothing recorded")
    lines += [f"note: {n}" for n in c.notes]
    return "\n".join(lines) + "\n"


def render_markdown(c: Comparison) -> str:
    out = [f"## Compare `{c.old.name}` (old) vs `{c.new.name}` (new)", "",
           f"**{_verdict_line(c)}.** {_method_line(c)}", ""]
    out += [table(["parameters", "metric", "old mean [CI] (n)", "new mean [CI] (n)", "difference", "p (Holm)", "over", "verdict"],
                  [[params_text(r.params), f"{r.metric} ({r.direction})", _mean_ci(r.old), _mean_ci(r.new),
                    num(r.difference), _p(r.p_adjusted), r.basis,
                    f"**{r.verdict}**" if r.verdict in ("improved", "regressed") else
                    r.verdict + (f" ({r.reason})" if r.reason and r.verdict == "not testable" else "")] for r in c.rows]), ""]
    if c.only_old or c.only_new:
        out += ["### Configurations in one sweep only", ""]
        out += [table(["sweep", "parameters", "config"],
                      [[label, params_text(i["params"]), i["config_id"]] for label, items in
                       (("old only", c.only_old), ("new only", c.only_new)) for i in items]), ""]
    out += ["### What differs besides the results", ""]
    if c.differences:
        out += [table(["what", "old", "new"], [[w, _value(a), _value(b)] for w, a, b in c.differences]), ""]
    else:
        out += ["Nothing recorded.", ""]
    out += [f"Note: {n}" for n in c.notes]
    return "\n".join(out) + "\n"


def render_json(c: Comparison) -> str:
    return json.dumps([r.as_json() for r in c.rows], indent=2, default=str) + "\n"


def render_json_full(c: Comparison) -> dict[str, Any]:
    """Everything of a comparison as one JSON object (rows as in --format json)."""
    return {"old": {"name": c.old.name, "dir": str(c.old.dir)}, "new": {"name": c.new.name, "dir": str(c.new.dir)},
            "adjustment": "holm", "alpha": c.alpha, "rows": [r.as_json() for r in c.rows],
            "only_old": c.only_old, "only_new": c.only_new,
            "differences": [{"what": w, "old": a, "new": b} for w, a, b in c.differences]}


RENDER = {"text": render_text, "markdown": render_markdown, "json": render_json}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("old", help="the old sweep: a sweep file, a sweep's directory or a checkout")
    ap.add_argument("new", help="the new sweep: a sweep file, a sweep's directory or a checkout")
    ap.add_argument("--metric", action="append", default=[],
                    help="METRIC or METRIC:max|min, repeatable (default: the report objective and extra objectives)")
    ap.add_argument("--format", choices=sorted(RENDER), default="text")
    ap.add_argument("--alpha", type=float, default=ALPHA, help="significance level after the Holm adjustment")
    ap.add_argument("--fail-on", choices=["regressed"], help="exit 1 when any configuration regressed")
    ap.add_argument("--output", help="also write the output to this file")
    args = ap.parse_args(argv)
    try:
        if not 0 < args.alpha < 1:
            raise ConfigError(f"--alpha {args.alpha}: use a level between 0 and 1, e.g. 0.05")
        c = compare(load_sweep(args.old), load_sweep(args.new), args.metric, args.alpha)
    except ConfigError as err:
        print(f"compare: {err}", file=sys.stderr)
        return 2
    text = RENDER[args.format](c)
    sys.stdout.write(text)
    if args.output:
        from .results import atomic_write_text

        atomic_write_text(args.output, text)
    if args.fail_on == "regressed" and c.count("regressed"):
        print(f"compare: {c.count('regressed')} regression(s) found (--fail-on regressed)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
