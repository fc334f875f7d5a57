"""Measuring text generation: time to first token, inter-token latency, tokens/s and energy per token.

A generating workload (the built-in ``causal_lm``) hands the measure step a GenerationTask: a
``generate(streamer, new_tokens)`` call that runs one batch of requests, each producing exactly
``new_tokens`` tokens (min == max, EOS cleared). The protocol is measure.py's (cooldown, GPU
temperature wait, idle baseline, warmup, a window of at least ``repeats`` calls and
``min_window_s``, the same meters and quality flags), with two kinds of timed passes:

- uninstrumented calls (no streamer, one perf_counter pair per call) give output tokens/s,
  request latency and the window's energy, so no per-token hook slows those figures;
- separate instrumented calls (a streamer stamping perf_counter at every new token, after a
  device sync on CUDA) give TTFT, ITL, and the prefill / decode rates.

Standard library only at import time (the caller's task has imported torch already).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from snakesweep.energy import DEFAULT_RAPL_ROOT, UnavailableMeter, net_energy_j, open_meter, open_nvml_gpu
from snakesweep.measure import gpu_window_flags, percentile, settle, window_flags, window_quality

if TYPE_CHECKING:
    from snakesweep.config import MeasureSettings

Log = Callable[[str], Any]

# The keys run_generation returns, in a stable order (text keys included).
GENERATION_KEYS = (
    "ttft_ms_p50", "ttft_ms_p95", "itl_ms_p50", "itl_ms_p95", "itl_ms_p99", "request_ms_p50", "request_ms_p95",
    "instrumented_request_ms_p50",
    "output_tokens_per_s", "decode_tokens_per_s", "prefill_tokens_per_s",
    "n_requests_timed", "n_output_tokens_timed", "n_generate_calls_timed", "n_instrumented_calls",
    "energy_j_per_token", "energy_j_per_token_net", "energy_j_per_request", "energy_j_prefill_per_request",
    "energy_j_decode_per_token", "energy_split_detail", "energy_j", "energy_j_net", "baseline_power_w",
    "energy_source", "energy_method_detail", "peak_mem_mb", "peak_mem_method", "window_s", "sample_interval_s",
    "device_name", "driver_version", "nvml_version", "flag_short_window", "flag_energy_zero", "flag_gpu_shared",
    "flag_throttled", "flag_detail", "temp_start_c", "temp_end_c", "timing_method",
)
TEXT_KEYS = (
    "energy_split_detail", "energy_source", "energy_method_detail", "peak_mem_method", "device_name",
    "driver_version", "nvml_version", "flag_detail", "timing_method",
)
# the names a command workload may report its output token count (and request count) under
TOKEN_NAMES = ("output_tokens", "n_output_tokens")
REQUEST_NAMES = ("requests", "n_requests")
TOKEN_NOTE = (
    "output_tokens_per_s and energy_j_per_token divide the command's reported output tokens by the "
    "whole command window, start-up and model loading included"
)


class GenerationTask(NamedTuple):
    """One batch of requests, ready to run: ``generate(streamer, new_tokens)`` returns the number
    of new tokens it produced (all rows together, counted from the output sequences)."""

    generate: Callable[[Any, int | None], int]
    batch_size: int  # requests per call
    prompt_tokens: int  # per request
    new_tokens: int  # per request, forced
    facts: dict[str, Any]  # exact facts of the model (param_count, FLOPs), kept as they are


class TokenStamps:
    """A generate() streamer recording when each new token reaches the host. The first put()
    is the prompt; every later one is one decoding step (one token per request)."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.sync()
        self.times.append(time.perf_counter())

    def end(self) -> None:
        return None


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20  # macOS reports bytes


def _cuda_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def _checked(produced: int, task: GenerationTask, new_tokens: int) -> int:
    expected = task.batch_size * new_tokens
    if produced != expected:
        raise RuntimeError(
            f"generate() produced {produced} new tokens, not {expected} ({task.batch_size} requests x "
            f"{new_tokens}): the forced length did not hold, so no per-token figure would be exact"
        )
    return produced


def _calls_window(
    task: GenerationTask, settings: MeasureSettings, sync: Callable[[], None], max_window_s: float | None,
    new_tokens: int,
) -> tuple[list[float], int]:
    """Uninstrumented calls until ``repeats`` and ``min_window_s`` are both reached (or the
    deadline). Returns each call's wall time and the tokens produced."""
    call_s: list[float] = []
    tokens = 0
    t_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        produced = task.generate(None, new_tokens)
        sync()
        call_s.append(time.perf_counter() - t0)
        tokens += _checked(produced, task, new_tokens)
        elapsed = time.perf_counter() - t_start
        if max_window_s is not None and elapsed >= max_window_s:
            break
        if len(call_s) >= settings.repeats and elapsed >= settings.min_window_s:
            break
    return call_s, tokens


def _instrumented(task: GenerationTask, n_calls: int, sync: Callable[[], None]) -> tuple[list[float], list[float], list[float]]:
    """TTFT, inter-token gaps and request latency (s) from calls with a token streamer."""
    ttft: list[float] = []
    gaps: list[float] = []
    request: list[float] = []
    for _ in range(n_calls):
        stamps = TokenStamps(sync)
        sync()
        t0 = time.perf_counter()
        produced = task.generate(stamps, task.new_tokens)
        sync()
        t1 = time.perf_counter()
        _checked(produced, task, task.new_tokens)
        if len(stamps.times) != task.new_tokens:
            raise RuntimeError(
                f"the token streamer saw {len(stamps.times)} decoding steps, not new_tokens = {task.new_tokens}"
            )
        ttft.append(stamps.times[0] - t0)
        gaps.extend(b - a for a, b in zip(stamps.times, stamps.times[1:]))
        request.append(t1 - t0)
    return ttft, gaps, request


def run_generation(
    task: GenerationTask,
    device: str,
    settings: MeasureSettings,
    log: Log = print,
    *,
    max_window_s: float | None = None,
    rapl_root: Path = DEFAULT_RAPL_ROOT,
    nvml: Any = None,
) -> dict[str, Any]:
    """Measure ``task`` on ``device``: the task's facts followed by GENERATION_KEYS.

    ``settings.warmup_batches`` warmup calls, a timed window of uninstrumented calls, then
    ``max(settings.repeats, 1)`` instrumented calls outside the window. On the NVML energy counter,
    a second window of prefill-only calls (one new token) splits the energy into prefill and decode.
    """
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N' (resolve 'auto' first), not {device!r}")
    is_cuda = device.startswith("cuda")
    torch: Any = None
    gpu = gpu_reason = None
    if is_cuda:
        import torch  # noqa: PLC0415  (only CUDA runs touch it here; the task imported it already)

        def sync() -> None:
            torch.cuda.synchronize(device)

        idx = _cuda_index(device)
        try:  # CUDA's device order need not be NVML's: find the card by its UUID
            uuid: str | None = str(torch.cuda.get_device_properties(idx).uuid)
        except Exception:  # older torch without .uuid: NVML's index mapping then
            uuid = None
        gpu, gpu_reason = open_nvml_gpu(idx, uuid, nvml=nvml)
        if gpu is None:
            log(f"NVML: {gpu_reason}")
    else:

        def sync() -> None:
            return None

    meter = open_meter(device, settings.sample_interval_s, gpu=gpu, gpu_reason=gpu_reason, rapl_root=rapl_root)
    log(f"energy source: {meter.method}" + (f" ({meter.reason})" if isinstance(meter, UnavailableMeter) else ""))
    prefill_j: float | None = None
    split_detail = f"prefill/decode energy split needs the NVML energy counter; this run: {meter.method}"
    try:
        baseline_power_w = settle(meter, gpu if is_cuda else None, settings, log)
        if is_cuda:
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(settings.warmup_batches):
            _checked(task.generate(None, task.new_tokens), task, task.new_tokens)
            sync()
        log(f"warmup: {settings.warmup_batches} generate() calls of {task.batch_size} requests")

        temp_start = gpu.temperature_c() if gpu else None
        pids_seen = [gpu.running_pids()] if gpu else []
        viol0 = gpu.violation_ns() if gpu else None
        sync()
        meter.begin()
        t_start = time.perf_counter()
        call_s, n_tokens = _calls_window(task, settings, sync, max_window_s, task.new_tokens)
        window_s = time.perf_counter() - t_start
        energy = meter.end()
        temp_end = gpu.temperature_c() if gpu else None
        viol1 = gpu.violation_ns() if gpu else None
        if gpu:
            pids_seen.append(gpu.running_pids())
        reasons = [gpu.throttle_reasons()] if gpu else []
        log(f"window: {len(call_s)} calls, {n_tokens} output tokens in {window_s:.3f} s")

        if meter.method == "nvml_counter" and energy.energy_j is not None and task.new_tokens > 1:
            meter.begin()
            prefill_calls, _ = _calls_window(task, settings, sync, max_window_s, 1)
            prefill_j = meter.end().energy_j
            if prefill_j is not None:
                prefill_j /= len(prefill_calls)
            split_detail = (
                f"prefill energy from a separate window of {len(prefill_calls)} one-token calls; decode = "
                "full call - prefill call"
            )

        n_instr = max(settings.repeats, 1)
        ttft, gaps, request_instr = _instrumented(task, n_instr, sync)
        log(f"instrumented: {n_instr} calls with a token streamer")
    finally:
        meter.close()
        if gpu is not None:
            gpu.close()

    if is_cuda:
        peak_mem_mb = torch.cuda.max_memory_allocated(device) / 2**20
        peak_method = "torch.cuda.max_memory_allocated over warmup and timed calls"
    else:
        peak_mem_mb = _peak_rss_mb()
        peak_method = "peak RSS of the measuring process (ru_maxrss): model, activations, KV cache and the Python runtime"
    device_name = meter.device_name
    if device_name is None and is_cuda:
        device_name = torch.cuda.get_device_name(device)

    b, p, n = task.batch_size, task.prompt_tokens, task.new_tokens
    n_requests = len(call_s) * b
    energy_j = energy.energy_j
    energy_net = None
    if energy_j is not None and baseline_power_w is not None:
        energy_net = net_energy_j(energy_j, baseline_power_w, energy.window_s)
    ttft_p50 = percentile(ttft, 50)
    decode_s = percentile([r - t for r, t in zip(request_instr, ttft)], 50)
    full_call_j = energy_j / len(call_s) if energy_j is not None else None
    decode_j = None
    if prefill_j is not None and full_call_j is not None:
        decode_j = (full_call_j - prefill_j) / (b * (n - 1))

    short, zero, details = window_flags(window_s, settings, energy)
    shared, thr = gpu_window_flags(gpu, pids_seen, viol0, viol1, reasons, details)
    metrics = {
        "ttft_ms_p50": ttft_p50 * 1000.0,
        "ttft_ms_p95": percentile(ttft, 95) * 1000.0,
        "itl_ms_p50": percentile(gaps, 50) * 1000.0 if gaps else None,
        "itl_ms_p95": percentile(gaps, 95) * 1000.0 if gaps else None,
        "itl_ms_p99": percentile(gaps, 99) * 1000.0 if gaps else None,
        "request_ms_p50": percentile(call_s, 50) * 1000.0,
        "request_ms_p95": percentile(call_s, 95) * 1000.0,
        "instrumented_request_ms_p50": percentile(request_instr, 50) * 1000.0,  # vs request_ms_p50: the hooks' cost
        "output_tokens_per_s": n_tokens / window_s,
        "decode_tokens_per_s": b * (n - 1) / decode_s if n > 1 and decode_s > 0 else None,
        "prefill_tokens_per_s": b * p / ttft_p50 if ttft_p50 > 0 else None,
        "n_requests_timed": n_requests,
        "n_output_tokens_timed": n_tokens,
        "n_generate_calls_timed": len(call_s),
        "n_instrumented_calls": len(ttft),
        "energy_j_per_token": energy_j / n_tokens if energy_j is not None else None,
        "energy_j_per_token_net": energy_net / n_tokens if energy_net is not None else None,
        "energy_j_per_request": energy_j / n_requests if energy_j is not None else None,
        "energy_j_prefill_per_request": prefill_j / b if prefill_j is not None else None,
        "energy_j_decode_per_token": decode_j,
        "energy_split_detail": split_detail,
        "energy_j": energy_j,
        "energy_j_net": energy_net,
        "baseline_power_w": baseline_power_w,
        "energy_source": energy.source,
        "energy_method_detail": energy.detail,
        "peak_mem_mb": peak_mem_mb,
        "peak_mem_method": peak_method,
        "window_s": window_s,
        "sample_interval_s": energy.sample_interval_s,
        **window_quality(meter, device_name, short, zero, shared, thr, details, temp_start, temp_end),
        "timing_method": (
            f"output_tokens_per_s, request_ms_*, energy_*: {len(call_s)} uninstrumented generate() calls "
            f"over window_s; ttft_ms_*, itl_ms_*, prefill/decode_tokens_per_s: {len(ttft)} separate calls "
            "with a streamer stamping perf_counter at each new token"
            + (" after torch.cuda.synchronize" if is_cuda else "")
        ),
    }
    return {**task.facts, **metrics}


def command_token_metrics(own: dict[str, Any], window_s: float, energy_j: float | None, energy_net: float | None) -> dict[str, Any]:
    """Tokens/s and J/token of a command workload that reports its output token count
    (``output_tokens: N``); {} when it reports none. The window is the whole command."""
    tokens = next((own[k] for k in TOKEN_NAMES if isinstance(own.get(k), (int, float)) and not isinstance(own.get(k), bool)), None)
    if tokens is None or tokens <= 0:
        return {}
    out: dict[str, Any] = {
        "output_tokens_per_s": tokens / window_s if window_s > 0 else None,
        "energy_j_per_token": energy_j / tokens if energy_j is not None else None,
        "energy_j_per_token_net": energy_net / tokens if energy_net is not None else None,
    }
    requests = next((own[k] for k in REQUEST_NAMES if isinstance(own.get(k), (int, float)) and not isinstance(own.get(k), bool)), None)
    if requests:
        out["energy_j_per_request"] = energy_j / requests if energy_j is not None else None
    out["token_metrics_note"] = TOKEN_NOTE
    return out
