"""Reports: configs.csv, best.json, pareto.csv, importance.csv, answer.html and the plots.

The sweep fixture is real files in tmp_path (plan, per-trial result JSONs, an error record);
the expected numbers are recomputed here from those JSONs with `statistics` and scipy,
independently of snakesweep's own aggregation.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scipy import stats as sps

from snakesweep import report
from snakesweep.report import (
    best_report,
    pareto_indices,
    render_answer_html,
    report_settings_params,
)

REPO = Path(__file__).resolve().parents[1]
METRICS = ["train_loss", "train_time_s", "eval_accuracy", "eval_loss", "latency_ms_p95", "energy_j_per_sample"]
STEP_METRICS = {
    "train": ["train_loss", "train_time_s"],
    "eval": ["eval_accuracy", "eval_loss"],
    "measure": ["latency_ms_p95", "energy_j_per_sample"],
}


# ---------------------------------------------------------------------------- fixture


def _metrics(p: dict) -> dict:
    """Deterministic, seed-dependent synthetic metrics (lr matters most, hidden a little)."""
    noise = [0.004, -0.003, 0.001][p["seed"]]
    acc = 0.95 - 0.08 * abs(math.log10(p["lr"]) + 2) + 0.01 * (p["hidden"] == 64) + noise
    return {
        "train_loss": 0.3 - acc / 4 + noise,
        "train_time_s": 2.0 + p["hidden"] / 32 + abs(noise) * 10,
        "eval_accuracy": acc,
        "eval_loss": 1 - acc,
        "latency_ms_p95": 0.5 * p["hidden"] / 16 + noise,
        "energy_j_per_sample": 1e-4 * p["hidden"],
    }


def make_sweep(root: Path, grid: dict | None = None, fail: dict | None = None) -> dict:
    """Write a finished sweep: plan, train/eval/measure JSONs, and an eval failure for one trial.

    Returns the plan. `fail` maps a trial index to the step that failed.
    """
    grid = grid or {"lr": [0.001, 0.01, 0.1], "hidden": [16, 64]}
    fail = {4: "eval"} if fail is None else fail
    names = [*grid, "seed"]
    trials = []
    for i, combo in enumerate(itertools.product(*grid.values(), [0, 1, 2])):
        params = dict(zip(names, combo))
        trials.append({"trial": f"{i:010x}", "params": params})
    plan = {"schema_version": 1, "sweep_name": "fixture", "sweep_hash": "h", "param_names": names, "trials": trials}
    (root / "results" / "plan").mkdir(parents=True)
    (root / "results" / "plan" / "trials.json").write_text(json.dumps(plan))
    for i, t in enumerate(trials):
        m = _metrics(t["params"])
        d = root / "results" / "trials" / t["trial"]
        d.mkdir(parents=True)
        for step in ("train", "eval", "measure"):
            if fail.get(i) == step:
                err = root / "logs" / step / f"{t['trial']}.error.json"
                err.parent.mkdir(parents=True, exist_ok=True)
                err.write_text(json.dumps({"trial": t["trial"], "step": step, "type": "RuntimeError",
                                           "message": "CUDA out of memory", "traceback_tail": "",
                                           "reason": "exception", "time": "2024-01-01T00:00:00Z"}))
                break
            metrics = {k: m[k] for k in STEP_METRICS[step]}
            if step == "train":
                metrics["history"] = [{"epoch": e, "loss": 2.0 / e + m["train_loss"]} for e in range(1, 5)]
            rec = {"schema_version": 1, "trial": t["trial"], "step": step, "params": t["params"],
                   "metrics": metrics, "status": "ok", "started_at": "2024-01-01T00:00:00+00:00",
                   "ended_at": "2024-01-01T00:00:01+00:00", "duration_s": 1.0}
            (d / f"{step}.json").write_text(json.dumps(rec))
    return plan


def summary_rows(root: Path, plan: dict) -> list[dict]:
    """One row per planned trial with typed params and metrics, read off the JSONs as collect does."""
    rows = []
    for t in plan["trials"]:
        row = {"trial": t["trial"], "status": "ok", **t["params"]}
        for step in ("train", "eval", "measure"):
            f = root / "results" / "trials" / t["trial"] / f"{step}.json"
            if not f.exists():
                row["status"] = "failed" if (root / "logs" / step / f"{t['trial']}.error.json").exists() else "pending"
                break
            row.update({k: v for k, v in json.loads(f.read_text())["metrics"].items() if k != "history"})
        rows.append(row)
    return rows


def summary_df(rows: list[dict], names: list[str]) -> "pd.DataFrame":
    """collect's summary DataFrame: parameters as object columns, so [3, None] stays [3, None]."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for n in names:
        df[n] = pd.Series([r.get(n) for r in rows], dtype=object)
    df["config_id"] = [report.config_id({k: r.get(k) for k in names}) for r in rows]
    return df


def write_summary(root: Path, plan: dict) -> tuple["pd.DataFrame", list[dict]]:
    """results/summary.csv (params as JSON text) and configs.csv (report.write_configs), as collect
    writes them; returns the typed summary and configs.csv's text rows."""
    df = summary_df(summary_rows(root, plan), plan["param_names"])
    text = df.copy()
    for n in plan["param_names"]:
        text[n] = text[n].map(report.param_cell)
    cols = ["trial", "status", *plan["param_names"], *[m for m in METRICS if m in df.columns], "config_id"]
    (root / "results" / "summary.csv").write_text(text[cols].to_csv(index=False))
    report.write_configs(df, plan["param_names"], root / "results" / "configs.csv")
    return df, report.read_csv(root / "results" / "configs.csv")


def expected_from_jsons(root: Path, plan: dict) -> dict[tuple, dict]:
    """Per configuration, recomputed from the trial JSONs alone: counts and per-metric stats."""
    groups: dict[tuple, dict] = {}
    for t in plan["trials"]:
        key = tuple((k, v) for k, v in t["params"].items() if k != "seed")
        g = groups.setdefault(key, {"n": 0, "ok": 0, "failed": 0, "values": {m: [] for m in METRICS}})
        g["n"] += 1
        d = root / "results" / "trials" / t["trial"]
        recs = [json.loads((d / f"{s}.json").read_text()) for s in ("train", "eval", "measure") if (d / f"{s}.json").exists()]
        if len(recs) < 3:
            g["failed"] += 1
            continue
        g["ok"] += 1
        for rec in recs:
            for k, v in rec["metrics"].items():
                if k in METRICS:
                    g["values"][k].append(v)
    return groups


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

    metrics = ["m%d" % i for i in range(10)]
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
    assert report.config_id({"d": 3.0, "seed": 1}) == report.config_id({"d": 3}) != report.config_id({"d": None})


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


# ---------------------------------------------------------------------------- CLI on the fixture


def _report_cli(r: Path, objective: str = "eval_accuracy", extra: str = "latency_ms_p95:min,energy_j_per_sample:min") -> int:
    return report.main([
        "--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"), "--plan", str(r / "plan/trials.json"),
        "--objective", objective, "--direction", "max", f"--extra={extra}",
        "--best", str(r / "best.json"), "--pareto", str(r / "pareto.csv"), "--importance", str(r / "importance.csv"),
        "--html", str(r / "report/answer.html"),
    ])


def test_report_cli_on_a_sweep_matches_independent_numbers(tmp_path):
    plan = make_sweep(tmp_path)
    write_summary(tmp_path, plan)
    r = tmp_path / "results"
    assert _report_cli(r) == 0
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
    assert _report_cli(r, objective="eval_acc") == 0  # the sweep's trials are fine: no failure
    best = json.loads((r / "best.json").read_text())
    assert best["verdict"].startswith("no trial produced the objective eval_acc")
    assert "eval_accuracy" in best["available_metrics"] and "latency_ms_p95" in best["available_metrics"]
    lines = report.report_problem_lines(r)
    assert len(lines) == 2 and "best.json (report_tables): no trial produced the objective eval_acc" in lines[1]
    assert "no trial produced the objective eval_acc" in (r / "report/answer.html").read_text()
    # fixed: the problem is gone from the final lines
    assert _report_cli(r) == 0 and report.report_problem_lines(r) == []


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
    assert _report_cli(r, extra="latency_ms_p95:min") == 0
    page = (r / "report/answer.html").read_text()
    assert "latency_ms_p95 mean" not in page and "throughput_sps" not in page
    assert "no configuration has a value: latency_ms_p95" in page
    assert report.read_csv(r / "pareto.csv") == [] and report.report_problem_lines(r) == []


def test_report_settings_reach_the_shell_only_as_validated_names():
    cfg = {"report": {"objective": {"metric": "eval_accuracy", "direction": "max"},
                      "extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}]}}
    assert report_settings_params(cfg) == {"objective": "eval_accuracy", "direction": "max", "extra": "latency_ms_p95:min"}
    assert report_settings_params({})["objective"] == "eval_accuracy"
    two = {"report": {"extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"},
                                           {"metric": "energy_j_per_sample", "direction": "min"}]}}
    assert report.parse_objectives(report_settings_params(two)["extra"]) == [
        ("latency_ms_p95", "min"), ("energy_j_per_sample", "min")]
    for bad in ("acc; rm -rf ~", "$(id)", "acc metric", ""):
        with pytest.raises(ValueError):
            report_settings_params({"report": {"objective": {"metric": bad, "direction": "max"}}})


def test_known_metrics_give_no_warning(capsys):
    cfg = {"report": {"extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"},
                                           {"metric": "energy_j_per_sample", "direction": "min"}]}}
    report.workflow_report_settings(cfg, ["eval_accuracy", "latency_ms_p95", "energy_j_per_sample"])
    assert capsys.readouterr().err == ""
    report.workflow_report_settings({"report": {"objective": {"metric": "eval_acc"}}}, ["eval_accuracy"])
    assert "eval_acc are not among the known metrics" in capsys.readouterr().err


def test_answer_html_escapes_values_and_shows_null():
    import pandas as pd

    rows = [{"trial": f"{p}{s}", "status": "ok", "p": p, "seed": s, "acc": a + 0.01 * s}
            for p, a in (("<script>alert(1)</script>", 0.5), ("b&c", 0.4), (None, 0.3)) for s in range(3)]
    rep = report.compute_reports(pd.DataFrame(rows), {"param_names": ["p", "seed"], "trials": []}, ("acc", "max"), [])
    page = render_answer_html(rep)
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "b&amp;c" in page
    assert "<td class='l'>null</td>" in page
    assert "set <code>report.extra_objectives</code>" in page


# ---------------------------------------------------------------------------- plots


def _run_plots(root: Path, extra: str = "") -> subprocess.CompletedProcess:
    r = root / "results"
    report.main(["--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"), "--plan", str(r / "plan/trials.json"),
                 "--objective", "eval_accuracy", "--direction", "max", f"--extra={extra}", "--best", str(r / "best.json"),
                 "--pareto", str(r / "pareto.csv"), "--importance", str(r / "importance.csv")])
    cmd = [sys.executable, "-m", "snakesweep.plots", "--summary", "results/summary.csv", "--configs", "results/configs.csv",
           "--plan", "results/plan/trials.json",
           "--trials-dir", "results/trials", "--objective", "eval_accuracy", "--direction", "max", f"--extra={extra}",
           *(x for name in ("objective", "heatmap", "pareto", "curves") for x in (f"--out-{name}", f"results/plots/{name}.png"))]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "", "HOME": str(root)}
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _is_png(path: Path) -> bool:
    return path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def test_plots_with_a_failed_trial_and_a_nan_metric(tmp_path):
    plan = make_sweep(tmp_path, grid={"lr": [0.0001, 0.001, 0.01, 0.1], "hidden": [16, 64]})
    # a NaN loss in one trial's history, and an empty metric in the summary
    f = tmp_path / "results/trials" / plan["trials"][0]["trial"] / "train.json"
    rec = json.loads(f.read_text())
    rec["metrics"]["history"][1]["loss"] = float("nan")
    f.write_text(json.dumps(rec))
    write_summary(tmp_path, plan)
    p = _run_plots(tmp_path, "latency_ms_p95:min")
    assert p.returncode == 0, p.stderr
    for name in ("objective", "heatmap", "pareto", "curves"):
        assert _is_png(tmp_path / f"results/plots/{name}.png"), name


def test_plots_with_a_single_swept_parameter(tmp_path):
    plan = make_sweep(tmp_path, grid={"lr": [0.001, 0.01, 0.1], "hidden": [32]}, fail={})
    write_summary(tmp_path, plan)
    p = _run_plots(tmp_path)
    assert p.returncode == 0, p.stderr
    for name in ("objective", "heatmap", "pareto", "curves"):
        assert _is_png(tmp_path / f"results/plots/{name}.png"), name


def test_importing_plots_does_not_import_matplotlib():
    code = "import sys, snakesweep.plots, snakesweep.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_log_axis_rule():
    from snakesweep.plots import use_log_axis

    assert use_log_axis(["0.001", "0.01", "0.1"])
    assert not use_log_axis(["1", "50"])
    assert not use_log_axis(["0", "10", "1000"])
    assert not use_log_axis(["adam", "sgd"])


# ---------------------------------------------------------------------------- real workflow


_ANSWER_OUTPUT = """        answer=report(
            f"{RESULTS}/report/answer.html",
            caption="../report/answer.rst",
            labels={
                "name": "answer",
                "content": "best configuration, parameter importance, Pareto front",
            },
            category="1. Answer",
        ),
"""


def answer_made_by_plots(workdir) -> None:
    """answer.html embeds the figures, so report_plots makes it (`--html`): the change handed to
    the owner of workflow/rules/report.smk, applied to this temp copy until the tree has it."""
    smk = workdir.path / "workflow/rules/report.smk"
    text = smk.read_text()
    if "--html {output.answer}" in text.split("rule report_plots:")[1]:
        return
    text = text.replace(_ANSWER_OUTPUT, "", 1).replace(" --html {output.answer}", "")
    head, plots = text.split("rule report_plots:")
    plots = plots.replace("    output:\n", "    output:\n" + _ANSWER_OUTPUT, 1)
    plots = plots.replace('" --out-pareto {output.pareto} --out-curves {output.curves} > {log} 2>&1"',
                          '" --out-pareto {output.pareto} --out-curves {output.curves}"\n'
                          '        " --html {output.answer} > {log} 2>&1"')
    smk.write_text(head + "rule report_plots:" + plots)


@pytest.mark.e2e
def test_workflow_makes_reports_and_the_html_report_has_the_plots(workdir):
    from conftest import toy_config

    answer_made_by_plots(workdir)
    cfg = toy_config(workdir, {"x": [0.5, 1.0, 2.0]})
    cfg["report"] = {"objective": {"metric": "eval_accuracy", "direction": "max"},
                     "extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}]}
    path = workdir.write_config(cfg)
    dry = workdir.snakemake("-n", "--configfile", str(path), check=True)
    # Snakemake's logger writes a dry run to stdout, a real run to stderr
    out = dry.stdout + dry.stderr
    assert "snakesweep plan: 6 trials" in out and "no history yet" in out
    workdir.snakemake("--cores", "2", "--configfile", str(path), check=True)
    res = workdir.path / "results"
    best = json.loads((res / "best.json").read_text())
    assert best["best"]["params"]["x"] == 1.0  # the toy's accuracy peaks at x = 1
    assert best["best"]["n_ok"] == 2
    for name in report.PLOT_NAMES:
        assert _is_png(res / "plots" / f"{name}.png"), name
    html = workdir.path / "report.html"
    workdir.snakemake("--report", str(html), "--configfile", str(path), check=True)
    text = html.read_text()
    for needle in ("objective_vs_params.png", "heatmap.png", "training_curves.png", "answer.html",
                   "pareto.csv", "importance.csv", "best.json", "1. objective vs each parameter",
                   "Welch"):
        assert needle in text, needle
    # with history, the preview now estimates the wall time
    again = workdir.snakemake("-n", "--cores", "2", "--configfile", str(path), check=True)
    assert "nothing to run" in again.stdout + again.stderr
    first, second = sorted((res / "trials").iterdir())[:2]
    (first / "train.json").unlink()  # every step's result is a target: retrained, and what follows
    (second / "measure.json").unlink()
    again = workdir.snakemake("-n", "--cores", "2", "--configfile", str(path), check=True)
    assert "jobs to run per step: train 1, eval 1, measure 2" in again.stdout
    assert "on 2 cores (mean job time from" in again.stdout


@pytest.mark.e2e
def test_after_a_trial_failure_the_reports_are_remade_and_none_is_stale(workdir):
    from conftest import toy_config

    cfg = toy_config(workdir, {"x": [0.5, 1.0]})
    cfg["sweep"]["experiments"] = [{"x": 5.0, "fail": "raise"}]
    path = workdir.write_config(cfg)
    stale = workdir.path / "results/plots/heatmap.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(report.message_png())  # an earlier sweep's figure
    run = workdir.snakemake("--cores", "2", "--configfile", str(path), env=dict(os.environ, TOY_FAILURES="1"))
    assert run.returncode != 0
    # the reports over the partial summary (what the onerror handler calls)
    cwd = os.getcwd()
    os.chdir(workdir.path)
    try:
        written = report.write_reports_after_failure({"objective": "eval_accuracy", "direction": "max", "extra": ""})
    finally:
        os.chdir(cwd)
    assert len(written) == len(report.report_targets()), written
    best = json.loads((workdir.path / "results/best.json").read_text())
    assert best["n_configs"] == 3 and best["n_configs_with_results"] == 2
    assert stale.read_bytes() != report.message_png() and _is_png(stale)
    assert report.report_problem_lines(workdir.path / "results") == []


@pytest.mark.e2e
def test_null_and_string_grid_values_through_every_report(workdir):
    """The issue's sweep: a null and a string with a comma and a quote as grid values. Today
    report_plots fails (None < float) and the run exits 1 forever; answer.html shows blanks."""
    from conftest import toy_config

    answer_made_by_plots(workdir)
    cfg = toy_config(workdir, {"x": [0.5, 1.0], "depth": [3, None], "tag": ['a,"b', "plain"]})
    cfg["report"] = {"objective": {"metric": "eval_accuracy", "direction": "max"},
                     "extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}]}
    path = workdir.write_config(cfg)
    run = workdir.snakemake("--cores", "2", "--configfile", str(path))
    assert run.returncode == 0, run.stderr[-3000:]
    res = workdir.path / "results"
    summary = workdir.read_csv("results/summary.csv")
    assert len(summary) == 16 and {r["status"] for r in summary} == {"ok"}
    configs = workdir.read_csv("results/configs.csv")
    assert {c["depth"] for c in configs} == {"3", "null"} and {c["tag"] for c in configs} == {'a,"b', "plain"}
    assert not any(c.startswith(("energy_source", "driver_version", "flag_detail")) for c in configs[0])
    if "config_id" in summary[0]:  # collect writes report.config_id into summary.csv
        assert {r["config_id"] for r in summary} == {c["config_id"] for c in configs}
    best = json.loads((res / "best.json").read_text())
    assert best["best"]["params"]["x"] == 1.0 and best["best"]["params"]["depth"] in (3, None)
    assert best["best"]["params"]["tag"] in ('a,"b', "plain")
    imp = {r["parameter"]: r for r in workdir.read_csv("results/importance.csv")}
    assert set(imp) == {"x", "depth", "tag"} and imp["x"]["best_level"] == "1.0"
    assert {r["depth"] for r in workdir.read_csv("results/pareto.csv")} <= {"3", "null"}
    for name in report.PLOT_NAMES:
        assert _is_png(res / "plots" / f"{name}.png"), name
    page = (res / "report/answer.html").read_text()
    assert "<td class='l'>null</td>" in page and "a,&quot;b" in page
    assert page.count("data:image/png;base64,") == 4
    assert "latency_ms_p95 mean" in page and "throughput_sps mean" in page
    assert report.report_problem_lines(res) == []
    html = workdir.path / "report.html"
    workdir.snakemake("--report", str(html), "--configfile", str(path), check=True)
