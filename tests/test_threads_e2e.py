"""Threads per trial (snakesweep/threads.py): a trial's `threads` parameter is its job's Snakemake
threads and the OMP/MKL/OpenBLAS/torch thread counts its step sees, for module and command
workloads alike; a request above what the job may use fails the trial with the reason.

Real Snakemake runs in temp copies of the workflow; the workloads report what they see.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from datetime import datetime

import pytest

from conftest import REPO
from snakesweep import layout
from snakesweep.threads import ENV_VARS, check_threads, job_threads, thread_env

CPUS = len(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(CPUS < 2, reason="needs 2 usable CPUs")

# a module workload that reports the thread settings its train step sees (torch imported inside
# train, as most workloads do: after the supervisor set the environment)
MODULE = textwrap.dedent('''
    import os, time

    def train(params, out_dir, *, data_dir, device):
        time.sleep(float(params.get("sleep_s", 0)))
        import torch
        seen = {name: int(os.environ[name]) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        return {"torch_threads": torch.get_num_threads(), **{k.lower(): v for k, v in seen.items()},
                "affinity": len(os.sched_getaffinity(0))}
''')

# a command workload: a script that prints what it sees as `name: value` metrics
COMMAND = textwrap.dedent('''
    import os, sys
    print("omp:", os.environ["OMP_NUM_THREADS"])
    print("mkl:", os.environ["MKL_NUM_THREADS"])
    print("openblas:", os.environ["OPENBLAS_NUM_THREADS"])
    print("arg:", sys.argv[1])
''')


def _results(workdir, name: str):
    return workdir.path / layout.sweep_dir(name)


def _train_records(workdir, name: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(_results(workdir, name).glob("trials/*/train.json"))]


def _sweep(name: str, workload, grid: dict, **extra) -> dict:
    return {"sweep": {"name": name, "workload": workload, "steps": ["train"], "grid": grid, "seeds": [0], **extra},
            "device": "cpu", "report": {"objective": {"metric": "omp" if isinstance(workload, dict) else "torch_threads",
                                                      "direction": "max"}}}


def test_thread_rules():
    assert check_threads(2) is None
    for bad in (0, -1, 1.5, "2", True, None):
        assert "threads" in check_threads(bad)
    assert job_threads(None, 3, 4) == (3, None)  # no parameter: the job's own (a profile's set-threads)
    assert job_threads(2, 2, 4) == (2, None)
    n, why = job_threads(4, 2, 8)
    assert n == 4 and "--cores 4" in why  # Snakemake scaled the job down
    n, why = job_threads(4, 4, 2)
    assert "2 CPU(s)" in why and "sched_getaffinity" in why
    env = thread_env(3)
    assert all(env[v] == "3" for v in ENV_VARS) and {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"} <= set(env)


@needs_two
@pytest.mark.e2e
def test_module_and_command_workloads_see_the_trials_threads(workdir):
    (workdir.path / "wl.py").write_text(MODULE)
    cfg = workdir.write_config(_sweep("thr-module", "wl.py", {"threads": [1, 2]}), "module.yaml")
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    recs = {r["params"]["threads"]: r["metrics"] for r in _train_records(workdir, "thr-module")}
    assert set(recs) == {1, 2}
    for n, m in recs.items():
        assert m["torch_threads"] == m["omp_num_threads"] == m["mkl_num_threads"] == m["openblas_num_threads"] == n

    (workdir.path / "cmd.py").write_text(COMMAND)
    command = {"command": {"train": [sys.executable, "cmd.py", "{threads}"]}, "metrics": "stdout"}
    cfg2 = workdir.write_config(_sweep("thr-command", command, {"threads": [1, 2]}), "command.yaml")
    workdir.snakemake("--cores", "2", "--configfile", str(cfg2), check=True)
    recs = {r["params"]["threads"]: r["metrics"] for r in _train_records(workdir, "thr-command")}
    assert set(recs) == {1, 2}
    for n, m in recs.items():
        assert m["omp"] == m["mkl"] == m["openblas"] == m["arg"] == n

    # no `threads` parameter: one thread per job, and {threads} still names it
    cfg3 = workdir.write_config(_sweep("thr-default", command, {"x": [0]}), "default.yaml")
    workdir.snakemake("--cores", "2", "--configfile", str(cfg3), check=True)
    [rec] = _train_records(workdir, "thr-default")
    assert rec["metrics"]["omp"] == rec["metrics"]["arg"] == 1


@needs_two
@pytest.mark.e2e
def test_the_scheduler_packs_jobs_by_their_threads(workdir):
    # 2 cores, trials of 2 threads: Snakemake never runs two at once (with 1 thread each it would)
    (workdir.path / "wl.py").write_text(MODULE)
    cfg = workdir.write_config(_sweep("thr-pack", "wl.py", {"x": [0, 1, 2]}, fixed={"threads": 2, "sleep_s": 0.5}))
    workdir.snakemake("--cores", "2", "--configfile", str(cfg), check=True)
    spans = sorted((datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["ended_at"]))
                   for r in _train_records(workdir, "thr-pack"))
    assert len(spans) == 3
    for (_s0, e0), (s1, _e1) in zip(spans, spans[1:]):
        assert s1 >= e0, f"two 2-thread trials ran at once on 2 cores: {spans}"
    assert all(r["metrics"]["torch_threads"] == 2 for r in _train_records(workdir, "thr-pack"))


@pytest.mark.e2e
def test_more_threads_than_the_job_may_use_fails_the_trial_with_the_reason(workdir):
    (workdir.path / "wl.py").write_text(MODULE)
    cfg = workdir.write_config(_sweep("thr-over", "wl.py", {"threads": [1, CPUS + 1]}))
    run = workdir.snakemake("--cores", str(CPUS + 1), "--configfile", str(cfg))
    assert run.returncode != 0
    recs = _train_records(workdir, "thr-over")
    assert [r["params"]["threads"] for r in recs] == [1]  # the trial that fits ran
    errors = [json.loads(p.read_text()) for p in _results(workdir, "thr-over").glob("logs/train/*.error.json")]
    assert len(errors) == 1 and errors[0]["type"] == "ThreadsUnavailable"
    assert f"threads={CPUS + 1}" in errors[0]["message"] and f"{CPUS} CPU(s)" in errors[0]["message"]
    log = next(_results(workdir, "thr-over").glob(f"logs/train/{errors[0]['trial']}.log")).read_text()
    assert "not started: the trial asks for threads" in log

    # --cores below the trial's threads: Snakemake scales the job down; the trial says so, never runs on fewer
    cfg2 = workdir.write_config(_sweep("thr-cores", "wl.py", {"threads": [2]}), "cores.yaml")
    run = workdir.snakemake("--cores", "1", "--configfile", str(cfg2))
    assert run.returncode != 0 and not _train_records(workdir, "thr-cores")
    [err] = [json.loads(p.read_text()) for p in _results(workdir, "thr-cores").glob("logs/train/*.error.json")]
    assert "Snakemake gave this job 1" in err["message"] and "--cores 2" in err["message"]


@pytest.mark.e2e
@pytest.mark.parametrize("value", ["0", "two"])
def test_a_bad_threads_value_is_a_one_line_config_error(workdir, value):
    (workdir.path / "wl.py").write_text(MODULE)
    sweep = _sweep("thr-bad", "wl.py", {"x": [0]}, fixed={"threads": 0 if value == "0" else "two"})
    cfg = workdir.write_config(sweep)
    run = workdir.snakemake("-n", "--configfile", str(cfg))
    err = run.stdout + run.stderr
    assert run.returncode != 0 and "Traceback" not in err
    assert "the parameter 'threads' is" in err and "fix: a whole number >= 1" in err and str(cfg.name) in err


def test_digits_mlp_accepts_threads():
    from snakesweep.workloads.digits_mlp import check_params

    assert check_params({"threads": 2}) is None
    assert "threads" in check_params({"threads": 0})


def test_config_readme_documents_threads():
    text = (REPO / "config" / "README.md").read_text()
    assert "torch's own" not in text
    assert "OMP_NUM_THREADS" in text and "`threads`" in text

