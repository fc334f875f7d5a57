"""End-to-end adaptive search (issue 19) with real Snakemake on the toy workload: halving whose
promoted trials continue from their previous rung's checkpoint (module and command workloads),
Hyperband, population-based training, and kill -9 mid-rung + resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import Workdir, copy_workflow, toy_config

pytestmark = pytest.mark.e2e

SPACE = {"x": {"uniform": [-2.0, 4.0]}}
HALVING = {"method": "halving", "budget": {"param": "epochs", "min": 1, "max": 9, "eta": 3}}


def adaptive_config(workdir: Workdir, search: dict, *, space=SPACE, grid=None, fixed=None, seeds=(0,)) -> dict:
    cfg = toy_config(workdir, {})
    cfg["sweep"].update(steps=["train", "eval"], search=search, seeds=list(seeds))
    del cfg["sweep"]["grid"]
    if grid:
        cfg["sweep"]["grid"] = grid
    if space and not grid:
        cfg["sweep"]["space"] = space
    if fixed:
        cfg["sweep"]["fixed"] = fixed
    return cfg


def run(workdir: Workdir, cfg: dict, *extra: str, check: bool = True, env=None):
    path = workdir.write_config(cfg)
    return workdir.snakemake("--cores", "2", "--configfile", str(path), *extra, check=check, env=env)


def rounds_of(workdir: Workdir) -> list[dict]:
    d = workdir.sweep() / "plan/rounds"
    return [json.loads((d / f"round_{r}.json").read_text()) for r in range(len(list(d.glob("round_*.json"))))]


def record(workdir: Workdir, trial: str, step: str = "train") -> dict:
    return json.loads((workdir.sweep() / "trials" / trial / f"{step}.json").read_text())


def entries(workdir: Workdir) -> list[dict]:
    return [t for doc in rounds_of(workdir) for t in doc["trials"]]


def outcome(workdir: Workdir) -> dict:
    """What a run decided and computed, without timings: every round's trials and every result."""
    out = {"rounds": [[(t["trial"], t.get("resume_from")) for t in doc["trials"]] for doc in rounds_of(workdir)]}
    for t in entries(workdir):
        train = record(workdir, t["trial"])
        out[t["trial"]] = (train["params"], {k: v for k, v in train["metrics"].items() if k != "train_time_s"},
                           train.get("resumed_from"), record(workdir, t["trial"], "eval")["metrics"])
    return out


def check_chain(workdir: Workdir, param: str = "epochs") -> int:
    """Every continued trial's record names its parent (trial, budget, code digest) and ran only
    the increment; returns how many trials continued."""
    by_id = {t["trial"]: t for t in entries(workdir)}
    continued = 0
    for t in by_id.values():
        train = record(workdir, t["trial"])
        parent = t.get("resume_from")
        if parent is None:
            assert train["resumed_from"] is None
            assert train["metrics"]["epochs_run"] == t["params"][param]
            continue
        continued += 1
        parent_record = record(workdir, parent)
        assert train["resumed_from"] == {"trial": parent, "budget": parent_record["params"][param],
                                         "code_digest": parent_record["code_digest"]}
        assert train["code_digest"] == parent_record["code_digest"]
        assert train["metrics"]["epochs_from"] == parent_record["params"][param]
        assert train["metrics"]["epochs_run"] == t["params"][param] - parent_record["params"][param]
    return continued


def test_halving_promoted_trials_continue_from_the_previous_rung(workdir):
    grid = {"x": [-1.0, 0.0, 0.5, 0.8, 1.2, 2.5, 3.0, 3.5, 1.6]}
    cfg = adaptive_config(workdir, HALVING, grid=grid, seeds=(0, 1))
    run(workdir, cfg)
    docs = rounds_of(workdir)
    assert [len(d["trials"]) for d in docs] == [18, 6, 2]
    assert all(t["resume_from"] is None for t in docs[0]["trials"])
    for prev, doc in zip(docs, docs[1:]):
        prev_ids = {(t["params"]["x"], t["params"]["seed"]): t["trial"] for t in prev["trials"]}
        for t in doc["trials"]:  # the same configuration and seed, one rung lower
            assert t["resume_from"] == prev_ids[(t["params"]["x"], t["params"]["seed"])]
    assert check_chain(workdir) == 8
    # the last rung's increments: 9 - 3 epochs for each seed of the best configuration
    assert sorted(record(workdir, t["trial"])["metrics"]["epochs_run"] for t in docs[2]["trials"]) == [6, 6]
    assert {t["params"]["x"] for t in docs[2]["trials"]} == {0.8}  # |x - 1| smallest among those above
    # the toy ignores epochs: which configurations reached 9 epochs is the selection, no effect
    importance = list(csv.DictReader((workdir.sweep() / "importance.csv").open()))
    assert [r["parameter"] for r in importance] == ["x"]
    assert "Not ranked: epochs" in (workdir.sweep() / "report/answer.html").read_text()


def test_halving_measures_each_trial_over_several_cycles(workdir):
    cfg = adaptive_config(workdir, {"method": "halving", "budget": {"param": "epochs", "min": 1, "max": 3, "eta": 3}},
                          grid={"x": [-1.0, 0.5, 2.5]})
    cfg["sweep"]["steps"] = ["train", "eval", "measure"]
    cfg["measure"] = {**cfg["measure"], "cycles": 2, "cycle_order": "sequential"}
    run(workdir, cfg)
    docs = rounds_of(workdir)
    assert [len(d["trials"]) for d in docs] == [3, 1]
    assert docs[1]["trials"][0]["params"]["x"] == 0.5 and docs[1]["trials"][0]["resume_from"] is not None
    for t in entries(workdir):  # every trial of every round, measured twice, then aggregated
        cycles = sorted((workdir.sweep() / "trials" / t["trial"] / "cycles").glob("measure.*.json"))
        assert [c.name for c in cycles] == ["measure.0.json", "measure.1.json"]
        measured = record(workdir, t["trial"], "measure")
        assert len(measured["metrics"]["cycle_files"]) == 2 and measured["metrics"]["latency_ms_p50"] > 0


CLI = '''
import argparse, json, pathlib
ap = argparse.ArgumentParser()
ap.add_argument("--x", type=float, required=True)
ap.add_argument("--epochs", type=int, required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--resume-from")
a = ap.parse_args()
done = 0
if a.resume_from:
    done = json.loads(pathlib.Path(a.resume_from, "state.json").read_text())["epochs"]
    assert 0 < done < a.epochs, (done, a.epochs)
out = pathlib.Path(a.out)
(out / "state.json").write_text(json.dumps({"epochs": a.epochs}))
(out / "metrics.json").write_text(json.dumps({"score": -abs(a.x - 1.0), "epochs_run": a.epochs - done,
                                              "epochs_from": done, "resumed": bool(a.resume_from)}))
'''


def test_a_command_workload_continues_through_its_resume_flag(workdir):
    (workdir.path / "train_resume.py").write_text(CLI)
    cfg = adaptive_config(workdir, HALVING, grid={"x": [-1.0, 0.0, 0.9, 2.0, 3.0, 4.0]})
    cfg["sweep"]["workload"] = {"command": {"train": [
        sys.executable, "train_resume.py", "--x={x}", "--epochs={epochs}", "--out={out_dir}",
        "--resume-from={resume_dir}"]}}
    cfg["sweep"]["steps"] = ["train"]
    cfg["report"] = {"objective": {"metric": "score", "direction": "max"}}
    run(workdir, cfg)
    docs = rounds_of(workdir)
    assert [len(d["trials"]) for d in docs] == [6, 2, 1]
    assert check_chain(workdir) == 3
    top = docs[2]["trials"][0]
    assert top["params"]["x"] == 0.9
    train = record(workdir, top["trial"])
    assert train["metrics"]["resumed"] is True and train["metrics"]["epochs_run"] == 6
    # the parent's train directory was handed over: the flag's value, not left out
    log = (workdir.sweep() / "logs/train" / f"{top['trial']}.log").read_text()
    assert f"--resume-from={workdir.sweep().relative_to(workdir.path)}/trials/{top['resume_from']}/train" in log
    # round 0 started fresh: the element with {resume_dir} was left out (the script asserts 0 < done)
    first = record(workdir, docs[0]["trials"][0]["trial"])
    assert first["metrics"]["resumed"] is False and first["resumed_from"] is None


def kill_when(workdir: Workdir, cfg: dict, ready, what: str) -> None:
    """Start the run, kill -9 its whole process group once `ready()` holds (bounded wait)."""
    path = workdir.write_config(cfg)
    proc = workdir.popen("--cores", "2", "--configfile", str(path))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before {what}: nothing was interrupted"
    assert ready(), f"{what} never happened"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    workdir.snakemake("--unlock", "--configfile", str(path), check=True)


def held_pids(marks) -> list[int]:
    """The step processes tests/workloads/toy.py holds (TOY_HOLD): each left `<trial>.<pid>.held`."""
    return [json.loads(p.read_text())["pid"] for p in marks.glob("*.held")]


def wait_gone(pids: list[int], what: str, deadline_s: float = 120.0) -> None:
    """Poll until none of `pids` is alive (a zombie, dead but not reaped yet, counts as gone)."""
    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False

    end = time.monotonic() + deadline_s
    while any(alive(p) for p in pids):
        assert time.monotonic() < end, f"{what}: still alive after {deadline_s:g} s: {[p for p in pids if alive(p)]}"
        time.sleep(0.05)


def hold_continued(monkeypatch, marks) -> None:
    """Every continued train step leaves its mark, then waits for a release the test never writes
    (tests/workloads/toy.py): the kill lands while it is held, however slow the machine."""
    monkeypatch.setenv("TOY_MARK_DIR", str(marks))
    monkeypatch.setenv("TOY_HOLD", "continued")


def test_kill_minus_nine_mid_rung_then_resume_equals_an_uninterrupted_run(workdir, tmp_path, monkeypatch):
    grid = {"x": [-1.0, 0.0, 0.5, 0.8, 2.5, 3.0, 3.5, 1.6, 4.0]}
    marks = tmp_path / "marks"
    marks.mkdir()
    hold_continued(monkeypatch, marks)
    cfg = adaptive_config(workdir, HALVING, grid=grid)
    # killed while a continued trial of rung 1 trains (it left its mark, then is held)
    kill_when(workdir, cfg, lambda: any(marks.glob("*.held")), "a continued trial started")
    started = {p.name.removesuffix(".continuing") for p in marks.glob("*.continuing")}
    assert started
    assert not any((workdir.sweep() / "trials" / t / "train.json").exists() for t in started)
    wait_gone(held_pids(marks), "the held steps of the killed run")  # they died with it
    monkeypatch.delenv("TOY_HOLD")  # the resumed and the reference runs go straight through
    run(workdir, cfg)
    other = Workdir(copy_workflow(tmp_path / "uninterrupted"))
    run(other, adaptive_config(other, HALVING, grid=grid))
    assert outcome(workdir) == outcome(other)
    assert check_chain(workdir) == 4


def test_editing_the_workload_re_runs_the_chain_parent_first(workdir):
    cfg = adaptive_config(workdir, HALVING, grid={"x": [-1.0, 0.0, 0.5, 2.5, 3.0, 3.5]})
    run(workdir, cfg)
    before = {t["trial"]: record(workdir, t["trial"])["code_digest"] for t in entries(workdir)}
    with open(workdir.path / "toy.py", "a") as fh:
        fh.write("\n# an edit\n")
    run(workdir, cfg)
    after = {t["trial"]: record(workdir, t["trial"]) for t in entries(workdir)}
    assert after.keys() == before.keys()
    assert all(r["code_digest"] != before[t] for t, r in after.items())  # every rung re-trained
    assert check_chain(workdir) == 3  # and each continued from its parent's new checkpoint
    for t in entries(workdir):
        if t.get("resume_from"):
            assert after[t["resume_from"]]["ended_at"] <= after[t["trial"]]["started_at"]


HYPERBAND = {"method": "hyperband", "seed": 2, "budget": {"param": "epochs", "min": 1, "max": 9, "eta": 3}}


def test_hyperband_runs_its_brackets_and_promoted_trials_continue(workdir):
    cfg = adaptive_config(workdir, HYPERBAND)
    proc = run(workdir, cfg)
    assert "hyperband on 'epochs' (eta 3), 3 brackets" in proc.stderr
    docs = rounds_of(workdir)
    # brackets s=2: 9x1 -> 3x3 -> 1x9; s=1: 5x3 -> 1x9; s=0: 3x9 (Li et al.'s formula)
    per_round = [sorted((t["bracket"], t["budget"]) for t in d["trials"]) for d in docs]
    assert per_round[0] == sorted([(2, 1)] * 9 + [(1, 3)] * 5 + [(0, 9)] * 3)
    assert per_round[1] == sorted([(2, 3)] * 3 + [(1, 9)])
    assert per_round[2] == [(2, 9)]
    xs = [t["params"]["x"] for t in docs[0]["trials"]]
    assert len(set(xs)) == 17  # distinct across brackets
    acc = {t["trial"]: record(workdir, t["trial"], "eval")["metrics"]["eval_accuracy"] for t in entries(workdir)}
    for r in (1, 2):
        for b in {t["bracket"] for t in docs[r]["trials"]}:
            rung = [t for t in docs[r - 1]["trials"] if t["bracket"] == b]
            kept = [t for t in docs[r]["trials"] if t["bracket"] == b]
            best = sorted(rung, key=lambda t: -acc[t["trial"]])[: len(kept)]
            assert {t["params"]["x"] for t in kept} == {t["params"]["x"] for t in best}
    assert check_chain(workdir) == 5
    assert all(t["resume_from"] is None for t in docs[0]["trials"])


PBT = {"method": "pbt", "seed": 1, "pbt": {"param": "epochs", "step": 2, "population": 4, "generations": 3,
                                           "quantile": 0.25, "factors": [0.5, 1.5], "resample_probability": 0.0}}


def lineage_of(workdir: Workdir) -> list[dict]:
    return [e for doc in rounds_of(workdir) for e in doc["lineage"]]


def test_pbt_exploits_the_top_member_and_its_lineage_is_in_the_result_files(workdir, tmp_path, monkeypatch):
    marks = tmp_path / "marks"
    marks.mkdir()
    hold_continued(monkeypatch, marks)
    space = {"x": {"uniform": [-3.0, 5.0]}}
    cfg = adaptive_config(workdir, PBT, space=space, seeds=(0, 1))
    # killed while generation 1 trains from generation 0's checkpoints (held), then resumed
    kill_when(workdir, cfg, lambda: any(marks.glob("*.held")), "a continued trial started")
    wait_gone(held_pids(marks), "the held steps of the killed run")
    monkeypatch.delenv("TOY_HOLD")
    run(workdir, cfg)
    docs = rounds_of(workdir)
    assert [len(d["lineage"]) for d in docs] == [4, 4, 4]
    acc = {t["trial"]: record(workdir, t["trial"], "eval")["metrics"]["eval_accuracy"] for t in entries(workdir)}
    by_gen = [{e["member"]: e for e in d["lineage"]} for d in docs]
    for g in (1, 2):
        scores = {m: sum(acc[t] for t in e["trials"]) / 2 for m, e in by_gen[g - 1].items()}
        ranked = sorted(scores, key=lambda m: (-scores[m], m))
        top, bottom = ranked[0], ranked[-1]
        assert by_gen[g][bottom]["outcome"] == "exploited"
        assert by_gen[g][bottom]["continued_from"] == {"member": top, "generation": g - 1}
        x_from, x_to = by_gen[g - 1][top]["params"]["x"], by_gen[g][bottom]["params"]["x"]
        assert by_gen[g][bottom]["explore"]["x"]["from"] == x_from
        assert x_to in (max(-3.0, min(5.0, x_from * f)) for f in (0.5, 1.5))
        for m, e in by_gen[g].items():
            source = e["continued_from"]["member"]
            assert e["outcome"] == ("exploited" if m == bottom else "kept") and (source == m) == (m != bottom)
            for seed, tid in zip((0, 1), e["trials"]):
                train = record(workdir, tid)
                parent = by_gen[g - 1][source]["trials"][seed]
                assert train["resumed_from"]["trial"] == parent and train["params"]["epochs"] == 2 * (g + 1)
                assert train["metrics"]["epochs_run"] == 2 and train["params"]["x"] == e["params"]["x"]
    other = Workdir(copy_workflow(tmp_path / "uninterrupted"))
    run(other, adaptive_config(other, PBT, space=space, seeds=(0, 1)))
    assert outcome(workdir) == outcome(other) and lineage_of(workdir) == lineage_of(other)
    # the report's lineage table: every member per generation, as the round files say, scored
    # by its own trials' mean (what the next generation's selection saw)
    table = list(csv.DictReader((workdir.sweep() / "lineage.csv").open()))
    assert [(int(r["member"]), int(r["generation"]), r["outcome"]) for r in table] == [
        (e["member"], e["generation"], e["outcome"]) for e in lineage_of(workdir)]
    for r in table:
        g, m = int(r["generation"]), int(r["member"])
        entry = by_gen[g][m]
        assert r["continued_from"] == ("" if g == 0 else str(entry["continued_from"]["member"]))
        assert float(r["x"]) == entry["params"]["x"]
        assert float(r["score"]) == pytest.approx(sum(acc[t] for t in entry["trials"]) / 2)
        if g < 2:
            assert float(r["score"]) == pytest.approx(by_gen[g + 1][m]["score"])
    page = (workdir.sweep() / "report/answer.html").read_text()
    assert "Population-based training: each member's lineage" in page and "The best member of generation 2" in page
