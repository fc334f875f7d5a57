"""profiles/slurm against a real Slurm: a single-node cluster on loopback started by the test.

The sweep (2 trials, 2 epochs, CPU) runs with `snakemake --profile profiles/slurm` plus one more
profile holding only what differs on the test cluster (partition name, no account, squeue for
status because there is no slurmdbd, fast status polling). The profile bundles (issue 11): both
trials' train+eval are one Slurm job, both measurements another, on an exclusive node. Its results
must equal a local run's. A second run has one trial re-measured; that Slurm job is cancelled with
scancel while it runs, and a retry must finish it. Every daemon is stopped by PID afterwards, even
when the test fails (tests/slurm_cluster.py). 100 trials: tests/test_slurm_scale.py (on demand).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import copy_workflow
from slurm_cluster import (
    ETC_SLURM_CONF,
    MARKER,
    SlurmCluster,
    _is_stopped,
    bounded,
    ensure_slurm_installed,
    slurm_cluster,
    slurm_cluster_fixture,
)

pytestmark = pytest.mark.slurm
pytest.importorskip(
    "snakemake_executor_plugin_slurm", reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"
)

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
STEPS = ("train", "eval", "measure")
LOCAL_RULES = ("plan", "prepare_data", "collect", "report_tables", "report_plots")
SWEEP = {
    "sweep": {
        "name": "slurm-it",
        "workload": "digits_mlp",
        "fixed": {"epochs": 2, "batch_size": 64},
        "grid": {"lr": [0.03, 0.3]},
        "seeds": [0],
    },
    "measure": {"batch_size": 64, "warmup_batches": 1, "repeats": 3, "min_window_s": 0, "cooldown_s": 0},
    "device": "cpu",
    # the rules' `retries:` (failures.retries, default 0) overrides the profile's `retries: 2`, so the
    # resubmission after scancel below needs the sweep to ask for it
    "failures": {"retries": {"measure": 1}},
}
STATUS_POLL_S = 4  # the plugin polls after 4 s, then 14 s and 24 s later (it adds 10 s per idle poll)


def overlay_profile(partition: str) -> dict:
    """What the test cluster needs beyond profiles/slurm, and nothing else (a second --profile)."""
    shipped = yaml.safe_load(PROFILE.read_text())
    resources = dict(shipped["default-resources"])
    resources["slurm_partition"] = partition  # the test cluster's partition
    resources.pop("slurm_account")  # no slurmdbd here: the plugin cannot look accounts up
    return {
        "default-resources": resources,
        "slurm-status-command": "squeue",  # no slurmdbd: sacct has no job records
        "slurm-init-seconds-before-status-checks": STATUS_POLL_S,
        "seconds-between-status-checks": 1,
    }


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _snakemake(cwd: Path, args: list[str], timeout_s: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        bounded([sys.executable, "-m", "snakemake", *args], timeout_s),
        cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout_s + 30,
    )


def _run_id(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("SLURM run ID:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no 'SLURM run ID' in snakemake's output:\n" + output[-3000:])


def _slurm_jobs(cluster: SlurmCluster, run_id: str) -> list[dict[str, str]]:
    """The run's jobs that slurmctld remembers (finished ones stay for MinJobAge=300 s), by id."""
    jobs = [j for j in cluster.jobs() if j["name"] == run_id]
    return sorted(jobs, key=lambda j: int(j["jobid"]))


def _job_fields(cluster: SlurmCluster, jobid: str) -> dict[str, str]:
    out = cluster.run(["scontrol", "show", "job", "-o", jobid], 15).stdout
    return dict(tok.split("=", 1) for tok in out.split() if "=" in tok)


def _job_steps(cluster: SlurmCluster, jobid: str) -> list[str]:
    """The job's running srun steps (`<jobid>.0`, ...; not its batch or extern step), from squeue."""
    r = cluster.run(["squeue", "--steps", "--noheader", "--format=%i"], 15)
    return [s for s in r.stdout.split() if s.startswith(f"{jobid}.") and s.split(".", 1)[1].isdigit()]


def _assert_matches_local(rows: list[dict[str, str]], local: dict[str, dict[str, str]]) -> None:
    assert [r["trial"] for r in rows] == list(local), "Slurm and local runs planned different trials"
    for r in rows:
        assert r["status"] == "ok", r
        for metric in ("eval_accuracy", "eval_loss", "train_loss"):
            assert float(r[metric]) == pytest.approx(float(local[r["trial"]][metric]), abs=1e-4), (r["trial"], metric)
        assert float(r["throughput_sps"]) > 0


# --------------------------------------------------------------------------- no cluster needed

def test_profile_has_the_documented_shape():
    prof = yaml.safe_load(PROFILE.read_text())
    assert prof["executor"] == "slurm"
    assert 1 <= int(prof["jobs"]) <= 1000
    assert int(prof["retries"]) >= 1
    # the two lines a cluster user edits are placeholders with a comment saying what to put there
    lines = PROFILE.read_text().splitlines()
    for key in ("slurm_partition:", "slurm_account:"):
        (line,) = [ln for ln in lines if ln.strip().startswith(key) and not ln.lstrip().startswith("#")]
        assert "CHANGE_ME" in line and "# EDIT:" in line, line
    # resources grow with the attempt; the rules keep runtime, gpu and measure_slot portable
    for rule in ("train", "eval", "measure", "measure_cycle"):
        assert "attempt" in str(prof["set-resources"][rule]["mem_mb"])
    for rule in ("measure", "measure_cycle"):
        assert prof["set-resources"][rule]["slurm_extra"] == "'--exclusive'"
    assert prof["set-resources"]["measure"]["measure_slot"] == 0  # isolated by --exclusive: may run in parallel
    assert "measure_slot" not in prof["set-resources"]["measure_cycle"]  # cycles keep their order, one at a time
    # bundling (issue 11): N trials per Slurm job, one step at a time inside it, outputs of a failed
    # bundle's other trials kept; the rules name the bundles (get_group in workflow/rules/common.smk)
    assert prof["group-components"] == {"trial": 10, "measure": 10}
    assert prof["cores"] == 1 and prof["keep-incomplete"] is True
    assert "groups" not in prof


def _bundles(output: str) -> set[str]:
    """The group jobs (bundles) a dry-run lists, by name."""
    return {line.split("Group job ", 1)[1].split()[0] for line in output.splitlines() if "Group job " in line}


def test_profile_dry_run_bundles_trials(tmp_path):
    """`-n` with the shipped profile (no Slurm needed): the 2 trials' train+eval are one bundle, their
    measurements another; `group-components: 1` gives one bundle per trial; locally nothing is grouped."""
    work = copy_workflow(tmp_path)
    (work / "sweep.yaml").write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    dry = _snakemake(work, ["--profile", "profiles/slurm", "--configfile", "sweep.yaml", "-n"], 120)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert _bundles(dry.stdout + dry.stderr) == {"trial-0", "measure-0"}
    (work / "pertrial").mkdir()
    (work / "pertrial" / "config.yaml").write_text(yaml.safe_dump({"group-components": {"trial": 1, "measure": 1}}))
    dry = _snakemake(
        work, ["--profile", "profiles/slurm", "--profile", "pertrial", "--configfile", "sweep.yaml", "-n"], 120
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert _bundles(dry.stdout + dry.stderr) == {"trial-0", "trial-1", "measure-0", "measure-1"}
    # measure.cycles > 1: the cycles are not bundled (their order across trials is the point), and the
    # local aggregate `measure` is in no group
    cycled = dict(SWEEP, measure=dict(SWEEP["measure"], cycles=2))
    (work / "cycled.yaml").write_text(yaml.safe_dump(cycled, sort_keys=False))
    dry = _snakemake(work, ["--profile", "profiles/slurm", "--configfile", "cycled.yaml", "-n"], 120)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert _bundles(dry.stdout + dry.stderr) == {"trial-0"}
    local = _snakemake(work, ["--cores", "1", "--configfile", "sweep.yaml", "-n"], 120)
    assert local.returncode == 0 and _bundles(local.stdout + local.stderr) == set()


# --------------------------------------------------------------------------- live cluster

def test_cluster_helper_stops_every_daemon_even_on_failure(tmp_path):
    reason = ensure_slurm_installed()
    if reason:
        pytest.skip(f"Slurm not available: {reason}")
    before = os.readlink(ETC_SLURM_CONF) if ETC_SLURM_CONF.is_symlink() else ETC_SLURM_CONF.exists()
    cluster = None
    with pytest.raises(RuntimeError, match="injected"):
        with slurm_cluster(tmp_path / "c") as cluster:
            assert cluster.node_state() == "idle"
            assert cluster.run(["srun", "hostname"], 30).returncode == 0
            job = cluster.run(
                ["sbatch", "--parsable", "--output", str(tmp_path / "slurm-%j.out"), "--wrap", "sleep 300"], 30
            ).stdout.strip()
            cluster.wait_for(lambda: any(j["jobid"] == job and j["state"] == "RUNNING" for j in cluster.jobs()), 30)
            raise RuntimeError("injected failure with a job still running")
    assert cluster is not None and set(cluster.pids) == {"munged", "slurmctld", "slurmd"}
    assert cluster.still_running() == {}
    assert all(_is_stopped(pid) for pid in cluster.pids.values())
    after = os.readlink(ETC_SLURM_CONF) if ETC_SLURM_CONF.is_symlink() else ETC_SLURM_CONF.exists()
    assert after != str(cluster.conf), "/etc/slurm/slurm.conf still points at the stopped cluster"
    # another engineer's test cluster may come and go meanwhile (its link is set aside as stale)
    if not _test_cluster_conf(before):
        assert after == before, "/etc/slurm/slurm.conf was not restored"


def _test_cluster_conf(link) -> bool:
    """True for a link to a test cluster's slurm.conf (tests/slurm_cluster.py), live or gone."""
    if not isinstance(link, str):
        return False
    try:
        return MARKER in Path(link).read_text(errors="replace")[:200]
    except OSError:
        return "slurm" in link


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from slurm_cluster_fixture(tmp_path_factory)


# hang guards, not expectations: on a loaded 2-core box run 1 alone took over 170 s
@pytest.mark.timeout(1500)
def test_sweep_on_slurm_matches_local_run_and_survives_scancel(cluster, tmp_path):
    t0 = time.monotonic()
    timings = {}
    local_dir = copy_workflow(tmp_path / "local")
    slurm_dir = copy_workflow(tmp_path / "slurm")
    for d in (local_dir, slurm_dir):
        (d / "sweep.yaml").write_text(yaml.safe_dump(SWEEP, sort_keys=False))
    overlay = tmp_path / "testcluster"
    overlay.mkdir()
    (overlay / "config.yaml").write_text(yaml.safe_dump(overlay_profile(cluster.partition), sort_keys=False))
    slurm_args = ["--profile", "profiles/slurm", "--profile", str(overlay), "--configfile", "sweep.yaml"]

    # -- reference: the same sweep run locally
    local = _snakemake(local_dir, ["--cores", "2", "--configfile", "sweep.yaml"], 360)
    assert local.returncode == 0, local.stderr[-3000:]
    local_rows = {r["trial"]: r for r in _read_csv(local_dir / "results/slurm-it/summary.csv")}
    assert len(local_rows) == 2
    timings["local"] = time.monotonic() - t0
    print(f"local run: {timings['local']:.1f}s", flush=True)

    # -- run 1: the whole sweep on Slurm
    t1 = time.monotonic()
    run1 = _snakemake(slurm_dir, slurm_args, 420)
    out1 = run1.stdout + run1.stderr
    assert run1.returncode == 0, out1[-4000:] + "\n" + cluster.log_tail()
    timings["slurm_run1"] = time.monotonic() - t1
    print(f"slurm run 1: {timings['slurm_run1']:.1f}s", flush=True)
    assert "Using profiles profiles/slurm and " in out1
    rows = _read_csv(slurm_dir / "results/slurm-it/summary.csv")
    _assert_matches_local(rows, local_rows)

    jobs = _slurm_jobs(cluster, _run_id(out1))
    # bundled (issue 11): one Slurm job for both trials' train+eval, one for both measurements, and
    # nothing else (plan, collect and the reports run on the submit host: localrules)
    assert all(j["state"] == "COMPLETED" for j in jobs), jobs
    assert sorted(j["comment"] for j in jobs) == ["rule_measure-0_measure", "rule_trial-0_eval_train"], (
        f"expected one train+eval bundle and one measure bundle, not {[j['comment'] for j in jobs]}"
    )
    (bundle,) = [_job_fields(cluster, j["jobid"]) for j in jobs if j["comment"].startswith("rule_trial")]
    (measure,) = [_job_fields(cluster, j["jobid"]) for j in jobs if j["comment"].startswith("rule_measure")]
    assert measure["OverSubscribe"] == "NO", "measurement bundles must have their node to themselves (--exclusive)"
    assert bundle["OverSubscribe"] != "NO"
    # one step at a time inside a bundle: 1 CPU and the largest step's memory, not the sum (the
    # exclusive measurement bundle is given every CPU of its node)
    assert bundle["NumCPUs"] == "1"
    assert measure["MinMemoryNode"] == "2000M" and bundle["MinMemoryNode"] == "2000M"  # 2000 * attempt 1
    assert measure["Partition"] == cluster.partition
    windows = []
    for trial in local_rows:
        for step in STEPS:
            rec = json.loads((slurm_dir / "results/slurm-it/trials" / trial / f"{step}.json").read_text())
            assert rec["status"] == "ok" and rec["trial"] == trial
            windows.append((rec["started_at"], rec["ended_at"], f"{step} {trial}"))
    windows.sort()
    for (_, end, what), (start, _, nxt) in zip(windows, windows[1:]):
        assert end <= start, f"{what} and {nxt} ran at the same time"

    # -- run 2: one trial re-measured; its Slurm job is cancelled while running; the retry finishes it
    victim = rows[0]["trial"]
    (slurm_dir / "results/slurm-it/trials" / victim / "measure.json").unlink()
    comment = "rule_measure"  # the bundle that measures the victim, alone this time
    t2 = time.monotonic()
    proc = subprocess.Popen(
        bounded([sys.executable, "-m", "snakemake", *slurm_args], 360),
        cwd=slurm_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    try:
        def running():
            return [
                j["jobid"] for j in cluster.jobs() if j["comment"].startswith(comment) and j["state"] == "RUNNING"
            ]

        (cancelled,) = cluster.wait_for(running, 90, 0.2, f"a RUNNING Slurm job {comment}")

        def step_started():
            # the bundle's srun step (the jobstep executor running the measurement) is under way
            steps = _job_steps(cluster, cancelled)
            if not steps and cancelled not in running():
                raise AssertionError(f"Slurm job {cancelled} ended before its srun step was seen: {cluster.jobs()}")
            return steps

        steps = cluster.wait_for(step_started, 90, 0.2, f"an srun step of Slurm job {cancelled}")
        print(f"scancel {cancelled} while its step(s) {steps} run", flush=True)
        assert cluster.run(["scancel", cancelled], 15).returncode == 0
        out2, _ = proc.communicate(timeout=390)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    timings["slurm_run2"] = time.monotonic() - t2
    assert proc.returncode == 0, out2[-4000:]
    # the bundle's failure and its resubmission, in Snakemake's log of this run
    log2 = max((slurm_dir / ".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert f"JOB {cancelled} ON" in log2 and "CANCELLED" in log2, log2[-3000:]
    assert "Error in group measure-0" in log2 and "Trying to restart job" in log2, log2[-3000:]
    jobs2 = [j for j in _slurm_jobs(cluster, _run_id(out2)) if j["comment"].startswith(comment)]
    assert [j["state"] for j in jobs2] == ["CANCELLED", "COMPLETED"], jobs2
    retry = _job_fields(cluster, jobs2[1]["jobid"])
    assert retry["MinMemoryNode"] == "4000M", "the retry (attempt 2) must get 2000 * attempt MB"
    rows2 = _read_csv(slurm_dir / "results/slurm-it/summary.csv")
    _assert_matches_local(rows2, local_rows)
    assert (slurm_dir / "results/slurm-it/trials" / victim / "measure.json").exists()

    # -- run 3: a plain re-run has nothing left to do
    run3 = _snakemake(slurm_dir, slurm_args, 150)
    assert run3.returncode == 0 and "Nothing to be done" in run3.stdout + run3.stderr, run3.stderr[-2000:]

    timings["total"] = time.monotonic() - t0
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
