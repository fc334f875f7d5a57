"""A 20,000-key metrics table (issue 17): collect and every report on 6 trials x 20,000 numeric
metric keys plus label ones, through the entry points the rules' scripts call (collect_main,
tables_main, plots_main), with pandas' PerformanceWarning an error. The numbers are recomputed
here from the trials' values with `statistics`; no timing is asserted (a hang guard only)."""

from __future__ import annotations

import csv
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import pytest

from snakesweep.report import collect_main, tables_main
from snakesweep.report.plots import plots_main
from snakesweep.report.tables import NOTE_METRICS
from state_helpers import write_plan, write_result

N_KEYS = 20_000  # half plain numbers (k<j>), half accuracy-like scores (acc_<j>)
TRIALS = [f"{i:010x}" for i in range(6)]
PARAMS = [{"lr": [0.1, 0.2][i % 2], "seed": i // 2} for i in range(6)]  # 2 configurations x 3 seeds
LABELS = {"tag": "run-a", "energy_source": "rapl", "driver_version": "12.5", "device_name": "cpu"}
HANG_S = 600  # a guard against a hang, far above the time it takes (issue 17: under 30 s)

csv.field_size_limit(sys.maxsize)


def _eval_metrics(p: dict) -> dict:
    """k<j> grows with lr (so lr 0.2 is best by every k), acc_<j> depends on the seed only and
    lies close enough to 1 that its t interval is clipped to [0, 1]."""
    up, s = (1.0 if p["lr"] == 0.2 else 0.0), p["seed"]
    out = {}
    for j in range(N_KEYS // 2):
        out[f"k{j}"] = up + 0.01 * s + j / 1e5
        out[f"acc_{j}"] = 0.95 + 0.02 * s
    return {**out, **LABELS}


def _sweep(root: Path) -> dict[str, dict]:
    write_plan(root, TRIALS, params=PARAMS)
    values = {}
    for t, p in zip(TRIALS, PARAMS):
        write_result(root, t, "train", {"train_loss": 0.5 - p["lr"], "history": [{"epoch": 1, "loss": 0.9}]}, params=p)
        values[t] = _eval_metrics(p)
        write_result(root, t, "eval", values[t], params=p)
        write_result(root, t, "measure", {"latency_ms_p50": 2.0 + p["lr"] + 0.1 * p["seed"]}, params=p)
    return values


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_collect_and_every_report_on_20000_metric_keys(tmp_path, capsys):
    import pandas as pd

    values = _sweep(tmp_path)
    r = tmp_path / "results"
    common = ["--summary", str(r / "summary.csv"), "--configs", str(r / "configs.csv"),
              "--plan", str(r / "plan/trials.json"), "--direction", "max"]
    pngs = {name: r / "plots" / f"{name}.png" for name in ("objective", "heatmap", "pareto", "curves")}
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        assert collect_main(["--plan", str(r / "plan/trials.json"), "--summary", str(r / "summary.csv"),
                             "--configs", str(r / "configs.csv")]) == 0
        assert tables_main([*common, "--objective", "k7", "--extra=latency_ms_p50:min", "--best", str(r / "best.json"),
                            "--pareto", str(r / "pareto.csv"), "--importance", str(r / "importance.csv")]) == 0
        assert plots_main([*common, "--objective", "k7", "--extra=latency_ms_p50:min", "--trials-dir", str(r / "trials"),
                           "--html", str(r / "report/answer.html"),
                           *(x for name, path in pngs.items() for x in (f"--out-{name}", str(path)))]) == 0
        assert tables_main([*common, "--objective", "not_measured", "--best", str(r / "best_missing.json"),
                            "--pareto", str(r / "pareto_missing.csv"), "--importance", str(r / "importance_missing.csv"),
                            "--html", str(r / "report/answer_missing.html")]) == 0
    assert time.monotonic() - start < HANG_S
    assert "6 trials: 6 ok, 0 failed, 0 pending" in capsys.readouterr().out

    summary = _rows(r / "summary.csv")
    assert len(summary) == 6 and {f"k{N_KEYS // 2 - 1}", f"acc_{N_KEYS // 2 - 1}", *LABELS} <= set(summary[0])
    assert summary[0]["tag"] == "run-a"

    configs = {c["lr"]: c for c in _rows(r / "configs.csv")}
    assert set(configs) == {"0.1", "0.2"}
    for lr, c in configs.items():
        trials = [t for t, p in zip(TRIALS, PARAMS) if str(p["lr"]) == lr]
        assert c["n_ok"] == "3"
        for key in ("k0", "k7", f"k{N_KEYS // 2 - 1}", "acc_123"):
            vals = [values[t][key] for t in trials]
            assert float(c[f"{key}_mean"]) == pytest.approx(statistics.mean(vals), rel=1e-12)
            assert float(c[f"{key}_std"]) == pytest.approx(statistics.stdev(vals), rel=1e-9)
        assert float(c["acc_5_ci_high"]) == 1.0  # clipped to its known range
        # the note names NOTE_METRICS clipped metrics, then counts the rest
        assert f"{N_KEYS // 2 - NOTE_METRICS} more metric interval(s) clipped" in c["ci_note"]
        assert len(c["ci_note"]) < 10_000
    assert not any(col.startswith(tuple(LABELS)) for col in configs["0.1"])  # labels are never averaged

    best = json.loads((r / "best.json").read_text())
    k7 = [values[t]["k7"] for t, p in zip(TRIALS, PARAMS) if p["lr"] == 0.2]
    assert best["best"]["params"] == {"lr": 0.2} and best["best"]["mean"] == pytest.approx(statistics.mean(k7), rel=1e-12)
    assert best["best"]["values"] == pytest.approx(k7, rel=1e-12)

    # the figures: the four asked for, whatever the number of metrics; answer.html stays small
    assert sorted(p.name for p in (r / "plots").iterdir()) == sorted(p.name for p in pngs.values())
    assert (r / "report/answer.html").stat().st_size < 2_000_000

    # an objective no trial has: best.json lists every metric with values, the verdict 50 of them
    missing = json.loads((r / "best_missing.json").read_text())
    assert len(missing["available_metrics"]) == N_KEYS + 2  # + train_loss, latency_ms_p50
    assert f"and {N_KEYS + 2 - NOTE_METRICS} more (best.json available_metrics lists them all)" in missing["verdict"]
    assert len(missing["verdict"]) < 5_000
    html = (r / "report/answer_missing.html").read_text()
    assert f"and {N_KEYS + 2 - NOTE_METRICS} more" in html and len(html) < 200_000
