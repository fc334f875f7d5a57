"""Markdown for people and CI: tables that paste into a pull request or a lab notebook as they are.

    table(headers, rows) -> str          a GitHub-flavoured pipe table, cells escaped
    summary_markdown(results) -> str     a sweep's end-of-run summary (summary.csv, best.json,
                                         configs.csv), what ``python -m snakesweep.summary
                                         --format markdown`` prints

Standard library only, and it reads files only: the end-of-run summary may call it.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .results import read_json_or_none

MAX_ROWS = 50


def cell(value: Any) -> str:
    """One table cell: ``|`` escaped, newlines as spaces, None as an empty cell."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def num(x: Any, digits: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return f"{v:.{digits}g}" if math.isfinite(v) else "n/a"


def params_text(params: Any) -> str:
    if isinstance(params, Mapping) and params:
        return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in params.items())
    return "(no swept parameters)"


def _rows(path: Path) -> list[dict[str, str]] | None:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None


def _interval(c: Mapping[str, Any]) -> str:
    lo, hi = c.get("ci_low"), c.get("ci_high")
    if num(lo) != "n/a" and num(hi) != "n/a":
        return f"[{num(lo)}, {num(hi)}]"
    return str(c.get("ci_note") or "no interval")


def summary_markdown(results: str | Path) -> str:
    """The sweep in ``results`` (its directory) as Markdown: trial counts, the best configuration
    against the runner-up with the verdict, the configurations by the objective, the failed trials.
    Never raises: a missing file is a line saying so."""
    root = Path(results)
    out = [f"## Sweep `{root.as_posix()}`", ""]
    rows = _rows(root / "summary.csv")
    if rows is None:
        return "\n".join([*out, f"No trial summary yet (`{(root / 'summary.csv').as_posix()}` does not exist).", ""])
    status = [(r.get("status") or "").strip() or "pending" for r in rows]
    failed = [r for r, s in zip(rows, status) if s in ("failed", "corrupt")]
    ok = status.count("ok")
    out += [table(["trials", "ok", "failed", "pending"], [[len(rows), ok, len(failed), len(rows) - ok - len(failed)]]), ""]
    best = read_json_or_none(root / "best.json")
    metric = None
    if isinstance(best, Mapping):
        obj = best.get("objective") or {}
        metric, direction = obj.get("metric"), obj.get("direction")
        out += [f"### Best configuration by `{metric}` ({direction})", ""]
        picked = [(label, best.get(key)) for label, key in (("best", "best"), ("runner-up", "runner_up"))]
        picked = [(label, c) for label, c in picked if isinstance(c, Mapping)]
        if picked:
            conf = best.get("confidence")
            pct = f"{float(conf) * 100:.0f}%" if isinstance(conf, (int, float)) else "95%"
            out += [table(["", "parameters", "mean", f"{pct} CI", "ok seeds", "config"],
                          [[label, params_text(c.get("params")), num(c.get("mean")), _interval(c), c.get("n_ok"), c.get("config_id")]
                           for label, c in picked]), ""]
        if best.get("verdict"):
            out += [f"**Verdict:** {cell(best['verdict'])}", ""]
    configs = _rows(root / "configs.csv")
    if configs and metric and f"{metric}_mean" in configs[0]:
        plan = read_json_or_none(root / "plan" / "trials.json")
        names = [p for p in (plan.get("param_names") or []) if p != "seed"] if isinstance(plan, Mapping) else []
        names = [p for p in names if p in configs[0]]
        reverse = (best.get("objective") or {}).get("direction") != "min"

        def key(c: Mapping[str, str]) -> float:
            try:
                v = float(c.get(f"{metric}_mean") or "nan")
            except ValueError:
                v = math.nan
            return -math.inf if math.isnan(v) else v

        ranked = sorted(configs, key=key, reverse=reverse)
        out += [f"### Configurations by `{metric}`", ""]
        out += [table([*names, f"{metric} mean", "CI low", "CI high", "n"],
                      [[*(c.get(p) for p in names), num(c.get(f"{metric}_mean")), num(c.get(f"{metric}_ci_low")),
                        num(c.get(f"{metric}_ci_high")), c.get(f"{metric}_n") or c.get("n_ok")] for c in ranked[:MAX_ROWS]]), ""]
        if len(ranked) > MAX_ROWS:
            out += [f"... and {len(ranked) - MAX_ROWS} more configurations (`{(root / 'configs.csv').as_posix()}`)", ""]
    if failed:
        out += ["### Failed trials", ""]
        out += [table(["trial", "error", "log"], [[r.get("trial"), r.get("error"), r.get("error_log")] for r in failed[:MAX_ROWS]]), ""]
        if len(failed) > MAX_ROWS:
            out += [f"... and {len(failed) - MAX_ROWS} more failed trials (`{(root / 'summary.csv').as_posix()}`)", ""]
    return "\n".join(out)
