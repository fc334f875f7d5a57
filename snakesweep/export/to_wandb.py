"""A sweep's trials as W&B runs in offline mode, inside the sweep's directory, for `wandb sync`.

Each trial is one offline run under <sweep dir>/wandb/wandb/offline-run-*-<run id>/, the run id
derived from the sweep and the trial (so `wandb sync` of a re-export reaches the same run).
W&B's offline runs cannot be updated in place, so <sweep dir>/wandb/exported.json records what
each trial's run holds: an unchanged trial is skipped, a changed one's run directory is replaced.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from snakesweep.results import atomic_write_json, read_json_or_none

from . import SweepRuns, history_points, missing_extra

MANIFEST = "exported.json"


def run_id(sweep: str, trial: str) -> str:
    return "ss-" + hashlib.sha256(f"{sweep}/{trial}".encode()).hexdigest()[:16]


def export_wandb(runs: SweepRuns, project: str | None = None) -> dict[str, Any]:
    """Write `runs` as offline W&B runs; {"where", "added", "updated", "unchanged"}."""
    os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    try:
        import wandb  # lazy: an optional extra
    except ImportError:
        raise missing_extra("wandb") from None
    base = runs.dir.resolve() / "wandb"
    base.mkdir(parents=True, exist_ok=True)
    manifest_path = base / MANIFEST
    manifest = read_json_or_none(manifest_path)
    manifest = manifest if isinstance(manifest, dict) else {}
    counts = {"where": f"{base} (offline; upload with `wandb sync {base}/wandb/offline-run-*`)",
              "added": 0, "updated": 0, "unchanged": 0}
    for run in runs.runs:
        rid = run_id(runs.name, run.trial)
        seen = manifest.get(run.trial)
        if isinstance(seen, dict) and seen.get("digest") == run.digest and Path(seen.get("dir", "")).is_dir():
            counts["unchanged"] += 1
            continue
        for old in base.joinpath("wandb").glob(f"offline-run-*-{rid}"):
            shutil.rmtree(old, ignore_errors=True)
        w = wandb.init(project=project or runs.name, name=run.trial, id=rid, group=runs.name, dir=str(base),
                       config=run.params, tags=[run.status], mode="offline", reinit="create_new",
                       settings=wandb.Settings(console="off", save_code=False, disable_git=True,
                                               x_disable_stats=True, x_disable_meta=True))
        for step, values in history_points(run.history):
            w.log({f"history/{k}": v for k, v in values.items()}, step=step)
        for k, v in run.metrics.items():
            w.summary[k] = v
        for k, v in run.tags.items():
            w.summary[k] = v
        w.summary["status"] = run.status
        if run.error:
            w.summary["error"] = run.error
        run_dir = str(Path(w.dir).parent)
        w.finish(exit_code=0 if run.status == "ok" else 1)
        counts["updated" if seen else "added"] += 1
        manifest[run.trial] = {"digest": run.digest, "id": rid, "dir": run_dir}
        atomic_write_json(manifest_path, manifest)
    return counts


