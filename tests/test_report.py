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
    config_rows,
    importance_rows,
    pareto_indices,
    pareto_rows,
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


def write_summary(root: Path, plan: dict) -> tuple[list[dict], list[dict]]:
    """results/summary.csv and configs.csv as the collect step writes them (config_rows)."""
    rows = []
    for t in plan["trials"]:
        row = {"trial": t["trial"], "status": "ok", **{k: str(v) for k, v in t["params"].items()}}
        for step in ("train", "eval", "measure"):
            f = root / "results" / "trials" / t["trial"] / f"{step}.json"
            if not f.exists():
                row["status"] = "failed" if (root / "logs" / step / f"{t['trial']}.error.json").exists() else "pending"
                break
            row.update({k: repr(v) for k, v in json.loads(f.read_text())["metrics"].items() if k != "history"})
        rows.append(row)
    cols = ["trial", "status", *plan["param_names"], *METRICS]
    with open(root / "results" / "summary.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore", restval="")
        w.writeheader()
        w.writerows(rows)
    summary = report.read_csv(root / "results" / "summary.csv")
    configs = config_rows(summary, plan["param_names"], METRICS)
    report.write_csv(root / "results" / "configs.csv", configs, report.config_fieldnames(plan["param_names"], METRICS))
    return summary, report.read_csv(root / "results" / "configs.csv")


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
    for c in configs:
        key = (("lr", float(c["lr"])), ("hidden", int(c["hidden"])))
        e = expected[key]
        assert (int(c["n_seeds"]), int(c["n_ok"]), int(c["n_failed"]), int(c["n_pending"])) == (e["n"], e["ok"], e["failed"], 0)
        for m in METRICS:
            vals = e["values"][m]
            assert float(c[f"{m}_mean"]) == pytest.approx(statistics.mean(vals), rel=1e-12)
            assert float(c[f"{m}_std"]) == pytest.approx(statistics.stdev(vals), rel=1e-9, abs=1e-15)
            if statistics.stdev(vals) > 0:
                sem = statistics.stdev(vals) / math.sqrt(len(vals))
                lo, hi = sps.t.interval(0.95, len(vals) - 1, loc=statistics.mean(vals), scale=sem)
                assert float(c[f"{m}_ci_low"]) == pytest.approx(lo, rel=1e-9)
                assert float(c[f"{m}_ci_high"]) == pytest.approx(hi, rel=1e-9)
    # the failed seed (eval crashed) is counted, and its train metrics are not averaged in
    failed = [c for c in configs if c["n_failed"] == "1"]
    assert len(failed) == 1 and failed[0]["n_ok"] == "2"


def test_config_rows_failed_counted_not_averaged_and_missing_cells():
    rows = [
        {"trial": "a", "status": "ok", "lr": "0.1", "seed": "0", "acc": "0.9", "src": "rapl"},
        {"trial": "b", "status": "ok", "lr": "0.1", "seed": "1", "acc": "", "src": "rapl"},
        {"trial": "c", "status": "failed", "lr": "0.1", "seed": "2", "acc": "0.1", "src": ""},
        {"trial": "d", "status": "pending", "lr": "0.2", "seed": "0", "acc": "", "src": ""},
    ]
    out = config_rows(rows, ["lr", "seed"], ["acc", "src"])
    assert [r["lr"] for r in out] == ["0.1", "0.2"]
    a, b = out
    assert (a["n_seeds"], a["n_ok"], a["n_failed"], a["n_pending"]) == (3, 2, 1, 0)
    assert a["acc_mean"] == 0.9 and a["acc_std"] is None and a["acc_ci_low"] is None
    assert (b["n_seeds"], b["n_ok"], b["n_pending"], b["acc_mean"]) == (1, 0, 1, None)
    assert "src_mean" not in a  # a label column is not a number
    assert list(a) == list(b)  # same columns in every row


def test_config_rows_10k_rows_is_fast():
    metrics = ["m%d" % i for i in range(10)]
    rows = [
        {"trial": str(i), "status": "ok" if i % 7 else "failed", "a": str(i // 30 % 100), "b": str(i // 3 % 10),
         "seed": str(i % 3), **{m: repr((i * 7919 % 1000) / 1000) for m in metrics}}
        for i in range(10_000)
    ]
    config_rows(rows[:10], ["a", "b", "seed"], metrics)  # scipy import, not timed
    t0 = time.perf_counter()
    out = config_rows(rows, ["a", "b", "seed"], metrics)
    assert time.perf_counter() - t0 < 2.0
    assert len(out) == 1000 and sum(r["n_seeds"] for r in out) == 10_000


# ---------------------------------------------------------------------------- best.json


def _two_configs(a_vals, b_vals, metric="acc"):
    rows = [{"trial": f"a{i}", "status": "ok", "lr": "A", "seed": str(i), metric: repr(v)} for i, v in enumerate(a_vals)]
    rows += [{"trial": f"b{i}", "status": "ok", "lr": "B", "seed": str(i), metric: repr(v)} for i, v in enumerate(b_vals)]
    configs = [{k: "" if v is None else str(v) for k, v in c.items()} for c in config_rows(rows, ["lr", "seed"], [metric])]
    return rows, configs


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


def test_pareto_rows_skip_configs_without_every_objective():
    configs = [
        {"config_id": "a", "lr": "1", "n_ok": "3", "acc_mean": "0.9", "lat_mean": "10"},
        {"config_id": "b", "lr": "2", "n_ok": "3", "acc_mean": "0.8", "lat_mean": "5"},
        {"config_id": "c", "lr": "3", "n_ok": "0", "acc_mean": "", "lat_mean": ""},
        {"config_id": "d", "lr": "4", "n_ok": "3", "acc_mean": "0.7", "lat_mean": "6"},
    ]
    rows = pareto_rows(configs, ["lr", "seed"], [("acc", "max"), ("lat", "min")])
    assert [r["config_id"] for r in rows] == ["a", "b"]


# ---------------------------------------------------------------------------- importance.csv


def test_eta_squared_importance_on_a_constructed_grid():
    # acc depends on lr only (0.6 / 0.8 / 0.9); hidden has no effect
    configs = []
    for lr, base in (("0.1", 0.6), ("0.01", 0.8), ("0.001", 0.9)):
        for hidden in ("16", "64"):
            configs.append({"lr": lr, "hidden": hidden, "opt": "adam", "acc_mean": repr(base)})
    rows = importance_rows(configs, ["lr", "hidden", "opt", "seed"], ("acc", "max"))
    assert [r["parameter"] for r in rows] == ["lr", "hidden"]  # `opt` is not swept
    assert rows[0]["eta_squared"] == pytest.approx(1.0) and rows[0]["best_level"] == "0.001"
    assert rows[1]["eta_squared"] == pytest.approx(0.0)  # equal means per level: explains nothing
    # by hand with an interaction-free additive effect
    configs = [{"lr": lr, "hidden": h, "acc_mean": repr(a + b)} for lr, a in (("x", 0.0), ("y", 2.0)) for h, b in (("p", 0.0), ("q", 1.0))]
    rows = {r["parameter"]: r for r in importance_rows(configs, ["lr", "hidden"], ("acc", "max"))}
    # values 0,1,2,3: SS_total = 5; lr groups (0,1),(2,3): SS_between = 4 -> 0.8; hidden: 1 -> 0.2
    assert rows["lr"]["eta_squared"] == pytest.approx(0.8)
    assert rows["hidden"]["eta_squared"] == pytest.approx(0.2)


# ---------------------------------------------------------------------------- CLI on the fixture


def test_report_cli_on_a_sweep_matches_independent_numbers(tmp_path):
    plan = make_sweep(tmp_path)
    write_summary(tmp_path, plan)
    r = tmp_path / "results"
    rc = report.main([
        "--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"), "--plan", str(r / "plan/trials.json"),
        "--objective", "eval_accuracy", "--direction", "max", "--extra", "latency_ms_p95:min,energy_j_per_sample:min",
        "--best", str(r / "best.json"), "--pareto", str(r / "pareto.csv"), "--importance", str(r / "importance.csv"),
        "--html", str(r / "report/answer.html"),
    ])
    assert rc == 0
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


def test_report_fails_loudly_on_an_unknown_metric(tmp_path):
    plan = make_sweep(tmp_path)
    write_summary(tmp_path, plan)
    r = tmp_path / "results"
    with pytest.raises(SystemExit, match="eval_acc.*not in results/summary.csv"):
        report.main(["--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"),
                     "--objective", "eval_acc", "--direction", "max", "--best", str(r / "b.json"),
                     "--pareto", str(r / "p.csv"), "--importance", str(r / "i.csv")])


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


def test_answer_html_escapes_values():
    configs = [{"config_id": "x", "p": "<script>alert(1)</script>", "n_ok": "1", "n_seeds": "1", "n_failed": "0", "acc_mean": "0.5"},
               {"config_id": "y", "p": "b&c", "n_ok": "1", "n_seeds": "1", "n_failed": "0", "acc_mean": "0.4"}]
    best = best_report([], configs, ["p"], ("acc", "max"))
    page = render_answer_html(best, configs, ["p"], [], [], [("acc", "max"), ("t", "min")])
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "b&amp;c" in page


# ---------------------------------------------------------------------------- plots


def _run_plots(root: Path, extra: str = "") -> subprocess.CompletedProcess:
    r = root / "results"
    report.main(["--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"), "--plan", str(r / "plan/trials.json"),
                 "--objective", "eval_accuracy", "--direction", "max", f"--extra={extra}", "--best", str(r / "best.json"),
                 "--pareto", str(r / "pareto.csv"), "--importance", str(r / "importance.csv")])
    cmd = [sys.executable, "-m", "snakesweep.plots", "--summary", "results/summary.csv", "--configs", "results/configs.csv",
           "--plan", "results/plan/trials.json", "--importance", "results/importance.csv", "--pareto", "results/pareto.csv",
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


def _with_reports(workdir) -> None:
    """Include the report rules in the copied workflow if the Snakefile does not yet."""
    sf = workdir.path / "workflow" / "Snakefile"
    text = sf.read_text()
    if "rules/report.smk" not in text:
        text = text.replace('include: "rules/common.smk"\n', 'include: "rules/common.smk"\ninclude: "rules/report.smk"\n')
        text = text.replace("        get_final_targets(),\n", "        get_final_targets(),\n        get_report_targets(),\n")
        sf.write_text(text)


@pytest.mark.e2e
def test_workflow_makes_reports_and_the_html_report_has_the_plots(workdir):
    from conftest import toy_config

    _with_reports(workdir)
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
    (first / "train.json").unlink()  # an intermediate: Snakemake does not redo it
    (second / "measure.json").unlink()
    again = workdir.snakemake("-n", "--cores", "2", "--configfile", str(path), check=True)
    assert "jobs to run per step: train 0, eval 0, measure 1" in again.stdout
    assert "on 2 cores (mean job time from" in again.stdout


@pytest.mark.e2e
def test_injected_failure_status_lists_it_and_reports_still_draw(workdir):
    from conftest import toy_config

    from snakesweep.status import sweep_status

    _with_reports(workdir)
    cfg = toy_config(workdir, {"x": [0.5, 1.0]})
    cfg["sweep"]["experiments"] = [{"x": 5.0, "fail": "raise"}]
    path = workdir.write_config(cfg)
    run = workdir.snakemake("--cores", "2", "--configfile", str(path), env=dict(os.environ, TOY_FAILURES="1"))
    assert run.returncode != 0
    st = sweep_status(workdir.path)
    assert st["steps"]["train"]["failed"] == 2 and st["steps"]["train"]["done"] == 4
    assert st["steps"]["measure"]["blocked"] == 2
    assert {f["message"] for f in st["failed"]} == {"injected failure for x=5.0"}
    assert all(f["log"].startswith("logs/train/") for f in st["failed"])
    out = subprocess.run([sys.executable, "-m", "snakesweep.status", str(workdir.path)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "injected failure for x=5.0" in out.stdout
    # the reports over the partial summary (what the onerror handler can call)
    cwd = os.getcwd()
    os.chdir(workdir.path)
    try:
        written = report.write_reports_after_failure(
            {"objective": "eval_accuracy", "direction": "max", "extra": ""})
    finally:
        os.chdir(cwd)
    assert len(written) == len(report.report_targets()), written
    best = json.loads((workdir.path / "results/best.json").read_text())
    assert best["n_configs"] == 3 and best["n_configs_with_results"] == 2
