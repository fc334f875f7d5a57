"""The measurement protocol: cooldown, idle baseline, warmup, a timed window long enough to trust,
per-batch latency, energy, and the flags that say when a number should not be trusted.

Nothing heavy is imported at module import: torch is touched only for CUDA devices (the caller's fn
has imported it already) and pynvml only through snakesweep.energy when a GPU is measured.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snakesweep.energy import (
    DEFAULT_RAPL_ROOT,
    THROTTLE_BITS,
    EnergyMeter,
    EnergyResult,
    NvmlGpu,
    UnavailableMeter,
    net_energy_j,
    open_meter,
    open_nvml_gpu,
)
from snakesweep.stats import MIN_N_FOR_CI, usable_interval

if TYPE_CHECKING:  # pydantic stays out of the import path of the measurement itself
    from snakesweep.config import MeasureSettings

Log = Callable[[str], Any]

# Keys aggregated over cycles as mean, std and a usable 95% t interval (stats.usable_interval: from
# MIN_N_FOR_CI cycles, clipped at 0: every one of them is a time, a rate or an energy): the batch
# protocol's latency/throughput/energy and the generation metrics of snakesweep.generation.
CI_KEYS = (
    "latency_ms_p50",
    "latency_ms_p95",
    "latency_ms_p99",
    "throughput_sps",
    "energy_j_per_sample",
    "energy_j_per_sample_net",
    # generation (GENERATION_KEYS): per-token and per-request times, rates and energies
    "ttft_ms_p50",
    "ttft_ms_p95",
    "itl_ms_p50",
    "itl_ms_p95",
    "itl_ms_p99",
    "request_ms_p50",
    "request_ms_p95",
    "instrumented_request_ms_p50",
    "output_tokens_per_s",
    "decode_tokens_per_s",
    "prefill_tokens_per_s",
    "energy_j_per_token",
    "energy_j_per_token_net",
    "energy_j_per_request",
    "energy_j_prefill_per_request",
    "energy_j_decode_per_token",
)
# What each CI key gets beside its mean in an aggregated record (summary.csv's columns; the
# reports read them as the trial's cycle statistics, never as metrics of their own).
CYCLE_STAT_SUFFIXES = ("std", "ci_low", "ci_high")
CYCLE_CI_NOTE = "cycle_ci_note"
# Counts over the timed window: a trial's cycles together timed their sum.
COUNT_KEYS = (
    "n_batches_timed",
    "n_samples_timed",
    "n_requests_timed",
    "n_output_tokens_timed",
    "n_generate_calls_timed",
    "n_instrumented_calls",
)
# Facts the built-in workloads know exactly (inference_model's and causal_lm's FACT_KEYS, checked by
# tests/test_measure.py): the same in every cycle and seed of a configuration, so the reports keep
# them as they are and never average them.
FACT_KEYS = (
    "param_count",
    "weight_mb",
    "matmul_flops_per_sample",
    "samples_per_batch",
    "torch_threads",
    "kv_cache_bytes_per_token",
    "flops_per_token",
    "requests_per_call",
)
# Per-cycle bookkeeping, meaningless once cycles are combined (the index of one cycle).
CYCLE_INDEX_KEYS = ("cycle",)
# Every key run_measurement returns, in a stable order (summary.csv may use it for column order).
METRIC_KEYS = (
    "latency_ms_p50",
    "latency_ms_p95",
    "latency_ms_p99",
    "throughput_sps",
    "peak_mem_mb",
    "energy_j_per_sample",
    "energy_j_per_sample_net",
    "energy_j",
    "baseline_power_w",
    "energy_source",
    "energy_method_detail",
    "window_s",
    "n_batches_timed",
    "n_samples_timed",
    "sample_interval_s",
    "device_name",
    "driver_version",
    "nvml_version",
    "flag_short_window",
    "flag_energy_zero",
    "flag_gpu_shared",
    "flag_throttled",
    "flag_detail",
    "temp_start_c",
    "temp_end_c",
)
FLAG_KEYS = ("flag_short_window", "flag_energy_zero", "flag_gpu_shared", "flag_throttled")


# --------------------------------------------------------------------------- small pure helpers


def percentile(values: Sequence[float], p: float) -> float:
    """p-th percentile with linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    s = sorted(values)
    rank = (len(s) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (rank - lo)


def gpu_shared(pids_seen: Sequence[Sequence[int] | None], own_pid: int) -> tuple[bool | None, str]:
    """Was another process on the GPU? From NVML running-process lists taken during the measurement.

    If our own PID is not in a list (a container's PID namespace hides it from NVML), a list with one
    entry is taken to be us and only a second entry counts as another process.
    """
    lists = [list(p) for p in pids_seen if p is not None]
    if not lists:
        return None, "running-process list not readable"
    others: set[int] = set()
    for pids in lists:
        if own_pid in pids:
            others.update(p for p in pids if p != own_pid)
        elif len(pids) > 1:
            others.update(pids)
    if others:
        return True, f"other processes on the GPU: {sorted(others)}"
    return False, ""


def throttled(
    viol_before: dict[str, int] | None,
    viol_after: dict[str, int] | None,
    reasons: Sequence[int | None],
) -> tuple[bool | None, str]:
    """Were clocks held down by power or heat during the window?

    Uses NVML's cumulative violation time (exact over the window) where available, else the clock
    event reason bits read at the window's ends.
    """
    if viol_before is not None and viol_after is not None:
        parts = []
        for k in ("power", "thermal"):
            d = viol_after.get(k, 0) - viol_before.get(k, 0)
            if d > 0:
                parts.append(f"{k} {d / 1e9:.3f} s")
        return bool(parts), ("clock violation time: " + ", ".join(parts)) if parts else ""
    bits = [r for r in reasons if r is not None]
    if not bits:
        return None, "throttle state not readable"
    names = sorted({name for r in bits for b, name in THROTTLE_BITS.items() if r & b})
    return bool(names), ("clock event reasons: " + ", ".join(names)) if names else ""


def cycle_priority(
    cycle: int, n_cycles: int, order: str, trial: str, trial_index: int | None = None
) -> int:
    """Snakemake job priority (higher runs first) for cycle ``cycle`` of ``trial``'s measurement.

    With one measurement slot (``--cores 1`` or a resource of capacity 1) and all measure jobs ready:
    - interleaved: ``n_cycles - cycle``: cycle k of every trial outranks cycle k+1 of any trial;
    - sequential: a block of n_cycles consecutive priorities per trial, cycle 0 highest, so a trial's
      cycles run back to back. The block is ``trial_index`` when given (collision-free), else a 16-bit
      hash of the trial id (two trials sharing a hash bucket would interleave with each other);
    - shuffled: a 20-bit hash of (trial, cycle): a fixed pseudo-random order, the same on every run.
    Priorities stay small (< 2**16 x n_cycles) so the MILP scheduler's objective remains well scaled.
    """
    import hashlib  # parse time only: a measurement process does not pay for OpenSSL

    if n_cycles < 1 or not 0 <= cycle < n_cycles:
        raise ValueError(f"cycle {cycle} out of range for {n_cycles} cycles")
    if order == "interleaved":
        return n_cycles - cycle
    if order == "sequential":
        if trial_index is not None:
            if trial_index < 0:
                raise ValueError("trial_index must be >= 0")
            block = trial_index
        else:
            block = int(hashlib.sha256(trial.encode()).hexdigest()[:4], 16)
        return block * n_cycles + (n_cycles - cycle)
    if order == "shuffled":
        return 1 + int(hashlib.sha256(f"{trial}:{cycle}".encode()).hexdigest()[:5], 16)
    raise ValueError(f"unknown cycle_order {order!r} (interleaved | sequential | shuffled)")


# --------------------------------------------------------------------------- protocol steps


def cooldown(seconds: float, log: Log, sleep: Callable[[float], Any] = time.sleep) -> None:
    """Sleep before measuring so the previous job's heat and clocks settle; the log counts down."""
    if seconds <= 0:
        return
    step = 1.0 if seconds <= 10 else 5.0 if seconds <= 60 else 10.0
    end = time.monotonic() + seconds
    log(f"cooldown: {seconds:g} s")
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        log(f"cooldown: {math.ceil(left)} s left")
        sleep(min(step, left))
    log("cooldown: done")


def wait_for_temperature(
    gpu: NvmlGpu | None,
    max_c: float,
    timeout_s: float,
    log: Log,
    sleep: Callable[[float], Any] = time.sleep,
) -> float | None:
    """Wait (bounded) until the GPU is below ``max_c``; returns the last temperature read."""
    if gpu is None:
        log("temperature wait: no NVML device, not waiting")
        return None
    end = time.monotonic() + timeout_s
    while True:
        t = gpu.temperature_c()
        if t is None:
            log("temperature wait: GPU temperature not readable, not waiting")
            return None
        if t < max_c:
            log(f"temperature wait: {t:g} C < {max_c:g} C, starting")
            return t
        left = end - time.monotonic()
        if left <= 0:
            log(f"temperature wait: still {t:g} C after {timeout_s:g} s; measuring anyway (see temp_start_c)")
            return t
        log(f"temperature wait: {t:g} C >= {max_c:g} C, {math.ceil(left)} s left")
        sleep(min(1.0, left))


def _cuda_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def _cuda_uuid(index: int) -> str | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return str(torch.cuda.get_device_properties(index).uuid)
    except Exception:  # older torch without .uuid, or CUDA not initialised: fall back to the index
        return None


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20  # macOS reports bytes


# --------------------------------------------------------------------------- the measurement


def gpu_window_flags(gpu: NvmlGpu | None, pids_seen: Sequence[Sequence[int] | None], viol0: Any, viol1: Any,
                     reasons: Sequence[Any], details: list[str]) -> tuple[bool | None, bool | None]:
    """(shared, throttled) of an in-process window on a GPU, None each without one; the reasons go
    to `details`. A command's window tells a neighbour apart differently (workloads/_command_run.py, run_measure)."""
    if gpu is None:
        return None, None
    shared, d = gpu_shared(pids_seen, os.getpid())
    if d:
        details.append(d)
    thr, d = throttled(viol0, viol1, reasons)
    if d:
        details.append(d)
    return shared, thr


def window_quality(meter: EnergyMeter, device_name: str | None, short: bool, zero: bool, shared: bool | None,
                   thr: bool | None, details: list[str], temp_start: Any, temp_end: Any) -> dict[str, Any]:
    """The fields every measurement record ends with (module, generation and command windows
    alike): the device, the quality flags and the temperatures, in this order."""
    return {
        "device_name": device_name,
        "driver_version": meter.driver_version,
        "nvml_version": meter.nvml_version,
        "flag_short_window": short,
        "flag_energy_zero": zero,
        "flag_gpu_shared": shared,
        "flag_throttled": thr,
        "flag_detail": "; ".join(details),
        "temp_start_c": temp_start,
        "temp_end_c": temp_end,
    }


def window_flags(window_s: float, settings: MeasureSettings, energy: EnergyResult) -> tuple[bool, bool, list[str]]:
    """The checks every timed window gets (module batches or a whole command): shorter than
    ``min_window_s``, an energy counter that read zero. Returns (short, zero, details)."""
    details = []
    short = window_s < settings.min_window_s
    if short:
        details.append(f"window {window_s:.3f} s < min_window_s {settings.min_window_s:g} s")
    zero = energy.energy_j is not None and energy.counter_zero
    if zero:
        details.append("energy counter read zero")
    return short, zero, details


def settle(meter: EnergyMeter, gpu: NvmlGpu | None, settings: MeasureSettings, log: Log) -> float | None:
    """What comes before every timed window (a module's batches or a command's whole run):
    the cooldown, the wait for a cool GPU (``max_start_temp_c``), and the idle baseline.
    Returns the baseline power in W, or None when none was measured."""
    cooldown(settings.cooldown_s, log)
    if gpu is not None and settings.max_start_temp_c is not None:
        wait_for_temperature(gpu, settings.max_start_temp_c, settings.temp_wait_timeout_s, log)
    if settings.baseline_s <= 0:
        return None
    if not meter.available:
        log("baseline: skipped, no energy source")
        return None
    log(f"baseline: idle power over {settings.baseline_s:g} s")
    meter.begin()
    time.sleep(settings.baseline_s)
    power = meter.end().mean_power_w
    log(f"baseline: {power:.2f} W" if power is not None else "baseline: not measured")
    return power


def run_measurement(
    fn: Callable[[Any], Any],
    batches: Sequence[Any],
    samples_per_batch: list[int],
    device: str,
    settings: MeasureSettings,
    log: Log = print,
    *,
    max_window_s: float | None = None,
    rapl_root: Path = DEFAULT_RAPL_ROOT,
    nvml: Any = None,
) -> dict[str, Any]:
    """Measure inference of ``fn(batch)`` on ``device`` under ``settings``; returns flat metrics.

    Order: cooldown, optional temperature wait, idle baseline, warmup, then whole passes over
    ``batches`` until ``settings.repeats`` passes and ``settings.min_window_s`` are both reached
    (or ``max_window_s`` runs out: the caller's safety margin before its timeout; the window is
    then flagged short). ``samples_per_batch[i]`` is the number of samples in ``batches[i]``.
    """
    if not batches or len(batches) != len(samples_per_batch):
        raise ValueError("batches must be non-empty and match samples_per_batch in length")
    if any(n <= 0 for n in samples_per_batch):
        raise ValueError("every batch must hold at least one sample")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N' (resolve 'auto' first), not {device!r}")
    is_cuda = device.startswith("cuda")
    torch: Any = None
    gpu: NvmlGpu | None = None
    gpu_reason: str | None = None
    if is_cuda:
        import torch  # noqa: PLC0415  (only CUDA runs pay for it; fn has imported it already)

        def sync() -> None:
            torch.cuda.synchronize(device)

        idx = _cuda_index(device)
        gpu, gpu_reason = open_nvml_gpu(idx, _cuda_uuid(idx), nvml=nvml)
        if gpu is None:
            log(f"NVML: {gpu_reason}")
    else:

        def sync() -> None:
            return None

    meter: EnergyMeter = open_meter(
        device, settings.sample_interval_s, gpu=gpu, gpu_reason=gpu_reason, rapl_root=rapl_root
    )
    log(f"energy source: {meter.method}" + (f" ({meter.reason})" if isinstance(meter, UnavailableMeter) else ""))
    try:
        baseline_power_w = settle(meter, gpu if is_cuda else None, settings, log)

        if is_cuda:
            torch.cuda.reset_peak_memory_stats(device)
        for i in range(settings.warmup_batches):
            fn(batches[i % len(batches)])
            sync()
        log(f"warmup: {settings.warmup_batches} batches")

        temp_start = gpu.temperature_c() if gpu else None
        pids_seen = [gpu.running_pids()] if gpu else []
        viol0 = gpu.violation_ns() if gpu else None

        latencies: list[float] = []
        n_samples = 0
        passes = 0
        deadline_hit = False
        sync()
        meter.begin()
        t_start = time.perf_counter()
        while True:
            for batch, n in zip(batches, samples_per_batch):
                t0 = time.perf_counter()
                fn(batch)
                sync()
                latencies.append(time.perf_counter() - t0)
                n_samples += n
                if max_window_s is not None and time.perf_counter() - t_start >= max_window_s:
                    deadline_hit = True
                    break
            passes += 1
            if deadline_hit:
                break
            if passes >= settings.repeats and time.perf_counter() - t_start >= settings.min_window_s:
                break
        t_end = time.perf_counter()
        energy = meter.end()
        window_s = t_end - t_start

        temp_end = gpu.temperature_c() if gpu else None
        viol1 = gpu.violation_ns() if gpu else None
        if gpu:
            pids_seen.append(gpu.running_pids())
        reasons = [gpu.throttle_reasons()] if gpu else []
    finally:
        meter.close()
        if gpu is not None:
            gpu.close()

    peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20 if is_cuda else _peak_rss_mb()
    device_name = meter.device_name
    if device_name is None and is_cuda:
        device_name = torch.cuda.get_device_name(device)  # NVML missing: the name is still known
    lat_ms = [x * 1000.0 for x in latencies]

    energy_j = energy.energy_j
    per_sample = energy_j / n_samples if energy_j is not None else None
    per_sample_net = None
    if energy_j is not None and baseline_power_w is not None:
        per_sample_net = net_energy_j(energy_j, baseline_power_w, energy.window_s) / n_samples

    short, zero, details = window_flags(window_s, settings, energy)
    shared, thr = gpu_window_flags(gpu, pids_seen, viol0, viol1, reasons, details)

    return {
        "latency_ms_p50": percentile(lat_ms, 50),
        "latency_ms_p95": percentile(lat_ms, 95),
        "latency_ms_p99": percentile(lat_ms, 99),
        "throughput_sps": n_samples / window_s,
        "peak_mem_mb": peak_mem_mb,
        "energy_j_per_sample": per_sample,
        "energy_j_per_sample_net": per_sample_net,
        "energy_j": energy_j,
        "baseline_power_w": baseline_power_w,
        "energy_source": energy.source,
        "energy_method_detail": energy.detail,
        "window_s": window_s,
        "n_batches_timed": len(latencies),
        "n_samples_timed": n_samples,
        "sample_interval_s": energy.sample_interval_s,
        **window_quality(meter, device_name, short, zero, shared, thr, details, temp_start, temp_end),
    }


# --------------------------------------------------------------------------- cycles


def _common(values: list[Any]) -> Any:
    return values[0] if all(v == values[0] for v in values) else None


def aggregate_cycles(cycle_metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine a trial's cycles into one record.

    * CI_KEYS: the mean under the key itself, ``<key>_std`` (from 2 cycles) and ``<key>_ci_low`` /
      ``<key>_ci_high``: the two-sided 95% t interval by configs.csv's rules (stats.usable_interval:
      from MIN_N_FOR_CI cycles, clipped at 0), empty otherwise, and ``cycle_ci_note`` says why
      ("n too small ...") or which interval was clipped. A key some cycle lacks gets its mean only.
    * flags are OR-ed (None only if no cycle could tell); peak memory and temperatures take the
      maximum; counts (COUNT_KEYS) are totals; the cycle index is dropped;
    * a value every cycle agrees on (a fact such as param_count, a text field) is kept as it is;
      other numbers are means; energy_source becomes "mixed: a | b" when cycles disagree.
    """
    if not cycle_metrics:
        raise ValueError("no cycles to aggregate")
    if len(cycle_metrics) == 1:
        return {**{k: v for k, v in cycle_metrics[0].items() if k not in CYCLE_INDEX_KEYS}, "cycles": 1}
    n_cycles = len(cycle_metrics)
    out: dict[str, Any] = {}
    keys: list[str] = []
    for m in cycle_metrics:
        keys.extend(k for k in m if k not in keys and k not in CYCLE_INDEX_KEYS)
    small: list[str] = []
    clipped: list[str] = []
    for key in keys:
        vals = [m.get(key) for m in cycle_metrics]
        present = [v for v in vals if v is not None]
        numeric = bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
        if key in CI_KEYS and numeric:
            iv = usable_interval(present, bounds=(0.0, None))
            whole = len(present) == n_cycles  # an interval over some cycles only would hide the others
            out[key] = iv.mean
            out[f"{key}_std"] = iv.std if whole else None
            out[f"{key}_ci_low"] = iv.ci_low if whole else None
            out[f"{key}_ci_high"] = iv.ci_high if whole else None
            if whole and iv.note and n_cycles > 1:
                small.append(key)
            if whole and iv.clipped:
                clipped.append(key)
        elif key in CI_KEYS and not present:  # not measured in any cycle (energy without a meter)
            out[key] = None
            out.update({f"{key}_{sfx}": None for sfx in CYCLE_STAT_SUFFIXES})
        elif key.startswith("flag_") and key != "flag_detail":
            out[key] = any(present) if present else None
        elif key == "energy_source":
            uniq = list(dict.fromkeys(str(v) for v in vals))
            out[key] = uniq[0] if len(uniq) == 1 else "mixed: " + " | ".join(uniq)
        elif key in ("peak_mem_mb", "temp_start_c", "temp_end_c"):
            out[key] = max(present) if numeric else _common(vals)
        elif key in COUNT_KEYS:
            out[key] = sum(present) if numeric else None
        elif key == "flag_detail":
            out[key] = "; ".join(dict.fromkeys(str(v) for v in present if v))
        elif len(present) == len(vals) and len(set(map(repr, present))) == 1:
            out[key] = present[0]  # a fact every cycle agrees on (param_count): kept, not averaged
        elif numeric:
            out[key] = math.fsum(present) / len(present) if len(present) == len(vals) else None
        else:
            out[key] = _common(vals)
    notes = []
    if small:
        notes.append(f"n too small for an interval over cycles ({n_cycles} cycles; need >= {MIN_N_FOR_CI})")
    if clipped:
        notes.append(f"interval clipped at 0: {', '.join(clipped)}")
    if n_cycles > 1:
        out[CYCLE_CI_NOTE] = "; ".join(notes)
    out["cycles"] = n_cycles
    return out
