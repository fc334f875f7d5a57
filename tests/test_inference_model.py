"""The measure-only built-in `inference_model`, for real: torch on the CPU (and the GPU where there is one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import jobs_run
from snakesweep.config import ConfigError, MeasureSettings
from snakesweep.measure import run_measurement
from snakesweep.workloads import inference_model as im
from snakesweep.workloads import load_workload, validate_builtin_params

REPO = Path(__file__).resolve().parents[1]
MLP = {"model": "mlp", "width": 32, "depth": 3, "in_features": 20, "out_features": 5, "seed": 0}
TF = {"model": "transformer", "width": 32, "depth": 2, "heads": 4, "seq_len": 6, "ffn_mult": 2, "seed": 0}
HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def keep_threads():
    """inference() sets torch's thread count for its process; give pytest's back after each test."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def infer(params, device="cpu", batch_size=4):
    return im.inference(params, None, data_dir=Path("unused"), device=device, batch_size=batch_size)


# --------------------------------------------------------------------------- parse time


@pytest.mark.parametrize(
    "params, message",
    [
        ({"widht": 64}, "inference_model has no parameter 'widht' (fix: use one of model, width"),
        ({"dtype": "fp16"}, "parameter 'dtype': Input should be 'float32', 'bfloat16' or 'float16'"),
        ({"model": "cnn"}, "parameter 'model'"),
        ({"width": 0}, "parameter 'width'"),
        ({"threads": 0}, "parameter 'threads'"),
        ({"threads": True}, "parameter 'threads': Value error, a number or name is needed, not a boolean"),
        ({"batch_size": 2.5}, "parameter 'batch_size'"),
        ({"device": "tpu"}, "parameter 'device'"),
        ({"model": "transformer", "width": 100, "heads": 8}, "'heads' (8) must divide 'width' (100"),
        ({"model": "mlp", "heads": 4}, "'heads' applies to model: transformer only, and this trial has model: mlp"),
        ({"model": "transformer", "in_features": 4}, "'in_features' applies to model: mlp only"),
    ],
)
def test_bad_parameters_are_one_line_config_errors(params, message):
    error = im.check_params({**params, "seed": 0})
    assert error is not None and message in error and "fix:" in error and "\n" not in error
    with pytest.raises(ConfigError, match="^my.yaml: inference_model"):
        validate_builtin_params("inference_model", {**params, "seed": 0}, "my.yaml")


def test_good_parameters_pass_and_the_check_imports_no_torch():
    assert im.check_params({**MLP, "dtype": "bfloat16", "threads": 2, "batch_size": 8, "device": "auto"}) is None
    assert im.check_params({**TF, "width": 256.0}) is None  # a lin range gives floats; whole ones are fine
    code = (
        "import sys; from snakesweep.workloads import validate_builtin_params as v; "
        "v('inference_model', {'model': 'transformer', 'width': 64, 'heads': 4, 'seed': 0}); "
        "assert 'torch' not in sys.modules, 'parse-time check imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_declares_measure_metrics_only():
    assert set(im.METRICS) == {"measure"}
    measure = im.METRICS["measure"]
    for key in ("throughput_sps", "latency_ms_p95", "energy_j_per_sample", "throughput_sps_ci_low", *im.FACT_KEYS):
        assert key in measure
    assert "energy_source" not in measure and "eval_accuracy" not in measure
    module = load_workload("inference_model", ["measure"])
    assert not hasattr(module, "train") and not hasattr(module, "evaluate")


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("params, shape", [(MLP, (4, 5)), (TF, (4, 6, 32))])
def test_shapes_and_one_batch_already_on_the_device(params, shape):
    fn, batches, sizes = infer(params)
    assert sizes == [4] and len(batches) == 1
    x = batches[0]
    assert x.shape == ((4, 20) if params["model"] == "mlp" else (4, 6, 32)) and x.device.type == "cpu"
    y = fn(x)
    assert y.shape == shape and not y.requires_grad and torch.isfinite(y).all()
    assert y.is_inference()  # ran under torch.inference_mode()


@pytest.mark.parametrize("params", [MLP, TF])
def test_same_seed_same_weights_and_inputs_other_seed_other(params):
    fa, [xa], _ = infer(params)
    fb, [xb], _ = infer(params)
    fc, [xc], _ = infer({**params, "seed": 1})
    sa, sb, sc = (f.model.state_dict() for f in (fa, fb, fc))
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and torch.equal(xa, xb)
    assert torch.equal(fa(xa), fb(xb))
    assert not torch.equal(sa[next(iter(sa))], sc[next(iter(sc))]) and not torch.equal(xa, xc)


def test_building_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    infer(MLP)
    assert torch.equal(torch.rand(3), expected)


def test_batch_size_parameter_overrides_measure_batch_size():
    _, [x], sizes = infer(MLP, batch_size=16)
    assert sizes == [16] and x.shape[0] == 16
    fn, [x], sizes = infer({**MLP, "batch_size": 3}, batch_size=16)
    assert sizes == [3] and x.shape[0] == 3 and fn.facts["samples_per_batch"] == 3


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("params", [MLP, TF])
def test_half_precisions_run_on_cpu(params, dtype):
    fn, [x], _ = infer({**params, "dtype": dtype})
    y = fn(x)
    assert x.dtype == y.dtype == getattr(torch, dtype) and torch.isfinite(y).all()
    assert all(p.dtype == getattr(torch, dtype) for p in fn.model.parameters())


def test_deep_mlp_stays_finite_in_half_precision():
    fn, [x], _ = infer({**MLP, "width": 256, "depth": 24, "dtype": "float16"})
    y = fn(x).float()
    assert torch.isfinite(y).all() and 1e-3 < y.abs().mean() < 1e3  # neither overflow nor vanishing


def test_a_dtype_the_device_cannot_run_is_a_clear_error():
    # the three dtypes of the parameter all run on this CPU; float8 exercises the same real failure path
    with pytest.raises(ValueError) as err:
        im._probe_dtype(torch, "float8_e4m3fn", torch.device("cpu"), "mlp")
    msg = str(err.value)
    assert "parameter 'dtype' is 'float8_e4m3fn'" in msg and "not implemented" in msg
    assert "(fix: use dtype: float32" in msg and "\n" not in msg


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    expected = r"device 'cuda' .* torch sees no CUDA device here .*\(fix: device: cpu or auto"
    with pytest.raises(RuntimeError, match=expected):
        infer({**MLP, "device": "cuda"}, device="cuda")


def test_a_device_parameter_the_step_did_not_apply_is_refused():
    other = "cpu" if HAS_CUDA else "cuda"
    ran = "cuda" if HAS_CUDA else "cpu"
    with pytest.raises(RuntimeError, match=f"parameter 'device' is '{other}', but the measure step runs on '{ran}'"):
        infer({**MLP, "device": other}, device=ran)
    infer({**MLP, "device": "auto"}, device=ran)  # auto: whatever the step resolved


@pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_on_the_gpu_same_weights_as_on_the_cpu(dtype):
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bfloat16 on this GPU")
    params = {**TF, "dtype": dtype, "device": "cuda"}
    fg, [xg], _ = infer(params, device="cuda")
    fc, [xc], _ = infer({**TF, "dtype": dtype})
    assert xg.device.type == "cuda" and fg(xg).device.type == "cuda"
    sg, sc = fg.model.state_dict(), fc.model.state_dict()
    assert all(torch.equal(sg[k].cpu(), sc[k]) for k in sc) and torch.equal(xg.cpu(), xc)


def test_threads_are_set_for_the_measured_calls():
    seen = []
    fn, [x], _ = infer({**MLP, "threads": 1})
    fn.model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    fn(x)
    assert seen == [1] and fn.facts["torch_threads"] == 1
    usable = len(__import__("os").sched_getaffinity(0))
    with pytest.raises(ValueError, match=f"'threads' is {usable + 1}, but this process may use {usable} CPU"):
        infer({**MLP, "threads": usable + 1})


# --------------------------------------------------------------------------- facts


@pytest.mark.parametrize("params", [MLP, TF, {**TF, "heads": 1, "seq_len": 1, "depth": 1}])
def test_param_count_and_flops_are_exact(params):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    fn, [x], _ = infer(params, batch_size=3)
    facts = fn.facts
    assert facts["param_count"] == sum(p.numel() for p in fn.model.parameters())
    assert facts["weight_mb"] == facts["param_count"] * 4 / 2**20
    # count with the reference implementation: train mode (dropout is 0) avoids the fused encoder
    # kernel and the math attention backend exposes Q K^T and A V as matrix products
    fn.model.train()
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter, torch.no_grad():
        fn.model(x)
    assert counter.get_total_flops() == 3 * facts["matmul_flops_per_sample"]
    assert im.describe(params) == {k: facts[k] for k in ("param_count", "weight_mb", "matmul_flops_per_sample")}
    assert im.describe({**params, "dtype": "bfloat16"})["weight_mb"] == facts["weight_mb"] / 2


# --------------------------------------------------------------------------- a real measurement


def test_a_real_measurement_over_it():
    fn, batches, sizes = infer({**TF, "threads": 1, "dtype": "bfloat16"}, batch_size=2)
    settings = MeasureSettings(batch_size=2, warmup_batches=2, repeats=5, min_window_s=0.2, baseline_s=0.1)
    lines: list[str] = []
    m = run_measurement(fn, batches, sizes, "cpu", settings, log=lines.append)
    assert 0 < m["latency_ms_p50"] <= m["latency_ms_p95"] <= m["latency_ms_p99"]
    assert m["throughput_sps"] > 0 and m["window_s"] >= 0.2 and m["n_batches_timed"] >= 5
    assert m["n_samples_timed"] == 2 * m["n_batches_timed"] and m["peak_mem_mb"] > 0
    assert m["flag_short_window"] is False
    if m["energy_j"] is None:  # no readable source here: null, with the reason, never a number
        assert m["energy_source"].startswith("unavailable: ") and len(m["energy_source"]) > len("unavailable: ")
        assert m["energy_j_per_sample"] is None and m["energy_j_per_sample_net"] is None
        assert "baseline: skipped, no energy source" in lines
    else:
        assert m["energy_source"] == "rapl" and m["energy_j"] >= 0
        assert m["energy_j_per_sample"] == m["energy_j"] / m["n_samples_timed"]


# --------------------------------------------------------------------------- through real Snakemake


@pytest.mark.e2e
def test_measure_only_sweep_end_to_end(workdir):
    cfg = {
        "sweep": {
            "name": "inference",
            "workload": "inference_model",
            "steps": ["measure"],
            "fixed": {"model": "mlp", "width": 16, "depth": 1, "in_features": 8, "threads": 1},
            "grid": {"dtype": ["float32", "bfloat16"], "batch_size": [2]},
        },
        "measure": {"warmup_batches": 1, "repeats": 3, "min_window_s": 0},
        "device": "auto",
        "report": {
            "objective": {"metric": "throughput_sps", "direction": "max"},
            "extra_objectives": [{"metric": "latency_ms_p95", "direction": "min"}],
        },
    }
    path = workdir.write_config(cfg)
    proc = workdir.snakemake("--cores", "2", "--configfile", str(path), check=True)
    assert jobs_run(proc, "train") == 0 and jobs_run(proc, "eval") == 0
    rows = workdir.read_csv("results/inference/summary.csv")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), rows
    columns = set(rows[0])
    assert not {c for c in columns if c.startswith(("train_", "eval_"))}, sorted(columns)
    assert {"throughput_sps", "latency_ms_p95", "dtype", "batch_size"} <= columns
    assert all(float(r["throughput_sps"]) > 0 for r in rows)
    assert not list((workdir.path / "results/inference/trials").glob("*/train.json"))
    for record in (workdir.path / "results/inference/trials").glob("*/measure.json"):
        r = json.loads(record.read_text())
        assert r["status"] == "ok" and r["device"] in ("cpu", "cuda")
        m = r["metrics"]
        assert m["n_samples_timed"] == 2 * m["n_batches_timed"]
        assert m["energy_j"] is not None or m["energy_source"].startswith("unavailable: ")
