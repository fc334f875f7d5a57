"""PBT's lineage in the reports (issue 19): lineage.csv's rows from synthetic round files, the
best member's schedule of parameters, answer.html's section and the rule's main."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from snakesweep import report
from snakesweep.report import lineage
from snakesweep.rounds import ROUND_KIND, round_digest

PBT = {"method": "pbt", "seed": 0, "rounds": 3, "key": "k1", "configs_per_round": [3, 3, 3], "seeds": 2,
       "rounds_dir": "rounds", "budget_param": "epochs",
       "pbt": {"param": "epochs", "step": 2, "population": 3, "generations": 3, "quantile": 0.34},
       "objectives": [{"metric": "acc", "direction": "max"}],
       "config": {"sweep": {"space": {"lr": {"loguniform": [0.001, 1.0]}, "opt": {"choice": ["adam", "sgd"]}}}}}


def _entry(m, g, outcome, parent, lr, opt="adam", explore=None):
    return {"member": m, "generation": g, "outcome": outcome,
            "continued_from": None if parent is None else {"member": parent, "generation": g - 1},
            "score": None, "rank": m, "params": None if outcome == "dead" else {"lr": lr, "opt": opt},
            "explore": explore or {}, "trials": [] if outcome == "dead" else [f"m{m}g{g}s0", f"m{m}g{g}s1"]}


def synthetic_rounds() -> list[dict]:
    """Generation 0: members 0, 1, 2; generation 1: member 2 exploits member 0 (lr 0.1 -> 0.12);
    generation 2: member 1 exploits member 2, which carries member 0's generation-0 checkpoint."""
    gens = [
        [_entry(0, 0, "initial", None, 0.1), _entry(1, 0, "initial", None, 0.01, "sgd"), _entry(2, 0, "initial", None, 0.5)],
        [_entry(0, 1, "kept", 0, 0.1), _entry(1, 1, "kept", 1, 0.01, "sgd"),
         _entry(2, 1, "exploited", 0, 0.12, explore={"lr": {"from": 0.1, "to": 0.12, "how": "x1.2"},
                                                       "opt": {"from": "adam", "to": "adam", "how": "neighbour"}})],
        [_entry(0, 2, "kept", 0, 0.1), _entry(1, 2, "exploited", 2, 0.144, explore={"lr": {"from": 0.12, "to": 0.144, "how": "x1.2"}}),
         _entry(2, 2, "kept", 2, 0.12)],
    ]
    docs = []
    for g, entries in enumerate(gens):
        doc = {"schema_version": 1, "kind": ROUND_KIND, "round": g, "method": "pbt", "key": "k1",
               "parent": round_digest(docs[-1] if docs else None), "budget": 2 * (g + 1),
               "lineage": entries, "selection": {},
               "trials": [{"trial": t, "params": {**e["params"], "epochs": 2 * (g + 1), "seed": i}, "round": g,
                           "budget": 2 * (g + 1), "member": e["member"], "generation": g}
                          for e in entries for i, t in enumerate(e["trials"])]}
        docs.append(doc)
    return docs


# each trial's acc: member-generation base + 0.01 per seed; member 1's generation 2 seed 1 failed
BASE = {(0, 0): 0.5, (1, 0): 0.3, (2, 0): 0.2, (0, 1): 0.6, (1, 1): 0.35, (2, 1): 0.65,
        (0, 2): 0.7, (1, 2): 0.75, (2, 2): 0.72}


def summary_rows(failed=("m1g2s1",)) -> list[dict]:
    rows = []
    for doc in synthetic_rounds():
        for t in doc["trials"]:
            m, g, s = t["member"], t["generation"], t["params"]["seed"]
            bad = t["trial"] in failed
            rows.append({"trial": t["trial"], "status": "failed" if bad else "ok", **t["params"],
                         "acc": None if bad else BASE[(m, g)] + 0.01 * s})
    return rows


def test_lineage_rows_scores_parents_and_parameters_per_member_and_generation():
    values = lineage.trial_values(pd.DataFrame(summary_rows()), "acc")
    rows = lineage.lineage_rows(synthetic_rounds(), values, ["lr", "opt"])
    assert [(r["member"], r["generation"]) for r in rows] == [(m, g) for g in range(3) for m in range(3)]
    by = {(r["member"], r["generation"]): r for r in rows}
    assert by[(2, 1)]["outcome"] == "exploited" and by[(2, 1)]["continued_from"] == 0 and by[(2, 1)]["lr"] == 0.12
    assert by[(2, 1)]["explore"] == "lr: 0.1 -> 0.12 (x1.2); opt: adam -> adam (neighbour)"
    assert by[(0, 0)]["continued_from"] is None and by[(0, 0)]["outcome"] == "initial"
    assert by[(2, 1)]["score"] == pytest.approx(0.655)  # mean over the two seeds of its own trials
    assert by[(1, 2)]["score"] is None  # one seed failed: no score, not the other seed's value
    # the best of the last generation with scores: member 2 (0.725; member 1 failed a seed)
    best = lineage.best_member(rows, "max")
    assert (best["member"], best["generation"]) == (2, 2)
    assert lineage.best_member(rows, "min")["member"] == 0
    # member 2's checkpoint of generation 2: trained by member 0 in generation 0, then by 2
    schedule = lineage.best_schedule(synthetic_rounds(), 2, 2)
    assert [(s["generation"], s["member"], s["params"]["lr"]) for s in schedule] == [(0, 0, 0.1), (1, 2, 0.12), (2, 2, 0.12)]
    # member 1's generation 2 continued member 2's generation 1, itself from member 0
    assert [s["member"] for s in lineage.best_schedule(synthetic_rounds(), 1, 2)] == [0, 2, 1]
    assert lineage.best_member([], "max") is None


def test_a_dead_member_has_no_parent_no_score_and_null_parameters():
    docs = synthetic_rounds()
    docs[2]["lineage"][1] = _entry(1, 2, "dead", None, None)
    rows = lineage.lineage_rows(docs, {}, ["lr", "opt"])
    dead = rows[7]
    assert (dead["member"], dead["outcome"], dead["continued_from"], dead["score"], dead["lr"]) == (1, "dead", None, None, None)
    text = lineage.lineage_csv(rows, ["lr", "opt"]).splitlines()
    assert text[0] == "member,generation,outcome,continued_from,score,n_trials,explore,lr,opt"
    assert text[8] == "1,2,dead,,,0,,null,null"


def test_the_rule_main_writes_lineage_csv_from_the_round_files(tmp_path):
    plan_dir = tmp_path / "results/s/plan"
    (plan_dir / "rounds").mkdir(parents=True)
    plan = {"schema_version": 1, "sweep_name": "s", "sweep_hash": "h", "steps": ["train", "eval"],
            "param_names": ["lr", "opt", "epochs", "seed"], "trials": [], "search": PBT,
            "failures": {"retry_on": []}}
    (plan_dir / "trials.json").write_text(json.dumps(plan))
    for g, doc in enumerate(synthetic_rounds()):
        (plan_dir / "rounds" / f"round_{g}.json").write_text(json.dumps(doc))
    summary = tmp_path / "results/s/summary.csv"
    pd.DataFrame(summary_rows()).to_csv(summary, index=False)
    out = tmp_path / "results/s/lineage.csv"
    assert lineage.main(["--plan", str(plan_dir / "trials.json"), "--summary", str(summary), "--objective", "acc",
                         "--direction", "max", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 9 and list(rows[0])[-2:] == ["lr", "opt"]
    assert rows[5] == {"member": "2", "generation": "1", "outcome": "exploited", "continued_from": "0",
                       "score": "0.655", "n_trials": "2",
                       "explore": "lr: 0.1 -> 0.12 (x1.2); opt: adam -> adam (neighbour)", "lr": "0.12", "opt": "adam"}
    assert json.loads((tmp_path / "results/s/report/problems.report_lineage.json").read_text())["problems"] == []


def test_answer_html_shows_the_lineage_and_the_best_schedule_only_for_pbt():
    rows = summary_rows()
    plan = {"param_names": ["lr", "opt", "epochs", "seed"], "trials": [], "search": PBT}
    rep = report.compute_reports(pd.DataFrame(rows), plan, ("acc", "max"), [], synthetic_rounds())
    page = report.render_answer_html(rep)
    assert "Population-based training: each member's lineage" in page
    assert "<b>&larr; 0</b> 0.655" in page  # member 2 of generation 1 continued member 0's checkpoint
    assert "The best member of generation 2: member 2" in page
    schedule = page.split("The schedule of parameters")[1]
    assert schedule.index("<td>0</td><td>0</td><td class='l'>0.1</td>") < schedule.index("<td>1</td><td>2</td><td class='l'>0.12</td>")
    assert "Not ranked: epochs" in page  # the budget is no factor in PBT either
    grid = report.compute_reports(pd.DataFrame(rows), {"param_names": plan["param_names"], "trials": []}, ("acc", "max"), [])
    assert "each member's lineage" not in report.render_answer_html(grid)
