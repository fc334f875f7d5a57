"""The Snakefile side of the reports: validated settings, and real Snakemake runs that make every
report (and remake them after a trial failure, none stale)."""

from __future__ import annotations

import json
import os

import pytest
from report_fixture import is_drawn_png

from snakesweep import report
from snakesweep.report import report_settings_params

# ---------------------------------------------------------------------------- settings


def test_report_settings_reach_the_shell_only_as_validated_names():
    cfg = {"report": {"objective": {"metric": "eval_accuracy", "direction": "max"},
                      "extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}]}}
    assert report_settings_params(cfg) == {"objective": "eval_accuracy", "direction": "max", "extra": "latency_ms_p95:min"}
    assert report_settings_params({})["objective"] == "eval_accuracy"
    two = {"report": {"extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"},
                                           {"metric": "energy_j_per_sample", "direction": "min"}]}}
    assert report.parse_objectives(report_settings_params(two)["extra"]) == [
        ("latency_ms_p95", "min"), ("energy_j_per_sample", "min")]
    for bad in ("acc; rm -rf ~", "$(id)", "acc metric", ""):
        with pytest.raises(ValueError):
            report_settings_params({"report": {"objective": {"metric": bad, "direction": "max"}}})


def test_known_metrics_give_no_warning(capsys):
    cfg = {"report": {"extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"},
                                           {"metric": "energy_j_per_sample", "direction": "min"}]}}
    report.workflow_report_settings(cfg, ["eval_accuracy", "latency_ms_p95", "energy_j_per_sample"])
    assert capsys.readouterr().err == ""
    report.workflow_report_settings({"report": {"objective": {"metric": "eval_acc"}}}, ["eval_accuracy"])
    assert "eval_acc are not among the known metrics" in capsys.readouterr().err


# ---------------------------------------------------------------------------- real workflow


@pytest.mark.e2e
def test_workflow_makes_reports_and_the_html_report_has_the_plots(workdir):
    from conftest import toy_config

    cfg = toy_config(workdir, {"x": [0.5, 1.0, 2.0]})
    cfg["report"] = {"objective": {"metric": "eval_accuracy", "direction": "max"},
                     "extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}]}
    path = workdir.write_config(cfg)
    dry = workdir.snakemake("-n", "--configfile", str(path), check=True)
    # Snakemake's logger writes a dry run to stdout, a real run to stderr
    out = dry.stdout + dry.stderr
    assert "snakesweep plan: 6 trials" in out and "no history yet" in out
    workdir.snakemake("--cores", "2", "--configfile", str(path), check=True)
    res = workdir.path / "results/toy"
    best = json.loads((res / "best.json").read_text())
    assert best["best"]["params"]["x"] == 1.0  # the toy's accuracy peaks at x = 1
    assert best["best"]["n_ok"] == 2
    for name in report.PLOT_NAMES:
        assert is_drawn_png(res / "plots" / f"{name}.png"), name
    html = workdir.path / "report.html"
    workdir.snakemake("--report", str(html), "--configfile", str(path), check=True)
    text = html.read_text()
    for needle in ("objective_vs_params.png", "heatmap.png", "training_curves.png", "answer.html",
                   "pareto.csv", "importance.csv", "best.json", "1. objective vs each parameter",
                   "Welch"):
        assert needle in text, needle
    # with history, the preview now estimates the wall time
    again = workdir.snakemake("-n", "--cores", "2", "--configfile", str(path), check=True)
    assert "nothing to run" in again.stdout + again.stderr
    first, second = sorted((res / "trials").iterdir())[:2]
    (first / "train.json").unlink()  # every step's result is a target: retrained, and what follows
    (second / "measure.json").unlink()
    again = workdir.snakemake("-n", "--cores", "2", "--configfile", str(path), check=True)
    assert "jobs to run per step: train 1, eval 1, measure 2" in again.stdout
    assert "on 2 cores (mean job time of " in again.stdout


@pytest.mark.e2e
def test_after_a_trial_failure_the_reports_are_remade_and_none_is_stale(workdir):
    from conftest import toy_config

    cfg = toy_config(workdir, {"x": [0.5, 1.0]})
    cfg["sweep"]["experiments"] = [{"x": 5.0, "fail": "raise"}]
    path = workdir.write_config(cfg)
    stale = workdir.path / "results/toy/plots/heatmap.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(report.message_png())  # an earlier sweep's figure
    run = workdir.snakemake("--cores", "2", "--configfile", str(path), env=dict(os.environ, TOY_FAILURES="1"))
    assert run.returncode != 0
    # the reports over the partial summary (what the onerror handler calls)
    cwd = os.getcwd()
    os.chdir(workdir.path)
    try:
        written = report.write_reports_after_failure({"objective": "eval_accuracy", "direction": "max", "extra": ""},
                                                     "results/toy", "results/toy/logs")
    finally:
        os.chdir(cwd)
    assert len(written) == len(report.report_targets(results="results/toy")), written
    best = json.loads((workdir.path / "results/toy/best.json").read_text())
    assert best["n_configs"] == 3 and best["n_configs_with_results"] == 2
    assert stale.read_bytes() != report.message_png() and is_drawn_png(stale)
    assert report.report_problem_lines(workdir.path / "results/toy") == []


@pytest.mark.e2e
def test_null_and_string_grid_values_through_every_report(workdir):
    """The issue's sweep: a null and a string with a comma and a quote as grid values. Today
    report_plots fails (None < float) and the run exits 1 forever; answer.html shows blanks."""
    from conftest import toy_config

    cfg = toy_config(workdir, {"x": [0.5, 1.0], "depth": [3, None], "tag": ['a,"b', "plain"]})
    cfg["report"] = {"objective": {"metric": "eval_accuracy", "direction": "max"},
                     "extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}]}
    path = workdir.write_config(cfg)
    run = workdir.snakemake("--cores", "2", "--configfile", str(path))
    assert run.returncode == 0, run.stderr[-3000:]
    res = workdir.path / "results/toy"
    summary = workdir.read_csv("results/toy/summary.csv")
    assert len(summary) == 16 and {r["status"] for r in summary} == {"ok"}
    configs = workdir.read_csv("results/toy/configs.csv")
    assert {c["depth"] for c in configs} == {"3", "null"} and {c["tag"] for c in configs} == {'a,"b', "plain"}
    assert not any(c.startswith(("energy_source", "driver_version", "flag_detail")) for c in configs[0])
    if "config_id" in summary[0]:  # collect writes grid.config_id into summary.csv
        assert {r["config_id"] for r in summary} == {c["config_id"] for c in configs}
    best = json.loads((res / "best.json").read_text())
    assert best["best"]["params"]["x"] == 1.0 and best["best"]["params"]["depth"] in (3, None)
    assert best["best"]["params"]["tag"] in ('a,"b', "plain")
    imp = {r["parameter"]: r for r in workdir.read_csv("results/toy/importance.csv")}
    assert set(imp) == {"x", "depth", "tag"} and imp["x"]["best_level"] == "1.0"
    assert {r["depth"] for r in workdir.read_csv("results/toy/pareto.csv")} <= {"3", "null"}
    for name in report.PLOT_NAMES:
        assert is_drawn_png(res / "plots" / f"{name}.png"), name
    page = (res / "report/answer.html").read_text()
    assert "<td class='l'>null</td>" in page and "a,&quot;b" in page
    assert page.count("data:image/png;base64,") == 4
    assert "latency_ms_p95 mean" in page and "throughput_sps mean" in page
    assert report.report_problem_lines(res) == []
    html = workdir.path / "report.html"
    workdir.snakemake("--report", str(html), "--configfile", str(path), check=True)
