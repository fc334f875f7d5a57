"""The figures and answer.html over typed parameters (null, bool, strings with commas and quotes),
steps-selectable sweeps, and plots that cannot be drawn: real files in tmp_path, real
matplotlib in a child process, no mocks. Also the figures on the tables' fixture sweep."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from report_fixture import is_drawn_png, make_sweep, write_summary

from snakesweep import report
from snakesweep.grid import config_id

REPO = Path(__file__).resolve().parents[2]
PLOTS = {"objective": "objective_vs_params", "heatmap": "heatmap", "pareto": "pareto", "curves": "training_curves"}


def typed_sweep(root: Path, grid: dict, steps: list[str], metrics) -> dict:
    """A finished sweep: plan with typed params, train.json histories (if trained), summary.csv
    and configs.csv as collect writes them. `metrics(params)` gives a trial's metrics."""
    names = [*grid, "seed"]
    trials = [{"trial": f"{i:010x}", "params": dict(zip(names, combo))}
              for i, combo in enumerate(itertools.product(*grid.values(), [0, 1, 2]))]
    plan = {"schema_version": 1, "param_names": names, "steps": steps, "trials": trials}
    (root / "results/plan").mkdir(parents=True)
    (root / "results/plan/trials.json").write_text(json.dumps(plan))
    rows = []
    for t in trials:
        m = metrics(t["params"])
        if "train" in steps:
            d = root / "results/trials" / t["trial"]
            d.mkdir(parents=True)
            hist = [{"epoch": e, "loss": 1.0 / e + t["params"]["seed"] * 0.01} for e in (1, 2, 3)]
            (d / "train.json").write_text(json.dumps({"status": "ok", "metrics": {"history": hist}}))
        rows.append({"trial": t["trial"], "status": "ok", **t["params"], **m})
    df = pd.DataFrame(rows)
    for n in names:
        df[n] = pd.Series([r[n] for r in rows], dtype=object)
    df["config_id"] = [config_id(r["params"]) for r in trials]
    text = df.copy()
    for n in names:
        text[n] = text[n].map(report.param_cell)
    text.to_csv(root / "results/summary.csv", index=False)
    report.write_configs(df, names, root / "results/configs.csv")
    return plan


def run_reports(root: Path, objective: str, direction: str = "max", extra: str = "",
                outs: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The two report rules' commands, as the workflow runs them (plots make answer.html)."""
    r = "results"
    common = ["--summary", f"{r}/summary.csv", "--configs", f"{r}/configs.csv", "--plan", f"{r}/plan/trials.json",
              "--objective", objective, "--direction", direction, f"--extra={extra}"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "", "HOME": str(root)}
    tables = subprocess.run([sys.executable, "-m", "snakesweep.report", *common, "--best", f"{r}/best.json",
                             "--pareto", f"{r}/pareto.csv", "--importance", f"{r}/importance.csv"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert tables.returncode == 0, tables.stderr
    outs = outs or {k: f"{r}/plots/{v}.png" for k, v in PLOTS.items()}
    args = [x for k, v in outs.items() for x in (f"--out-{k}", v)]
    return subprocess.run([sys.executable, "-m", "snakesweep.report.plots", *common, "--trials-dir", f"{r}/trials",
                           "--html", f"{r}/report/answer.html", *args],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _acc(p: dict) -> dict:
    base = {3: 0.80, None: 0.85, 10: 0.82}[p["max_depth"]] + (0.02 if p["opt"] == 'a,"b' else 0)
    return {"eval_accuracy": base + 0.005 * p["seed"], "latency_ms_p95": 1.0 + 0.1 * p["seed"],
            "throughput_sps": 100.0 + p["seed"], "energy_source": "unavailable: no counter"}


def test_null_bool_and_odd_strings_draw_and_answer_embeds_every_plot(tmp_path):
    typed_sweep(tmp_path, {"max_depth": [3, None, 10], "opt": ['a,"b', "sgd"], "warm": [True]},
                ["train", "eval", "measure"], _acc)
    p = run_reports(tmp_path, "eval_accuracy", extra="latency_ms_p95:min")
    assert p.returncode == 0, p.stderr
    res = tmp_path / "results"
    for name in PLOTS.values():
        assert is_png(res / "plots" / f"{name}.png") and (res / "plots" / f"{name}.png").stat().st_size > 5000, name
    page = (res / "report/answer.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "warm=true" in page  # the unswept bool, as JSON
    assert "<td class='l'>null</td>" in page and "a,&quot;b" in page
    best = json.loads((res / "best.json").read_text())
    assert best["best"]["params"] == {"max_depth": None, "opt": 'a,"b', "warm": True}
    imp = {r["parameter"]: r for r in report.read_csv(res / "importance.csv")}
    assert imp["max_depth"]["best_level"] == "null" and imp["opt"]["best_level"] == 'a,"b'
    assert report.report_problem_lines(res) == []


def test_heatmap_levels_sort_numbers_first_then_json_text():
    from snakesweep.report.plots import heatmap_grid

    configs = [{"d": d, "o": o, "acc_mean": 0.1 * i} for i, (d, o) in
               enumerate(itertools.product([None, 10, 3], ["sgd", True]))]
    rows, cols, grid = heatmap_grid(configs, "d", "o", "acc")
    assert rows == [3, 10, None] and cols == ['sgd', True]  # '"sgd"' < 'true'
    assert grid[2] == [0.0, 0.1]  # null's row


def test_stale_figures_are_replaced_when_the_objective_is_missing(tmp_path):
    typed_sweep(tmp_path, {"batch": [1, 8]}, ["measure"],
                lambda p: {"throughput_sps": 100.0 * p["batch"] + p["seed"], "latency_ms_p95": 2.0 / p["batch"]})
    res = tmp_path / "results"
    old = report.message_png()
    for name in PLOTS.values():
        (res / "plots").mkdir(exist_ok=True)
        (res / "plots" / f"{name}.png").write_bytes(old)  # an earlier sweep's figures
    p = run_reports(tmp_path, "eval_accuracy")  # a [measure] sweep has no accuracy
    assert p.returncode == 0, p.stderr
    for name in PLOTS.values():
        f = res / "plots" / f"{name}.png"
        assert is_png(f) and f.read_bytes() != old, name
    best = json.loads((res / "best.json").read_text())
    assert best["available_metrics"] == ["throughput_sps", "latency_ms_p95"]
    lines = report.report_problem_lines(res)
    assert "no trial produced the objective eval_accuracy" in lines[1] and "throughput_sps" in lines[1]
    assert "no trial produced the objective eval_accuracy" in (res / "report/answer.html").read_text()


def test_a_measure_only_sweep_reports_on_throughput(tmp_path):
    typed_sweep(tmp_path, {"batch": [1, 8, 64]}, ["measure"],
                lambda p: {"throughput_sps": 100.0 * p["batch"] + p["seed"], "latency_ms_p95": 2.0 / p["batch"] + p["seed"]})
    p = run_reports(tmp_path, "throughput_sps", extra="latency_ms_p95:min")
    assert p.returncode == 0, p.stderr
    res = tmp_path / "results"
    best = json.loads((res / "best.json").read_text())
    assert best["best"]["params"] == {"batch": 64}
    assert [r["batch"] for r in report.read_csv(res / "pareto.csv")] == ["64"]
    page = (res / "report/answer.html").read_text()
    assert "latency_ms_p95 mean" in page and page.count("data:image/png;base64,") == 4
    assert report.report_problem_lines(res) == []


def test_a_plot_that_cannot_be_written_is_reported_and_the_others_are_drawn(tmp_path):
    typed_sweep(tmp_path, {"max_depth": [3, None], "opt": ["sgd"], "warm": [False]}, ["train", "eval"], _acc)
    res = tmp_path / "results"
    blocker = res / "plots" / "heatmap.png"
    blocker.mkdir(parents=True)  # a directory where the figure goes: a real write failure
    p = run_reports(tmp_path, "eval_accuracy")
    assert p.returncode == 0, p.stderr  # the sweep's trials are fine: the run does not fail
    for name in ("objective_vs_params", "pareto", "training_curves"):
        assert is_png(res / "plots" / f"{name}.png"), name
    lines = report.report_problem_lines(res)
    assert any("heatmap.png (report_plots)" in line for line in lines), lines
    page = (res / "report/answer.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # the three that exist
    assert "No trade-off to show" in page  # no extra objective: no hidden default cost


# ---------------------------------------------------------------------------- figures on the fixture sweep


def _run_plots(root: Path, extra: str = "") -> subprocess.CompletedProcess:
    r = root / "results"
    report.main(["--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"), "--plan", str(r / "plan/trials.json"),
                 "--objective", "eval_accuracy", "--direction", "max", f"--extra={extra}", "--best", str(r / "best.json"),
                 "--pareto", str(r / "pareto.csv"), "--importance", str(r / "importance.csv")])
    cmd = [sys.executable, "-m", "snakesweep.report.plots", "--summary", "results/summary.csv", "--configs", "results/configs.csv",
           "--plan", "results/plan/trials.json",
           "--trials-dir", "results/trials", "--objective", "eval_accuracy", "--direction", "max", f"--extra={extra}",
           *(x for name in ("objective", "heatmap", "pareto", "curves") for x in (f"--out-{name}", f"results/plots/{name}.png"))]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "", "HOME": str(root)}
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)


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
        assert is_drawn_png(tmp_path / f"results/plots/{name}.png"), name


def test_plots_with_a_single_swept_parameter(tmp_path):
    plan = make_sweep(tmp_path, grid={"lr": [0.001, 0.01, 0.1], "hidden": [32]}, fail={})
    write_summary(tmp_path, plan)
    p = _run_plots(tmp_path)
    assert p.returncode == 0, p.stderr
    for name in ("objective", "heatmap", "pareto", "curves"):
        assert is_drawn_png(tmp_path / f"results/plots/{name}.png"), name


def test_importing_plots_does_not_import_matplotlib():
    code = "import sys, snakesweep.report.plots, snakesweep.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_log_axis_rule():
    from snakesweep.report.plots import use_log_axis

    assert use_log_axis(["0.001", "0.01", "0.1"])
    assert not use_log_axis(["1", "50"])
    assert not use_log_axis(["0", "10", "1000"])
    assert not use_log_axis(["adam", "sgd"])


def _drawn_suptitle(tmp_path, seeds, cycles_of_config=None):
    """objective_vs_params drawn by real matplotlib from a real summary; the title it drew."""
    from snakesweep.measure import aggregate_cycles
    from snakesweep.report import plots

    rows = []
    for i, (w, seed) in enumerate(itertools.product([16, 64, 256], seeds)):
        m = {"eval_accuracy": 0.5 + w / 1000 + 0.01 * seed}
        if cycles_of_config:
            m = aggregate_cycles([{"throughput_sps": 1000.0 / w + k} for k in range(cycles_of_config)])
        rows.append({"trial": f"t{i}", "status": "ok", "w": w, "seed": seed, **m})
    df = pd.DataFrame(rows)
    metric = "throughput_sps" if cycles_of_config else "eval_accuracy"
    rep = report.compute_reports(df, {"param_names": ["w", "seed"]}, (metric, "max"), [])
    seen = []
    real_save = plots._save
    plots._save = lambda fig, path: (seen.append(fig._suptitle.get_text() if fig._suptitle else
                                                 fig.axes[0].get_title()), real_save(fig, path))
    try:
        plots.plot_objective_vs_params(plots._plt(), rep, tmp_path / "o.png")
    finally:
        plots._save = real_save
    assert is_png(tmp_path / "o.png")
    return seen[0]


def test_objective_title_says_what_the_error_bars_are(tmp_path):
    # issue 16: "error bars: 95% t CI over seeds, from 3 ok seeds" was printed with 2 seeds and no bars
    two = _drawn_suptitle(tmp_path, [0, 1])
    assert "no error bars: 2 ok seed(s) per configuration, an interval needs >= 3" in two
    assert "95% t CI" not in two
    three = _drawn_suptitle(tmp_path, [0, 1, 2])
    assert "error bars: 95% t CI over 3 ok seeds" in three and "no error bars" not in three
    cyc = _drawn_suptitle(tmp_path, [0], cycles_of_config=3)
    assert "error bars: 95% t CI over 3 measurement cycles of one seed" in cyc
    assert "no error bars" in _drawn_suptitle(tmp_path, [0], cycles_of_config=2)


def test_interval_description_counts_points_with_and_without_bars():
    from snakesweep.report.plots import interval_description

    rows = [{"n_ok": 3, "m_ci_low": 0.1, "m_ci_high": 0.2}, {"n_ok": 5, "m_ci_low": 0.1, "m_ci_high": 0.3},
            {"n_ok": 2}]
    text, bars = interval_description(rows, "m")
    assert bars and text == "error bars: 95% t CI over 3-5 ok seeds; 1 of 3 point(s) without a bar (fewer than 3 values)"
    assert interval_description([{"n_ok": 1}], "m") == (
        "no error bars: 1 ok seed(s) per configuration, an interval needs >= 3", False)
