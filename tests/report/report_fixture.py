"""The report tests' finished sweep: real files in tmp_path (plan, per-trial result JSONs, an
error record), and the summary and configs.csv as collect writes them."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from snakesweep import report
from snakesweep.grid import config_id

if TYPE_CHECKING:
    import pandas as pd

METRICS = ["train_loss", "train_time_s", "eval_accuracy", "eval_loss", "latency_ms_p95", "energy_j_per_sample"]
STEP_METRICS = {
    "train": ["train_loss", "train_time_s"],
    "eval": ["eval_accuracy", "eval_loss"],
    "measure": ["latency_ms_p95", "energy_j_per_sample"],
}


def metrics_of(p: dict) -> dict:
    """Deterministic, seed-dependent synthetic metrics (lr matters most, hidden a little)."""
    noise = [0.004, -0.003, 0.001][p["seed"]]
    acc = 0.95 - 0.08 * abs(math.log10(p["lr"]) + 2) + 0.01 * (p["hidden"] == 64) + noise
    return {
        "train_loss": 0.3 - acc / 4 + noise,
        "train_time_s": 2.0 + p["hidden"] / 32 + abs(noise) * 10,
        "eval_accuracy": acc,
        "eval_loss": 1 - acc,
        "latency_ms_p95": 0.5 * p["hidden"] / 16 + noise,
        "energy_j_per_sample": 1e-4 * p["hidden"],
    }


def make_sweep(root: Path, grid: dict | None = None, fail: dict | None = None) -> dict:
    """Write a finished sweep: plan, train/eval/measure JSONs, and an eval failure for one trial.

    Returns the plan. `fail` maps a trial index to the step that failed.
    """
    grid = grid or {"lr": [0.001, 0.01, 0.1], "hidden": [16, 64]}
    fail = {4: "eval"} if fail is None else fail
    names = [*grid, "seed"]
    trials = []
    for i, combo in enumerate(itertools.product(*grid.values(), [0, 1, 2])):
        params = dict(zip(names, combo))
        trials.append({"trial": f"{i:010x}", "params": params})
    plan = {"schema_version": 1, "sweep_name": "fixture", "sweep_hash": "h", "param_names": names, "trials": trials}
    (root / "results" / "plan").mkdir(parents=True)
    (root / "results" / "plan" / "trials.json").write_text(json.dumps(plan))
    for i, t in enumerate(trials):
        m = metrics_of(t["params"])
        d = root / "results" / "trials" / t["trial"]
        d.mkdir(parents=True)
        for step in ("train", "eval", "measure"):
            if fail.get(i) == step:
                err = root / "logs" / step / f"{t['trial']}.error.json"
                err.parent.mkdir(parents=True, exist_ok=True)
                err.write_text(json.dumps({"trial": t["trial"], "step": step, "type": "RuntimeError",
                                           "message": "CUDA out of memory", "traceback_tail": "",
                                           "reason": "exception", "time": "2024-01-01T00:00:00Z"}))
                break
            metrics = {k: m[k] for k in STEP_METRICS[step]}
            if step == "train":
                metrics["history"] = [{"epoch": e, "loss": 2.0 / e + m["train_loss"]} for e in range(1, 5)]
            rec = {"schema_version": 1, "trial": t["trial"], "step": step, "params": t["params"],
                   "metrics": metrics, "status": "ok", "started_at": "2024-01-01T00:00:00+00:00",
                   "ended_at": "2024-01-01T00:00:01+00:00", "duration_s": 1.0}
            (d / f"{step}.json").write_text(json.dumps(rec))
    return plan


def summary_rows(root: Path, plan: dict) -> list[dict]:
    """One row per planned trial with typed params and metrics, read off the JSONs as collect does."""
    rows = []
    for t in plan["trials"]:
        row = {"trial": t["trial"], "status": "ok", **t["params"]}
        for step in ("train", "eval", "measure"):
            f = root / "results" / "trials" / t["trial"] / f"{step}.json"
            if not f.exists():
                row["status"] = "failed" if (root / "logs" / step / f"{t['trial']}.error.json").exists() else "pending"
                break
            row.update({k: v for k, v in json.loads(f.read_text())["metrics"].items() if k != "history"})
        rows.append(row)
    return rows


def summary_df(rows: list[dict], names: list[str]) -> pd.DataFrame:
    """collect's summary DataFrame: parameters as object columns, so [3, None] stays [3, None]."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for n in names:
        df[n] = pd.Series([r.get(n) for r in rows], dtype=object)
    df["config_id"] = [config_id({k: r.get(k) for k in names}) for r in rows]
    return df


def write_summary(root: Path, plan: dict) -> tuple[pd.DataFrame, list[dict]]:
    """results/summary.csv (params as JSON text) and configs.csv (report.write_configs), as collect
    writes them; returns the typed summary and configs.csv's text rows."""
    df = summary_df(summary_rows(root, plan), plan["param_names"])
    text = df.copy()
    for n in plan["param_names"]:
        text[n] = text[n].map(report.param_cell)
    cols = ["trial", "status", *plan["param_names"], *[m for m in METRICS if m in df.columns], "config_id"]
    (root / "results" / "summary.csv").write_text(text[cols].to_csv(index=False))
    report.write_configs(df, plan["param_names"], root / "results" / "configs.csv")
    return df, report.read_csv(root / "results" / "configs.csv")


def expected_from_jsons(root: Path, plan: dict) -> dict[tuple, dict]:
    """Per configuration, recomputed from the trial JSONs alone: counts and per-metric stats."""
    groups: dict[tuple, dict] = {}
    for t in plan["trials"]:
        key = tuple((k, v) for k, v in t["params"].items() if k != "seed")
        g = groups.setdefault(key, {"n": 0, "ok": 0, "failed": 0, "values": {m: [] for m in METRICS}})
        g["n"] += 1
        d = root / "results" / "trials" / t["trial"]
        recs = [json.loads((d / f"{s}.json").read_text()) for s in ("train", "eval", "measure") if (d / f"{s}.json").exists()]
        if len(recs) < 3:
            g["failed"] += 1
            continue
        g["ok"] += 1
        for rec in recs:
            for k, v in rec["metrics"].items():
                if k in METRICS:
                    g["values"][k].append(v)
    return groups


def report_cli(r: Path, objective: str = "eval_accuracy", extra: str = "latency_ms_p95:min,energy_j_per_sample:min") -> int:
    return report.main([
        "--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"), "--plan", str(r / "plan/trials.json"),
        "--objective", objective, "--direction", "max", f"--extra={extra}",
        "--best", str(r / "best.json"), "--pareto", str(r / "pareto.csv"), "--importance", str(r / "importance.csv"),
        "--html", str(r / "report/answer.html"),
    ])


def is_drawn_png(path: Path) -> bool:
    return path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
