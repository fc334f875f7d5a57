"""Statistics over measurement cycles through real Snakemake (issue 16): inference_model, one seed,
2 and 3 cycles. summary.csv's per-trial cycle intervals follow configs.csv's rules (>= 3 values,
clipped at 0, else "n too small"), configs.csv never averages bounds, indices or facts, best.json
and answer.html test over the cycles, and the aggregated record names the cycles' torch."""

from __future__ import annotations

import json
import math

import pytest

pytestmark = pytest.mark.e2e


def _sweep(workdir, cycles: int):
    cfg = {
        "sweep": {
            "name": f"cyc{cycles}",
            "workload": "inference_model",
            "steps": ["measure"],
            "fixed": {"model": "mlp", "in_features": 8, "depth": 1, "threads": 1, "batch_size": 4},
            "grid": {"width": [8, 1024]},
        },
        "measure": {"warmup_batches": 2, "repeats": 20, "min_window_s": 0.2, "cycles": cycles},
        "device": "cpu",
        "report": {"objective": {"metric": "throughput_sps", "direction": "max"},
                   "extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}]},
    }
    path = workdir.write_config(cfg)
    workdir.snakemake("--cores", "2", "--configfile", str(path), check=True, timeout=600)
    return path, workdir.path / "results" / f"cyc{cycles}"


def _f(x: str) -> float | None:
    return float(x) if x not in ("", None) else None


def test_two_cycles_no_negative_bounds_nothing_averaged_that_is_not_a_measurement(workdir):
    _, res = _sweep(workdir, 2)
    summary = workdir.read_csv("results/cyc2/summary.csv")
    assert len(summary) == 2 and {r["status"] for r in summary} == {"ok"}
    for r in summary:
        assert r["cycles"] == "2"
        for k in ("throughput_sps", "latency_ms_p95", "latency_ms_p50"):
            assert _f(r[f"{k}_ci_low"]) is None and _f(r[f"{k}_ci_high"]) is None, (k, r)  # 2 < 3 values
            assert _f(r[f"{k}_std"]) is not None
        assert "n too small" in r["cycle_ci_note"]
        assert _f(r.get("cycle", "")) is None  # the cycle index is not a result
    configs = workdir.read_csv("results/cyc2/configs.csv")
    cols = set(configs[0])
    assert not {c for c in cols if c.endswith(("_ci_low_mean", "_ci_high_mean", "_std_mean"))}, sorted(cols)
    assert not cols & {"cycle", "cycle_mean", "cycles_mean", "param_count_mean", "weight_mb_mean"}, sorted(cols)
    from snakesweep.workloads.inference_model import describe

    fixed = {"model": "mlp", "in_features": 8, "depth": 1}
    assert {c["param_count"] for c in configs} == {str(describe({**fixed, "width": w})["param_count"]) for w in (8, 1024)}
    assert {c["cycles"] for c in configs} == {"2"}
    best = json.loads((res / "best.json").read_text())
    assert best["test"]["over"] == "cycles" and best["best"]["n_cycles"] == 2
    # each trial has 2 values: the test runs (it did not: "fewer than 2 values on one side")
    assert best["test"]["undefined_because"] in (None, "zero variance on both sides"), best["test"]
    assert "fewer than 2 values" not in best["verdict"] and "measurement cycles" in best["verdict"]
    page = (res / "report/answer.html").read_text()
    assert "measurement cycles" in page and "n too small" in page
    assert "fewer than 2 values" not in page


def test_three_cycles_give_intervals_and_the_record_keeps_torch(workdir):
    path, res = _sweep(workdir, 3)
    summary = workdir.read_csv("results/cyc3/summary.csv")
    for r in summary:
        for k in ("throughput_sps", "latency_ms_p95"):
            lo, mid, hi = _f(r[f"{k}_ci_low"]), _f(r[k]), _f(r[f"{k}_ci_high"])
            assert lo is not None and 0 <= lo <= mid <= hi, (k, r)
    configs = {c["width"]: c for c in workdir.read_csv("results/cyc3/configs.csv")}
    for width, c in configs.items():
        trial = next(r for r in summary if r["width"] == width)
        # one seed: the configuration's interval is its trial's interval over the 3 cycles
        assert math.isclose(_f(c["throughput_sps_ci_low"]), _f(trial["throughput_sps_ci_low"]), rel_tol=1e-9)
        assert math.isclose(_f(c["throughput_sps_ci_high"]), _f(trial["throughput_sps_ci_high"]), rel_tol=1e-9)
        assert "intervals over its 3 measurement cycles" in c["ci_note"]
    best = json.loads((res / "best.json").read_text())
    assert best["best"]["ci_low"] is not None and best["best"]["over"] == "cycles"
    assert best["test"]["over"] == "cycles" and best["test"]["p_value"] is not None
    for record in (res / "trials").glob("*/measure.json"):
        agg = json.loads(record.read_text())
        cycle_files = agg["metrics"]["cycle_files"]
        assert len(cycle_files) == 3
        torch_versions = {json.loads((workdir.path / f).read_text())["versions"]["torch"] for f in cycle_files}
        assert None not in torch_versions  # the cycles imported torch ...
        assert agg["versions"]["torch"] in torch_versions  # ... and the aggregate says which
    # the Snakemake report describes this sweep: measured only, in cycles, no training curves promised
    html = workdir.path / "report.html"
    workdir.snakemake("--report", str(html), "--configfile", str(path), check=True, timeout=600)
    text = html.read_text()
    start = text.index("run by snakesweep")  # the workflow description (workflow/report/workflow.rst)
    intro = text[start - 300:text.index("How to read", start)]
    plots = text[text.index("How to read", start):text.index("Data files", start)]
    assert "measured as Snakemake file" in intro and "3 cycles" in intro, intro
    assert "trained" not in intro and "evaluated" not in intro and "{&#39;" not in intro and "{'" not in intro
    assert "inference_model" in intro
    assert "training curves" not in plots, plots
