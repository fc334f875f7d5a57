"""configs.csv, best.json, pareto.csv and importance.csv, on the fixture sweep (report_fixture.py);
the expected numbers are recomputed here from the trial JSONs with `statistics` and scipy,
independently of snakesweep's own aggregation."""

from __future__ import annotations

import csv
import json
import math
import statistics
import time

import pytest
from report_fixture import METRICS, expected_from_jsons, make_sweep, report_cli, summary_df, summary_rows, write_summary
from scipy import stats as sps

from snakesweep import report
from snakesweep.grid import config_id
from snakesweep.report import best_report, pareto_indices

# ---------------------------------------------------------------------------- configs.csv


def test_configs_csv_recomputed_independently_from_trial_jsons(tmp_path):
    plan = make_sweep(tmp_path)
    _, configs = write_summary(tmp_path, plan)
    expected = expected_from_jsons(tmp_path, plan)
    assert len(configs) == len(expected) == 6
    summary = report.read_csv(tmp_path / "results/summary.csv")
    assert {r["config_id"] for r in summary} == {c["config_id"] for c in configs}  # the files join
    for c in configs:
        key = (("lr", float(c["lr"])), ("hidden", int(c["hidden"])))
        e = expected[key]
        assert (int(c["n_seeds"]), int(c["n_ok"]), int(c["n_failed"]), int(c["n_pending"])) == (e["n"], e["ok"], e["failed"], 0)
        for m in METRICS:
            vals = e["values"][m]
            assert float(c[f"{m}_mean"]) == pytest.approx(statistics.mean(vals), rel=1e-12)
            assert float(c[f"{m}_std"]) == pytest.approx(statistics.stdev(vals), rel=1e-9, abs=1e-15)
            if len(vals) < 3:  # no number a reader cannot use: the note says why
                assert c[f"{m}_ci_low"] == c[f"{m}_ci_high"] == ""
                assert "n too small" in c["ci_note"]
            elif statistics.stdev(vals) > 0:
                sem = statistics.stdev(vals) / math.sqrt(len(vals))
                lo, hi = sps.t.interval(0.95, len(vals) - 1, loc=statistics.mean(vals), scale=sem)
                assert float(c[f"{m}_ci_low"]) == pytest.approx(max(lo, 0.0), rel=1e-9)
                assert float(c[f"{m}_ci_high"]) == pytest.approx(min(hi, 1.0) if "accuracy" in m else hi, rel=1e-9)
    # the failed seed (eval crashed) is counted, and its train metrics are not averaged in
    failed = [c for c in configs if c["n_failed"] == "1"]
    assert len(failed) == 1 and failed[0]["n_ok"] == "2"


def test_config_table_failed_counted_not_averaged_and_labels_never_averaged():
    import pandas as pd

    rows = [
        {"trial": "a", "status": "ok", "lr": 0.1, "seed": 0, "acc": 0.9, "src": "rapl", "driver_version": "12.5",
         "flag_detail": "", "flag_throttled": False, "nvml_version": "12.535"},
        {"trial": "b", "status": "ok", "lr": 0.1, "seed": 1, "acc": None, "src": "rapl", "driver_version": "12.5",
         "flag_detail": "", "flag_throttled": True, "nvml_version": "12.535"},
        {"trial": "c", "status": "failed", "lr": 0.1, "seed": 2, "acc": 0.1},
        {"trial": "d", "status": "pending", "lr": 0.2, "seed": 0},
        {"trial": "e", "status": "corrupt", "lr": 0.2, "seed": 1},
    ]
    out = report.config_table(pd.DataFrame(rows), ["lr", "seed"])
    assert list(out["lr"]) == [0.1, 0.2]
    a, b = out.to_dict("records")
    assert (a["n_seeds"], a["n_ok"], a["n_failed"], a["n_pending"]) == (3, 2, 1, 0)
    assert (b["n_seeds"], b["n_ok"], b["n_failed"], b["n_pending"]) == (2, 0, 1, 1)
    assert a["acc_mean"] == 0.9 and math.isnan(b["acc_mean"])
    # labels, bools and version strings are not numbers; all-empty columns are left out
    assert [c for c in out.columns if c.endswith("_mean")] == ["acc_mean"]
    assert not any(c.startswith(("src", "driver_version", "nvml_version", "flag_")) for c in out.columns)
    assert "acc_std" not in out.columns and "acc_ci_low" not in out.columns  # one value: nothing to show
    assert list(out.columns) == ["config_id", "lr", "n_seeds", "n_ok", "n_failed", "n_pending", "acc_mean", "ci_note"]


def test_intervals_are_usable_n_too_small_and_known_ranges():
    import pandas as pd

    # 2 seeds: a t interval would be [-0.97, 1.57] for an accuracy; 3 seeds near 1: clipped at 1
    rows = [{"trial": f"t{i}", "status": "ok", "p": p, "seed": i, "eval_accuracy": v, "latency_ms_p95": lat}
            for i, (p, v, lat) in enumerate([("two", 0.2, 1.0), ("two", 0.4, 2.0),
                                             ("three", 0.99, 0.1), ("three", 0.90, 5.0), ("three", 0.999, 0.2)])]
    t = report.config_table(pd.DataFrame(rows), ["p", "seed"]).set_index("p")
    assert math.isnan(t.loc["two", "eval_accuracy_ci_low"]) and math.isnan(t.loc["two", "eval_accuracy_ci_high"])
    assert t.loc["two", "ci_note"].startswith("n too small for an interval (2 ok value(s); need >= 3)")
    lo, hi = sps.t.interval(0.95, 2, loc=statistics.mean([0.99, 0.90, 0.999]), scale=sps.sem([0.99, 0.90, 0.999]))
    assert hi > 1 and t.loc["three", "eval_accuracy_ci_high"] == 1.0
    assert t.loc["three", "eval_accuracy_ci_low"] == pytest.approx(lo)
    assert t.loc["three", "latency_ms_p95_ci_low"] == 0.0  # a latency is never negative
    assert "eval_accuracy interval clipped to its known range [0, 1]" in t.loc["three", "ci_note"]
    assert "latency_ms_p95 interval clipped to its known range >= 0" in t.loc["three", "ci_note"]
    # a name is trusted only while the values agree with it: accuracy in percent has no upper bound
    assert report.known_range("eval_accuracy", [93.0, 95.0]) == (0.0, None)
    assert report.known_range("eval_accuracy", [0.9]) == (0.0, 1.0)
    assert report.known_range("reward", [-3.0]) == (None, None)
    assert report.known_range("train_loss", [-0.5]) == (None, None)


def test_config_table_10k_rows_is_fast():
    import pandas as pd

    metrics = [f"m{i}" for i in range(10)]
    rows = [
        {"trial": str(i), "status": "ok" if i % 7 else "failed", "a": i // 30 % 100, "b": i // 3 % 10,
         "seed": i % 3, **{m: (i * 7919 % 1000) / 1000 for m in metrics}}
        for i in range(10_000)
    ]
    df = pd.DataFrame(rows)
    report.config_table(df.head(10), ["a", "b", "seed"])  # imports, not timed
    t0 = time.perf_counter()
    out = report.config_table(df, ["a", "b", "seed"])
    assert time.perf_counter() - t0 < 3.0
    assert len(out) == 1000 and out["n_seeds"].sum() == 10_000


def test_means_are_those_of_one_groupby_per_metric_whatever_the_other_metrics_miss():
    """configs.csv byte for byte as before issue 17: the means come from one groupby over all
    metrics, yet each is the float a groupby of its own column gives (pandas sums a block
    without a missing value differently from one with; these values tell the two apart)."""
    import pandas as pd

    y = [0.9984644378653198, 0.97081496113785, 0.9725765677339064, 1.0]
    rows = [{"trial": f"t{i}", "status": "ok", "p": "a", "seed": i, "y": v, "gap": None if i == 0 else 2.0 * i}
            for i, v in enumerate(y)]
    rows += [{"trial": "u", "status": "ok", "p": "b", "seed": 0, "y": 0.5, "gap": 1.0}]
    out = report.config_table(pd.DataFrame(rows), ["p", "seed"]).set_index("p")
    ids = pd.Series([r["p"] for r in rows])
    for m in ("y", "gap"):
        alone = pd.Series([r[m] for r in rows], dtype=float).groupby(ids, sort=False).mean()
        assert [out.loc[k, f"{m}_mean"] for k in ("a", "b")] == list(alone)  # equal, not approximately


def test_a_note_names_at_most_NOTE_METRICS_metrics_and_counts_the_rest():
    import pandas as pd

    from snakesweep.report.tables import NOTE_METRICS

    n = NOTE_METRICS + 7
    rows = [{"trial": f"t{s}", "status": "ok", "p": "a", "seed": s, **{f"acc_{j}": 0.95 + 0.02 * s for j in range(n)},
             **{f"m{j}": float(s) for j in range(n) if s < 2}} for s in range(3)]
    note = report.config_table(pd.DataFrame(rows), ["p", "seed"]).loc[0, "ci_note"]
    clipped = [f"acc_{j} interval clipped to its known range [0, 1]" for j in range(NOTE_METRICS)]
    assert note.endswith("; ".join(clipped) + "; 7 more metric interval(s) clipped to their known range "
                         "(the columns of configs.csv)")
    assert f"acc_{NOTE_METRICS} interval" not in note
    assert "n too small for an interval (2 ok value(s); need >= 3)" in note  # one n: no list at all


def test_null_string_bool_and_list_values_survive_and_order_deterministically(tmp_path):
    import pandas as pd

    values = [None, 3, "a,\"b", True, [1, 2], 0.5]
    rows = [{"trial": f"t{i}{s}", "status": "ok", "v": v, "seed": s, "acc": 0.5 + 0.01 * i + 0.001 * s}
            for i, v in enumerate(values) for s in range(3)]
    df = pd.DataFrame(rows)
    assert df["v"].dtype == object
    t = report.write_configs(df, ["v", "seed"], tmp_path / "configs.csv")
    assert list(t["v"]) == values  # typed, first-trial order
    cells = [r["v"] for r in report.read_csv(tmp_path / "configs.csv")]
    assert cells == ["null", "3", 'a,"b', "true", "[1, 2]", "0.5"]
    assert report.sorted_levels(values) == [0.5, 3, 'a,"b', [1, 2], None, True]  # numbers, then JSON text
    # pandas' own inference ([3, None] -> [3.0, NaN]) is undone: 3 is shown as 3, NaN as null
    inferred = pd.DataFrame([{"trial": "x", "status": "ok", "d": 3, "seed": 0, "acc": 0.1},
                             {"trial": "y", "status": "ok", "d": None, "seed": 0, "acc": 0.2}])
    assert inferred["d"].dtype.kind == "f"
    t = report.config_table(inferred, ["d", "seed"])
    assert list(t["d"]) == [3, None]
    assert config_id({"d": 3.0, "seed": 1}) == config_id({"d": 3}) != config_id({"d": None})


def test_config_rows_shim_for_text_rows_still_works():
    rows = [{"trial": "a", "status": "ok", "lr": "0.1", "seed": "0", "acc": "0.9"},
            {"trial": "b", "status": "ok", "lr": "", "seed": "0", "acc": "0.8"}]
    out = report.config_rows(rows, ["lr", "seed"], ["acc"])
    assert [r["lr"] for r in out] == [0.1, None] and out[0]["acc_mean"] == 0.9


# ---------------------------------------------------------------------------- best.json


def _two_configs(a_vals, b_vals, metric="acc"):
    import pandas as pd

    rows = [{"trial": f"a{i}", "status": "ok", "lr": "A", "seed": i, metric: v} for i, v in enumerate(a_vals)]
    rows += [{"trial": f"b{i}", "status": "ok", "lr": "B", "seed": i, metric: v} for i, v in enumerate(b_vals)]
    df = pd.DataFrame(rows)
    return df, report.config_table(df, ["lr", "seed"])


def test_configs_differing_only_by_noise_are_not_significant():
    # both are 0.91 +- seed noise; A happens to have the higher mean
    rows, configs = _two_configs([0.915, 0.902, 0.921, 0.908], [0.905, 0.918, 0.899, 0.911])
    best = best_report(rows, configs, ["lr", "seed"], ("acc", "max"))
    assert best["best"]["params"] == {"lr": "A"} and best["runner_up"]["params"] == {"lr": "B"}
    assert best["test"]["p_value"] == pytest.approx(
        sps.ttest_ind([0.915, 0.902, 0.921, 0.908], [0.905, 0.918, 0.899, 0.911], equal_var=False).pvalue
    )
    assert best["test"]["p_value"] >= 0.05
    assert best["significant"] is False
    assert best["verdict"].startswith("not significant")


def test_a_real_gap_is_significant_and_direction_min_is_respected():
    rows, configs = _two_configs([0.80, 0.81, 0.79], [0.90, 0.91, 0.92])
    best = best_report(rows, configs, ["lr", "seed"], ("acc", "max"))
    assert best["best"]["params"] == {"lr": "B"} and best["significant"] is True
    assert best["verdict"].startswith("significant") and best["test"]["p_value"] < 0.05
    low = best_report(rows, configs, ["lr", "seed"], ("acc", "min"))
    assert low["best"]["params"] == {"lr": "A"} and "lower" in low["verdict"]


def test_fewer_than_two_seeds_is_not_significant_whatever_the_gap():
    rows, configs = _two_configs([0.5], [0.9, 0.91])
    best = best_report(rows, configs, ["lr", "seed"], ("acc", "max"))
    assert best["significant"] is False and best["test"]["p_value"] is None
    assert best["verdict"].startswith("not significant") and "fewer than 2" in best["verdict"]


def test_best_with_one_or_no_configuration():
    rows, configs = _two_configs([0.5, 0.6], [])
    one = best_report(rows, configs, ["lr", "seed"], ("acc", "max"))
    assert one["runner_up"] is None and one["significant"] is False and "only one" in one["verdict"]
    none = best_report([], [], ["lr", "seed"], ("acc", "max"))
    assert none["best"] is None and "no configuration" in none["verdict"]


def test_an_objective_no_trial_produced_is_said_plainly_with_the_metrics_that_exist():
    rows, configs = _two_configs([0.5, 0.6], [0.7, 0.8], metric="throughput_sps")
    out = best_report(rows, configs, ["lr", "seed"], ("eval_accuracy", "max"))
    assert out["best"] is None and out["available_metrics"] == ["throughput_sps"]
    assert out["verdict"].startswith("no trial produced the objective eval_accuracy")
    assert "metrics with values: throughput_sps" in out["problem"]
    ok = best_report(rows, configs, ["lr", "seed"], ("throughput_sps", "max"))  # a [measure] sweep's objective
    assert ok["best"]["params"] == {"lr": "B"}


# ---------------------------------------------------------------------------- pareto.csv


def test_pareto_membership_on_a_constructed_front():
    # (accuracy max, latency min)
    pts = [
        (0.90, 10.0),  # 0 front: best accuracy
        (0.85, 5.0),   # 1 front
        (0.80, 2.0),   # 2 front: fastest
        (0.84, 6.0),   # 3 dominated by 1
        (0.90, 12.0),  # 4 dominated by 0 (same accuracy, slower)
        (0.70, 2.0),   # 5 dominated by 2
        (0.85, 5.0),   # 6 equal to 1: neither dominates, both kept
    ]
    assert pareto_indices(pts, ["max", "min"]) == [0, 1, 2, 6]
    # three objectives: 3 becomes non-dominated when it wins on the third
    pts3 = [(*p, e) for p, e in zip(pts, [5, 5, 5, 1, 5, 5, 5])]
    assert pareto_indices(pts3, ["max", "min", "min"]) == [0, 1, 2, 3, 6]


def test_pareto_indices_agree_with_brute_force():
    import random

    rng = random.Random(7)
    pts = [(rng.random(), rng.random(), rng.random()) for _ in range(300)]
    dirs = ["max", "min", "max"]
    signed = [(a, -b, c) for a, b, c in pts]

    def dominated(i):
        return any(all(x >= y for x, y in zip(signed[j], signed[i])) and signed[j] != signed[i] for j in range(len(pts)))

    assert pareto_indices(pts, dirs) == [i for i in range(len(pts)) if not dominated(i)]


def test_pareto_rows_skip_configs_without_every_objective_and_need_an_extra_objective():
    import pandas as pd

    configs = pd.DataFrame([
        {"config_id": "a", "lr": 1, "n_ok": 3, "acc_mean": 0.9, "lat_mean": 10.0},
        {"config_id": "b", "lr": None, "n_ok": 3, "acc_mean": 0.8, "lat_mean": 5.0},
        {"config_id": "c", "lr": 3, "n_ok": 0, "acc_mean": None, "lat_mean": None},
        {"config_id": "d", "lr": 4, "n_ok": 3, "acc_mean": 0.7, "lat_mean": 6.0},
    ])
    configs["lr"] = pd.Series([1, None, 3, 4], dtype=object)  # as config_table types parameters
    rows = report.pareto_table(configs, ["lr", "seed"], [("acc", "max"), ("lat", "min")])
    assert list(rows["config_id"]) == ["a", "b"] and list(rows["lr"]) == [1, None]
    # no hidden default cost: one objective is no trade-off
    assert report.pareto_objectives(("acc", "max"), []) == [("acc", "max")]
    assert report.pareto_table(configs, ["lr", "seed"], [("acc", "max")]).empty
    objs, dropped = report.effective_objectives(configs, ("acc", "max"), [("energy", "min"), ("lat", "min")])
    assert objs == [("acc", "max"), ("lat", "min")] and dropped == ["energy"]


# ---------------------------------------------------------------------------- importance.csv


def test_eta_squared_importance_on_a_constructed_grid():
    import pandas as pd

    # acc depends on lr only (0.6 / 0.8 / 0.9); hidden has no effect
    configs = []
    for lr, base in ((0.1, 0.6), (0.01, 0.8), (0.001, 0.9)):
        for hidden in (16, 64):
            configs.append({"lr": lr, "hidden": hidden, "opt": "adam", "acc_mean": base})
    rows = report.importance_table(pd.DataFrame(configs), ["lr", "hidden", "opt", "seed"], ("acc", "max")).to_dict("records")
    assert [r["parameter"] for r in rows] == ["lr", "hidden"]  # `opt` is not swept
    assert rows[0]["eta_squared"] == pytest.approx(1.0) and rows[0]["best_level"] == 0.001
    assert rows[1]["eta_squared"] == pytest.approx(0.0)  # equal means per level: explains nothing
    # by hand with an interaction-free additive effect
    configs = [{"lr": lr, "hidden": h, "acc_mean": a + b} for lr, a in (("x", 0.0), ("y", 2.0)) for h, b in ((None, 0.0), (True, 1.0))]
    rows = {r["parameter"]: r for r in report.importance_table(pd.DataFrame(configs), ["lr", "hidden"], ("acc", "max")).to_dict("records")}
    # values 0,1,2,3: SS_total = 5; lr groups (0,1),(2,3): SS_between = 4 -> 0.8; hidden: 1 -> 0.2
    assert rows["lr"]["eta_squared"] == pytest.approx(0.8)
    assert rows["hidden"]["eta_squared"] == pytest.approx(0.2) and rows["hidden"]["best_level"] is True


def _halving_summary():
    """A halving sweep of a workload that ignores `epochs`: acc = -(x - 1)^2 whatever the budget;
    9 configurations at 1 epoch, the best 3 at 3 epochs, the best 1 at 9 (two seeds each)."""
    xs = [-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.5, 4.0]
    acc = {x: -((x - 1.0) ** 2) for x in xs}
    ladder = [(1, xs), (3, sorted(xs, key=lambda x: -acc[x])[:3]), (9, [1.0])]
    rows = [{"trial": f"x{x}e{e}s{s}", "status": "ok", "x": x, "epochs": e, "seed": s, "acc": acc[x] + 0.001 * s}
            for e, chosen in ladder for x in chosen for s in (0, 1)]
    return rows


def test_a_halving_budget_gets_no_eta_squared_it_only_measures_selection():
    import pandas as pd

    rows = _halving_summary()
    names = ["x", "epochs", "seed"]
    configs = report.config_table(report.summary_frame(pd.DataFrame(rows), names), names)
    # the selection is what the budget's eta squared would measure: large, though epochs does nothing
    raw = {r["parameter"]: r["eta_squared"] for r in report.importance_table(configs, names, ("acc", "max")).to_dict("records")}
    assert raw["epochs"] > 0.15
    for method in ("halving", "hyperband", "pbt"):
        search = {"method": method, "budget_param": "epochs"}
        rep = report.compute_reports(pd.DataFrame(rows), {"param_names": names, "trials": [], "search": search},
                                     ("acc", "max"), [])
        assert list(rep.importance["parameter"]) == ["x"]  # epochs is no row of importance.csv
        assert rep.importance_left_out == ["epochs"]
        assert any(n.startswith("left out of importance: epochs") for n in rep.notes)
        page = report.render_answer_html(rep)
        assert "Not ranked: epochs" in page and "survived the selection" in page
    assert report.selection_params({"method": "pbt", "budget_param": "epochs"})[:1] == ["epochs"]
    # a grid over epochs: epochs is a factor like any other
    rep = report.compute_reports(pd.DataFrame(rows), {"param_names": names, "trials": []}, ("acc", "max"), [])
    assert "epochs" in list(rep.importance["parameter"]) and rep.importance_left_out == []
    assert report.selection_params({"method": "optuna"}) == []


# ---------------------------------------------------------------------------- the tables main on the fixture


def test_report_cli_on_a_sweep_matches_independent_numbers(tmp_path):
    plan = make_sweep(tmp_path)
    write_summary(tmp_path, plan)
    r = tmp_path / "results"
    assert report_cli(r) == 0
    expected = expected_from_jsons(tmp_path, plan)
    means = {k: statistics.mean(g["values"]["eval_accuracy"]) for k, g in expected.items()}
    best_key = max(means, key=means.get)
    runner_key = sorted(means, key=means.get)[-2]
    best = json.loads((r / "best.json").read_text())
    assert best["best"]["params"] == dict(best_key)  # typed params from the plan
    assert best["best"]["mean"] == pytest.approx(means[best_key])
    assert best["runner_up"]["params"] == dict(runner_key)
    ref = sps.ttest_ind(expected[best_key]["values"]["eval_accuracy"], expected[runner_key]["values"]["eval_accuracy"], equal_var=False)
    assert best["test"]["p_value"] == pytest.approx(ref.pvalue)
    assert best["significant"] == (ref.pvalue < 0.05)

    # Pareto: brute force over the independent means
    objs = [("eval_accuracy", 1), ("latency_ms_p95", -1), ("energy_j_per_sample", -1)]
    vec = {k: tuple(s * statistics.mean(g["values"][m]) for m, s in objs) for k, g in expected.items()}
    front = {k for k in vec if not any(all(a >= b for a, b in zip(vec[j], vec[k])) and vec[j] != vec[k] for j in vec)}
    with open(r / "pareto.csv") as fh:
        got = {(("lr", float(row["lr"])), ("hidden", int(row["hidden"]))) for row in csv.DictReader(fh)}
    assert got == front

    # importance: eta squared by hand per parameter over the config means
    with open(r / "importance.csv") as fh:
        imp = {row["parameter"]: float(row["eta_squared"]) for row in csv.DictReader(fh)}
    grand = statistics.mean(means.values())
    ss_total = sum((v - grand) ** 2 for v in means.values())
    for i, p in enumerate(("lr", "hidden")):
        levels: dict = {}
        for k, v in means.items():
            levels.setdefault(k[i][1], []).append(v)
        ss_between = sum(len(v) * (statistics.mean(v) - grand) ** 2 for v in levels.values())
        assert imp[p] == pytest.approx(ss_between / ss_total)
    assert list(imp) == sorted(imp, key=imp.get, reverse=True)

    page = (r / "report/answer.html").read_text()
    assert best["verdict"].split(":")[0] in page and "Pareto front" in page
    assert "latency_ms_p95 mean" in page and "energy_j_per_sample mean" in page  # efficiency columns
    assert json.loads((r / "report/problems.report_tables.json").read_text())["problems"] == []


def test_report_on_an_unknown_metric_says_so_and_lists_the_metrics(tmp_path):
    plan = make_sweep(tmp_path)
    write_summary(tmp_path, plan)
    r = tmp_path / "results"
    assert report_cli(r, objective="eval_acc") == 0  # the sweep's trials are fine: no failure
    best = json.loads((r / "best.json").read_text())
    assert best["verdict"].startswith("no trial produced the objective eval_acc")
    assert "eval_accuracy" in best["available_metrics"] and "latency_ms_p95" in best["available_metrics"]
    lines = report.report_problem_lines(r)
    assert len(lines) == 2 and "best.json (report_tables): no trial produced the objective eval_acc" in lines[1]
    assert "no trial produced the objective eval_acc" in (r / "report/answer.html").read_text()
    # fixed: the problem is gone from the final lines
    assert report_cli(r) == 0 and report.report_problem_lines(r) == []


def test_a_train_eval_sweep_has_no_efficiency_columns_and_says_why_there_is_no_front(tmp_path):
    plan = make_sweep(tmp_path, fail={})
    for d in (tmp_path / "results/trials").iterdir():
        (d / "measure.json").unlink()
    plan["steps"] = ["train", "eval"]
    (tmp_path / "results/plan/trials.json").write_text(json.dumps(plan))
    rows = summary_rows(tmp_path, plan)
    for row in rows:
        row["status"] = "ok"  # collect of a [train, eval] sweep: eval is the last step
    df = summary_df(rows, plan["param_names"])
    text = df.copy()
    (tmp_path / "results/summary.csv").write_text(text.to_csv(index=False))
    r = tmp_path / "results"
    assert report_cli(r, extra="latency_ms_p95:min") == 0
    page = (r / "report/answer.html").read_text()
    assert "latency_ms_p95 mean" not in page and "throughput_sps" not in page
    assert "no configuration has a value: latency_ms_p95" in page
    assert report.read_csv(r / "pareto.csv") == [] and report.report_problem_lines(r) == []


# ---------------------------------------------------------------------------- cycles (issue 16)


def _cycle_summary(cycles_per_config, seeds=(0,)):
    """A measure-only sweep's summary as collect writes it from aggregated cycle records: one row
    per (config, seed), each trial's cycle statistics beside its means (measure.aggregate_cycles)."""
    import pandas as pd

    from snakesweep.measure import aggregate_cycles

    rows = []
    for i, (width, cycles) in enumerate(cycles_per_config.items()):
        for seed in seeds:
            per_cycle = [{"throughput_sps": tps + 10 * seed, "latency_ms_p95": 1000.0 / (tps + 10 * seed),
                          "param_count": width * 10, "n_samples_timed": 100, "cycle": k,
                          "energy_source": "unavailable"} for k, tps in enumerate(cycles)]
            rows.append({"trial": f"t{i}s{seed}", "status": "ok", "width": width, "seed": seed,
                         **aggregate_cycles(per_cycle)})
    return pd.DataFrame(rows)


def test_configs_never_average_bounds_indices_or_facts():
    s = _cycle_summary({64: [500.0, 1722.0], 128: [400.0, 420.0]}, seeds=(0, 1))
    assert "throughput_sps_ci_low" in s.columns and "cycle_ci_note" in s.columns
    t = report.config_table(s, ["width", "seed"])
    cols = set(t.columns)
    for bad in ("throughput_sps_ci_low_mean", "throughput_sps_ci_high_mean", "throughput_sps_std_mean",
                "cycle", "cycle_mean", "cycles_mean", "param_count_mean", "cycle_ci_note_mean"):
        assert bad not in cols, bad
    assert list(t["param_count"]) == [640, 1280] and list(t["cycles"]) == [2, 2]
    assert list(t["throughput_sps_mean"]) == pytest.approx([1116.0, 415.0])
    # two seeds: no interval from seeds, and none over cycles either (the cycles are of two seeds)
    assert t["throughput_sps_ci_low"].isna().all() if "throughput_sps_ci_low" in cols else True
    assert all("n too small" in n for n in t["ci_note"])


def test_one_seed_with_cycles_uses_the_cycle_interval_by_configs_rules():
    s = _cycle_summary({64: [1000.0, 1010.0, 990.0], 128: [500.0, 1722.0], 256: [9.0, 1.0, 200.0]})
    t = report.config_table(s, ["width", "seed"]).set_index("width")
    # 3 cycles: the trial's t interval (scipy, independently)
    lo, hi = sps.t.interval(0.95, 2, loc=1000.0, scale=statistics.stdev([1000, 1010, 990]) / math.sqrt(3))
    assert t.loc[64, "throughput_sps_ci_low"] == pytest.approx(lo) and t.loc[64, "throughput_sps_ci_high"] == pytest.approx(hi)
    assert t.loc[64, "throughput_sps_std"] == pytest.approx(10.0)
    assert "intervals over its 3 measurement cycles" in t.loc[64, "ci_note"]
    # 2 cycles: "n too small", never the -3885.96 of issue 16
    assert math.isnan(t.loc[128, "throughput_sps_ci_low"]) and "n too small" in t.loc[128, "ci_note"]
    # a wide spread is clipped at 0, not negative
    assert t.loc[256, "throughput_sps_ci_low"] == 0.0
    assert (t["throughput_sps_ci_low"].dropna() >= 0).all() and (t["latency_ms_p95_ci_low"].dropna() >= 0).all()


def test_best_uses_the_cycles_where_each_configuration_has_one_seed():
    s = _cycle_summary({64: [1000.0, 1010.0, 990.0], 128: [500.0, 520.0, 510.0]})
    configs = report.config_table(s, ["width", "seed"])
    b = best_report(s, configs, ["width", "seed"], ("throughput_sps", "max"))
    assert b["best"]["params"] == {"width": 64} and b["best"]["over"] == "cycles" and b["best"]["n_cycles"] == 3
    w = sps.ttest_ind([1000.0, 1010.0, 990.0], [500.0, 520.0, 510.0], equal_var=False)
    assert b["test"]["over"] == "cycles" and b["test"]["p_value"] == pytest.approx(w.pvalue, rel=1e-9)
    assert b["test"]["t"] == pytest.approx(w.statistic, rel=1e-9)
    assert b["significant"] and "measurement cycles" in b["verdict"]
    assert b["best"]["ci_low"] is not None  # the cycle interval, in best.json too
    # 2 cycles each: the test runs (2 values a side) even though no interval is shown
    s2 = _cycle_summary({64: [1000.0, 1010.0], 128: [500.0, 520.0]})
    b2 = best_report(s2, report.config_table(s2, ["width", "seed"]), ["width", "seed"], ("throughput_sps", "max"))
    assert b2["test"]["over"] == "cycles" and b2["test"]["p_value"] is not None
    assert "fewer than 2 values" not in b2["verdict"]
    # several seeds: the test is over seeds, as before
    s3 = _cycle_summary({64: [1000.0, 1010.0], 128: [500.0, 520.0]}, seeds=(0, 1, 2))
    b3 = best_report(s3, report.config_table(s3, ["width", "seed"]), ["width", "seed"], ("throughput_sps", "max"))
    assert b3["test"]["over"] == "seeds" and b3["best"]["over"] == "seeds" and "cycles" not in b3["verdict"]


def test_welch_from_stats_matches_scipy():
    from snakesweep.stats import welch_from_stats

    a, b = [1.0, 2.5, 2.0, 3.1], [0.2, 0.4, 1.9]
    w = welch_from_stats(statistics.mean(a), statistics.stdev(a), 4, statistics.mean(b), statistics.stdev(b), 3)
    r = sps.ttest_ind(a, b, equal_var=False)
    assert w.p_value == pytest.approx(r.pvalue, rel=1e-9) and w.t == pytest.approx(r.statistic, rel=1e-9)
    assert welch_from_stats(1.0, None, 1, 2.0, 0.1, 3).reason == "fewer than 2 values on one side"
