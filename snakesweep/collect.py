"""Every planned trial's results -> results/summary.csv and results/configs.csv.

Runs as the `collect` rule, and from the workflow's `onerror` handler after a run with
failures, so the CSVs always list every planned trial with its status and reason.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

from .plan import load_plan
from .results import STEPS, atomic_write_text

METRICS = [
    "train_loss",
    "train_time_s",
    "eval_accuracy",
    "eval_loss",
    "latency_ms_p50",
    "latency_ms_p95",
    "throughput_sps",
    "peak_mem_mb",
    "energy_j_per_sample",
    "energy_source",
]


def trial_dir(results: Path, trial: str) -> Path:
    return results / "trials" / trial


def _load(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


def error_records(logs: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(step, trial) -> error record, from one scan per step directory; a measurement cycle's
    record (`{trial}.cycle{k}.error.json`) counts for its trial's measure step."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for step in STEPS:
        directory = logs / step
        if directory.is_dir():
            for path in sorted(directory.glob("*.error.json")):
                record = _load(path)
                if record is not None:
                    found.setdefault((step, path.name.split(".", 1)[0]), record)
    return found


def trial_row(trial: dict[str, Any], results: Path, errors: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """Status is read off the files alone: a result is `ok`, an error record `failed`, else `pending`."""
    tid = trial["trial"]
    row: dict[str, Any] = {"trial": tid, "status": "pending", **trial["params"]}
    for step in STEPS:
        record = _load(trial_dir(results, tid) / f"{step}.json")
        if record is None:
            error = errors.get((step, tid))
            if error is not None:
                row["status"] = "failed"
                row["error"] = f"{step}: {error['type']}: {error['message']}"
                row["error_log"] = error.get("log", "")
            return row
        row.update({k: v for k, v in record["metrics"].items() if _scalar(v)})
    row["status"] = "ok"
    return row


def _fmt(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _fmt(row.get(c)) for c in columns})
    return buf.getvalue()


def summary_columns(rows: list[dict[str, Any]], param_names: list[str]) -> list[str]:
    fixed = ["trial", "status", *param_names, *METRICS]
    extra: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in fixed and key not in ("error", "error_log"):
                extra.setdefault(key, None)
    return [*fixed, *extra, "error", "error_log"]


def collect(plan_path: str | Path, results: str | Path, logs: str | Path, summary: str | Path, configs: str | Path) -> list[dict[str, Any]]:
    from .report import config_rows

    plan = load_plan(plan_path)
    results, logs = Path(results), Path(logs)
    errors = error_records(logs)
    rows = [trial_row(t, results, errors) for t in plan["trials"]]
    columns = summary_columns(rows, plan["param_names"])
    summary_text = to_csv(rows, columns)
    atomic_write_text(summary, summary_text)
    metrics = [c for c in columns[len(plan["param_names"]) + 2 :] if c not in ("error", "error_log")]
    # configs are computed from the CSV's own text so both files agree cell for cell
    text_rows = list(csv.DictReader(io.StringIO(summary_text)))
    groups = config_rows(text_rows, plan["param_names"], metrics)
    cfg_columns = list(groups[0].keys()) if groups else []
    atomic_write_text(configs, to_csv(groups, cfg_columns))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakesweep.collect")
    ap.add_argument("--plan", required=True)
    ap.add_argument("--results", help="results directory (default: the plan's results/)")
    ap.add_argument("--logs", default="logs")
    ap.add_argument("--summary", required=True)
    ap.add_argument("--configs", required=True)
    a = ap.parse_args(argv)
    results = a.results or Path(a.plan).resolve().parents[1]  # results/plan/trials.json -> results
    rows = collect(a.plan, results, a.logs, a.summary, a.configs)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}
    print(f"snakesweep: {len(rows)} trials: {counts['ok']} ok, {counts['failed']} failed, {counts['pending']} pending")
    return 0


if __name__ == "__main__":
    sys.exit(main())
