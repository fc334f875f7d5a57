"""The measurement protocol: percentiles, flags, cycle ordering (incl. a real Snakemake run),
cycle aggregation with t CIs, and run_measurement on CPU with a real torch model.

The RAPL "hardware" in the energy tests of run_measurement is a directory laid out like sysfs whose
energy_uj a thread advances at a known wattage: the reader does real file reads of it.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from snakesweep.config import MeasureSettings
from snakesweep.measure import (
    CI_KEYS,
    FACT_KEYS,
    METRIC_KEYS,
    aggregate_cycles,
    cooldown,
    cycle_priority,
    gpu_shared,
    percentile,
    run_measurement,
    throttled,
    wait_for_temperature,
)

# --------------------------------------------------------------------------- percentiles, flags


def test_percentile_matches_numpy_linear():
    np = pytest.importorskip("numpy")
    rng = random.Random(3)
    vals = [rng.lognormvariate(0, 0.5) for _ in range(101)]
    for p in (0, 50, 95, 99, 100):
        assert percentile(vals, p) == pytest.approx(float(np.percentile(vals, p)))
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    with pytest.raises(ValueError):
        percentile([], 50)


def test_gpu_shared_from_process_lists():
    me = 4242
    assert gpu_shared([[me], [me]], me) == (False, "")
    flag, why = gpu_shared([[me], [me, 777]], me)
    assert flag is True and "777" in why
    # our PID hidden by a container's namespace: one entry is us, two mean someone else
    assert gpu_shared([[13], [13]], me)[0] is False
    assert gpu_shared([[13, 14]], me)[0] is True
    assert gpu_shared([None, None], me) == (None, "running-process list not readable")
    assert gpu_shared([None, [me]], me)[0] is False


def test_throttled_from_violation_counters_and_reason_bits():
    v0 = {"power": 1_000_000_000, "thermal": 5}
    assert throttled(v0, dict(v0), []) == (False, "")
    flag, why = throttled(v0, {"power": 1_250_000_000, "thermal": 5}, [])
    assert flag is True and "power 0.250 s" in why
    # no violation counters: reason bits at the window's ends
    assert throttled(None, None, [0x1, 0x0])[0] is False  # GPU idle is not throttling
    flag, why = throttled(None, None, [0x0, 0x4 | 0x40])
    assert flag is True and "sw_power_cap" in why and "hw_thermal" in why
    assert throttled(None, None, [None])[0] is None


# --------------------------------------------------------------------------- cycle priority


def _schedule(jobs, order, n_cycles, seed, **kw):
    """What one slot does: always run the ready job of highest priority; ties broken at random."""
    rng = random.Random(seed)
    shuffled = jobs[:]
    rng.shuffle(shuffled)
    return sorted(
        shuffled,
        key=lambda j: -cycle_priority(j[1], n_cycles, order, j[0], **({"trial_index": kw["idx"][j[0]]} if kw else {})),
    )


TRIALS = [f"{i:010x}" for i in (0x1A2B3C4D5E, 0x0F0E0D0C0B, 0x9999999999, 0x0123456789, 0xABCDEF0123)]


@pytest.mark.parametrize("seed", range(5))
def test_interleaved_runs_cycle_k_everywhere_before_k_plus_1(seed):
    n = 4
    jobs = [(t, c) for t in TRIALS for c in range(n)]
    order = _schedule(jobs, "interleaved", n, seed)
    cycles = [c for _, c in order]
    assert cycles == sorted(cycles)
    assert [cycle_priority(c, 3, "interleaved", "x") for c in range(3)] == [3, 2, 1]


@pytest.mark.parametrize("seed", range(5))
def test_sequential_keeps_a_trials_cycles_together(seed):
    n = 3
    jobs = [(t, c) for t in TRIALS for c in range(n)]
    for kw in ({}, {"idx": {t: i for i, t in enumerate(TRIALS)}}):
        order = _schedule(jobs, "sequential", n, seed, **kw)
        for k in range(0, len(order), n):
            block = order[k : k + n]
            assert len({t for t, _ in block}) == 1, order
            assert [c for _, c in block] == list(range(n))


def test_shuffled_is_deterministic_and_not_trivial():
    n = 3
    jobs = [(t, c) for t in TRIALS for c in range(n)]
    a = _schedule(jobs, "shuffled", n, 0)
    b = _schedule(jobs, "shuffled", n, 1)
    assert a == b  # no ties: the order comes from (trial, cycle) alone
    assert a != _schedule(jobs, "interleaved", n, 0)
    assert a != _schedule(jobs, "sequential", n, 0)
    assert cycle_priority(1, 3, "shuffled", TRIALS[0]) == cycle_priority(1, 3, "shuffled", TRIALS[0])
    assert all(cycle_priority(c, n, "shuffled", t) >= 1 for t, c in jobs)


def test_cycle_priority_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown cycle_order"):
        cycle_priority(0, 2, "random", "t")
    with pytest.raises(ValueError, match="out of range"):
        cycle_priority(2, 2, "interleaved", "t")
    with pytest.raises(ValueError, match="trial_index"):
        cycle_priority(0, 2, "sequential", "t", trial_index=-1)


SNAKEFILE = textwrap.dedent(
    """
    from snakesweep.measure import cycle_priority

    TRIALS = config["trials"]
    N = config["n"]


    def prio(wildcards):
        return cycle_priority(int(wildcards.cycle), N, config["order"], wildcards.trial)


    rule all:
        input:
            expand("m/{trial}/{cycle}.txt", trial=TRIALS, cycle=range(N)),


    rule measure:
        output:
            "m/{trial}/{cycle}.txt",
        resources:
            measure_slot=1,
        priority: prio
        shell:
            "echo {wildcards.trial} {wildcards.cycle} >> order.log && touch {output}"
    """
)


@pytest.mark.e2e
@pytest.mark.parametrize("order", ["interleaved", "sequential"])
def test_real_snakemake_follows_cycle_priority(tmp_path, order):
    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.exists():
        snakemake = shutil.which("snakemake")
    if not snakemake:
        pytest.skip("snakemake not installed")
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    trials = TRIALS[:3]
    (tmp_path / "c.yaml").write_text(f"trials: {trials}\nn: 3\norder: {order}\n")
    proc = subprocess.run(
        [str(snakemake), "--cores", "1", "--resources", "measure_slot=1", "--configfile", "c.yaml", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ran = [(line.split()[0], int(line.split()[1])) for line in (tmp_path / "order.log").read_text().splitlines()]
    assert len(ran) == 9
    if order == "interleaved":
        assert [c for _, c in ran] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    else:
        for k in (0, 3, 6):
            assert len({t for t, _ in ran[k : k + 3]}) == 1 and [c for _, c in ran[k : k + 3]] == [0, 1, 2]


# --------------------------------------------------------------------------- aggregation


def _cycle(p50, thr, e, flag=False, source="nvml_counter"):
    return {
        "latency_ms_p50": p50,
        "latency_ms_p95": p50 * 1.5,
        "latency_ms_p99": p50 * 2,
        "throughput_sps": thr,
        "energy_j_per_sample": e,
        "energy_j_per_sample_net": None if e is None else e / 2,
        "energy_source": source,
        "energy_j": None if e is None else e * 1000,
        "peak_mem_mb": 100.0 + p50,
        "n_batches_timed": 40,
        "window_s": 5.0,
        "device_name": "NVIDIA H100 80GB HBM3",
        "flag_short_window": False,
        "flag_throttled": flag,
        "flag_gpu_shared": None,
        "flag_detail": "power 0.1 s" if flag else "",
        "temp_start_c": 40.0 + p50,
    }


def test_aggregate_three_cycles_mean_and_t_ci():
    cyc = [_cycle(2.0, 1000.0, 0.010), _cycle(2.2, 950.0, 0.012, flag=True), _cycle(1.9, 1020.0, 0.011)]
    agg = aggregate_cycles(cyc)
    # by hand: mean 2.0333.., s = 0.152753, t(0.975, 2) = 4.302653 -> half width 0.379456
    assert agg["latency_ms_p50"] == pytest.approx(2.033333333)
    assert agg["latency_ms_p50_ci_low"] == pytest.approx(2.033333333 - 0.379456, abs=1e-5)
    assert agg["latency_ms_p50_ci_high"] == pytest.approx(2.033333333 + 0.379456, abs=1e-5)
    # throughput: mean 990, s = 36.0555, half = 4.302653 * 36.0555 / sqrt(3) = 89.5665
    assert agg["throughput_sps"] == pytest.approx(990.0)
    assert agg["throughput_sps_ci_high"] - agg["throughput_sps"] == pytest.approx(89.5665, abs=1e-3)
    assert agg["energy_j_per_sample"] == pytest.approx(0.011)
    assert agg["energy_j_per_sample_net"] == pytest.approx(0.0055)
    assert agg["energy_j_per_sample_ci_low"] < 0.011 < agg["energy_j_per_sample_ci_high"]
    for k in ("latency_ms_p95", "latency_ms_p99", "energy_j_per_sample_net"):
        assert agg[f"{k}_ci_low"] < agg[k] < agg[f"{k}_ci_high"]
    assert agg["cycles"] == 3
    assert agg["flag_throttled"] is True and agg["flag_short_window"] is False
    assert agg["flag_gpu_shared"] is None  # no cycle could tell
    assert agg["flag_detail"] == "power 0.1 s"
    assert agg["energy_source"] == "nvml_counter"
    assert agg["peak_mem_mb"] == pytest.approx(102.2)
    assert agg["n_batches_timed"] == 120
    assert agg["device_name"] == "NVIDIA H100 80GB HBM3"
    assert agg["temp_start_c"] == pytest.approx(42.2)


def test_aggregate_disagreeing_sources_and_missing_energy():
    cyc = [_cycle(1.0, 10.0, None, source="unavailable: no RAPL"), _cycle(1.2, 11.0, None, source="rapl")]
    agg = aggregate_cycles(cyc)
    assert agg["energy_source"] == "mixed: unavailable: no RAPL | rapl"
    assert agg["energy_j_per_sample"] is None and agg["energy_j_per_sample_ci_low"] is None
    assert agg["energy_j"] is None


def test_aggregate_single_cycle_is_unchanged():
    c = _cycle(2.0, 1000.0, 0.01)
    assert aggregate_cycles([c]) == {**c, "cycles": 1}
    assert aggregate_cycles([{**c, "cycle": 0}]) == {**c, "cycles": 1}
    with pytest.raises(ValueError):
        aggregate_cycles([])


def test_aggregate_two_cycles_gives_no_interval_and_never_a_negative_bound():
    # issue 16: two cycles 1111 +- a lot gave throughput_sps_ci_low -3885.96: configs.csv's rules now
    cyc = [{**_cycle(2.0, 500.0, 0.01), "cycle": 0, "param_count": 1234},
           {**_cycle(30.0, 1722.0, 0.02), "cycle": 1, "param_count": 1234}]
    agg = aggregate_cycles(cyc)
    assert agg["throughput_sps"] == pytest.approx(1111.0)
    assert agg["throughput_sps_std"] == pytest.approx(864.08, abs=0.01)  # sample std of the two
    for k in CI_KEYS[:6]:
        assert agg[f"{k}_ci_low"] is None and agg[f"{k}_ci_high"] is None, k
    assert agg["cycle_ci_note"] == "n too small for an interval over cycles (2 cycles; need >= 3)"
    assert "cycle" not in agg  # an index, not a measurement: never averaged to 0.5
    assert agg["param_count"] == 1234 and isinstance(agg["param_count"], int)  # a fact, kept
    assert agg["cycles"] == 2 and agg["n_batches_timed"] == 80


def test_aggregate_clips_an_interval_at_zero_and_says_so():
    cyc = [_cycle(p50, 1000.0, 0.01) for p50 in (0.1, 0.1, 9.0)]
    agg = aggregate_cycles(cyc)
    assert agg["latency_ms_p50_ci_low"] == 0.0  # the t interval reached below 0 ms
    assert agg["latency_ms_p50_ci_high"] > agg["latency_ms_p50"]
    assert "interval clipped at 0: latency_ms_p50" in agg["cycle_ci_note"]
    assert "n too small" not in agg["cycle_ci_note"]


def test_aggregate_generation_metrics_get_intervals_and_counts_are_summed():
    from snakesweep.generation import GENERATION_KEYS, TEXT_KEYS

    def gen(ttft, tps):
        return {"ttft_ms_p50": ttft, "ttft_ms_p95": ttft * 1.2, "itl_ms_p50": 3.0 + ttft / 100,
                "output_tokens_per_s": tps, "energy_j_per_token": None, "n_requests_timed": 8,
                "n_output_tokens_timed": 256, "n_generate_calls_timed": 2, "flops_per_token": 1e6,
                "kv_cache_bytes_per_token": 512, "cycle": 0}

    agg = aggregate_cycles([gen(10.0, 400.0), gen(12.0, 380.0), gen(11.0, 390.0)])
    for k in ("ttft_ms_p50", "ttft_ms_p95", "itl_ms_p50", "output_tokens_per_s"):
        assert agg[f"{k}_ci_low"] < agg[k] < agg[f"{k}_ci_high"], k
    assert agg["ttft_ms_p50_std"] == pytest.approx(1.0)
    assert agg["energy_j_per_token"] is None and agg["energy_j_per_token_ci_low"] is None
    assert agg["n_requests_timed"] == 24 and agg["n_output_tokens_timed"] == 768
    assert agg["n_generate_calls_timed"] == 6
    assert agg["flops_per_token"] == 1e6 and agg["kv_cache_bytes_per_token"] == 512
    # every numeric per-token or per-request time, rate and energy of generation has a CI
    skip = {*TEXT_KEYS, "energy_j", "energy_j_net", "baseline_power_w",
            "peak_mem_mb", "window_s", "sample_interval_s", "temp_start_c", "temp_end_c"}
    for k in GENERATION_KEYS:
        if k in skip or k.startswith(("flag_", "n_")):
            continue
        assert k in CI_KEYS, k


def test_fact_keys_cover_the_builtin_workloads():
    from snakesweep.workloads import causal_lm, inference_model

    assert set(inference_model.FACT_KEYS) <= set(FACT_KEYS)
    assert set(causal_lm.FACT_KEYS) <= set(FACT_KEYS)


# --------------------------------------------------------------------------- protocol steps


def test_cooldown_logs_a_countdown():
    lines: list[str] = []
    t = time.monotonic()
    cooldown(1.5, lines.append)
    assert time.monotonic() - t >= 1.5
    assert lines[0] == "cooldown: 1.5 s"
    assert "cooldown: 2 s left" in lines and "cooldown: 1 s left" in lines
    assert lines[-1] == "cooldown: done"
    lines.clear()
    cooldown(0, lines.append)
    assert lines == []


class _HotGpu:
    """Stand-in for an NVML GPU's temperature (no GPU on CI): cools 5 C per reading."""

    def __init__(self, temps):
        self.temps = list(temps)

    def temperature_c(self):
        return self.temps.pop(0) if len(self.temps) > 1 else self.temps[0]


def test_wait_for_temperature():
    lines: list[str] = []
    t = wait_for_temperature(_HotGpu([80, 75, 68]), 70, 60, lines.append, sleep=lambda s: None)
    assert t == 68 and lines[-1].startswith("temperature wait: 68 C < 70 C")
    assert sum("s left" in x for x in lines) == 2
    lines.clear()
    t = wait_for_temperature(_HotGpu([90]), 70, 0.2, lines.append)
    assert t == 90 and "measuring anyway" in lines[-1]
    assert wait_for_temperature(None, 70, 1, lines.append) is None


# --------------------------------------------------------------------------- run_measurement on CPU

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    xs = [torch.randn(64, 16) for _ in range(3)] + [torch.randn(10, 16)]
    sizes = [64, 64, 64, 10]

    @torch.inference_mode()
    def fn(x):
        return model(x)

    return fn, xs, sizes


FAST = dict(warmup_batches=2, repeats=3, min_window_s=0.3, sample_interval_s=0.05)


def test_cpu_measurement_without_energy_source(tiny, tmp_path):
    fn, xs, sizes = tiny
    lines: list[str] = []
    m = run_measurement(fn, xs, sizes, "cpu", MeasureSettings(**FAST, baseline_s=0.1), lines.append,
                        rapl_root=tmp_path / "no-powercap")
    assert tuple(m) == METRIC_KEYS
    assert 0 < m["latency_ms_p50"] <= m["latency_ms_p95"] <= m["latency_ms_p99"]
    assert m["window_s"] >= 0.3
    assert m["n_batches_timed"] >= 3 * len(xs) and m["n_batches_timed"] % len(xs) == 0
    assert m["n_samples_timed"] == m["n_batches_timed"] // len(xs) * sum(sizes)
    assert m["throughput_sps"] == pytest.approx(m["n_samples_timed"] / m["window_s"])
    assert m["energy_j"] is None and m["energy_j_per_sample"] is None
    assert m["energy_j_per_sample_net"] is None and m["baseline_power_w"] is None
    assert m["energy_source"].startswith("unavailable: no RAPL:")
    assert m["flag_short_window"] is False and m["flag_energy_zero"] is False
    assert m["flag_gpu_shared"] is None and m["flag_throttled"] is None
    assert m["temp_start_c"] is None and m["temp_end_c"] is None
    assert m["peak_mem_mb"] > 50  # peak RSS of a process holding torch
    assert m["sample_interval_s"] is None
    assert "baseline: skipped, no energy source" in lines


class RaplSim:
    """A powercap tree whose package counter a thread advances at ``watts`` (real files, real reads)."""

    def __init__(self, root: Path, watts: float, start_uj: int = 10_000_000, static: bool = False):
        self.root = root
        z = root / "intel-rapl:0"
        z.mkdir(parents=True)
        (z / "name").write_text("package-0\n")
        (z / "max_energy_range_uj").write_text("262143328850\n")
        self.file = z / "energy_uj"
        self.watts, self.start_uj = watts, start_uj
        self._write(start_uj)
        self._stop = threading.Event()
        self._t = None if static else threading.Thread(target=self._run, daemon=True)

    def _write(self, v: int) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{v}\n")
        os.replace(tmp, self.file)  # a reader never sees a half-written number

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self._stop.wait(0.002):
            self._write(self.start_uj + int(self.watts * 1e6 * (time.perf_counter() - t0)))

    def __enter__(self):
        if self._t:
            self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._t:
            self._t.join()


def test_cpu_measurement_with_rapl_baseline_and_cooldown(tiny, tmp_path):
    fn, xs, sizes = tiny
    lines: list[str] = []
    # 1 s window: the simulated counter's writer thread may be scheduled late on a busy machine
    settings = MeasureSettings(**{**FAST, "min_window_s": 1.0}, baseline_s=0.5, cooldown_s=1.0)
    with RaplSim(tmp_path / "powercap", watts=20.0):
        m = run_measurement(fn, xs, sizes, "cpu", settings, lines.append, rapl_root=tmp_path / "powercap")
    assert m["energy_source"] == "rapl"
    assert m["baseline_power_w"] == pytest.approx(20.0, rel=0.2)
    assert m["energy_j"] == pytest.approx(20.0 * m["window_s"], rel=0.2)
    assert m["energy_j_per_sample"] == pytest.approx(m["energy_j"] / m["n_samples_timed"])
    # the counter runs at the baseline rate: what is left after subtracting idle is ~0
    net_total = m["energy_j_per_sample_net"] * m["n_samples_timed"]
    assert abs(net_total) < 0.25 * m["energy_j"]
    assert "package-0@intel-rapl:0" in m["energy_method_detail"]
    assert m["flag_energy_zero"] is False
    i_cool = lines.index("cooldown: done")
    i_base = next(i for i, x in enumerate(lines) if x.startswith("baseline: idle power"))
    i_warm = next(i for i, x in enumerate(lines) if x.startswith("warmup:"))
    assert "cooldown: 1 s left" in lines[:i_cool] and i_cool < i_base < i_warm


def test_cpu_measurement_flags_zero_energy_and_short_window(tiny, tmp_path):
    fn, xs, sizes = tiny
    with RaplSim(tmp_path / "pc", watts=0.0, static=True):
        m = run_measurement(fn, xs, sizes, "cpu", MeasureSettings(**{**FAST, "min_window_s": 30.0}),
                            lambda s: None, rapl_root=tmp_path / "pc", max_window_s=0.2)
    assert m["energy_j"] == 0.0 and m["flag_energy_zero"] is True
    assert m["flag_short_window"] is True and m["window_s"] < 30.0
    assert "energy counter read zero" in m["flag_detail"] and "min_window_s" in m["flag_detail"]


def test_run_measurement_rejects_mismatched_batches(tiny):
    fn, xs, sizes = tiny
    with pytest.raises(ValueError):
        run_measurement(fn, xs, sizes[:-1], "cpu", MeasureSettings(**FAST))
    with pytest.raises(ValueError):
        run_measurement(fn, [], [], "cpu", MeasureSettings(**FAST))
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        run_measurement(fn, xs, sizes, "auto", MeasureSettings(**FAST))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")
def test_cuda_measurement_real_nvml():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 10)).cuda().eval()
    xs = [torch.randn(256, 512, device="cuda") for _ in range(4)]

    @torch.inference_mode()
    def fn(x):
        return model(x)

    lines: list[str] = []
    m = run_measurement(fn, xs, [256] * 4, "cuda", MeasureSettings(**{**FAST, "min_window_s": 1.0}, baseline_s=0.5),
                        lines.append)
    assert m["energy_source"] in ("nvml_counter", "nvml_sampled"), m["energy_source"]
    assert m["energy_j"] > 0 and m["energy_j_per_sample"] > 0
    assert m["baseline_power_w"] > 0 and m["energy_j_per_sample_net"] is not None
    assert m["device_name"] and m["driver_version"]
    assert m["temp_start_c"] is not None and m["temp_end_c"] is not None
    assert m["flag_gpu_shared"] is False, m["flag_detail"]
    assert m["flag_throttled"] in (True, False)
    assert m["peak_mem_mb"] > 0
