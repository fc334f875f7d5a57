"""End-to-end: real Snakemake runs of the workflow in temporary copies of the repository."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import default_sweep_dir, job_counts, jobs_run, toy_config

pytestmark = pytest.mark.e2e

RESULT_KEYS = {
    "schema_version", "trial", "step", "params", "metrics", "status", "started_at", "ended_at",
    "duration_s", "cpu_s", "max_rss_mb", "host", "device", "versions", "sweep_hash",
}
# parameters, then each selected step's metrics in step order (the toy's train also reports tag_seen)
SUMMARY_HEAD = [
    "trial", "status", "x", "seed", "train_loss", "train_time_s", "tag_seen", "eval_accuracy", "eval_loss",
    "latency_ms_p50", "latency_ms_p95",
]


def _statuses(rows):
    return {(float(r["x"]), int(r["seed"])): r["status"] for r in rows}


# What a step's process must not import (issue 11: a sweep of short trials pays every import
# in every job; measured per job: pydantic ~200 ms with the config models, hashlib ~6 ms (OpenSSL),
# socket/platform/uuid ~8 ms; a measurement needs dataclasses (~10 ms, energy) and tempfile (the lock))
NOT_IN_A_STEP = {"pydantic", "yaml", "pandas", "numpy", "torch", "snakemake", "hashlib", "socket", "platform", "uuid", "argparse"}
NOT_IN_TRAIN_OR_EVAL = NOT_IN_A_STEP | {"dataclasses", "tempfile"}


def test_small_sweep_runs_to_completion_and_resumes_as_nothing_to_do(workdir, tmp_path):
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.5, 1.0, 2.0]}))
    modules = tmp_path / "modules"
    modules.mkdir()
    env = dict(os.environ, TOY_MODULES_DIR=str(modules))
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True, env=env)
    assert "Using workflow specific profile profiles/default" in run.stderr

    rows = workdir.read_csv("results/toy/summary.csv")
    assert [r["status"] for r in rows] == ["ok"] * 6
    assert list(rows[0])[: len(SUMMARY_HEAD)] == SUMMARY_HEAD
    assert list(rows[0])[-2:] == ["error", "error_log"]
    plan = json.loads((workdir.path / "results/toy/plan/trials.json").read_text())
    assert [r["trial"] for r in rows] == [t["trial"] for t in plan["trials"]]
    index = workdir.read_csv("results/toy/plan/trials.csv")
    assert [(r["trial"], r["x"], r["seed"]) for r in index] == [(r["trial"], r["x"], r["seed"]) for r in rows]

    for row in rows:
        tdir = workdir.path / "results/toy/trials" / row["trial"]
        for step in ("train", "eval", "measure"):
            record = json.loads((tdir / f"{step}.json").read_text())
            assert set(record) == RESULT_KEYS
            assert record["step"] == step and record["trial"] == row["trial"] and record["status"] == "ok"
            assert record["sweep_hash"] == plan["sweep_hash"]
            assert record["versions"]["snakesweep"] and record["versions"]["python"]
            assert (workdir.path / "results/toy/logs" / step / f"{row['trial']}.log").exists()
        # values in the CSV are the ones the workload computed, not copies of a template
        x, seed = float(row["x"]), int(row["seed"])
        assert float(row["train_loss"]) == pytest.approx((x - 1.0) ** 2 + 0.5 + 0.01 * seed)
        assert float(row["eval_accuracy"]) == pytest.approx(1.0 / (1.0 + abs(x - 1.0)))
        assert float(row["throughput_sps"]) > 0 and float(row["latency_ms_p95"]) >= float(row["latency_ms_p50"])
        assert row["energy_j_per_sample"] == ""  # no energy counter on a CPU test machine...
        assert row["energy_source"].startswith("unavailable")  # ...and the reason says so

    reports = {step: [json.loads(p.read_text()) for p in modules.glob(f"{step}.*.json")] for step in ("train", "eval", "measure")}
    assert {step: len(r) for step, r in reports.items()} == {"train": 6, "eval": 6, "measure": 6}
    for step, seen in reports.items():
        heavy = (NOT_IN_A_STEP if step == "measure" else NOT_IN_TRAIN_OR_EVAL) & set().union(*seen)
        assert not heavy, f"a {step} process imported {sorted(heavy)}"

    configs = workdir.read_csv("results/toy/configs.csv")
    assert len(configs) == 3
    for c in configs:
        assert int(c["n_seeds"]) == 2

    again = workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert "Nothing to be done" in again.stderr


def test_measure_jobs_never_overlap(workdir):
    cfg = workdir.write_config(
        toy_config(workdir, {"x": [0.0, 1.0, 2.0]}, measure={"min_window_s": 0.3})
    )
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    spans = []
    for tdir in (workdir.path / "results/toy/trials").iterdir():
        rec = json.loads((tdir / "measure.json").read_text())
        spans.append((datetime.fromisoformat(rec["started_at"]), datetime.fromisoformat(rec["ended_at"])))
    spans.sort()
    assert len(spans) == 6
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end, "two measure jobs ran at the same time"


def test_trials_finish_one_by_one_not_every_train_first(workdir):
    """The step priorities (common.smk get_step_priority): on one core a trial's eval and measure
    run before the next train, so a run stopped half-way leaves whole trials, and Snakemake's
    scheduler never holds hundreds of ready evals (it ran every train first, preferring the
    largest inputs). One core runs one job at a time: the order is the priorities', not chance."""
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0]}))
    workdir.snakemake("--cores", "1", "--configfile", str(cfg), check=True)
    started = []
    for tdir in (workdir.path / "results/toy/trials").iterdir():
        for step in ("train", "eval", "measure"):
            rec = json.loads((tdir / f"{step}.json").read_text())
            started.append((datetime.fromisoformat(rec["started_at"]), step, tdir.name))
    order = [(step, trial) for _t, step, trial in sorted(started)]
    assert [s for s, _ in order] == ["train", "eval", "measure"] * 4, order
    assert all(len({t for _s, t in order[i:i + 3]}) == 1 for i in range(0, 12, 3)), order


def test_failures_are_recorded_and_only_failed_trials_rerun(workdir):
    cfg_dict = toy_config(workdir, {"x": [0.0, 1.0]}, timeout_s={"train": 3})
    cfg_dict["sweep"]["seeds"] = [0]
    cfg_dict["sweep"]["experiments"] = [
        {"x": 5.0, "fail": "raise"},
        {"x": 6.0, "fail": "segfault"},
        {"x": 7.0, "fail": "abort"},
        {"x": 8.0, "fail": "sleep"},
        {"x": 9.0, "fail": "exit"},
        {"x": 10.0, "fail": "kill"},
    ]
    cfg = workdir.write_config(cfg_dict)
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), env=dict(os.environ, TOY_FAILURES="1"))
    assert run.returncode != 0
    assert "6 of 8 trials failed and 0 did not finish" in run.stderr

    rows = {float(r["x"]): r for r in workdir.read_csv("results/toy/summary.csv")}
    assert len(rows) == 8
    assert rows[0.0]["status"] == rows[1.0]["status"] == "ok"
    expected = {
        5.0: "train: ValueError: injected failure for x=5.0",
        6.0: "train: SIGSEGV",
        7.0: "train: SIGABRT",
        8.0: "train: Timeout",
        9.0: "train: ExitStatus",
        10.0: "train: SIGKILL",
    }
    for x, prefix in expected.items():
        assert rows[x]["status"] == "failed"
        assert rows[x]["error"].startswith(prefix), rows[x]["error"]
        record = json.loads((workdir.path / "results/toy/logs/train" / f"{rows[x]['trial']}.error.json").read_text())
        assert record["trial"] == rows[x]["trial"] and record["step"] == "train"
        assert not (workdir.path / "results/toy/trials" / rows[x]["trial"] / "train.json").exists()
    raised = json.loads((workdir.path / "results/toy/logs/train" / f"{rows[5.0]['trial']}.error.json").read_text())
    assert raised["reason"] == "exception" and "_maybe_fail" in raised["traceback_tail"]
    assert json.loads((workdir.path / "results/toy/logs/train" / f"{rows[8.0]['trial']}.error.json").read_text())["reason"] == "timeout"

    ok_file = workdir.path / "results/toy/trials" / rows[0.0]["trial"] / "measure.json"
    before = ok_file.stat().st_mtime_ns
    # "Fix the bug" (the same trials now succeed): a re-run retries only the failed ones.
    dry = workdir.snakemake("-n", "--configfile", str(cfg), check=True)
    assert job_counts(dry)["train"] == 6
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert ok_file.stat().st_mtime_ns == before
    statuses = [r["status"] for r in workdir.read_csv("results/toy/summary.csv")]
    assert statuses == ["ok"] * 8
    assert not list((workdir.path / "results/toy/logs/train").glob("*.error.json"))


def test_kill_minus_nine_then_resume_gives_the_same_results(workdir, tmp_path):
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0, 2.0, 3.0], "sleep_s": [0.6]}))
    proc = workdir.popen("--cores", "2", "--configfile", str(cfg))
    trials = workdir.path / "results/toy/trials"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if trials.exists() and len(list(trials.glob("*/train.json"))) >= 3:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p: p.stat().st_mtime_ns for p in trials.glob("*/*.json")}
    assert 0 < len(list(trials.glob("*/measure.json"))) < 8 or len(done_before) < 24

    for leftover in trials.rglob("*.json"):
        json.loads(leftover.read_text())  # nothing half-written is ever a result

    workdir.snakemake("--unlock", "--configfile", str(cfg), check=True)
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    for path, mtime in done_before.items():
        if path.exists() and path.name == "measure.json":
            assert path.stat().st_mtime_ns == mtime, f"{path} was redone"

    resumed = workdir.read_csv("results/toy/summary.csv")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    from conftest import Workdir, copy_workflow

    other = Workdir(copy_workflow(fresh))
    cfg2 = other.write_config(toy_config(other, {"x": [0.0, 1.0, 2.0, 3.0], "sleep_s": [0.6]}))
    other.snakemake("--cores", "2", "--configfile", str(cfg2), check=True)
    uninterrupted = other.read_csv("results/toy/summary.csv")
    timing = {"train_time_s", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "throughput_sps", "peak_mem_mb",
              "measure_lock_wait_s", "measure_lock_from", "measure_lock_to"}

    def stable(rows):
        return [{k: v for k, v in r.items() if k not in timing and not k.startswith(("window", "n_batches", "latency", "throughput", "energy_j", "temp_", "flag_short"))} for r in rows]

    assert stable(resumed) == stable(uninterrupted)


def test_configfile_is_the_whole_sweep_and_config_overrides_still_apply(workdir):
    cfg = workdir.write_config(
        {"sweep": {"name": "mine", "workload": "digits_mlp", "grid": {"lr": [0.1, 0.2]}, "seeds": [3]}}
    )
    workdir.snakemake("--cores", "1", "--configfile", str(cfg), "--until", "plan", check=True)
    plan = json.loads((workdir.path / "results/mine/plan/trials.json").read_text())
    assert plan["param_names"] == ["lr", "seed"]  # nothing of config/config.yaml's grid leaked in
    assert [t["params"] for t in plan["trials"]] == [{"lr": 0.1, "seed": 3}, {"lr": 0.2, "seed": 3}]
    assert plan["device"] == "auto"

    workdir.snakemake(
        "--cores", "1", "--configfile", str(cfg), "--config", "device=cpu", "--until", "plan", check=True
    )
    assert json.loads((workdir.path / "results/mine/plan/trials.json").read_text())["device"] == "cpu"

    # without --configfile the default sweep applies, and --config still overrides it
    workdir.snakemake("--cores", "1", "--config", "device=cpu", "--until", "plan", check=True)
    plan = json.loads((workdir.path / default_sweep_dir() / "plan/trials.json").read_text())
    assert plan["sweep_name"] == "digits-mlp" and len(plan["trials"]) == 24 and plan["device"] == "cpu"


@pytest.mark.parametrize(
    ("sweep", "needle"),
    [
        ({"name": "x", "workload": "digits_mlp", "grid": {"lr": [0.1]}, "seedz": [0]}, "unknown key 'sweep.seedz'"),
        ({"name": "x", "workload": "digits_mlp", "grid": {"lr": "fast"}}, "'sweep.grid.lr': a grid axis is"),
        ({"name": "x", "workload": "digits_mlp", "grid": {}}, "'sweep.grid' and 'sweep.experiments' are both empty"),
        ({"name": "x", "workload": "digits_mlp", "grid": {"lr": {"log": [0.001, 0.1], "num": 0}}}, "'sweep.grid.lr.num'"),
        ({"name": "x", "workload": "digits_mlp", "grid": {"lr": [0.1]}, "exclude": [{"lrr": 0.1}]}, "'sweep.exclude[0]' names 'lrr'"),
        ({"name": "x", "workload": "digits_mlp", "grid": {"lr": {"lin": [0, 1], "num": 50}}, "max_trials": 10}, "expands to 50 trials"),
        ({"name": "x", "workload": "digits_mlp", "grid": {"learning_rate": [0.1]}}, "digits_mlp has no parameter 'learning_rate'"),
        ({"name": "x", "workload": "nope.py", "grid": {"lr": [0.1]}}, "'sweep.workload' is 'nope.py'"),
    ],
)
def test_bad_config_fails_with_one_message_and_touches_nothing(workdir, sweep, needle):
    existing = workdir.path / "results/x/summary.csv"
    existing.parent.mkdir(parents=True)
    existing.write_text("precious\n")
    cfg = workdir.write_config({"sweep": sweep})
    run = workdir.snakemake("--cores", "1", "--configfile", str(cfg))
    assert run.returncode != 0
    assert needle in run.stderr
    assert str(cfg) in run.stderr  # the message names the file
    assert "Traceback" not in run.stderr and 'File "' not in run.stderr
    assert existing.read_text() == "precious\n"
    assert not (workdir.path / "results/x/plan").exists()


def test_parameter_values_never_reach_a_shell(workdir, tmp_path):
    marker = tmp_path / "pwned"
    evil = f'"; touch {marker} #'
    cfg = workdir.write_config(toy_config(workdir, {"x": [1.0], "tag": [evil, f"$(touch {marker})"]}))
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert not marker.exists()
    tags = set()
    for rec in (workdir.path / "results/toy/trials").glob("*/train.json"):
        tags.add(json.loads(rec.read_text())["metrics"]["tag_seen"])
    assert tags == {evil, f"$(touch {marker})"}


def test_dry_run_previews_without_running_anything(workdir):
    run = workdir.snakemake("-n", check=True)
    counts = job_counts(run)
    assert {r: counts[r] for r in ("plan", "prepare_data", "train", "eval", "measure", "collect")} == {
        "plan": 1, "prepare_data": 1, "train": 24, "eval": 24, "measure": 24, "collect": 1,
    }
    assert not (workdir.path / "results").exists()


def test_lint_and_snakefmt_are_clean(workdir):
    import shutil
    import subprocess
    import sys

    lint = workdir.snakemake("--lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr
    snakefmt = shutil.which("snakefmt") or str(Path(sys.executable).with_name("snakefmt"))
    files = [str(workdir.path / "workflow/Snakefile"), *map(str, (workdir.path / "workflow/rules").glob("*.smk"))]
    fmt = subprocess.run([snakefmt, "--check", *files], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_interleaved_cycles_run_cycle_by_cycle(workdir):
    cfg = workdir.write_config(
        toy_config(workdir, {"x": [0.0, 1.0, 2.0]}, measure={"cycles": 3, "cycle_order": "interleaved"})
    )
    workdir.snakemake("--cores", "1", "--configfile", str(cfg), check=True)
    starts = []
    for log in (workdir.path / "results/toy/logs/measure").glob("*.cycle*.log"):
        first = log.read_text().splitlines()[0]  # "snakesweep: measure <trial> started <ISO time>"
        trial, cycle = log.name.split(".")[0], int(log.name.split(".")[1].removeprefix("cycle"))
        starts.append((datetime.fromisoformat(first.split(" started ")[1]), cycle, trial))
    starts.sort()
    assert len(starts) == 18  # 3 x-values x 2 seeds x 3 cycles
    assert [cycle for _, cycle, _ in starts] == [0] * 6 + [1] * 6 + [2] * 6
    rows = workdir.read_csv("results/toy/summary.csv")
    assert all(r["status"] == "ok" and r["cycles"] == "3" for r in rows)
    for r in rows:
        assert float(r["latency_ms_p50_ci_low"]) <= float(r["latency_ms_p50"]) <= float(r["latency_ms_p50_ci_high"])


def test_growing_the_sweep_runs_only_new_trials_and_new_settings_rerun_only_measure(workdir):
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0]}))
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    trials = workdir.path / "results/toy/trials"
    before = {p: p.stat().st_mtime_ns for p in trials.glob("*/*.json")}

    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0, 2.0]}))
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert jobs_run(run, "train") == 2  # the new x value, two seeds; nothing else retrained
    assert all(p.stat().st_mtime_ns == m for p, m in before.items())
    rows = workdir.read_csv("results/toy/summary.csv")
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    dry = workdir.snakemake("-n", "--configfile", str(cfg), check=True)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    before = {p: p.stat().st_mtime_ns for p in trials.glob("*/*.json")}
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0, 2.0]}, measure={"repeats": 3}))
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    assert jobs_run(run, "measure") == 6 and jobs_run(run, "train") == jobs_run(run, "eval") == 0
    for path, mtime in before.items():
        assert (path.stat().st_mtime_ns == mtime) == (path.name != "measure.json"), path


def test_changing_device_remeasures_but_does_not_retrain(workdir):
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0, 1.0]}))
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    run = workdir.snakemake("--cores", "2", "--configfile", str(cfg), "--config", "device=auto", check=True)
    assert jobs_run(run, "measure") == 4
    assert jobs_run(run, "train") == jobs_run(run, "eval") == 0


def _processes_in(directory: Path) -> list[int]:
    """Live snakesweep supervisors (scripts/<step>.py) and step processes (-m snakesweep.steps)
    whose working directory is `directory`."""
    found = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc_dir / "cmdline").read_bytes()
            if os.readlink(proc_dir / "cwd") == str(directory) and (b"snakesweep" in cmdline or b"scripts/" in cmdline):
                if (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(proc_dir.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("target", ["snakemake", "group"])
def test_no_step_outlives_a_killed_run(workdir, target):
    """kill -9 of snakemake alone (its steps are orphaned) or of its whole process group (the
    supervisors die too): no step may live on to run beside a re-run's job for the same step."""
    cfg = workdir.write_config(toy_config(workdir, {"x": [0.0], "sleep_s": [60]}))
    proc = workdir.popen("--cores", "2", "--configfile", str(cfg))
    logs = workdir.path / "results/toy/logs/train"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_processes_in(workdir.path)) < 4:
            time.sleep(0.2)
        assert len(_processes_in(workdir.path)) >= 4, "two supervisors and two steps should be running"
        if target == "group":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _processes_in(workdir.path):
            time.sleep(0.2)
        assert _processes_in(workdir.path) == []
        records = [json.loads(p.read_text()) for p in logs.glob("*.error.json")]
        if target == "snakemake":  # the supervisors saw it and said why
            assert len(records) == 2 and {r["reason"] for r in records} == {"orphaned"}
    finally:
        for pid in _processes_in(workdir.path):
            os.kill(pid, signal.SIGKILL)
