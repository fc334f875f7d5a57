"""The built-in causal_lm workload and the generation measurement, with real transformers: random
architectures in-process, a saved model directory through real Snakemake, and a command that
reports its output tokens."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO, jobs_run
from snakesweep.config import MeasureSettings
from snakesweep.energy import UnavailableMeter, open_meter
from snakesweep.generation import GENERATION_KEYS, GenerationTask, command_token_metrics, run_generation
from snakesweep.workloads import builtin_metrics
from snakesweep.workloads import causal_lm as cl

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ARCH = {"arch": "llama", "hidden_size": 64, "layers": 2, "heads": 4, "kv_heads": 2, "vocab": 500}
SETTINGS = MeasureSettings(warmup_batches=1, repeats=3, min_window_s=0.2, cooldown_s=0, baseline_s=0)


def quiet(_line: str) -> None:
    return None


def task(**params) -> GenerationTask:
    p = {"model": ARCH, "prompt_tokens": 8, "new_tokens": 6, "threads": 1, "seed": 0, **params}
    return cl.generation(p, None, data_dir=Path("."), device="cpu", batch_size=1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama saved the way a user's model is: config.json + weights, no tokenizer needed."""
    config = transformers.LlamaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=300,
        intermediate_size=64, max_position_embeddings=128,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llama")
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    return path


# --------------------------------------------------------------------------- parameters (parse time)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model.arch": "llama", "model.hiden_size": 3}, "causal_lm has no parameter 'model.hiden_size' (fix: use one of model.arch"),
        ({"model.arch": "gpt9"}, "causal_lm parameter 'model.arch': Input should be 'llama', 'mistral' or 'qwen2'"),
        ({"model.arch": "llama", "model.hidden_size": 60, "model.heads": 8}, "'model.heads' (8) must divide 'model.hidden_size' (60)"),
        ({"model.arch": "llama", "model.kv_heads": 3}, "'model.kv_heads' (3) must divide 'model.heads' (4)"),
        ({"model.arch": "llama", "dtype": "float64"}, "causal_lm parameter 'dtype': Input should be 'float32', 'bfloat16' or 'float16'"),
        ({"model.arch": "llama", "beams": 2}, "causal_lm has no parameter 'beams'"),
        ({"batch_size": 2}, "causal_lm needs the parameter 'model'"),
        ({"model.arch": "llama", "model.max_positions": 16, "prompt_tokens": 10, "new_tokens": 10}, "exceed the model's 16 positions"),
    ],
)
def test_bad_parameters_are_one_line_config_errors(params, message):
    error = cl.check_params({**params, "seed": 0})
    assert error is not None and message in error and "\n" not in error


def test_a_model_path_must_be_a_model_directory(tmp_path, model_dir):
    missing = cl.check_params({"model": str(tmp_path / "nope"), "seed": 0})
    assert missing.startswith(f"causal_lm parameter 'model' is '{tmp_path / 'nope'}': no such directory (fix:")
    empty = cl.check_params({"model": str(tmp_path), "seed": 0})
    assert "is not a Hugging Face model directory: it has no config.json" in empty
    assert cl.check_params({"model": str(model_dir), "seed": 0}) is None
    # the saved config's positions bound prompt + new tokens
    assert "exceed the model's 128 positions" in cl.check_params({"model": str(model_dir), "new_tokens": 200})


def test_the_check_imports_neither_torch_nor_transformers():
    code = (
        "import sys; from snakesweep.workloads import validate_builtin_params as v; "
        "v('causal_lm', {'model.arch': 'llama', 'model.layers': 3, 'seed': 0}); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import at parse time'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_declares_the_generation_metrics():
    known = builtin_metrics("causal_lm", ["measure"])
    for key in ("ttft_ms_p50", "itl_ms_p95", "output_tokens_per_s", "energy_j_per_token", "param_count", "flops_per_token"):
        assert key in known
    assert "energy_source" not in known and "flag_short_window" not in known  # text and flags are not objectives


# --------------------------------------------------------------------------- in-process, random weights


def test_random_architecture_generates_exact_counts_and_consistent_times():
    t = task(batch_size=2, new_tokens=10)
    m = run_generation(t, "cpu", SETTINGS, log=quiet)
    assert list(m) == [*t.facts, *GENERATION_KEYS]
    calls = m["n_generate_calls_timed"]
    assert calls >= 3 and m["n_requests_timed"] == 2 * calls
    assert m["n_output_tokens_timed"] == 2 * 10 * calls  # exact: every request generated new_tokens
    assert m["output_tokens_per_s"] == pytest.approx(m["n_output_tokens_timed"] / m["window_s"])
    assert 0 < m["ttft_ms_p50"] <= m["ttft_ms_p95"] and 0 < m["itl_ms_p50"] <= m["itl_ms_p95"] <= m["itl_ms_p99"]
    # a request is its first token plus nine gaps (same instrumented calls; loose for a loaded machine,
    # tight enough that seconds-for-milliseconds or a miscounted gap fails)
    assert 0.5 < m["instrumented_request_ms_p50"] / (m["ttft_ms_p50"] + 9 * m["itl_ms_p50"]) < 2
    # the uninstrumented calls agree with the window they fill
    assert 0.5 < (2 * 10 / (m["request_ms_p50"] / 1000)) / m["output_tokens_per_s"] < 2
    assert m["decode_tokens_per_s"] > 0 and m["prefill_tokens_per_s"] > 0
    assert "uninstrumented" in m["timing_method"] and "streamer" in m["timing_method"]
    meter = open_meter("cpu")
    if isinstance(meter, UnavailableMeter):  # this box: no RAPL
        assert m["energy_j_per_token"] is None and m["energy_j_per_request"] is None
        assert m["energy_source"] == f"unavailable: {meter.reason}"
    else:
        assert m["energy_j_per_token"] == pytest.approx(m["energy_j"] / m["n_output_tokens_timed"])
    assert m["energy_j_decode_per_token"] is None and "NVML energy counter" in m["energy_split_detail"]
    assert m["peak_mem_mb"] > 50 and "ru_maxrss" in m["peak_mem_method"]
    json.dumps(m, allow_nan=False)


def test_facts_are_exact():
    from torch.utils.flop_counter import FlopCounterMode

    t = task(attn_implementation="eager", prompt_tokens=8, new_tokens=1)
    model = t.generate.model
    assert t.facts["param_count"] == model.num_parameters()
    assert t.facts["kv_cache_bytes_per_token"] == 2 * 2 * 2 * 16 * 4  # K and V x layers x kv heads x head dim x float32
    with torch.inference_mode():
        cache = model(input_ids=torch.zeros(1, 8, dtype=torch.long), use_cache=True).past_key_values
        with FlopCounterMode(display=False) as counted:  # the 9th position: one decode step
            model(input_ids=torch.zeros(1, 1, dtype=torch.long), past_key_values=cache, use_cache=True)
    assert cl.model_facts(model, 9, 1, "float32")["flops_per_token"] == counted.get_total_flops()


def test_same_seed_same_weights():
    a, b, c = (task(seed=s).generate.model for s in (0, 0, 1))
    wa, wb, wc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precisions_generate_on_this_cpu(dtype):
    t = task(dtype=dtype)  # true of torch 2.13 on x86 CPUs: both run (slowly); the facts follow the dtype
    assert t.generate(None, 3) == 3 and t.facts["kv_cache_bytes_per_token"] == 2 * 2 * 2 * 16 * 2


def test_a_dtype_generation_cannot_run_is_a_clear_error(monkeypatch):
    def refuse(self, *args, **kwargs):
        if self.dtype == torch.float16:
            raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')
        return real(self, *args, **kwargs)

    real = transformers.GenerationMixin.generate
    monkeypatch.setattr(transformers.GenerationMixin, "generate", refuse)
    with pytest.raises(ValueError) as err:
        task(dtype="float16")
    msg = str(err.value)
    assert "causal_lm parameter 'dtype' is 'float16', which torch" in msg and "not implemented for 'Half'" in msg
    assert "(fix: use dtype: float32" in msg and "\n" not in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"sees no CUDA device here \(fix: device: cpu or auto"):
        cl.generation({"model": ARCH, "seed": 0}, None, data_dir=Path("."), device="cuda", batch_size=1)


def test_a_broken_forced_length_fails_the_measurement():
    t = task()
    short = t._replace(generate=lambda streamer, n: t.generate(streamer, n) - 1)
    with pytest.raises(RuntimeError, match="produced 5 new tokens, not 6"):
        run_generation(short, "cpu", SETTINGS, log=quiet)


def test_prefill_and_decode_energy_split_on_an_energy_counter(monkeypatch):
    """The NVML counter's split, with a fake counter that charges 1 J per generated token."""
    import snakesweep.generation as gen

    counted = {"tokens": 0}

    class Counter:
        method, available, device_name, driver_version, nvml_version = "nvml_counter", True, "fake", None, None

        def begin(self):
            self.start = counted["tokens"]

        def end(self):
            j = float(counted["tokens"] - self.start)
            return SimpleNamespace(energy_j=j, source="nvml_counter", detail="fake", window_s=1.0, sample_interval_s=None, counter_zero=False)

        def close(self):
            pass

    t = task(batch_size=2, new_tokens=4)

    def generate(streamer, n):
        made = t.generate(streamer, n)
        counted["tokens"] += made
        return made

    monkeypatch.setattr(gen, "open_meter", lambda *a, **k: Counter())
    m = run_generation(t._replace(generate=generate), "cpu", SETTINGS, log=quiet)
    assert m["energy_j_per_token"] == 1.0 and m["energy_j_per_request"] == 4.0
    assert m["energy_j_prefill_per_request"] == 1.0 and m["energy_j_decode_per_token"] == 1.0
    assert "one-token calls" in m["energy_split_detail"]


# --------------------------------------------------------------------------- commands that report tokens


def test_token_metrics_from_a_commands_window():
    m = command_token_metrics({"output_tokens": 200, "requests": 4}, 2.0, 10.0, 6.0)
    assert m["output_tokens_per_s"] == 100.0 and m["energy_j_per_token"] == 0.05
    assert m["energy_j_per_token_net"] == 0.03 and m["energy_j_per_request"] == 2.5
    assert "start-up" in m["token_metrics_note"]
    assert command_token_metrics({"accuracy": 0.9}, 2.0, 10.0, None) == {}
    assert command_token_metrics({"output_tokens": 50}, 1.0, None, None)["energy_j_per_token"] is None


def test_a_command_reporting_tokens_gets_tokens_per_s(tmp_path, monkeypatch):
    from snakesweep.config import CommandWorkload
    from snakesweep.workloads import command as cw

    monkeypatch.chdir(tmp_path)
    script = tmp_path / "engine.py"
    script.write_text(textwrap.dedent("""\
        import time
        time.sleep(0.3)                     # a model load and 96 tokens, as a user's engine prints them
        print("output_tokens: 96")
        print("requests: 4")
    """))
    w = CommandWorkload.model_validate({"command": {"measure": ["python", str(script)]}, "metrics": "stdout"})
    m = cw.run_measure(w, {"seed": 0}, out_dir=tmp_path / "m", train_dir=None, data_dir=tmp_path, trial="t1",
                       device="cpu", settings=MeasureSettings(min_window_s=0, cooldown_s=0), log=quiet)
    assert m["output_tokens"] == 96 and m["window_includes_startup"] is True
    assert m["output_tokens_per_s"] == pytest.approx(96 / m["window_s"]) and m["output_tokens_per_s"] < 96 / 0.3
    if m["energy_j"] is None:
        assert m["energy_j_per_token"] is None and m["energy_source"].startswith("unavailable: ")
    else:
        assert m["energy_j_per_token"] == pytest.approx(m["energy_j"] / 96)
    assert "start-up" in m["token_metrics_note"]


# --------------------------------------------------------------------------- through real Snakemake


def llm_config(model: object, **grid) -> dict:
    return {
        "sweep": {
            "name": "llm", "workload": "causal_lm", "steps": ["measure"],
            "fixed": {"model": model, "prompt_tokens": 8, "new_tokens": 8, "threads": 1},
            "grid": grid or {"batch_size": [1]},
        },
        "measure": {"warmup_batches": 1, "repeats": 3, "min_window_s": 0.3},
        "device": "cpu",
        "report": {
            "objective": {"metric": "output_tokens_per_s", "direction": "max"},
            "extra_objectives": [{"metric": "itl_ms_p95", "direction": "min"}],
        },
    }


@pytest.mark.e2e
def test_a_saved_model_swept_over_batch_size_end_to_end(workdir, model_dir):
    # (the random-architecture form runs in-process above: each Snakemake job here costs ~15 s of imports)
    path = workdir.write_config(llm_config(str(model_dir), batch_size=[1, 16]))
    proc = workdir.snakemake("--cores", "2", "--configfile", str(path), check=True)
    assert jobs_run(proc, "train") == 0
    rows = workdir.read_csv("results/llm/summary.csv")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), rows
    saved = {int(r["batch_size"]): r for r in rows if r["model"] == str(model_dir)}
    assert sorted(saved) == [1, 16]
    for key in ("ttft_ms_p50", "itl_ms_p95", "request_ms_p50", "output_tokens_per_s", "n_output_tokens_timed"):
        assert all(float(r[key]) > 0 for r in rows), key
    # 16 requests per call on a tiny model: far more tokens/s than one (seen: ~10x on 2 loaded cores)
    assert float(saved[16]["output_tokens_per_s"]) > 2 * float(saved[1]["output_tokens_per_s"])
    records = [json.loads(p.read_text()) for p in (workdir.path / "results/llm/trials").glob("*/measure.json")]
    assert len(records) == 2
    for record in records:
        m = record["metrics"]
        b = m["requests_per_call"]
        assert m["n_output_tokens_timed"] == m["n_generate_calls_timed"] * b * 8
        assert m["param_count"] > 0 and m["flops_per_token"] > 0


def test_cycles_aggregate_like_any_measurement():
    from snakesweep.measure import aggregate_cycles

    t = task()
    cycles = [run_generation(t, "cpu", SETTINGS, log=quiet) for _ in range(2)]
    m = aggregate_cycles(cycles)
    assert m["cycles"] == 2 and m["param_count"] == t.facts["param_count"]  # facts kept, not averaged
    assert m["output_tokens_per_s"] == pytest.approx(sum(c["output_tokens_per_s"] for c in cycles) / 2)
    assert m["peak_mem_mb"] == max(c["peak_mem_mb"] for c in cycles)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["missing", "no-config"])
def test_a_model_path_that_is_not_a_model_is_a_config_error_before_any_job(workdir, kind):
    target = workdir.path / "models" / "tiny"
    if kind == "no-config":
        target.mkdir(parents=True)
        (target / "weights.bin").write_bytes(b"")
    path = workdir.write_config(llm_config("models/tiny"))
    proc = workdir.snakemake("-n", "--configfile", str(path))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    err = lines[lines.index("snakesweep: invalid sweep configuration") :]
    assert len(err) == 2, proc.stderr  # the header and one line
    assert "parameter 'model' is 'models/tiny'" in err[1] and "Traceback" not in proc.stderr
    assert ("no such directory" if kind == "missing" else "it has no config.json") in err[1]
    assert not (workdir.path / "results/llm/trials").exists()
