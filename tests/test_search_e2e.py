"""End-to-end searches (issue 10) with real Snakemake on the toy workload: random, sobol, halving,
optuna, failures in a halving round, growing a search, and kill -9 + resume."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from conftest import Workdir, copy_workflow, toy_config
from snakesweep import search
from snakesweep.config import validate_config
from snakesweep.plan import load_plan
from snakesweep.space import sample

pytestmark = pytest.mark.e2e

SPACE = {"x": {"uniform": [-2.0, 4.0]}}


def search_config(workdir: Workdir, search_: dict, space=SPACE, **sweep) -> dict:
    cfg = toy_config(workdir, {}, **{k: v for k, v in sweep.items() if k not in ("grid", "seeds", "fixed")})
    cfg["sweep"].update(steps=["train", "eval"], search=search_, seeds=sweep.get("seeds", [0]))
    if space:
        cfg["sweep"]["space"] = space
    for key in ("grid", "fixed"):
        if key in sweep:
            cfg["sweep"][key] = sweep[key]
    if not sweep.get("grid"):
        del cfg["sweep"]["grid"]
    return cfg


def run(workdir: Workdir, cfg: dict, *extra: str, check: bool = True, env=None):
    path = workdir.write_config(cfg)
    return workdir.snakemake("--cores", "2", "--configfile", str(path), *extra, check=check, env=env)


def plan_of(workdir: Workdir) -> dict:
    return load_plan(workdir.path / "results/toy/plan/trials.json")


def accuracy(workdir: Workdir, trial: str) -> float:
    return json.loads((workdir.path / "results/toy/trials" / trial / "eval.json").read_text())["metrics"]["eval_accuracy"]


def rounds_of(workdir: Workdir) -> list[dict]:
    d = workdir.path / "results/toy/plan/rounds"
    return [json.loads((d / f"round_{r}.json").read_text()) for r in range(len(list(d.glob("round_*.json"))))]


def test_random_and_sobol_sweeps_run_the_samplers_points(workdir, tmp_path):
    for method, wd in (("random", workdir), ("sobol", Workdir(copy_workflow(tmp_path / "sobol")))):
        cfg = search_config(wd, {"method": method, "n_trials": 4, "seed": 3}, seeds=[0, 1])
        proc = run(wd, cfg)
        assert f"snakesweep search: {method}: 4 " in proc.stderr
        rows = wd.read_csv("results/toy/summary.csv")
        sweep = validate_config(cfg, "t").sweep
        expected = sorted((p["x"], s) for p in sample(sweep.space, 4, 3, method) for s in (0, 1))
        assert sorted((float(r["x"]), int(r["seed"])) for r in rows) == expected
        assert all(r["status"] == "ok" for r in rows)
        plan = plan_of(wd)
        assert plan["search"]["method"] == method and {t["round"] for t in plan["trials"]} == {0}


def test_halving_promotes_the_top_third_by_the_objective_and_failures_never_survive(workdir):
    # round 0: the grid's 9 points (a union of two grids); x = 1.1 would be the best, but fails
    grid = [{"x": [-1.0, 0.0, 0.5, 0.8, 2.5, 3.0, 3.5]}, {"x": [1.1], "fail": ["raise"]}, {"x": [1.6]}]
    cfg = search_config(workdir, {"method": "halving", "budget": {"param": "epochs", "min": 1, "max": 9, "eta": 3}},
                        space=None, grid=grid)
    env = dict(os.environ, TOY_FAILURES="1")
    first = run(workdir, cfg, check=False, env=env)
    assert first.returncode != 0  # the failure stops this run at round 0 ...
    assert "successive halving on 'epochs' (eta 3), 3 rounds; configurations per round 9 -> 3 -> 1" in first.stderr
    assert "budget ladder 1 -> 3 -> 9" in first.stderr
    assert len(rounds_of(workdir)) == 1
    trained = {p: p.stat().st_mtime_ns for p in workdir.path.glob("results/toy/trials/*/train.json")}
    assert len(trained) == 8
    # ... the next goes on without it (an exception is final, not retried); a trial failed for
    # good, so the run exits 1 (issue 16: 0 only when the summary's trials are all ok)
    second = run(workdir, cfg, check=False, env=env)
    assert second.returncode == 1, second.stderr[-3000:]
    assert "snakesweep: exit status 1: 1 of 13 planned trials did not finish ok" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in trained} == trained
    assert len(list(workdir.path.glob("results/toy/trials/*/train.json"))) == 8 + 3 + 1

    r0, r1, r2 = rounds_of(workdir)
    assert [t["params"]["epochs"] for t in r0["trials"]] == [1] * 9
    failed = [t["trial"] for t in r0["trials"] if t["params"].get("fail")]
    ok = [t for t in r0["trials"] if t["trial"] not in failed]
    best3 = sorted(ok, key=lambda t: -accuracy(workdir, t["trial"]))[:3]  # from the result files
    assert [t["params"]["x"] for t in r1["trials"]] == [t["params"]["x"] for t in best3] == [0.8, 0.5, 1.6]
    assert all(t["params"]["epochs"] == 3 and "fail" not in t["params"] for t in r1["trials"])
    best = max(r1["trials"], key=lambda t: accuracy(workdir, t["trial"]))
    assert [(t["params"]["x"], t["params"]["epochs"]) for t in r2["trials"]] == [(best["params"]["x"], 9)]
    assert {c["outcome"] for c in r1["selection"]["configs"] if c["trials"] == failed} == {"failed"}

    plan = plan_of(workdir)
    assert [(t["round"], t["budget"]) for t in plan["trials"]] == [(0, 1)] * 9 + [(1, 3)] * 3 + [(2, 9)]
    rows = {r["trial"]: r for r in workdir.read_csv("results/toy/summary.csv")}
    assert len(rows) == 13 and rows[failed[0]]["status"] == "failed"
    assert sum(r["status"] == "ok" for r in rows.values()) == 12
    everything = {p: p.stat().st_mtime_ns for p in workdir.path.glob("results/toy/**/*") if p.is_file()}
    third = run(workdir, cfg, check=False, env=env)  # nothing to run, and still not a success
    assert third.returncode == 1, third.stderr[-3000:]
    assert "Nothing to be done" in third.stderr
    assert "snakesweep: 13 trials: 12 ok, 1 failed, 0 pending" in third.stderr
    assert f"  {failed[0]}: train: ValueError: injected failure for x=1.1" in third.stderr
    assert "snakesweep: exit status 1: 1 of 13 planned trials did not finish ok" in third.stderr
    assert {p: p.stat().st_mtime_ns for p in everything} == everything  # nothing re-run or rewritten
    dry = run(workdir, cfg, "-n", check=False, env=env)  # a dry run only says what it would do
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
    assert "exit status 1" not in dry.stderr


def test_optuna_rounds_choose_from_results_and_more_rounds_continue_the_search(workdir):
    cfg = search_config(workdir, {"method": "optuna", "rounds": 2, "batch": 4, "seed": 1},
                        space={"x": {"uniform": [-2.0, 4.0]}, "tag": {"choice": ["a", "b"]}})
    proc = run(workdir, cfg)
    assert "snakesweep search: optuna TPE, 2 rounds of 4 points" in proc.stderr
    r0, r1 = rounds_of(workdir)
    # round 1 is what a study rebuilt from round 0's result files asks for
    sweep = validate_config(cfg, "t").sweep
    history = [({k: v for k, v in t["params"].items() if k != "seed"}, [accuracy(workdir, t["trial"])])
               for t in r0["trials"]]
    assert [{k: v for k, v in t["params"].items() if k != "seed"} for t in r1["trials"]] == \
        search.suggest(sweep.space, 1, 1, 4, history, ["max"])
    assert r1["selection"]["study_trials"] == 4
    assert len(workdir.read_csv("results/toy/summary.csv")) == 8

    files = sorted((workdir.path / "results/toy/trials").glob("*/*.json"))
    before = {p: p.stat().st_mtime_ns for p in files}
    round_bytes = [(workdir.path / f"results/toy/plan/rounds/round_{r}.json").read_bytes() for r in (0, 1)]
    cfg["sweep"]["search"]["rounds"] = 3
    run(workdir, cfg)
    assert len(list(workdir.path.glob("results/toy/trials/*/train.json"))) == 12 and len(rounds_of(workdir)) == 3
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert [(workdir.path / f"results/toy/plan/rounds/round_{r}.json").read_bytes() for r in (0, 1)] == round_bytes
    assert len(workdir.read_csv("results/toy/summary.csv")) == 12


def _state(wd: Workdir) -> dict:
    """What a search leaves: its round files (byte for byte) and every result's metrics."""
    rounds = {p.name: p.read_bytes() for p in (wd.path / "results/toy/plan/rounds").glob("*.json")}
    results = {}
    for p in (wd.path / "results/toy/trials").glob("*/*.json"):
        if p.stem not in ("train", "eval"):
            continue  # the toy's model.json
        rec = json.loads(p.read_text())
        results[(p.parent.name, p.stem)] = (rec["params"], rec["metrics"])
    return {"rounds": rounds, "results": results, "plan": [(t["trial"], t["round"]) for t in plan_of(wd)["trials"]]}


KILL_CASES = {
    # halving: kill once round 1 is chosen and one of its trainings finished
    "halving": ({"method": "halving", "n_trials": 6, "seed": 2, "budget": {"param": "epochs", "min": 1, "max": 9, "eta": 3}},
                lambda d: (d / "results/toy/plan/rounds/round_1.json").exists() and len(list(d.glob("results/toy/trials/*/train.json"))) >= 7),
    # optuna: kill when round 0's last result appears: round 1 is being chosen (Optuna's import alone takes ~1 s)
    "optuna": ({"method": "optuna", "rounds": 3, "batch": 3, "seed": 0},
               lambda d: len(list(d.glob("results/toy/trials/*/eval.json"))) >= 3),
}


@pytest.mark.parametrize("method", list(KILL_CASES))
def test_kill_minus_nine_in_a_search_then_resume_equals_an_uninterrupted_run(method, workdir, tmp_path):
    spec, moment = KILL_CASES[method]
    cfg_path = workdir.write_config(search_config(workdir, spec, fixed={"sleep_s": 0.4}))
    proc = workdir.popen("--cores", "2", "--configfile", str(cfg_path))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not moment(workdir.path):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the kill: nothing was interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    valid_before = {}
    for p in [*workdir.path.glob("results/toy/trials/*/train.json"), *workdir.path.glob("results/toy/trials/*/eval.json")]:
        try:
            json.loads(p.read_text())
            valid_before[p] = p.stat().st_mtime_ns
        except ValueError:
            pass
    chosen_before = len(list((workdir.path / "results/toy/plan/rounds").glob("*.json")))
    assert chosen_before < search.n_rounds(validate_config(search_config(workdir, spec), "t").sweep)

    workdir.snakemake("--unlock", "--configfile", str(cfg_path), check=True)
    workdir.snakemake("--cores", "2", "--configfile", str(cfg_path), check=True)
    for p, mtime in valid_before.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was redone"

    reference = Workdir(copy_workflow(tmp_path / "reference"))  # the same sweep, never interrupted
    run(reference, search_config(reference, spec, fixed={"sleep_s": 0.4}))
    assert _state(workdir) == _state(reference)
