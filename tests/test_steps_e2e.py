"""`sweep.steps`: a trial runs only the steps its sweep selects, and every output follows."""

from __future__ import annotations

import json

import pytest

from conftest import jobs_run, toy_config

pytestmark = pytest.mark.e2e

TRAIN_EVAL = {"train_loss", "train_time_s", "eval_accuracy", "eval_loss"}
EFFICIENCY = {"latency_ms_p50", "latency_ms_p95", "throughput_sps", "energy_j_per_sample", "energy_source", "window_s"}


def test_hyperparameter_sweep_without_measurement(workdir):
    """[train, eval]: no measure job, no measurement columns, every trial ok."""
    cfg = toy_config(workdir, {"x": [0.5, 2.0]}, report={"objective": {"metric": "eval_accuracy", "direction": "max"}})
    cfg["sweep"]["steps"] = ["train", "eval"]
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(cfg)), check=True)
    assert jobs_run(run, "measure") == 0 and jobs_run(run, "train") == 4 and jobs_run(run, "eval") == 4
    rows = workdir.read_csv("results/toy/summary.csv")
    assert [r["status"] for r in rows] == ["ok"] * 4
    columns = set(rows[0])
    assert TRAIN_EVAL <= columns
    assert not (columns & EFFICIENCY), sorted(columns & EFFICIENCY)
    for row in rows:
        tdir = workdir.path / "results/toy" / "trials" / row["trial"]
        assert (tdir / "eval.json").exists() and not (tdir / "measure.json").exists()
    best = json.loads((workdir.path / "results/toy" / "best.json").read_text())
    assert "eval_accuracy" in json.dumps(best)


def test_measure_only_study_has_no_model_and_only_measurement_columns(workdir):
    """[measure]: the parameters describe what is measured; nothing is trained or evaluated."""
    cfg = toy_config(
        workdir, {"x": [0.5, 2.0], "batch_size": [4, 16]}, report={"objective": {"metric": "throughput_sps", "direction": "max"}}
    )
    cfg["sweep"]["steps"] = ["measure"]
    cfg["sweep"]["seeds"] = [0]
    run = workdir.snakemake("--cores", "2", "--configfile", str(workdir.write_config(cfg)), check=True)
    assert jobs_run(run, "train") == 0 and jobs_run(run, "eval") == 0 and jobs_run(run, "measure") == 4
    rows = workdir.read_csv("results/toy/summary.csv")
    assert [r["status"] for r in rows] == ["ok"] * 4
    columns = set(rows[0])
    assert {"throughput_sps", "latency_ms_p50", "window_s"} <= columns
    assert not (columns & TRAIN_EVAL), sorted(columns & TRAIN_EVAL)
    for row in rows:
        record = json.loads((workdir.path / "results/toy" / "trials" / row["trial"] / "measure.json").read_text())
        # the toy's batches hold `batch_size` samples of the trial's own parameter
        assert record["metrics"]["n_samples_timed"] % int(row["batch_size"]) == 0
        assert not (workdir.path / "results/toy" / "trials" / row["trial"] / "train.json").exists()


@pytest.mark.parametrize(
    "steps, expected",
    [
        (["eval"], "'sweep.steps': 'eval' evaluates what 'train' made (fix: add train, or use [measure] alone)"),
        (["measure", "train"], "'sweep.steps': list each step once, in the order train, eval, measure"),
        ([], "'sweep.steps'"),
    ],
)
def test_nonsensical_steps_are_a_config_error(workdir, steps, expected):
    cfg = toy_config(workdir, {"x": [1.0]})
    cfg["sweep"]["steps"] = steps
    run = workdir.snakemake("-n", "--configfile", str(workdir.write_config(cfg)))
    assert run.returncode == 1
    assert expected in run.stderr
    assert "Traceback" not in run.stderr
    assert not (workdir.path / "results").exists()


def test_builtin_objective_no_selected_step_produces_fails_before_any_job(workdir):
    cfg = {
        "sweep": {"name": "d", "workload": "digits_mlp", "steps": ["train", "eval"], "grid": {"lr": [0.1]}},
        "report": {"objective": {"metric": "throughput_sps", "direction": "max"}},
    }
    run = workdir.snakemake("-n", "--configfile", str(workdir.write_config(cfg)))
    assert run.returncode == 1
    assert "'report.objective.metric' is 'throughput_sps', which no step of sweep.steps ['train', 'eval'] produces" in run.stderr
    assert "eval_accuracy" in run.stderr  # the fix lists what does exist
    assert "Traceback" not in run.stderr
