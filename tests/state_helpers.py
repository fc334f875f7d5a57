"""Builders of sweep directories for the state, status, preview and collect tests: result
records exactly as snakesweep/results.py writes them, Snakemake's incomplete markers and
metadata records exactly as its file persistence writes them, and a plan."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from snakesweep.results import SCHEMA_VERSION


def touch(path: Path, text: str = "", age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))
    return path


def record(trial: str, step: str, metrics: dict[str, Any] | None = None, sweep_hash: str = "h0",
           params: dict[str, Any] | None = None, duration_s: float = 1.0) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION, "trial": trial, "step": step, "params": params or {},
        "metrics": metrics or {}, "status": "ok", "started_at": "2024-01-01T00:00:00.000+00:00",
        "ended_at": "2024-01-01T00:00:01.000+00:00", "duration_s": duration_s, "host": "h",
        "device": "cpu", "versions": {}, "sweep_hash": sweep_hash,
    }


def write_result(root: Path, trial: str, step: str, metrics: dict[str, Any] | None = None, *,
                 age_s: float = 0.0, rel: str | None = None, **kw: Any) -> Path:
    rel = rel or f"results/trials/{trial}/{step}.json"
    return touch(root / rel, json.dumps(record(trial, step, metrics, **kw)), age_s=age_s)


def marker(root: Path, output: str) -> Path:
    """An incomplete marker exactly as Snakemake's file persistence writes it."""
    p = root / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(output.encode()).decode()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"external_jobid": None}))
    return p


def metadata(root: Path, output: str, inputs: dict[str, Path]) -> Path:
    """Snakemake's file-backend metadata record of `output`, with the checksums of `inputs`
    ({path as the rule names it: file}) as its finished job records them (sha256, "algo:hex")."""
    sums = {k: "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest() for k, f in inputs.items()}
    p = root / ".snakemake" / "metadata" / base64.urlsafe_b64encode(output.encode()).decode()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"rule": "r", "input": sorted(inputs), "record_format_version": 6,
                             "incomplete": False, "input_checksums": sums}))
    return p


def write_plan(root: Path, trials: list[str], params: list[dict[str, Any]] | None = None,
               steps: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    params = params or [{"seed": i} for i in range(len(trials))]
    names: list[str] = []
    for p in params:
        names += [k for k in p if k not in names]
    plan = {"schema_version": 1, "sweep_name": "st", "sweep_hash": "h0", "param_names": names,
            "trials": [{"trial": t, "params": p} for t, p in zip(trials, params)], **extra}
    if steps is not None:
        plan["steps"] = steps
    touch(root / "results/plan/trials.json", json.dumps(plan))
    return plan
