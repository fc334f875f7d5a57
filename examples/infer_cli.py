"""Time batched inference of a train_cli.py checkpoint: warm-up, then `--repeats` passes over the
test images in batches of `--batch`; writes its latency and throughput to --out/metrics.json.

    python examples/infer_cli.py --model runs/a --batch 64 --out runs/a-infer
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import digits
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()

    *_, x_test, _ = digits.split(*digits.load_digits())
    w, b = digits.load(a.model)
    batches = [x_test[i : i + a.batch] for i in range(0, len(x_test), a.batch)]
    for batch in batches:  # warm-up
        digits.softmax(batch @ w + b).argmax(axis=1)
    latencies, n = [], 0
    t_start = time.perf_counter()
    for _ in range(a.repeats):
        for batch in batches:
            t0 = time.perf_counter()
            digits.softmax(batch @ w + b).argmax(axis=1)
            latencies.append(time.perf_counter() - t0)
            n += len(batch)
    window = time.perf_counter() - t_start
    ms = np.array(latencies) * 1000.0
    metrics = {
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p95": float(np.percentile(ms, 95)),
        "throughput_sps": n / window,
        "n_samples_timed": n,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"p50 {metrics['latency_ms_p50']:.3f} ms per batch of {a.batch}, {metrics['throughput_sps']:.0f} samples/s")


if __name__ == "__main__":
    main()
