"""snakesweep.compare on hand-made sweep directories: Holm's adjustment, cycles where a side has one
seed, the direction of a min metric, what differs; and the Markdown of summary and compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from scipy import stats

from snakesweep import compare as cmp
from snakesweep.markdown import summary_markdown, table
from snakesweep.summary import main as summary_main


def _sweep(root: Path, name: str, values: dict[int, list[float]], cycles: dict[int, list[float]] | None = None,
           metric: str = "latency_ms", direction: str = "min", host: str = "a") -> Path:
    d = root / "results" / name
    (d / "plan").mkdir(parents=True)
    trials, rows = [], []
    for x, vals in values.items():
        for seed, v in enumerate(vals):
            tid = f"t{name}{x}{seed}"
            trials.append({"trial": tid, "params": {"x": x, "seed": seed}})
            rows.append({"trial": tid, "status": "ok", "x": x, "seed": seed, metric: v})
            rec = {"trial": tid, "step": "measure", "status": "ok", "metrics": {metric: v}, "host": host,
                   "device": "cpu", "versions": {"python": "3.11"}}
            (d / "trials" / tid).mkdir(parents=True)
            (d / "trials" / tid / "measure.json").write_text(json.dumps(rec))
            for c, cv in enumerate((cycles or {}).get(x, [])):
                (d / "trials" / tid / "cycles").mkdir(exist_ok=True)
                (d / "trials" / tid / "cycles" / f"measure.{c}.json").write_text(json.dumps({"metrics": {metric: cv}}))
    plan = {"sweep_name": name, "param_names": ["x", "seed"], "trials": trials, "steps": ["measure"],
            "workload": "inference_model", "report": {"objective": {"metric": metric, "direction": direction}}}
    (d / "plan" / "trials.json").write_text(json.dumps(plan))
    with open(d / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["trial", "status", "x", "seed", metric])
        w.writeheader()
        w.writerows(rows)
    return d


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, 0.03, None, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, kept monotone
    out = cmp.holm(p)
    assert out[3] is None
    assert [out[i] for i in (0, 1, 2, 4)] == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_min_metric_verdicts_adjusted_and_cycles_for_one_seed(tmp_path):
    old = _sweep(tmp_path, "a", {1: [10.0, 10.5, 9.5], 2: [20.0, 20.4, 19.6], 3: [5.0]},
                 cycles={3: [5.0, 5.1, 4.9]})
    new = _sweep(tmp_path, "b", {1: [5.0, 5.5, 4.5], 2: [30.0, 30.4, 29.6], 3: [9.0], 4: [1.0]},
                 cycles={3: [9.0, 9.1, 8.9]}, host="b")
    c = cmp.compare(cmp.load_sweep(str(old)), cmp.load_sweep(str(new)))
    by_x = {r.params["x"]: r for r in c.rows}
    assert by_x[1].verdict == "improved" and by_x[2].verdict == "regressed"  # lower latency is better
    assert by_x[3].basis == "cycles" and by_x[3].verdict == "regressed" and by_x[1].basis == "seeds"
    raw = stats.ttest_ind([5.0, 5.5, 4.5], [10.0, 10.5, 9.5], equal_var=False).pvalue
    assert by_x[1].p_value == pytest.approx(raw)
    assert by_x[1].p_adjusted == pytest.approx(cmp.holm([r.p_value for r in c.rows])[c.rows.index(by_x[1])])
    first = min(c.rows, key=lambda r: r.p_value)  # Holm multiplies the smallest p by the number of tests
    assert first.p_adjusted == pytest.approx(min(1.0, 3 * first.p_value))
    assert [i["params"] for i in c.only_new] == [{"x": 4}] and c.only_old == []
    assert ("host", "a", "b") in c.differences
    rows = json.loads(cmp.render_json(c))
    assert set(rows[0]) >= {"params", "metric", "old_mean", "new_mean", "difference", "p_value", "verdict"}
    md = cmp.render_markdown(c)
    assert "| x=2 | latency_ms (min) |" in md and "Holm" in md and "| new only | x=4 |" in md
    assert cmp.main([str(old), str(new), "--fail-on", "regressed"]) == 1
    assert cmp.main([str(old), str(old), "--fail-on", "regressed"]) == 0


def test_compare_errors_are_one_line(tmp_path, capsys):
    assert cmp.main([str(tmp_path / "nope"), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fix:" in err


def test_markdown_table_escapes_cells():
    assert table(["a", "b"], [["x|y", None]]) == "| a | b |\n|---|---|\n| x\\|y |  |"


def test_summary_markdown(tmp_path, capsys):
    d = _sweep(tmp_path, "a", {1: [10.0, 10.5, 9.5], 2: [20.0, 20.4, 19.6]}, metric="eval_accuracy", direction="max")
    (d / "best.json").write_text(json.dumps({
        "objective": {"metric": "eval_accuracy", "direction": "max"}, "confidence": 0.95,
        "best": {"params": {"x": 2}, "mean": 20.0, "ci_low": 19.0, "ci_high": 21.0, "n_ok": 3, "config_id": "c2"},
        "runner_up": {"params": {"x": 1}, "mean": 10.0, "ci_note": "n too small", "n_ok": 3, "config_id": "c1"},
        "verdict": "x=2 is better (p=0.001)"}))
    with open(d / "configs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x", "eval_accuracy_mean", "eval_accuracy_ci_low", "eval_accuracy_ci_high", "eval_accuracy_n"])
        w.writerows([[1, 10.0, 9, 11, 3], [2, 20.0, 19, 21, 3]])
    md = summary_markdown(d)
    assert "| 6 | 6 | 0 | 0 |" in md
    assert "| best | x=2 | 20 | [19, 21] | 3 | c2 |" in md and "| runner-up | x=1 | 10 | n too small | 3 | c1 |" in md
    assert md.index("| 2 | 20 |") < md.index("| 1 | 10 |")  # best first
    summary_main(["--format", "markdown", str(d)])
    assert capsys.readouterr().out.strip() == md.strip()
