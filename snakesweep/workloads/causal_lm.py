"""Built-in measure-only workload: text generation with a Hugging Face causal language model.

``model:`` is a local model directory (``save_pretrained`` output, loaded with
``local_files_only=True``: never a download) or an architecture to build with random, seeded
weights, spelt as nested keys (``model: {arch: llama, hidden_size: 64, layers: 2, heads: 4,
kv_heads: 2, vocab: 1000}``; sweep one with dotted grid axes such as ``model.layers: [2, 4]``).
Every request gets ``prompt_tokens`` random seeded token ids and generates exactly ``new_tokens``
(min == max new tokens, EOS cleared, greedy). ``generation()`` hands the measure step a
snakesweep.generation.GenerationTask; ``inference()`` is the plain batch-function form.

transformers and torch are imported inside the functions: Snakemake imports this module at parse
time to check parameters (the model directory's config.json included), which must stay cheap.
Install with ``pip install -e '.[llm]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from snakesweep.generation import GENERATION_KEYS, TEXT_KEYS, GenerationTask
from snakesweep.params import nest
from snakesweep.threads import set_model_threads

NAME = "causal_lm"
ARCHS = ("llama", "mistral", "qwen2")  # configs that share llama's field names
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
FACT_KEYS = ("param_count", "kv_cache_bytes_per_token", "flops_per_token", "requests_per_call", "torch_threads")
MODEL_FIX = (
    "fix: a local Hugging Face model directory (what save_pretrained writes), relative to the directory "
    "you run snakemake in, or an architecture such as model: {arch: llama, hidden_size: 64, layers: 2, heads: 4}"
)
# The numeric metrics of the measure step (lets the workflow reject an objective nothing produces).
METRICS: dict[str, list[str]] = {"measure": [*(k for k in GENERATION_KEYS if k not in TEXT_KEYS and not k.startswith("flag_")), "cycles", *FACT_KEYS]}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools(cls, v: Any) -> Any:
        if isinstance(v, bool):  # YAML `yes`/`true` would otherwise pass as the integer 1
            raise ValueError("a number or name is needed, not a boolean")
        return v


class ArchSpec(_Strict):
    """A model to build with random weights: the transformers config fields, in short names."""

    arch: Literal["llama", "mistral", "qwen2"] = "llama"
    hidden_size: int = Field(default=64, ge=1)
    layers: int = Field(default=2, ge=1)
    heads: int = Field(default=4, ge=1)
    kv_heads: int | None = Field(default=None, ge=1)  # grouped-query attention; default: heads
    vocab: int = Field(default=1000, ge=2)
    intermediate_size: int | None = Field(default=None, ge=1)  # default: 4 x hidden_size
    max_positions: int = Field(default=2048, ge=2)


class CausalLMParams(_Strict):
    model: Any = None  # a directory (str) or an ArchSpec mapping; checked by check_params
    batch_size: int | None = Field(default=None, ge=1)  # requests per generate() call; overrides measure.batch_size
    prompt_tokens: int = Field(default=32, ge=1)
    new_tokens: int = Field(default=32, ge=1)  # forced: every request generates exactly this many
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"
    threads: int | None = Field(default=None, ge=1)  # torch.set_num_threads; default: torch's own
    device: Literal["auto", "cpu", "cuda"] | None = None  # overrides the sweep's device:
    seed: int = 0


def _pydantic_message(err: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    e = err.errors()[0]
    key = prefix + ".".join(str(x) for x in e["loc"])
    if e["type"] == "extra_forbidden":
        return f"{NAME} has no parameter '{key}' (fix: use one of {', '.join(prefix + k for k in model.model_fields)})"
    return f"{NAME} parameter '{key}': {e['msg']} (fix: correct the value in sweep.grid/fixed/experiments)"


def _model_dir_error(path: str) -> str | None:
    d = Path(path).expanduser()
    if not d.is_dir():
        what = "a file, not a directory" if d.exists() else "no such directory"
        return f"{NAME} parameter 'model' is {path!r}: {what} ({MODEL_FIX})"
    if not (d / "config.json").is_file():
        return f"{NAME} parameter 'model' is {path!r}, which is not a Hugging Face model directory: it has no config.json ({MODEL_FIX})"
    return None


def _max_positions(p: CausalLMParams) -> int | None:
    if isinstance(p.model, ArchSpec):
        return p.model.max_positions
    try:
        cfg = json.loads((Path(p.model).expanduser() / "config.json").read_text())
        value = cfg.get("max_position_embeddings", cfg.get("n_positions"))
        return int(value) if isinstance(value, int) else None
    except (OSError, ValueError, AttributeError):
        return None


def _validated(params: dict[str, Any]) -> tuple[CausalLMParams | None, str | None]:
    params = nest(params) if any("." in k for k in params) else params
    try:
        p = CausalLMParams.model_validate(params)
    except ValidationError as err:
        return None, _pydantic_message(err, CausalLMParams)
    if p.model is None:
        return None, f"{NAME} needs the parameter 'model' ({MODEL_FIX})"
    if isinstance(p.model, str):
        error = _model_dir_error(p.model)
        if error:
            return None, error
    elif isinstance(p.model, dict):
        try:
            p.model = ArchSpec.model_validate(p.model)
        except ValidationError as err:
            return None, _pydantic_message(err, ArchSpec, "model.")
        a = p.model
        if a.hidden_size % a.heads:
            return None, f"{NAME} parameter 'model.heads' ({a.heads}) must divide 'model.hidden_size' ({a.hidden_size}) (fix: choose heads among its divisors)"
        if a.kv_heads is not None and a.heads % a.kv_heads:
            return None, f"{NAME} parameter 'model.kv_heads' ({a.kv_heads}) must divide 'model.heads' ({a.heads}) (fix: choose kv_heads among its divisors)"
    else:
        return None, f"{NAME} parameter 'model' is {p.model!r}, neither a directory nor an architecture ({MODEL_FIX})"
    limit = _max_positions(p)
    if limit is not None and p.prompt_tokens + p.new_tokens > limit:
        return None, (
            f"{NAME} parameters 'prompt_tokens' + 'new_tokens' ({p.prompt_tokens} + {p.new_tokens}) exceed the "
            f"model's {limit} positions (fix: shorter prompts or fewer new tokens, or model.max_positions)"
        )
    return p, None


def check_params(params: dict[str, Any]) -> str | None:
    """Parse time: a one-line message naming the parameter and the fix, or None. No torch."""
    return _validated(params)[1]


def _parse(params: dict[str, Any]) -> CausalLMParams:
    p, error = _validated(params)
    if error or p is None:
        raise ValueError(error)
    return p


def _device(torch: Any, p: CausalLMParams, device: str) -> Any:
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"{NAME}: device must be 'cpu', 'cuda' or 'cuda:N' (resolve 'auto' first), not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"{NAME}: device {device!r} but torch {torch.__version__} sees no CUDA device here "
            "(fix: device: cpu or auto, or run this trial on a machine with a GPU)"
        )
    return torch.device(device)


def _check_bf16(torch: Any, dtype: str, dev: Any) -> None:
    if dev.type != "cuda" or dtype != "bfloat16":
        return
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # older torch: no emulation argument
        native = torch.cuda.is_bf16_supported()
    if not native:
        raise ValueError(
            f"{NAME} parameter 'dtype' is 'bfloat16', which {torch.cuda.get_device_name(dev)} runs only "
            "emulated, so its timings would not describe bfloat16 (fix: dtype: float16 or float32 on this GPU)"
        )


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise RuntimeError(f"{NAME} needs transformers ({err}) (fix: pip install -e '.[llm]')") from None
    transformers.logging.set_verbosity_error()  # random-weight configs warn about token ids
    return transformers


def _build(torch: Any, tf: Any, p: CausalLMParams) -> Any:
    """The model in float32 on the CPU: loaded from its directory, or built from the trial's seed."""
    if isinstance(p.model, str):
        return tf.AutoModelForCausalLM.from_pretrained(
            Path(p.model).expanduser(), local_files_only=True, attn_implementation=p.attn_implementation,
            **{"dtype" if _tf_major(tf) >= 5 else "torch_dtype": torch.float32},
        )
    a = p.model
    config = tf.AutoConfig.for_model(
        a.arch, hidden_size=a.hidden_size, num_hidden_layers=a.layers, num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads or a.heads, vocab_size=a.vocab,
        intermediate_size=a.intermediate_size or 4 * a.hidden_size, max_position_embeddings=a.max_positions,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):  # the process's global RNG is left alone
        torch.manual_seed(p.seed)
        return tf.AutoModelForCausalLM.from_config(config, attn_implementation=p.attn_implementation)


def _tf_major(tf: Any) -> int:
    return int(tf.__version__.split(".")[0])


def model_facts(model: Any, prompt_tokens: int, new_tokens: int, dtype: str) -> dict[str, Any]:
    """Exact facts of a built model. ``flops_per_token``: matrix-product FLOPs of one output token
    at the mean context of a request: 2 x (weights of every matrix product, the output head
    included, embedding lookup not) + 4 x layers x attention width x context (Q K^T and A V)."""
    import torch.nn as nn

    cfg = model.config
    layers, heads = cfg.num_hidden_layers, cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    matmul = sum(
        m.weight.numel() for m in model.modules()
        if not isinstance(m, nn.Embedding) and isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.dim() == 2
    )
    context = prompt_tokens + (new_tokens - 1) / 2
    return {
        "param_count": sum(t.numel() for t in model.parameters()),
        "kv_cache_bytes_per_token": 2 * layers * kv_heads * head_dim * DTYPE_BYTES[dtype],
        "flops_per_token": 2 * matmul + 4 * layers * heads * head_dim * context,
    }


def _prepare(params: dict[str, Any], device: str, batch_size: int) -> tuple[Any, Any, CausalLMParams, int]:
    """(generate(streamer, new_tokens) -> new tokens produced, facts, params, requests per call)."""
    import torch

    tf = _transformers()
    p = _parse(params)
    dev = _device(torch, p, device)
    if p.threads is not None:
        set_model_threads(torch, p.threads, NAME)
    _check_bf16(torch, p.dtype, dev)
    n = p.batch_size or batch_size
    model = _build(torch, tf, p).eval()
    for t in model.parameters():
        t.requires_grad_(False)
    model = model.to(device=dev, dtype=getattr(torch, p.dtype))
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(p.seed)
    ids = torch.randint(0, vocab, (n, p.prompt_tokens), generator=gen).to(dev)
    mask = torch.ones_like(ids)
    model.generation_config.eos_token_id = None  # EOS cleared: every request runs to new_tokens
    model.generation_config.pad_token_id = 0

    def generate(streamer: Any = None, new_tokens: int | None = None) -> int:
        k = new_tokens or p.new_tokens
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=k, min_new_tokens=k, do_sample=False,
                eos_token_id=None, pad_token_id=0, streamer=streamer,
            )
        return (out.shape[1] - p.prompt_tokens) * out.shape[0]

    try:  # one tiny call: an unsupported dtype fails here, with the fix, not mid-measurement
        generate(None, 1)
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(
            f"{NAME} parameter 'dtype' is {p.dtype!r}, which torch {torch.__version__} cannot generate with on "
            f"{dev} ({first}) (fix: use dtype: float32, or measure this dtype on a device that supports it)"
        ) from exc
    facts = {
        **model_facts(model, p.prompt_tokens, p.new_tokens, p.dtype),
        "requests_per_call": n,
        "torch_threads": torch.get_num_threads(),
    }
    generate.model = model  # type: ignore[attr-defined]
    return generate, facts, p, n


def generation(
    params: dict[str, Any], train_dir: Path | None, *, data_dir: Path, device: str, batch_size: int
) -> GenerationTask:
    """The measure step's entry point: snakesweep.generation.run_generation measures it."""
    generate, facts, p, n = _prepare(params, device, batch_size)
    return GenerationTask(generate, n, p.prompt_tokens, p.new_tokens, facts)


def inference(params: dict[str, Any], train_dir: Path | None, *, data_dir: Path, device: str, batch_size: int):
    """The plain batch-function form (fn, [batch], [requests]): one generate() call per batch."""
    generate, facts, _, n = _prepare(params, device, batch_size)

    def run(_batch: Any) -> int:
        return generate(None, None)

    run.facts = facts  # type: ignore[attr-defined]
    run.model = generate.model  # type: ignore[attr-defined]
    return run, [None], [n]
