"""Output tokens/s of the causal_lm measurement vs a hand-written generate() loop (issue 18; target:
ours within 5% of the bare loop).

One process, one model: a tiny random-weight Llama built by snakesweep.workloads.causal_lm (CPU,
one thread, batch 4, prompt 32, 24 new tokens: the issue's settings). Rounds alternate
(ours, bare, ours, bare, ...):
- ours: snakesweep.generation.run_generation over the task (warmup, a timed window of
  uninstrumented calls, then the separate instrumented calls); its `output_tokens_per_s`, and the
  CPU time (time.process_time) of the window's calls;
- bare: the same model.generate(...) with the same inputs and arguments, called as many times as
  ours timed, between two perf_counter / process_time reads.
Each figure is the best round (highest tokens/s, least CPU per token): the least disturbed by
neighbours on a shared machine. Also printed: the instrumented calls' request latency against the
uninstrumented one (what the per-token streamer costs, kept out of the tokens/s figure).

    .venv/bin/python benchmarks/bench_llm.py [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_line, verdict  # noqa: E402

TARGET = 1.05  # bare tokens/s over ours
PARAMS = {
    "model": {"arch": "llama", "hidden_size": 64, "layers": 2, "heads": 4, "kv_heads": 2, "vocab": 1000},
    "batch_size": 4, "prompt_tokens": 32, "new_tokens": 24, "threads": 1, "seed": 0,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-window-s", type=float, default=2.0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    import torch

    from snakesweep.config import MeasureSettings
    from snakesweep.generation import run_generation
    from snakesweep.workloads import causal_lm

    settings = MeasureSettings(warmup_batches=3, repeats=10, min_window_s=a.min_window_s, cooldown_s=0, baseline_s=0)
    task = causal_lm.generation(PARAMS, None, data_dir=Path("."), device="cpu", batch_size=1)
    model = task.generate.model
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 1000, (PARAMS["batch_size"], PARAMS["prompt_tokens"]), generator=gen)
    n = PARAMS["new_tokens"]

    cpu_calls: list[tuple[bool, float]] = []  # (instrumented?, process_time) of each call ours made

    def timed_generate(streamer, new_tokens):
        c0 = time.process_time()
        made = task.generate(streamer, new_tokens)
        cpu_calls.append((streamer is not None, time.process_time() - c0))
        return made

    ours_task = task._replace(generate=timed_generate)
    ours, bare, hooks = [], [], []
    for r in range(a.rounds):
        cpu_calls.clear()
        m = run_generation(ours_task, "cpu", settings, log=lambda _s: None)
        calls = m["n_generate_calls_timed"]
        window_cpu = sum(c for instr, c in cpu_calls[settings.warmup_batches :] if not instr)
        ours.append((m["output_tokens_per_s"], window_cpu / m["n_output_tokens_timed"]))
        hooks.append(m["instrumented_request_ms_p50"] / m["request_ms_p50"])

        w0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            for _ in range(calls):
                out = model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                    do_sample=False, eos_token_id=None, pad_token_id=0,
                )
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        tokens = calls * (out.shape[1] - ids.shape[1]) * out.shape[0]
        bare.append((tokens / wall, cpu / tokens))
        print(
            f"round {r + 1}: ours {ours[-1][0]:.0f} tok/s ({ours[-1][1] * 1e6:.1f} us cpu/token), "
            f"bare {bare[-1][0]:.0f} tok/s ({bare[-1][1] * 1e6:.1f} us cpu/token), {calls} calls"
        )

    ours_tps, bare_tps = max(t for t, _ in ours), max(t for t, _ in bare)
    ours_cpu, bare_cpu = min(c for _, c in ours), min(c for _, c in bare)
    wall_ratio, cpu_ratio = bare_tps / ours_tps, ours_cpu / bare_cpu
    print(machine_line())
    print(f"settings: {json.dumps(PARAMS)}, torch {torch.__version__}, min window {a.min_window_s} s")
    print(f"output tokens/s (best of {a.rounds}): ours {ours_tps:.0f}, bare generate() loop {bare_tps:.0f}")
    print(f"wall ratio bare/ours {wall_ratio:.3f} (target <= {TARGET}): {verdict(wall_ratio, TARGET)}")
    print(f"cpu per token: ours {ours_cpu * 1e6:.1f} us, bare {bare_cpu * 1e6:.1f} us, ratio ours/bare {cpu_ratio:.3f}: {verdict(cpu_ratio, TARGET)}")
    print(f"instrumented / uninstrumented request latency (p50, min over rounds): {min(hooks):.3f}")
    if a.json:
        a.json.write_text(json.dumps({
            "ours_tokens_per_s": ours_tps, "bare_tokens_per_s": bare_tps, "wall_ratio": wall_ratio,
            "ours_cpu_s_per_token": ours_cpu, "bare_cpu_s_per_token": bare_cpu, "cpu_ratio": cpu_ratio,
            "instrumented_over_uninstrumented": min(hooks), "rounds": [{"ours": o, "bare": b} for o, b in zip(ours, bare)],
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
