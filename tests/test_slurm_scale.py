"""profiles/slurm at scale (issue 11): 100 toy trials on the local single-node Slurm, bundled as shipped.

On demand (about 10-15 minutes on a 2-core machine, see profiles/slurm/README.md "Figures"):

    SNAKESWEEP_SLURM_SCALE=1 .venv/bin/python -m pytest -m slurm_scale tests/test_slurm_scale.py -s

Run 1: 100 trials of the torch-free toy workload (tests/workloads/toy.py), 4 of them failing on
purpose (2 raise an exception: not retried; 2 are SIGKILLed: retried, `failures.retries.train: 1`),
placed in bundles trial-4 and trial-9, through `--profile profiles/slurm` plus the test cluster's
overlay. It must end (no hang), with:
- few submissions: 10 bundles of 10 trials' train+eval, up to 10 of 10 measurements, plus the
  resubmitted failed bundles;
- failures recorded per trial as without bundles (results/<name>/logs/train/{trial}.error.json: reason, attempt;
  results/<name>/summary.csv: failed, with the error); no other trial failed; every trial of the 8
  bundles without a failure done (a failure holds back its own bundle only);
- no measurement contaminated: on this one node, no step of any trial ran while a measurement ran
  (the measurement bundles are exclusive Slurm jobs), and every measurement job is exclusive.
Run 2, the injected failures switched off (TOY_FAILURES unset): every trial ends ok, and nothing
run 1 finished (trials of the failed bundles included: keep-incomplete) is redone.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import TOY, copy_workflow
from slurm_cluster import bounded, slurm_cluster_fixture

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slurm_scale,
    pytest.mark.skipif(
        not os.environ.get("SNAKESWEEP_SLURM_SCALE"),
        reason="100 trials on a live Slurm take 10+ minutes: set SNAKESWEEP_SLURM_SCALE=1 to run",
    ),
]
pytest.importorskip(
    "snakemake_executor_plugin_slurm", reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
)

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
STEPS = ("train", "eval", "measure")
GOOD_X = 48  # x values x 2 seeds = 96 trials that succeed
FAILING = {100: "raise", 101: "kill"}  # x -> injected failure; x 2 seeds = 4 failing trials
N_TRIALS = 2 * (GOOD_X + len(FAILING))
RUN_LIMIT_S = 1500  # a run that takes longer than this has hung


def scale_sweep() -> dict:
    """96 good trials and 4 failing ones; in plan order the failing trials are trials 48-49 and 98-99,
    so bundles trial-4 and trial-9 (10 trials each) hold a failure and the other 8 do not."""
    half = GOOD_X // 2
    (x1, m1), (x2, m2) = FAILING.items()
    grid = [
        {"x": list(range(half))},
        {"x": [x1], "fail": [m1]},
        {"x": list(range(half, GOOD_X))},
        {"x": [x2], "fail": [m2]},
    ]
    return {
        "sweep": {"name": "slurm-scale", "workload": "toy.py", "grid": grid, "seeds": [0, 1], "max_trials": 10000},
        "measure": {"batch_size": 8, "warmup_batches": 1, "repeats": 2, "min_window_s": 0, "cooldown_s": 0},
        "device": "cpu",
        "failures": {"retries": {"train": 1}},
        "report": {"objective": {"metric": "eval_accuracy", "direction": "max"}, "extra_objectives": []},
    }


def overlay_profile(partition: str) -> dict:
    """What the test cluster needs beyond profiles/slurm (as in tests/test_slurm.py)."""
    resources = dict(yaml.safe_load(PROFILE.read_text())["default-resources"])
    resources["slurm_partition"] = partition
    resources.pop("slurm_account")
    return {
        "default-resources": resources,
        "slurm-status-command": "squeue",
        "slurm-init-seconds-before-status-checks": 4,
        "seconds-between-status-checks": 1,
    }


def prepare(dest: Path, partition: str, sweep: dict) -> list[str]:
    """A user's checkout with the toy workload and the sweep; returns the snakemake arguments."""
    work = copy_workflow(dest)
    shutil.copy(TOY, work / "toy.py")
    (work / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    (work / "testcluster").mkdir()
    (work / "testcluster" / "config.yaml").write_text(yaml.safe_dump(overlay_profile(partition), sort_keys=False))
    return ["--profile", "profiles/slurm", "--profile", "testcluster", "--configfile", "sweep.yaml"]


def run_snakemake(work: Path, args: list[str], env: dict | None = None, limit_s: int = RUN_LIMIT_S):
    """(returncode, output, wall seconds); returncode 124/137 means it was stopped at the limit."""
    import subprocess

    env = dict(env or os.environ, PYTHONDONTWRITEBYTECODE="1")
    t0 = time.monotonic()
    proc = subprocess.run(
        bounded([sys.executable, "-m", "snakemake", *args], limit_s), cwd=work, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=limit_s + 60,
    )
    return proc.returncode, proc.stdout, time.monotonic() - t0


def submissions(output: str) -> list[str]:
    """The Slurm job ids this run submitted (the plugin prints one line per sbatch)."""
    return re.findall(r"has been submitted with SLURM jobid (\d+)", output)


def step_windows(work: Path) -> list[tuple[str, str, str]]:
    """(started_at, ended_at, 'step trial') of every result record (ISO times, one clock: one node)."""
    out = []
    for path in (work / "results/slurm-scale/trials").glob("*/*.json"):
        if path.stem in STEPS:
            rec = json.loads(path.read_text())
            out.append((rec["started_at"], rec["ended_at"], f"{rec['step']} {rec['trial']}"))
    return sorted(out)


def contaminated(windows: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """Pairs (measurement, other step) whose windows overlap."""
    bad = []
    for start, end, what in windows:
        if not what.startswith("measure "):
            continue
        bad += [(what, other) for s, e, other in windows if other != what and s < end and start < e]
    return bad


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # finished jobs stay visible to scontrol for the whole test (the default is 300 s)
    yield from slurm_cluster_fixture(tmp_path_factory, min_job_age=3600)


@pytest.mark.timeout(2 * RUN_LIMIT_S + 300)
def test_100_trials_bundled_failures_per_trial_measurements_isolated(cluster, tmp_path):
    t0 = time.monotonic()
    args = prepare(tmp_path / "w", cluster.partition, scale_sweep())
    work = tmp_path / "w"
    load = os.getloadavg()[0]

    # -- run 1: 100 trials, 4 failing
    rc, out, wall1 = run_snakemake(work, args, env=dict(os.environ, TOY_FAILURES="1"))
    assert rc not in (124, 137), f"run 1 did not end within {RUN_LIMIT_S} s (hung?):\n{out[-4000:]}"
    assert rc != 0 and "SLURM run ID:" in out, out[-4000:]
    jobs1 = submissions(out)
    print(f"run 1: {N_TRIALS} trials, {len(jobs1)} Slurm jobs, {wall1:.0f} s, load {load:.1f}", flush=True)

    plan = json.loads((work / "results/slurm-scale/plan/trials.json").read_text())
    trials = {t["trial"]: t["params"] for t in plan["trials"]}
    assert len(trials) == N_TRIALS
    failing = {t: p["fail"] for t, p in trials.items() if p.get("fail")}
    assert len(failing) == 4

    # bundles: 10 train+eval bundles, up to 10 measurement bundles, plus resubmitted (failed) bundles
    fields = {j: dict(tok.split("=", 1) for tok in cluster.run(["scontrol", "show", "job", "-o", j], 15).stdout.split()
                      if "=" in tok) for j in jobs1}
    kinds = {j: f.get("Comment", "") for j, f in fields.items()}
    assert all(k.startswith(("rule_trial", "rule_measure")) for k in kinds.values()), kinds
    n_trial_bundles = sum(k.startswith("rule_trial") for k in kinds.values())
    assert N_TRIALS // 10 <= n_trial_bundles <= N_TRIALS // 10 + len(failing), kinds
    assert len(jobs1) <= 0.3 * N_TRIALS, f"{len(jobs1)} submissions for {N_TRIALS} trials"
    for j, f in fields.items():
        exclusive = f["OverSubscribe"] == "NO"
        assert exclusive == kinds[j].startswith("rule_measure"), (j, kinds[j], f["OverSubscribe"])
        if not exclusive:  # one step at a time inside a bundle (an exclusive one gets the whole node)
            assert f["NumCPUs"] == "1", (j, f["NumCPUs"])

    # failures are recorded per trial, as without bundles; a bundle stops at its first failed trial
    # (the Snakemake process inside the allocation has no --keep-going), so in each failing bundle at
    # least one failing trial has run and failed, and its bundle-mates wait for run 2 (never failed)
    rows = {r["trial"]: r for r in _read_csv(work / "results/slurm-scale/summary.csv")}
    assert set(rows) == set(trials)
    order = [t["trial"] for t in plan["trials"]]
    bundle_of = {t: i // 10 for i, t in enumerate(order)}
    assert {bundle_of[t] for t in failing} == {4, 9}, {t: bundle_of[t] for t in failing}
    for mode in ("raise", "kill"):
        failed = [t for t, m in failing.items() if m == mode and rows[t]["status"] == "failed"]
        assert failed, f"no {mode} trial was recorded failed: {[rows[t] for t in failing]}"
        for trial in failed:
            rec = json.loads((work / "results/slurm-scale/logs/train" / f"{trial}.error.json").read_text())
            assert rows[trial]["error"], rows[trial]
            if mode == "raise":  # an exception in the user's code: never retried (failures.retry_on)
                assert rec["reason"] == "exception" and "injected failure" in rec["message"], rec
            else:  # SIGKILL: retried inside the bundle, then once more with the resubmitted bundle
                assert rec["reason"] == "signal" and int(rec["attempt"]) >= 2, rec
    assert {r["status"] for t, r in rows.items() if t not in failing} <= {"ok", "pending"}
    # a failure holds back its own bundle only: every trial of the 8 other bundles is done
    not_done = [t for t in order if bundle_of[t] not in (4, 9) and rows[t]["status"] != "ok"]
    assert not not_done, [rows[t] for t in not_done[:3]]
    n_ok1 = sum(r["status"] == "ok" for r in rows.values())
    n_failed1 = sum(r["status"] == "failed" for r in rows.values())
    print(f"run 1: {n_ok1} ok, {n_failed1} failed, {N_TRIALS - n_ok1 - n_failed1} pending", flush=True)
    assert n_ok1 >= 80

    # no measurement ran beside any other step (one node: overlapping windows would be contamination)
    assert not contaminated(step_windows(work)), contaminated(step_windows(work))[:5]

    # -- run 2: the bugs "fixed"; what run 1 finished is kept, the rest runs
    done1 = {p: p.stat().st_mtime_ns for p in (work / "results/slurm-scale/trials").glob("*/*.json") if p.stem in STEPS}
    env = {k: v for k, v in os.environ.items() if k != "TOY_FAILURES"}
    rc, out2, wall2 = run_snakemake(work, args, env=env)
    assert rc == 0, out2[-4000:]
    jobs2 = submissions(out2)
    rows = _read_csv(work / "results/slurm-scale/summary.csv")
    assert len(rows) == N_TRIALS and {r["status"] for r in rows} == {"ok"}, [r for r in rows if r["status"] != "ok"][:3]
    redone = [str(p) for p, m in done1.items() if p.stat().st_mtime_ns != m]
    assert not redone, f"results of run 1 were redone: {redone[:5]}"
    assert not contaminated(step_windows(work)), contaminated(step_windows(work))[:5]
    print(f"run 2: {len(jobs2)} Slurm jobs, {wall2:.0f} s; test {time.monotonic() - t0:.0f} s", flush=True)
