"""A sweep's trials as MLflow runs: one run per trial, found again by its trial-id tag."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import TAG, SweepRuns, TrialRun, history_points, missing_extra

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DIGEST_TAG = f"{TAG}.export_digest"
HISTORY_PREFIX = "history."  # a history entry {"epoch": 2, "loss": 0.3} -> metric history.loss at step 2


def default_uri(runs: SweepRuns) -> str:
    return f"sqlite:///{runs.dir.resolve() / 'mlflow.db'}"


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return None


def _param(v: Any) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v)


def _write(client: MlflowClient, experiment_id: str, run: TrialRun) -> str:
    from mlflow.entities import Metric, Param

    start = _ms(run.started_at)
    created = client.create_run(experiment_id, start_time=start, run_name=run.trial,
                                tags={**run.tags, DIGEST_TAG: run.digest})
    rid = created.info.run_id
    ts = _ms(run.ended_at) or start or 0
    metrics = [Metric(k, v, ts, 0) for k, v in sorted(run.metrics.items())]
    metrics += [Metric(f"{HISTORY_PREFIX}{k}", v, ts, step) for step, values in history_points(run.history)
                for k, v in values.items()]
    params = [Param(k, _param(v)[:6000]) for k, v in sorted(run.params.items())]
    # log_batch takes at most 1000 metrics and 100 params per call
    for i in range(0, len(params), 100):
        client.log_batch(rid, params=params[i:i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(rid, metrics=metrics[i:i + 1000])
    if run.error:
        client.set_tag(rid, "mlflow.note.content", run.error)
    client.set_terminated(rid, "FINISHED" if run.status == "ok" else "FAILED", end_time=_ms(run.ended_at))
    return rid


def export_mlflow(runs: SweepRuns, tracking_uri: str | None = None, experiment: str | None = None) -> dict[str, Any]:
    """Write `runs` to MLflow; {"where", "experiment", "added", "updated", "unchanged"}."""
    try:
        from mlflow.tracking import MlflowClient  # lazy: an optional extra
    except ImportError:
        raise missing_extra("mlflow") from None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri or default_uri(runs)
    client = MlflowClient(tracking_uri=uri)
    name = experiment or runs.name
    exp = client.get_experiment_by_name(name)
    experiment_id = exp.experiment_id if exp else client.create_experiment(
        name, tags={f"{TAG}.sweep": runs.name, f"{TAG}.sweep_dir": str(runs.dir)})
    existing: dict[str, list[Any]] = {}
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.`{TAG}.sweep` = '{runs.name}'",
                                  max_results=1000, page_token=token)
        for r in page:
            trial = r.data.tags.get(f"{TAG}.trial")
            if trial:
                existing.setdefault(trial, []).append(r)
        token = page.token
        if not token:
            break
    counts = {"where": f"{uri} (experiment {name!r})", "experiment": name, "tracking_uri": uri,
              "added": 0, "updated": 0, "unchanged": 0}
    for run in runs.runs:
        found = existing.get(run.trial, [])
        if len(found) == 1 and found[0].data.tags.get(DIGEST_TAG) == run.digest:
            for k, v in run.tags.items():  # tags are mutable: the sweep's hash after an edit, say
                if found[0].data.tags.get(k) != v:
                    client.set_tag(found[0].info.run_id, k, v)
            counts["unchanged"] += 1
            continue
        # a trial whose results changed: its run is replaced (MLflow's params and metric
        # history are append-only, so updating in place would keep the old values beside the new)
        for old in found:
            client.delete_run(old.info.run_id)
        _write(client, experiment_id, run)
        counts["updated" if found else "added"] += 1
    return counts
