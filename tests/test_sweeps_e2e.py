"""Sweeps apart (issue 16): several sweeps in one checkout, each in its own directory, with real
Snakemake on the toy workload. Readers trust only their own sweep's plan and search; the exit code
says whether every planned trial is ok; a report file the sweep does not produce is not in its
directory. Also the summary's command line, the search line's YAML values and the failure
budget's wording."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workdir, jobs_run, toy_config
from snakesweep import search, summary
from snakesweep.config import validate_config
from snakesweep.plan import load_plan
from snakesweep.rounds import chosen_rounds, foreign_rounds

HALVING = {"method": "halving", "budget": {"param": "epochs", "min": 1, "max": 3, "eta": 3}}
OPTUNA = {"method": "optuna", "rounds": 2, "batch": 2, "seed": 1}
RANDOM = {"method": "random", "n_trials": 3, "seed": 3}
SPACE = {"x": {"uniform": [-2.0, 4.0]}}
STEP_RULES = ("train", "eval")


def sweep_config(wd: Workdir, name: str, method: dict) -> dict:
    """A tiny [train, eval] search of the toy: halving over a 3-point grid (3 -> 1 configurations,
    epochs 1 -> 3), or optuna / random over one uniform dimension; one seed."""
    cfg = toy_config(wd, {})
    cfg["sweep"].update(name=name, steps=["train", "eval"], search=dict(method), seeds=[0])
    del cfg["sweep"]["grid"]
    if method["method"] == "halving":
        cfg["sweep"]["grid"] = {"x": [0.0, 1.0, 2.5]}
    else:
        cfg["sweep"]["space"] = SPACE
    return cfg


def run(wd: Workdir, cfg: dict, *extra: str, env=None) -> subprocess.CompletedProcess:
    path = wd.write_config(cfg, f"{cfg['sweep']['name']}.yaml")
    return wd.snakemake("--cores", "2", "--configfile", str(path), *extra, env=env)


def step_jobs(proc: subprocess.CompletedProcess) -> int:
    return sum(jobs_run(proc, rule) for rule in STEP_RULES)


def assert_own(wd: Workdir, cfg: dict, proc: subprocess.CompletedProcess) -> dict:
    """The sweep's directory holds its own search only: a summary of exactly its plan's trials,
    all ok; round files only of its search; its own search figure and no other; exit code 0."""
    name, method = cfg["sweep"]["name"], cfg["sweep"]["search"]["method"]
    d = wd.sweep(name)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = load_plan(d / "plan/trials.json")
    assert plan["sweep_name"] == name and plan["search"]["method"] == method
    assert plan["search"]["key"] == search.search_key(validate_config(cfg, "t"))
    rows = wd.read_csv(f"results/{name}/summary.csv")
    assert [r["trial"] for r in rows] == [t["trial"] for t in plan["trials"]]
    assert rows and all(r["status"] == "ok" for r in rows)
    assert ("budget" in rows[0]) == (method == "halving")
    # every trial of the summary ran for this sweep, in this sweep's directory
    for r in rows:
        rec = json.loads((d / "trials" / r["trial"] / "eval.json").read_text())
        assert rec["trial"] == r["trial"]
    rounds = sorted(p.name for p in (d / "plan/rounds").glob("round_*.json"))
    if method in ("halving", "optuna"):
        assert rounds == ["round_0.json", "round_1.json"]
        assert len(chosen_rounds(d / "plan", plan["search"])) == 2
        assert foreign_rounds(d / "plan", plan["search"]) == []
    else:
        assert rounds == []
    plots = {p.name for p in (d / "plots").glob("*.png")}
    assert ("halving_ladder.png" in plots) == (method == "halving")
    assert ("search_progress.png" in plots) == (method in ("optuna", "random"))
    n_plots = len(plots)
    assert f"{n_plots} plots" in proc.stderr
    return {r["trial"]: r for r in rows}


def snapshot(wd: Workdir, name: str) -> dict:
    """Every file of a sweep's directory but its logs, with its bytes' mtime (what a re-run or
    another sweep must leave alone)."""
    d = wd.sweep(name)
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*")
            if p.is_file() and "logs" not in p.relative_to(d).parts}


def test_two_sweeps_of_different_methods_stay_apart_and_a_rerun_redoes_nothing(workdir):
    halving, optuna = sweep_config(workdir, "sw-halving", HALVING), sweep_config(workdir, "sw-optuna", OPTUNA)
    first = run(workdir, halving)
    h_rows = assert_own(workdir, halving, first)
    assert len(h_rows) == 3 + 1
    h_files = snapshot(workdir, "sw-halving")

    second = run(workdir, optuna)
    o_rows = assert_own(workdir, optuna, second)
    assert len(o_rows) == 4 and not set(o_rows) & set(h_rows)
    assert snapshot(workdir, "sw-halving") == h_files  # the optuna sweep never touched halving's
    assert "best configuration" in second.stderr and "epochs" not in second.stderr.split("best configuration")[-1]

    # a third sweep of the checkout that never ran: no elapsed time borrowed from the others' runs
    never = sweep_config(workdir, "sw-never", HALVING)
    path = workdir.write_config(never, "sw-never.yaml")
    st = subprocess.run([sys.executable, "-m", "snakesweep.status", str(path), "--format", "json"],
                        cwd=workdir.path, capture_output=True, text=True, timeout=120)
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["elapsed_s"] is None
    st = subprocess.run([sys.executable, "-m", "snakesweep.status", "results/sw-optuna", "--format", "json"],
                        cwd=workdir.path, capture_output=True, text=True, timeout=120)
    assert json.loads(st.stdout)["elapsed_s"] is not None, st.stderr

    # the first sweep again: nothing to do, nothing rewritten
    again = run(workdir, halving)
    assert again.returncode == 0, again.stderr[-3000:]
    assert step_jobs(again) == 0 and "search_round" not in again.stderr.split("Building DAG")[-1].split("Job stats")[0]
    assert snapshot(workdir, "sw-halving") == h_files

    # deleting one sweep's directory leaves the other's whole, and a re-run of it redoes nothing
    o_files = snapshot(workdir, "sw-optuna")
    shutil.rmtree(workdir.sweep("sw-halving"))
    assert snapshot(workdir, "sw-optuna") == o_files
    rerun = run(workdir, optuna)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert step_jobs(rerun) == 0
    assert snapshot(workdir, "sw-optuna") == o_files


def test_the_other_order_with_a_shared_source_edited_between(workdir):
    optuna, halving = sweep_config(workdir, "o-first", OPTUNA), sweep_config(workdir, "h-second", HALVING)
    o_rows = assert_own(workdir, optuna, run(workdir, optuna))
    o_files = snapshot(workdir, "o-first")
    # the workload both sweeps run is edited: the next sweep runs the new code, the other is untouched
    src = workdir.path / "toy.py"
    src.write_text(src.read_text() + "\n# edited between the sweeps\n")
    proc = run(workdir, halving)
    h_rows = assert_own(workdir, halving, proc)
    assert step_jobs(proc) == 2 * len(h_rows) and not set(h_rows) & set(o_rows)
    assert "is not in the plan" not in proc.stderr
    assert not list((workdir.sweep("h-second") / "logs").glob("*/*.error.json"))
    assert snapshot(workdir, "o-first") == o_files
    assert not list((workdir.sweep("o-first") / "logs").glob("*/*.error.json"))


def test_the_same_sweep_switched_from_halving_to_random_rechooses_from_scratch(workdir):
    halving = sweep_config(workdir, "switch", HALVING)
    h_rows = assert_own(workdir, halving, run(workdir, halving))
    d = workdir.sweep("switch")
    assert (d / "plots/halving_ladder.png").exists()

    rand = sweep_config(workdir, "switch", RANDOM)
    proc = run(workdir, rand)
    rows = assert_own(workdir, rand, proc)  # no halving trial, no budget column, no round file
    assert len(rows) == 3 and not set(rows) & set(h_rows)
    assert step_jobs(proc) == 2 * 3  # the new search really ran, not only the plan and the reports
    assert not (d / "plots/halving_ladder.png").exists()
    best = json.loads((d / "best.json").read_text())
    assert "epochs" not in json.dumps(best.get("best"))

    # and back to halving: the rounds are chosen again for halving, its trials' results kept
    trained = {t: (d / "trials" / t / "train.json").stat().st_mtime_ns for t in h_rows}
    back = run(workdir, halving)
    assert_own(workdir, halving, back)
    assert step_jobs(back) == 0
    assert {t: (d / "trials" / t / "train.json").stat().st_mtime_ns for t in h_rows} == trained
    assert not (d / "plots/search_progress.png").exists()


def test_a_dry_run_after_a_switch_removes_nothing_and_runs_no_other_searchs_trials(workdir):
    halving = sweep_config(workdir, "dry", HALVING)
    assert_own(workdir, halving, run(workdir, halving))
    d = workdir.sweep("dry")
    before = sorted(p.name for p in (d / "plan/rounds").iterdir())
    optuna = sweep_config(workdir, "dry", OPTUNA)
    proc = run(workdir, optuna, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (d / "plan/rounds").iterdir()) == before
    assert "rounds chosen so far: 0 of 2" in proc.stdout + proc.stderr


def test_a_search_whose_trial_failed_for_good_exits_non_zero(workdir):
    cfg = sweep_config(workdir, "fails", HALVING)
    cfg["sweep"]["grid"] = [{"x": [0.0, 2.5]}, {"x": [1.0], "fail": ["raise"]}]
    env = dict(os.environ, TOY_FAILURES="1")
    first = run(workdir, cfg, env=env)
    assert first.returncode != 0
    # the failure is final for the search (an exception): the next run goes on without it, runs
    # the last round, and still says the sweep did not finish with a non-zero status
    second = run(workdir, cfg)
    assert second.returncode == 1, second.stderr[-3000:]
    assert step_jobs(second) > 0
    assert "exit status 1: 1 of 4 planned trials did not finish ok" in second.stderr
    rows = workdir.read_csv("results/fails/summary.csv")
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok", "ok"]
    assert summary.main([str(workdir.sweep("fails"))]) == 1


# ---------------------------------------------------------------------------- without Snakemake


def test_foreign_round_files_are_told_from_the_searchs_own(tmp_path):
    block = {"method": "optuna", "rounds": 2, "key": "k1", "rounds_dir": "rounds"}
    rounds = tmp_path / "rounds"
    rounds.mkdir()

    def write(r, key, parent, method="optuna"):
        doc = {"kind": "snakesweep-round", "round": r, "key": key, "method": method, "parent": parent,
               "trials": [{"trial": f"t{r}{key}", "params": {}}]}
        (rounds / f"round_{r}.json").write_text(json.dumps(doc))
        return doc

    from snakesweep.rounds import round_digest

    d0 = write(0, "k1", None)
    write(1, "other", round_digest(d0))
    assert [d["round"] for d in chosen_rounds(tmp_path, block)] == [0]
    assert foreign_rounds(tmp_path, block) == [rounds / "round_1.json"]
    d1 = write(1, "k1", round_digest(d0))
    write(2, "k1", round_digest(d1))  # beyond `rounds`, but of this search: kept
    assert foreign_rounds(tmp_path, block) == []
    write(0, "k1", None, method="halving")
    assert foreign_rounds(tmp_path, block) == sorted(rounds / f"round_{r}.json" for r in range(3))
    assert foreign_rounds(tmp_path, None) == sorted(rounds / f"round_{r}.json" for r in range(3))


def test_the_search_line_prints_yaml_values(workdir):
    cfg = sweep_config(workdir, "yaml", OPTUNA)
    cfg["sweep"]["space"] = {"x": {"uniform": [0.0, 1.0]}, "max_depth": {"choice": [None, 2, 4]},
                             "bootstrap": {"choice": [True, False]}}
    text = search.describe(validate_config(cfg, "t"))
    assert "max_depth in [null, 2, 4]" in text and "bootstrap in [true, false]" in text
    assert "None" not in text and "True" not in text


def test_the_failure_budget_s_trials_are_not_started_not_failed():
    rows = [{"trial": "a", "status": "failed", "error": "train: ValueError: boom"},
            {"trial": "b", "status": "failed", "error": "train: ValueError: boom"}]
    rows += [{"trial": f"n{i}", "status": "failed",
              "error": "train: FailureBudget: not started: the failure budget is spent (...)"} for i in range(4)]
    lines = summary.trial_lines(rows, "results/s/logs", results="results/s")
    assert lines[0] == "snakesweep: 6 trials: 0 ok, 2 failed, 4 not started (failure budget), 0 pending"
    assert lines[1].startswith("snakesweep: 2 of 6 trials failed, 4 not started (failure budget) and 0 did not finish")
    assert "6 of 6" not in "\n".join(lines) and "results/s/summary.csv" in lines[1]
    assert sum(line.startswith("  ") for line in lines) == 2  # only the real failures are listed


def test_summary_takes_the_sweep_as_a_file_a_directory_or_a_checkout(tmp_path):
    checkout = tmp_path / "co"
    (checkout / "config").mkdir(parents=True)
    (checkout / "Snakefile").write_text("")
    (checkout / "config/config.yaml").write_text("sweep: {name: dflt}\n")
    (checkout / "other.yaml").write_text("sweep: {name: other}\n")
    for name, status in (("dflt", "ok"), ("other", "failed")):
        d = checkout / "results" / name
        d.mkdir(parents=True)
        (d / "summary.csv").write_text(f"trial,status,error\nt1,{status},{'train: E: x' if status != 'ok' else ''}\n")

    def main(*args, cwd=checkout):
        return subprocess.run([sys.executable, "-m", "snakesweep.summary", *args], cwd=cwd,
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(Path(summary.__file__).parents[1])))

    default = main()
    assert default.returncode == 0 and "1 trial: 1 ok" in default.stdout
    by_file = main("other.yaml")
    assert by_file.returncode == 1 and "1 trial: 0 ok, 1 failed" in by_file.stdout
    assert "results/other/summary.csv lists every trial" in by_file.stdout
    by_dir = main(str(checkout / "results/other"), cwd=tmp_path)
    assert by_dir.returncode == 1 and "0 ok, 1 failed" in by_dir.stdout
    by_checkout = main(str(checkout), cwd=tmp_path)
    assert by_checkout.returncode == 0 and "1 ok" in by_checkout.stdout
    missing = main("nope.yaml")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "nope.yaml" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize("rows, expected", [
    ("t1,ok,\n", None),
    ("t1,ok,\nt2,pending,\n", "1 of 2 planned trials did not finish ok"),
    ("t1,failed,train: FailureBudget: not started\n", "1 of 1 planned trials did not finish ok"),
])
def test_unfinished_says_why_the_exit_status_is_not_0(tmp_path, rows, expected):
    (tmp_path / "summary.csv").write_text("trial,status,error\n" + rows)
    assert summary.unfinished(tmp_path) == expected
    assert summary.unfinished(tmp_path / "none") is not None
