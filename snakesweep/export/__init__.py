"""A sweep's trials, written to the trackers people already use (issue 20).

    python -m snakesweep.export mlflow [--tracking-uri URI] [--experiment NAME] [SWEEP]
    python -m snakesweep.export wandb [--project NAME] [SWEEP]

SWEEP is a sweep file, a sweep's directory or a checkout (:func:`snakesweep.layout.find_sweep`;
default: the checkout's config/config.yaml). One run per finished trial (ok or failed; pending
trials are left for a later export): the parameters (dotted names), the final metrics, the
training history (train.json's ``history`` list) as metric steps, status and error, and the
trial id, sweep and code digests as tags. Exports are idempotent: a trial already exported with
the same content is left as it is, a trial whose results changed (a re-run, a retried failure)
replaces its run, and new trials are added. One writer: the export runs on the submit host (the
``export`` local rule at the end of a run, when the sweep sets ``report.export``, or this CLI),
never from cluster jobs. mlflow and wandb are optional extras, imported only here, when asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.errors import ConfigError
from snakesweep.layout import find_sweep
from snakesweep.plan import load_plan
from snakesweep.results import error_record_path, load_result, read_json_or_none

TAG = "snakesweep"
TARGETS = ("mlflow", "wandb")


@dataclass
class TrialRun:
    """What one trial becomes in a tracker."""

    trial: str
    params: dict[str, Any]
    status: str  # "ok" | "failed"
    metrics: dict[str, float]
    history: list[dict[str, Any]]
    tags: dict[str, str]
    error: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    digest: str = ""

    def __post_init__(self) -> None:
        # what the trial's results are; the tags (sweep hash, versions) are refreshed in place
        body = json.dumps([self.params, self.status, self.metrics, self.history, self.error],
                          sort_keys=True, default=str)
        self.digest = hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass
class SweepRuns:
    name: str
    dir: Path
    runs: list[TrialRun]
    pending: int = 0
    notes: list[str] = field(default_factory=list)


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested parameters as dotted names: {"opt": {"lr": 0.1}} -> {"opt.lr": 0.1}."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def history_points(history: Any) -> list[tuple[int, dict[str, float]]]:
    """(step, {name: value}) per entry of a history list; the step is the entry's ``epoch`` or
    ``step`` when it has one, else its position."""
    out = []
    if not isinstance(history, list):
        return out
    for i, entry in enumerate(history):
        if not isinstance(entry, Mapping):
            continue
        step = entry.get("step", entry.get("epoch", i))
        step = int(step) if _number(step) is not None else i
        values = {str(k): f for k, v in entry.items() if k not in ("step", "epoch") and (f := _number(v)) is not None}
        if values:
            out.append((step, values))
    return out


def code_digest(plan: Mapping[str, Any], root: Path) -> str | None:
    if plan.get("code_digest"):
        return str(plan["code_digest"])
    from snakesweep.state import workload_sources  # lazy: only when the plan records no digest

    files = sorted({f for fs in workload_sources(plan, root).values() for f in fs})
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        try:
            h.update(f.encode() + b"\0" + Path(root, f).read_bytes() + b"\0")
        except OSError:
            h.update(f.encode() + b"\0missing\0")
    return h.hexdigest()[:12]


def read_runs(arg: str | Path | None = None, cwd: str | Path = ".") -> SweepRuns:
    """Every finished trial of the sweep `arg` names, from its plan, result and error records."""
    root, rel = find_sweep(arg, cwd)
    d = Path(root, rel)
    plan = load_plan(d / "plan" / "trials.json", missing_ok=True)
    if plan is None:
        raise ConfigError(f"{d / 'plan' / 'trials.json'}: no readable plan (fix: run the sweep first, or name its directory)")
    steps = list(plan.get("steps") or ["train", "eval", "measure"])
    name = str(plan.get("sweep_name") or d.name)
    common = {f"{TAG}.sweep": name, f"{TAG}.sweep_dir": rel, f"{TAG}.sweep_hash": str(plan.get("sweep_hash") or ""),
              f"{TAG}.workload": str(plan.get("workload_key") or "")}
    digest = code_digest(plan, Path(root))
    if digest:
        common[f"{TAG}.code_digest"] = digest
    out = SweepRuns(name, d, [])
    for t in plan.get("trials") or []:
        trial, params = t["trial"], flatten(t.get("params") or {})
        metrics: dict[str, float] = {}
        history: list[dict[str, Any]] = []
        tags = dict(common, **{f"{TAG}.trial": trial})
        if "round" in t:
            tags[f"{TAG}.round"] = str(t["round"])
        status, error, started, ended = "ok", None, None, None
        for step in steps:
            rec, _ = load_result(d / "trials" / trial / f"{step}.json", trial, step)
            if rec is None:
                err = read_json_or_none(error_record_path(d / "logs" / step / f"{trial}.log"))
                if isinstance(err, Mapping):
                    status = "failed"
                    error = f"{step}: {err.get('type') or err.get('reason')}: {err.get('message') or ''}".strip()
                else:
                    status = "pending"
                break
            started = started or rec.get("started_at")
            ended = rec.get("ended_at")
            for key in ("host", "device"):
                if rec.get(key) is not None:
                    tags[f"{TAG}.{key}"] = str(rec[key])
            for lib, version in (rec.get("versions") or {}).items():
                if version is not None:
                    tags[f"{TAG}.versions.{lib}"] = str(version)
            for k, v in (rec.get("metrics") or {}).items():
                if k == "history" and step == "train":
                    history = v if isinstance(v, list) else []
                elif (f := _number(v)) is not None:
                    metrics[k] = f
        if status == "pending":
            out.pending += 1
            continue
        tags[f"{TAG}.status"] = status
        if error:
            tags[f"{TAG}.error"] = error[:5000]
        out.runs.append(TrialRun(trial, params, status, metrics, history, tags, error, started, ended))
    return out


def missing_extra(package: str) -> ConfigError:
    return ConfigError(f"{package} is not installed (fix: pip install 'snakesweep[{package}]', "
                       f"or pip install -c constraints.txt '.[{package}]' in this checkout)")
