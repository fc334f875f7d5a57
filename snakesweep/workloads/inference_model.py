"""Built-in measure-only workload: a torch model with random, seeded weights, for inference studies.

No training, no data, no download: the trial's parameters describe the model (an MLP, or a stack
of transformer encoder blocks) and how it runs (batch size, dtype, threads, device); the measure
step times it. Use it with ``sweep.steps: [measure]``.

- Same parameters and seed -> the same weights and inputs, on every device: the model is built in
  float32 on the CPU under its own RNG (the process's global RNG is left alone), then cast and moved.
- The input is one batch, built on the device before ``inference`` returns, so the timed window
  holds the forward pass only (no host->device copy, no random-number generation). A "pass" of
  the measurement is that one batch: ``measure.repeats`` is the minimum number of timed batches.
- Every call runs under ``torch.inference_mode()`` with the model in eval mode (for the transformer
  that lets PyTorch take its fused encoder fast path, as a deployed model would).
- ``dtype`` is checked with a tiny run of the model's op kinds on the device before anything is
  built: an unsupported combination fails with a message naming the parameter and the fix.
- ``threads`` sets ``torch.set_num_threads`` in the measuring process (one process per step); it
  is every workload's ``threads`` (snakesweep/threads.py): the job's CPUs too. Default 1.

torch is imported inside the functions: Snakemake imports this module at parse time to check
parameter names, and that must not cost a torch import.

Facts (not measurements) about each trial come with the inference function as ``fn.facts``:
parameter count, weight size, exact matrix-product FLOPs per sample, samples per batch and the
torch thread count in effect; ``describe(params)`` gives the static ones without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from snakesweep.measure import CI_KEYS, METRIC_KEYS
from snakesweep.threads import set_model_threads

NAME = "inference_model"
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
MLP_ONLY = ("in_features", "out_features")
TRANSFORMER_ONLY = ("heads", "seq_len", "ffn_mult")
FACT_KEYS = ("param_count", "weight_mb", "matmul_flops_per_sample", "samples_per_batch", "torch_threads")
_TEXT_KEYS = ("energy_source", "energy_method_detail", "device_name", "driver_version", "nvml_version")
# The numeric metrics of the only step there is (lets the workflow reject an objective nothing
# produces). With measure.cycles > 1 the CI keys and `cycles` come from aggregating the cycles.
# No train/evaluate: a sweep selecting those steps fails on the missing function.
METRICS: dict[str, list[str]] = {
    "measure": [
        *(k for k in METRIC_KEYS if k not in _TEXT_KEYS and not k.startswith("flag_")),
        *(f"{k}_{end}" for k in CI_KEYS for end in ("ci_low", "ci_high")),
        "cycles",
        *FACT_KEYS,
    ]
}


class InferenceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Literal["mlp", "transformer"] = "mlp"
    width: int = Field(default=512, ge=1)  # MLP hidden width; transformer d_model
    depth: int = Field(default=4, ge=1)  # MLP hidden layers; transformer encoder blocks
    in_features: int = Field(default=784, ge=1)  # MLP only
    out_features: int = Field(default=10, ge=1)  # MLP only
    heads: int = Field(default=8, ge=1)  # transformer only
    seq_len: int = Field(default=128, ge=1)  # transformer only: tokens per sample
    ffn_mult: int = Field(default=4, ge=1)  # transformer only: feed-forward width = ffn_mult * width
    batch_size: int | None = Field(default=None, ge=1)  # overrides measure.batch_size
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    threads: int | None = Field(default=None, ge=1)  # torch.set_num_threads; default: the job's (1, threads.py)
    device: Literal["auto", "cpu", "cuda"] | None = None  # overrides the sweep's device:
    seed: int = 0

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools(cls, v: Any) -> Any:
        if isinstance(v, bool):  # YAML `yes`/`true` would otherwise pass as the integer 1
            raise ValueError("a number or name is needed, not a boolean")
        return v


def _cross_check(p: InferenceParams) -> str | None:
    """Rules between parameters, as a one-line message with the fix (None when fine)."""
    given = p.model_fields_set
    other = "transformer" if p.model == "mlp" else "mlp"
    for key in TRANSFORMER_ONLY if p.model == "mlp" else MLP_ONLY:
        if key in given:
            return (
                f"{NAME} parameter '{key}' applies to model: {other} only, and this trial has model: "
                f"{p.model} (fix: set '{key}' only in trials with model: {other}, e.g. in sweep.experiments, "
                "or run the two models as two sweeps)"
            )
    if p.model == "transformer" and p.width % p.heads:
        return (
            f"{NAME} parameter 'heads' ({p.heads}) must divide 'width' ({p.width}, the transformer's "
            f"d_model) (fix: choose heads among the divisors of width, e.g. width: {p.heads * 64} for heads: {p.heads})"
        )
    return None


def check_params(params: dict[str, Any]) -> str | None:
    """Parse time: a one-line message naming the parameter and the fix, or None. No torch."""
    try:
        p = InferenceParams.model_validate(params)
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(x) for x in e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(InferenceParams.model_fields)
            return f"{NAME} has no parameter '{key}' (fix: use one of {allowed})"
        return f"{NAME} parameter '{key}': {e['msg']} (fix: correct the value in sweep.grid/fixed/experiments)"
    return _cross_check(p)


def _parse(params: dict[str, Any]) -> InferenceParams:
    error = check_params(params)
    if error:
        raise ValueError(error)
    return InferenceParams.model_validate(params)


def _ffn(p: InferenceParams) -> int:
    return p.ffn_mult * p.width


def _mlp_dims(p: InferenceParams) -> list[tuple[int, int]]:
    dims = [p.in_features] + [p.width] * p.depth + [p.out_features]
    return list(zip(dims[:-1], dims[1:]))


def describe(params: dict[str, Any]) -> dict[str, Any]:
    """Exact facts of the trial's model, without torch.

    ``matmul_flops_per_sample`` counts the matrix products only, 2 FLOPs per multiply-add: linear
    layers, and for the transformer the attention score (Q K^T) and weighting (A V) products.
    Element-wise work (bias, activation, softmax, layer norm) is not in it. The tests check it
    against torch.utils.flop_counter and ``param_count`` against the built model.
    """
    p = _parse(params)
    if p.model == "mlp":
        dims = _mlp_dims(p)
        param_count = sum(i * o + o for i, o in dims)
        flops = sum(2 * i * o for i, o in dims)
    else:
        d, f, n = p.width, _ffn(p), p.seq_len
        # in_proj (3d x d + 3d), out_proj (d x d + d), linear1 (f x d + f), linear2 (d x f + d), 2 layer norms (2 x 2d)
        param_count = p.depth * (4 * d * d + 2 * d * f + 9 * d + f)
        # per block and sample: QKV 6nd^2, out 2nd^2, scores 2n^2d, weighting 2n^2d, FFN 4ndf
        flops = p.depth * (8 * n * d * d + 4 * n * n * d + 4 * n * d * f)
    return {
        "param_count": param_count,
        "weight_mb": param_count * DTYPE_BYTES[p.dtype] / 2**20,
        "matmul_flops_per_sample": flops,
    }


def _torch_device(torch: Any, p: InferenceParams, device: str):
    """The device the step gave us, checked against the trial's `device` parameter and torch."""
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"{NAME}: device must be 'cpu', 'cuda' or 'cuda:N' (resolve 'auto' first), not {device!r}")
    family = "cuda" if device.startswith("cuda") else "cpu"
    if p.device in ("cpu", "cuda") and p.device != family:
        raise RuntimeError(
            f"{NAME} parameter 'device' is {p.device!r}, but the measure step runs on {device!r}: the "
            "step did not apply the trial's device, so the record would name the wrong one "
            "(fix: a snakesweep whose measure step honours params['device'], or set the sweep's device:)"
        )
    if family == "cuda" and not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise RuntimeError(
            f"{NAME}: device {device!r} (parameter 'device' or the sweep's device:) but torch sees no "
            f"CUDA device here (torch {torch.__version__}, {built}) (fix: device: cpu or auto, or run "
            "this trial on a machine with a GPU)"
        )
    return torch.device(device)


def _probe_dtype(torch: Any, dtype_name: str, dev: Any, model: str) -> None:
    """Run the model's op kinds once, tiny, in ``dtype_name`` on ``dev``; a clear error if they fail."""
    import torch.nn.functional as F

    fix = "use dtype: float32, or measure this dtype on a device that supports it"
    if dev.type == "cuda" and dtype_name == "bfloat16":
        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch: no emulation argument
            native = torch.cuda.is_bf16_supported()
        if not native:
            cap = ".".join(map(str, torch.cuda.get_device_capability(dev)))
            raise ValueError(
                f"{NAME} parameter 'dtype' is 'bfloat16', which {torch.cuda.get_device_name(dev)} (compute "
                f"capability {cap}) runs only emulated, so its timings would not describe bfloat16 "
                "(fix: use dtype: float16 or float32 on this GPU, or a GPU of compute capability >= 8.0)"
            )
    try:
        dtype = getattr(torch, dtype_name)
        x = torch.ones(2, 4, 8, dtype=dtype, device=dev)
        w = torch.ones(8, 8, dtype=dtype, device=dev)
        y = F.linear(x, w, torch.zeros(8, dtype=dtype, device=dev))
        if model == "transformer":
            y = F.layer_norm(F.gelu(y), (8,))
            y = F.scaled_dot_product_attention(y.unsqueeze(1), y.unsqueeze(1), y.unsqueeze(1))
        else:
            y = F.relu(y)
        y.float().sum().item()  # forces the work (and any asynchronous CUDA error) now
    except (RuntimeError, NotImplementedError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"{NAME} parameter 'dtype' is {dtype_name!r}, which torch {torch.__version__} cannot run on "
            f"{dev} with model: {model} ({first}) (fix: {fix})"
        ) from exc


def _build(torch: Any, p: InferenceParams):
    """The model in float32 on the CPU, weights from the trial's seed only."""
    import torch.nn as nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.seed)
        if p.model == "mlp":
            layers: list[nn.Module] = []
            dims = _mlp_dims(p)
            for i, (n_in, n_out) in enumerate(dims):
                lin = nn.Linear(n_in, n_out)
                # He initialisation keeps activations O(1) through any depth, so half precision
                # neither overflows nor slows down on subnormal numbers
                nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
                nn.init.zeros_(lin.bias)
                layers.append(lin)
                if i < len(dims) - 1:
                    layers.append(nn.ReLU())
            model = nn.Sequential(*layers)
        else:
            block = nn.TransformerEncoderLayer(
                p.width, p.heads, _ffn(p), dropout=0.0, activation="gelu", batch_first=True
            )
            model = nn.TransformerEncoder(block, p.depth, enable_nested_tensor=False)
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()


def _input_shape(p: InferenceParams, batch_size: int) -> tuple[int, ...]:
    return (batch_size, p.in_features) if p.model == "mlp" else (batch_size, p.seq_len, p.width)


def inference(
    params: dict[str, Any], train_dir: Path | None, *, data_dir: Path, device: str, batch_size: int
):
    """(fn, [batch], [samples]) for the measure step; ``train_dir`` and ``data_dir`` are unused.

    ``batch_size`` is measure.batch_size; the trial's ``batch_size`` parameter overrides it. The one
    input batch lives on ``device`` already. ``fn.facts`` holds the trial's facts, ``fn.model`` the model.
    """
    import torch

    p = _parse(params)
    dev = _torch_device(torch, p, device)
    if p.threads is not None:
        set_model_threads(torch, p.threads, NAME)
    _probe_dtype(torch, p.dtype, dev, p.model)
    dtype = getattr(torch, p.dtype)
    n = p.batch_size or batch_size

    model = _build(torch, p).to(device=dev, dtype=dtype)
    gen = torch.Generator().manual_seed(p.seed)
    batch = torch.randn(_input_shape(p, n), generator=gen).to(device=dev, dtype=dtype)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)

    def run(x):
        with torch.inference_mode():
            return model(x)

    run.model = model  # type: ignore[attr-defined]
    run.facts = {  # type: ignore[attr-defined]
        **describe(params),
        "samples_per_batch": n,
        "torch_threads": torch.get_num_threads(),
    }
    return run, [batch], [n]

