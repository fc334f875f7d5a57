"""GPU check for issue 4: do NVML's energy counter and the sampled-power integral agree on one window?

On an NVIDIA machine: measures the idle baseline, then runs a bf16 matmul workload for a window of
>= 5 s and meters that same window three ways at once:
  counter  - nvmlDeviceGetTotalEnergyConsumption before/after (the nvml_counter method);
  sampled  - the power reading snakesweep's sampler uses (instant field where offered), trapezoid;
  avg-API  - nvmlDeviceGetPowerUsage sampled the same way (a 1 s average on Ampere and newer).
Two windows: "steady" (after a warmup, as run_measurement does) and "from-idle" (no warmup, the
worst case for a lagging power average). Prints each energy, the % difference to the counter, and
the idle power.

    python benchmarks/gpu_energy_check.py [--window-s 8] [--idle-s 5] [--interval 0.1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snakesweep.energy import NvmlCounterMeter, NvmlSampledMeter, PowerSampler, open_nvml_gpu, trapezoid_j  # noqa: E402


def pct(a: float, ref: float) -> float:
    return (a - ref) / ref * 100.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window-s", type=float, default=8.0)
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.window_s < 5:
        ap.error("--window-s must be >= 5 (the counter updates about every 100 ms)")

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device visible to torch; this check needs an NVIDIA GPU", file=sys.stderr)
        return 2
    dev = torch.device("cuda:0")
    a = torch.randn(args.size, args.size, device=dev, dtype=torch.bfloat16)
    b = torch.randn(args.size, args.size, device=dev, dtype=torch.bfloat16)
    torch.cuda.synchronize()
    uuid = str(getattr(torch.cuda.get_device_properties(0), "uuid", "")) or None
    gpu, reason = open_nvml_gpu(0, uuid)
    if gpu is None:
        print(f"NVML not usable: {reason}", file=sys.stderr)
        return 2
    nv = gpu.nvml
    info = {
        "card": gpu.name,
        "driver": gpu.driver_version,
        "nvml": gpu.nvml_version,
        "torch": torch.__version__,
        "power_api": gpu.power_api,
        "counter": gpu.energy_counter_reason() or "supported",
        "interval_s": args.interval,
    }
    print(json.dumps(info))
    if gpu.energy_counter_reason() is not None:
        print("this GPU has no energy counter: nothing to compare the sampler with", file=sys.stderr)
        return 2

    def run_for(seconds: float) -> int:
        n = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(20):
                a @ b
            torch.cuda.synchronize()
            n += 20
        return n

    def window(seconds: float, work: bool) -> dict:
        counter = NvmlCounterMeter(gpu)
        sampled = NvmlSampledMeter(gpu, args.interval)
        avg = PowerSampler(lambda: nv.nvmlDeviceGetPowerUsage(gpu.handle) / 1000.0, args.interval)
        v0 = gpu.violation_ns()
        t_start = gpu.temperature_c()
        counter.begin()
        sampled.begin()
        avg.start()
        n = run_for(seconds) if work else (time.sleep(seconds) or 0)
        avg_s = avg.stop()
        rs = sampled.end()
        rc = counter.end()
        v1 = gpu.violation_ns()
        e_avg = trapezoid_j(avg_s, avg_s[0][0], avg_s[-1][0])
        out = {
            "window_s": rc.window_s,
            "counter_j": rc.energy_j,
            "sampled_j": rs.energy_j,
            "sampled_n": rs.n_samples,
            "avg_api_j": e_avg,
            "counter_w": rc.mean_power_w,
            "sampled_vs_counter_pct": pct(rs.energy_j, rc.energy_j),
            "avg_api_vs_counter_pct": pct(e_avg, rc.energy_j),
            "matmuls": n,
            "tflops": 2 * args.size**3 * n / rc.window_s / 1e12,
            "temp_start_c": t_start,
            "temp_end_c": gpu.temperature_c(),
            "violation_s": (
                {k: (v1[k] - v0[k]) / 1e9 for k in v0} if v0 is not None and v1 is not None else None
            ),
        }
        return out

    report: dict = {"info": info}
    time.sleep(2.0)  # let the context creation's activity settle
    idle = window(args.idle_s, work=False)
    report["idle"] = idle
    print(
        f"idle {idle['window_s']:.2f} s: counter {idle['counter_j']:.2f} J = {idle['counter_w']:.1f} W, "
        f"sampled {idle['sampled_j']:.2f} J ({idle['sampled_vs_counter_pct']:+.2f}%)",
        flush=True,
    )
    run_for(args.warmup_s)
    for name, pre_idle in (("steady", 0.0), ("from-idle", args.idle_s)):
        if pre_idle:
            time.sleep(pre_idle)
        w = window(args.window_s, work=True)
        report[name] = w
        print(
            f"{name} {w['window_s']:.2f} s, {w['tflops']:.0f} TFLOP/s: counter {w['counter_j']:.1f} J "
            f"({w['counter_w']:.1f} W); sampled {w['sampled_j']:.1f} J ({w['sampled_vs_counter_pct']:+.2f}%, "
            f"{w['sampled_n']} samples); avg-API {w['avg_api_j']:.1f} J ({w['avg_api_vs_counter_pct']:+.2f}%); "
            f"temp {w['temp_start_c']}->{w['temp_end_c']} C; clock violations {w['violation_s']}",
            flush=True,
        )
    gpu.close()
    ok = abs(report["steady"]["sampled_vs_counter_pct"]) <= 5.0
    print(f"steady window: counter and sampler agree within 5%: {ok}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
