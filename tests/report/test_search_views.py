"""What the rest of the system shows of a search: the rounds' trials in the sweep
state, status, the preview and collect (summary.csv's `round` / `budget`), best.json at halving's
top budget, the halving ladder and the best-so-far figure, the end-of-run wording. Unit tests on
hand-built sweep directories, then real Snakemake runs on the toy workload (halving, optuna, and
a grid whose summary must not change)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workdir
from snakesweep import collect as collect_mod
from snakesweep import report
from snakesweep.plan import load_plan
from snakesweep.preview import format_preview, search_rounds
from snakesweep.rounds import ROUND_KIND, round_digest
from snakesweep.state import read_state
from snakesweep.status import format_text, sweep_status
from snakesweep.summary import end_of_run_summary, trial_lines
from state_helpers import write_result

OBJ = ("eval_accuracy", "max")
LADDER = [1, 3, 9]


# ---------------------------------------------------------------------------- hand-built halving


def _plan(search: dict | None, trials=(), names=("x", "epochs", "seed")) -> dict:
    plan = {"schema_version": 1, "sweep_name": "t", "sweep_hash": "h0", "steps": ["train", "eval"],
            "param_names": list(names), "failures": {"retry_on": ["timeout", "signal", "orphaned"]},
            "trials": [dict(t) for t in trials]}
    if search:
        plan["search"] = search
    return plan


HALVING = {"method": "halving", "seed": 0, "rounds": 3, "key": "k1", "configs_per_round": [4, 1, 1], "seeds": 1,
           "rounds_dir": "rounds", "budget_param": "epochs", "ladder": LADDER, "eta": 3,
           "objectives": [{"metric": "eval_accuracy", "direction": "max"}]}


def _t(x: float, r: int, seed: int = 0) -> dict:
    b = LADDER[r]
    return {"trial": f"x{x}r{r}s{seed}".replace(".", "_").replace("-", "m"),
            "params": {"x": x, "epochs": b, "seed": seed}, "round": r, "budget": b}


def write_halving(root: Path, *, acc: dict, failed=(), rounds=3) -> dict:
    """A halving search written by hand: x in {0, 1, 2, 3} in round 0 (1 epoch), x=1 alone in
    rounds 1 and 2 (3 and 9 epochs), whatever the scores (`acc`: {(x, round): accuracy}); the x
    in `failed` fail in round 0. Writes the plan, the round files (a valid parent chain) and the
    results; returns the plan as load_plan reads it."""
    plan_dir = root / "results" / "plan"
    plan_dir.mkdir(parents=True, exist_ok=True)
    (plan_dir / "trials.json").write_text(json.dumps(_plan(HALVING)))
    docs = []
    chosen = {0: [0.0, 1.0, 2.0, 3.0], 1: [1.0], 2: [1.0]}
    for r in range(rounds):
        doc = {"schema_version": 1, "kind": ROUND_KIND, "round": r, "method": "halving", "key": "k1",
               "parent": round_digest(docs[-1] if docs else None), "budget": LADDER[r],
               "trials": [_t(x, r) for x in chosen[r]]}
        if r == 0:
            doc["selection"] = {"from": "grid", "configs": 4}
        else:
            prev = docs[-1]
            doc["selection"] = {"from_round": r - 1, "configs": [
                {"config": {"x": t["params"]["x"]}, "trials": [t["trial"]],
                 "score": None if t["params"]["x"] in failed else acc[(t["params"]["x"], r - 1)],
                 "outcome": "failed" if t["params"]["x"] in failed else
                 "promoted" if t["params"]["x"] in chosen[r] else "stopped",
                 **({"rank": 0} if t["params"]["x"] in chosen[r] else {})}
                for t in prev["trials"]]}
        (plan_dir / "rounds").mkdir(exist_ok=True)
        (plan_dir / "rounds" / f"round_{r}.json").write_text(json.dumps(doc))
        docs.append(doc)
        for t in doc["trials"]:
            write_result(root, t["trial"], "train", {"train_loss": 1.0}, params=t["params"])
            if t["params"]["x"] in failed:
                err = root / "logs" / "train" / f"{t['trial']}.error.json"
                err.parent.mkdir(parents=True, exist_ok=True)
                (root / "results/trials" / t["trial"] / "train.json").unlink()
                err.write_text(json.dumps({"type": "ValueError", "message": "boom", "reason": "exception"}))
                continue
            write_result(root, t["trial"], "eval", {"eval_accuracy": acc[(t["params"]["x"], r)]}, params=t["params"])
    return load_plan(plan_dir / "trials.json")


ACC = {(0.0, 0): 0.5, (1.0, 0): 0.7, (2.0, 0): 0.9, (3.0, 0): 0.0, (1.0, 1): 0.8, (1.0, 2): 0.85}
# x=2 scores best at 1 epoch (0.9) but was (in this hand-built story) not promoted: the best
# of the sweep is still the configuration at the top budget


def test_the_state_status_and_collect_see_the_round_trials(tmp_path):
    plan = write_halving(tmp_path, acc={**ACC, (2.0, 0): 0.6}, failed=(3.0,))
    ids = [t["trial"] for t in plan["trials"]]
    assert len(ids) == 6  # 4 + 1 + 1, none of them in trials.json itself
    st = read_state(tmp_path, processes=False)
    assert st.trials == ids
    assert st.trial_status(ids[3])[0] == "failed" and st.trial_status(ids[-1])[0] == "ok"

    status = sweep_status(tmp_path)
    assert status["planned"] == 6 and status["search"]["chosen"] == 3 and status["search"]["later_trials"] == 0
    text = format_text(status)
    assert "6 trials planned" in text and "search: halving, 3 of 3 rounds chosen" in text

    rows = report.collect(tmp_path / "results/plan/trials.json", tmp_path / "results", tmp_path / "logs",
                               tmp_path / "results/summary.csv", tmp_path / "results/configs.csv")
    header = (tmp_path / "results/summary.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["trial", "status", "round", "budget", "x", "epochs"]
    assert [(r["trial"], r["round"], r["budget"]) for r in rows] == [(t["trial"], t["round"], t["budget"]) for t in plan["trials"]]
    configs = (tmp_path / "results/configs.csv").read_text().splitlines()
    # x=1 at 1, 3 and 9 epochs: three configurations (three measurements), never averaged together
    assert sum(line.split(",")[1] == "1.0" for line in configs[1:]) == 3
    assert "round" not in configs[0] and "budget" not in configs[0]


def test_a_round_file_of_another_search_is_not_read(tmp_path):
    write_halving(tmp_path, acc=ACC)
    plan_path = tmp_path / "results/plan/trials.json"
    plan = json.loads(plan_path.read_text())
    plan["search"]["key"] = "another"
    plan_path.write_text(json.dumps(plan))
    assert read_state(tmp_path, processes=False).trials == []


def _reports(tmp_path, acc=ACC, failed=(3.0,), rounds=3):
    plan = write_halving(tmp_path, acc=acc, failed=failed, rounds=rounds)
    rows = report.collect(tmp_path / "results/plan/trials.json", tmp_path / "results", tmp_path / "logs",
                               tmp_path / "results/summary.csv", tmp_path / "results/configs.csv")
    docs = report.load_rounds(tmp_path / "results/plan/trials.json", plan)
    return report.compute_reports(rows, plan, OBJ, [], docs)


def test_halving_best_is_ranked_at_the_top_budget_and_the_ladder_says_who_stopped_when(tmp_path):
    rep = _reports(tmp_path)
    # x=2 has the highest accuracy of any row (0.9 at 1 epoch), but 1 epoch is no rival of 9
    assert rep.best["best"]["params"] == {"x": 1.0, "epochs": 9}
    assert rep.best["scope"]["budget"] == 9 and rep.best["scope"]["complete"]
    assert rep.best["verdict"].startswith("halving: ranked among the configurations trained at the top budget (epochs = 9)")

    ladder = report.halving_ladder(rep)
    by_x = {e["params"]["x"]: e for e in ladder}
    assert [e["params"]["x"] for e in ladder] == [1.0, 2.0, 0.0, 3.0]  # furthest first, then score, failed last
    assert by_x[1.0]["outcome"] == "winner" and [s["score"] for s in by_x[1.0]["steps"]] == [0.7, 0.8, 0.85]
    assert by_x[2.0]["outcome"] == "stopped" and by_x[2.0]["text"] == "stopped after round 0 (epochs = 1)"
    assert by_x[3.0]["outcome"] == "failed" and by_x[3.0]["text"] == "failed in round 0 (epochs = 1)"
    html = report.render_answer_html(rep)
    assert "Successive halving: which configurations were stopped when" in html
    assert "stopped after round 0 (epochs = 1)" in html and "failed in round 0" in html
    assert "the winner, at the top budget (round 2, epochs = 9)" in html


def test_an_unfinished_halving_ranks_at_the_largest_budget_so_far(tmp_path):
    rep = _reports(tmp_path, rounds=2)
    assert rep.best["best"]["params"] == {"x": 1.0, "epochs": 3}
    assert not rep.best["scope"]["complete"] and "has not reached the top budget (epochs = 9) yet" in rep.best["verdict"]
    ladder = report.halving_ladder(rep)
    assert ladder[0]["outcome"] == "waiting" and all(e["outcome"] != "winner" for e in ladder)


def test_search_progress_is_the_running_best_in_plan_order(tmp_path):
    trials = [{"trial": f"t{i}", "params": {"x": float(i), "seed": 0}, "round": i // 2} for i in range(5)]
    rows = [{"trial": t["trial"], "status": "ok", "x": t["params"]["x"], "seed": 0, "eval_loss": v}
            for t, v in zip(trials, [0.5, 0.7, 0.3, None, 0.4])]
    rows[3]["status"] = "failed"
    plan = _plan({"method": "optuna", "rounds": 3}, trials, names=("x", "seed"))
    rep = report.compute_reports(rows, plan, ("eval_loss", "min"), [])
    prog = report.search_progress(rep)
    assert [(p["n"], p["round"], p["value"], p["best"]) for p in prog] == [
        (1, 0, 0.5, 0.5), (2, 0, 0.7, 0.5), (3, 1, 0.3, 0.3), (4, 1, None, 0.3), (5, 2, 0.4, 0.3)]
    assert "first reached at trial 3 of 5 (round 1)" in report.render_answer_html(rep)


def test_the_search_figure_exists_only_for_a_search():
    assert report.search_plot_name("grid") is None and report.search_plot_name(None) is None
    assert report.search_plot_name("halving") == "halving_ladder"
    assert {report.search_plot_name(m) for m in ("random", "sobol", "optuna")} == {"search_progress"}
    assert report.report_targets() == report.report_targets(search="grid")
    assert report.report_targets(search="halving")[-1] == "results/plots/halving_ladder.png"
    assert report.search_plot_output("grid") == {}
    _, plots = report.report_command_args({"objective": "a", "direction": "max"}, "results", "optuna")
    assert plots[-2:] == ["--out-search", "results/plots/search_progress.png"]
    assert "--out-search" not in report.report_command_args({"objective": "a", "direction": "max"})[1]


def test_summary_columns_only_for_a_search():
    assert collect_mod.search_columns({}) == ()
    assert collect_mod.search_columns({"search": {"method": "sobol"}}) == ("round",)
    assert collect_mod.search_columns({"search": {"method": "optuna"}}) == ("round",)
    assert collect_mod.search_columns({"search": {"method": "halving"}}) == ("round", "budget")


def test_the_preview_counts_chosen_rounds_and_bounds_the_rest(tmp_path):
    write_halving(tmp_path, acc=ACC, rounds=1)
    plan = json.loads((tmp_path / "results/plan/trials.json").read_text())
    info = search_rounds(plan, tmp_path / "results")
    assert info["chosen"] == 1 and len(info["trials"]) == 4 and info["later_trials"] == 2
    text = format_preview(4, {"train": 0, "eval": 0}, {}, 2, {"train": 4, "eval": 4}, info)
    assert text.startswith("snakesweep plan: halving search in 3 rounds, up to 6 trials; 1 round chosen so far with 4 trials")
    assert "the 2 rounds not chosen yet: up to 2 trials (4 jobs)" in text and "nothing to run" not in text
    assert "0 trials" not in format_preview(0, {"train": 0}, {}, 2, None,
                                            {"method": "optuna", "rounds": 2, "chosen": 0, "later_trials": 8})


def test_the_retry_line_of_a_search_in_rounds(tmp_path):
    rows = [{"trial": "a", "status": "failed", "error": "train: ValueError: x"}, {"trial": "b", "status": "ok"}]
    assert "re-run the same command to retry failed and missing trials." in "\n".join(trial_lines(rows))
    write_halving(tmp_path, acc=ACC, failed=(3.0,), rounds=1)
    (tmp_path / "results/summary.csv").write_text("trial,status,error\na,failed,train: ValueError: x\nb,ok,\n")
    text = "\n".join(end_of_run_summary(tmp_path / "results", tmp_path / "logs"))
    assert "retry failed and missing trials" not in text
    assert "failed ones are retried only for a reason in failures.retry_on (timeout, signal, orphaned)" in text
    assert "the search goes on without it" in text
    assert "halving search: 1 of 3 rounds chosen so far" in text


# ---------------------------------------------------------------------------- real Snakemake runs


def _search_config(wd: Workdir, search: dict, space=None, grid=None, seeds=(0,)) -> dict:
    from test_search_e2e import search_config

    kw = {"grid": grid} if grid else {}
    return search_config(wd, search, space=space, seeds=list(seeds), **kw)


def _run(wd: Workdir, cfg: dict, *extra: str):
    path = wd.write_config(cfg)
    return wd.snakemake("--cores", "2", "--configfile", str(path), *extra, check=True)


def _problems(wd: Workdir) -> list:
    out = []
    for f in (wd.path / "results/toy/report").glob("problems.*.json"):
        out += json.loads(f.read_text())["problems"]
    return out


@pytest.mark.e2e
def test_halving_sweep_reports_its_rounds_end_to_end(workdir):
    grid = {"x": [-1.0, 0.0, 0.5, 0.8, 1.6, 2.5]}  # 6 -> 2 -> 1 configurations at 1, 3, 9 epochs
    cfg = _search_config(workdir, {"method": "halving", "budget": {"param": "epochs", "min": 1, "max": 9, "eta": 3}},
                         grid=grid)
    path = workdir.write_config(cfg)
    dry = workdir.snakemake("-n", "--cores", "2", "--configfile", str(path), check=True)
    out = dry.stdout + dry.stderr
    assert "snakesweep plan: halving search in 3 rounds, up to 9 trials; no round chosen yet" in out
    assert "0 trials" not in out
    _run(workdir, cfg)

    plan = load_plan(workdir.path / "results/toy/plan/trials.json")
    rows = workdir.read_csv("results/toy/summary.csv")
    assert list(rows[0])[:6] == ["trial", "status", "round", "budget", "x", "epochs"]
    assert [(r["trial"], int(r["round"]), int(r["budget"])) for r in rows] == \
        [(t["trial"], t["round"], t["budget"]) for t in plan["trials"]]
    assert [int(r["budget"]) for r in rows] == [1] * 6 + [3] * 2 + [9]
    assert all(r["status"] == "ok" and r["budget"] == r["epochs"] for r in rows)

    status = subprocess.run([sys.executable, "-m", "snakesweep.status", str(workdir.path / "results/toy")], capture_output=True,
                            text=True, check=True).stdout
    assert "9 trials planned" in status and "search: halving, 3 of 3 rounds chosen" in status
    assert re.search(r"train\s+9\s+0\s+0\s+0\s+0", status)

    # the stopped configurations, from the round files, are what the ladder says
    r1 = json.loads((workdir.path / "results/toy/plan/rounds/round_1.json").read_text())
    r2 = json.loads((workdir.path / "results/toy/plan/rounds/round_2.json").read_text())
    stopped0 = sorted(c["config"]["x"] for c in r1["selection"]["configs"] if c["outcome"] == "stopped")
    stopped1 = [c["config"]["x"] for c in r2["selection"]["configs"] if c["outcome"] == "stopped"]
    winner = r2["trials"][0]["params"]["x"]
    assert len(stopped0) == 4 and len(stopped1) == 1
    html = (workdir.path / "results/toy/report/answer.html").read_text()
    table = html[html.index("Successive halving: which configurations were stopped when"):]
    table = table[:table.index("</table>")]
    cells = re.findall(r"<tr class='[a-z]*'><td class='l'>([^<]+)</td>.*?<td class='l'>([^<]+)</td></tr>", table)
    outcome = {float(x): text for x, text in cells}
    assert sorted(x for x, t in outcome.items() if t == "stopped after round 0 (epochs = 1)") == stopped0
    assert [x for x, t in outcome.items() if t == "stopped after round 1 (epochs = 3)"] == stopped1
    assert outcome[winner].startswith("the winner, at the top budget")
    ladder_png = workdir.path / "results/toy/plots/halving_ladder.png"
    assert ladder_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and ladder_png.stat().st_size > 5000
    assert not (workdir.path / "results/toy/plots/search_progress.png").exists()
    assert _problems(workdir) == []
    best = json.loads((workdir.path / "results/toy/best.json").read_text())
    assert best["best"]["params"] == {"x": winner, "epochs": 9} and best["scope"]["budget"] == 9

    again = workdir.snakemake("-n", "--cores", "2", "--configfile", str(path), check=True)
    assert "3 rounds chosen so far with 9 trials" in again.stdout + again.stderr


@pytest.mark.e2e
def test_optuna_sweep_gets_the_best_so_far_figure(workdir):
    cfg = _search_config(workdir, {"method": "optuna", "rounds": 2, "batch": 3, "seed": 1},
                         space={"x": {"uniform": [-2.0, 4.0]}})
    _run(workdir, cfg)
    header = (workdir.path / "results/toy/summary.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["trial", "status", "round", "x"] and "budget" not in header
    rounds = [int(r["round"]) for r in workdir.read_csv("results/toy/summary.csv")]
    assert rounds == [0, 0, 0, 1, 1, 1]
    png = workdir.path / "results/toy/plots/search_progress.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not (workdir.path / "results/toy/plots/halving_ladder.png").exists()
    assert _problems(workdir) == []
    html = (workdir.path / "results/toy/report/answer.html").read_text()
    assert "The search: optuna, 6 trials in 2 rounds" in html and "alt='search_progress'" in html


@pytest.mark.e2e
def test_a_grid_sweep_has_no_search_columns_and_no_search_figure(workdir):
    cfg = _search_config(workdir, {"method": "grid"}, grid={"x": [0.0, 1.0]})
    _run(workdir, cfg)
    header = (workdir.path / "results/toy/summary.csv").read_text().splitlines()[0]
    assert header == ("trial,status,x,seed,train_loss,train_time_s,tag_seen,eval_accuracy,eval_loss,"
                      "config_id,error,error_log")
    plots = sorted(p.name for p in (workdir.path / "results/toy/plots").iterdir())
    assert plots == sorted(f"{n}.png" for n in report.PLOT_NAMES)
    assert "search" not in json.loads((workdir.path / "results/toy/best.json").read_text()).get("scope", {})
