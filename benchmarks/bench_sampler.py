"""Overhead of the power-sampler thread on the loop it measures (issue 4 target: <= 1.01x).

Runs a CPU inference loop (a small MLP, batch 64) in alternating blocks with and without a
PowerSampler running, in the same process, ABBA-ordered so drift cancels, and prints the ratio of
mean and median batch latency (sampler on / off) per sampling interval.

What the sampler reads ("reader" in the output):
- nvml:  NVML GPU power (the reader nvml_sampled uses), where an NVIDIA driver is present;
- rapl:  the RAPL package energy_uj file, where readable;
- proc:  /proc/stat, read and parsed, on machines with neither (CI): a file read of the same kind
         as a sysfs read, so what is measured is the thread's wake-up, the GIL hand-over and one
         small read per interval - the sampler's own cost, not the cost of an NVML call.

    python benchmarks/bench_sampler.py [--rounds 20] [--block-s 1.0] [--intervals 0.1 0.01] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snakesweep.energy import PowerSampler, discover_rapl, open_nvml_gpu, read_rapl_uj  # noqa: E402
from snakesweep.stats import mean_ci  # noqa: E402


def pick_reader(kind: str) -> tuple[str, Callable[[], float]]:
    if kind in ("auto", "nvml"):
        gpu, reason = open_nvml_gpu(0)
        if gpu is not None:
            return f"nvml ({gpu.name}, {gpu.power_api})", gpu.power_w
        if kind == "nvml":
            raise SystemExit(f"no NVML: {reason}")
    if kind in ("auto", "rapl"):
        try:
            doms = discover_rapl()
            read_rapl_uj(doms)
            return "rapl (package energy_uj read)", lambda: float(sum(read_rapl_uj(doms).values()))
        except Exception as err:  # noqa: BLE001 - any reason not to use RAPL sends us to the stand-in
            if kind == "rapl":
                raise SystemExit(f"no RAPL: {err}") from err

    def proc_stat() -> float:
        with open("/proc/stat") as f:
            return float(f.readline().split()[1])

    return "proc (/proc/stat read; no NVML or RAPL here)", proc_stat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--block-s", type=float, default=0.5, help="seconds per block (one condition)")
    ap.add_argument("--intervals", type=float, nargs="+", default=[0.1, 0.01])
    ap.add_argument("--reader", choices=["auto", "nvml", "rapl", "proc"], default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: least noise)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = torch.nn.Sequential(
        torch.nn.Linear(256, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)
    ).eval()
    x = torch.randn(64, 256)

    reader_name, read_w = pick_reader(args.reader)
    t = time.perf_counter()
    for _ in range(200):
        read_w()
    read_us = (time.perf_counter() - t) / 200 * 1e6

    @torch.inference_mode()
    def block(seconds: float) -> list[float]:
        lat = []
        end = time.perf_counter() + seconds
        while True:
            t0 = time.perf_counter()
            model(x)
            t1 = time.perf_counter()
            lat.append(t1 - t0)
            if t1 >= end:
                return lat

    block(2.0)  # warm up allocator, caches, clocks
    results = []
    for interval in args.intervals:
        on_mean, off_mean, on_med, off_med, ratios = [], [], [], [], []
        n_samples = 0
        thread_cpu_s = 0.0
        on_wall_s = 0.0
        for r in range(args.rounds):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            got: dict[str, list[float]] = {}
            for cond in order:
                if cond == "on":
                    s = PowerSampler(read_w, interval)
                    w0 = time.perf_counter()
                    s.start()
                    got[cond] = block(args.block_s)
                    n_samples += len(s.stop())
                    on_wall_s += time.perf_counter() - w0
                    thread_cpu_s += s.thread_cpu_s
                else:
                    got[cond] = block(args.block_s)
            on_mean.append(statistics.fmean(got["on"]))
            off_mean.append(statistics.fmean(got["off"]))
            on_med.append(statistics.median(got["on"]))
            off_med.append(statistics.median(got["off"]))
            ratios.append(on_mean[-1] / off_mean[-1])
        q = statistics.quantiles(ratios, n=4)
        ci = mean_ci(ratios)
        res = {
            "interval_s": interval,
            "rounds": args.rounds,
            "block_s": args.block_s,
            "mean_latency_ms_off": statistics.fmean(off_mean) * 1e3,
            "mean_latency_ms_on": statistics.fmean(on_mean) * 1e3,
            "ratio_mean": statistics.fmean(on_mean) / statistics.fmean(off_mean),
            "ratio_median_latency": statistics.median(on_med) / statistics.median(off_med),
            "ratio_per_round_median": statistics.median(ratios),
            "ratio_per_round_iqr": [q[0], q[2]],
            "ratio_per_round_mean": ci.mean,
            "ratio_per_round_ci95": [ci.ci_low, ci.ci_high],
            "samples_taken": n_samples,
            "sampler_thread_cpu_share": thread_cpu_s / on_wall_s,
            "per_round_ratios": ratios,
        }
        results.append(res)
        print(
            f"interval {interval:>5} s: mean batch latency off {res['mean_latency_ms_off']:.4f} ms, "
            f"on {res['mean_latency_ms_on']:.4f} ms -> ratio {res['ratio_mean']:.4f}x "
            f"(median-latency ratio {res['ratio_median_latency']:.4f}x; per-round ratio mean "
            f"{ci.mean:.4f}, 95% CI {ci.ci_low:.4f}-{ci.ci_high:.4f}; {n_samples} samples; sampler thread "
            f"CPU {res['sampler_thread_cpu_share'] * 100:.4f}% of the wall time)",
            flush=True,
        )
    out = {
        "reader": reader_name,
        "reader_call_us": read_us,
        "torch": torch.__version__,
        "torch_threads": args.threads,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    print(f"reader: {reader_name}, {read_us:.1f} us per read; torch {torch.__version__}, {args.threads} thread(s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
