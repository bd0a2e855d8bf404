"""GPU-fit figures for a model on a shape (pure functions).

The GPU memory a deployment needs is

    weights + runtime overhead + KV cache,

against the memory of the GPUs it uses (tensor parallelism spreads it over that many GPUs of the shape)
times the share of it the engine lets itself use. A model fits when weights, overhead and the KV cache of
one sequence of the configured context length (`max_model_len`) fit; the report also says how many such
full-length sequences fit at once, to compare with the wanted concurrency.

All figures are decimal GB (1e9 bytes), the unit GPU vendors state memory in.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.shapes import SHAPES, GpuShape

BYTES_PER_PARAMETER: dict[str, float] = {
    "none": 2.0,  # fp16 / bf16, as the checkpoints ship
    "fp8": 1.0,
    "int8": 1.0,
    "awq": 0.5,  # 4-bit
    "gptq": 0.5,  # 4-bit
}
"""Weight bytes per parameter for each `serving.quantization` value settings accept."""

ENGINE_MEMORY_UTILISATION: dict[str, float] = {
    # vLLM `--gpu-memory-utilization`, default 0.9: the engine sizes its KV cache to fill this share.
    "vllm": 0.90,
    # TGI `--cuda-memory-fraction` (env CUDA_MEMORY_FRACTION), default 1.0.
    "tgi": 1.00,
}
"""Share of each GPU's memory the engine uses by default."""

RUNTIME_OVERHEAD_GB_PER_GPU = 1.5
"""CUDA context, NCCL buffers, CUDA graphs and the peak activations of the engine's profiling pass.

An estimate: about 1-2 GB per GPU for 7B-70B models at the engines' default batch sizes.
"""

KV_CACHE_BYTES_PER_VALUE = 2.0
"""The KV cache is kept in the activation dtype (fp16/bf16) unless the engine is told otherwise, also for
4-bit and 8-bit weights."""

DEFAULT_MAX_MODEL_LEN = 4096


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """The shape of a decoder-only transformer, as its config.json states it."""

    name: str
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    intermediate_size: int | None = None
    vocab_size: int | None = None
    tied_embeddings: bool = False
    head_dim: int | None = None

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.attention_heads

    def kv_bytes_per_token(self, bytes_per_value: float = KV_CACHE_BYTES_PER_VALUE) -> float:
        """Keys and values of every layer for one token."""
        return 2 * self.layers * self.kv_heads * self.head_size * bytes_per_value

    @property
    def embedding_parameters(self) -> int:
        """Input embeddings plus the output head: the parts 4-bit/8-bit methods leave in fp16."""
        if self.vocab_size is None:
            return 0
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    def parameters(self) -> int | None:
        """Parameter count of a Llama-style block (gated MLP, RMS norms), or None if sizes are missing."""
        if self.intermediate_size is None or self.vocab_size is None:
            return None
        h = self.hidden_size
        attention = 2 * h * self.attention_heads * self.head_size + 2 * h * self.kv_heads * self.head_size
        mlp = 3 * h * self.intermediate_size
        per_layer = attention + mlp + 2 * h
        return self.embedding_parameters + self.layers * per_layer + h


def _arch(name: str, layers: int, hidden: int, heads: int, kv: int, inter: int, vocab: int) -> Architecture:
    return Architecture(
        name=name,
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=kv,
        intermediate_size=inter,
        vocab_size=vocab,
    )


# From each model's config.json on Hugging Face (meta-llama/Llama-2-{7,13,70}b-hf,
# meta-llama/Meta-Llama-3-{8,70}B, mistralai/Mistral-7B-v0.1). Llama 2 70B, Llama 3 and Mistral use
# grouped-query attention: 8 KV heads.
KNOWN_ARCHITECTURES: dict[tuple[str, float], Architecture] = {
    ("llama-2", 7): _arch("Llama-2-7B", 32, 4096, 32, 32, 11008, 32000),
    ("llama-2", 13): _arch("Llama-2-13B", 40, 5120, 40, 40, 13824, 32000),
    ("llama-2", 70): _arch("Llama-2-70B", 80, 8192, 64, 8, 28672, 32000),
    ("llama-3", 8): _arch("Llama-3-8B", 32, 4096, 32, 8, 14336, 128256),
    ("llama-3", 70): _arch("Llama-3-70B", 80, 8192, 64, 8, 28672, 128256),
    ("mistral", 7): _arch("Mistral-7B", 32, 4096, 32, 8, 14336, 32000),
}

_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("llama-2", re.compile(r"llama[-_ ]?2(?![.\d])", re.IGNORECASE)),
    ("llama-3", re.compile(r"llama[-_ ]?3(?:\.\d)?(?!\d)", re.IGNORECASE)),
    ("mistral", re.compile(r"mistral", re.IGNORECASE)),
)

_SIZE_IN_NAME = re.compile(r"(?:^|[-_/.])(\d+(?:\.\d+)?)\s*([bm])(?=$|[-_/.])", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------------
# Finding a model's parameter count and architecture


def parameters_from_name(name: str) -> float | None:
    """Billions of parameters named in a model id or folder name (`Llama-2-13b-chat-hf` -> 13.0)."""
    found = _SIZE_IN_NAME.findall(name)
    if not found:
        return None
    number, unit = found[-1]
    value = float(number)
    return value / 1000 if unit.lower() == "m" else value


def known_architecture(name: str) -> Architecture | None:
    """The table entry for a model id or folder name such as `meta-llama/Llama-2-70b-chat-hf`."""
    size = parameters_from_name(name)
    if size is None:
        return None
    for family, pattern in _FAMILIES:
        if pattern.search(name):
            return KNOWN_ARCHITECTURES.get((family, size))
    return None


def approximate_architecture(parameters_b: float) -> Architecture:
    """A Llama-like dense model of this size, for the KV cache of a model nothing else describes.

    Llama blocks hold about 12 * hidden^2 parameters and Llama 2 uses one layer per 128 of hidden size, so
    parameters ~= 12 * hidden^3 / 128. Full multi-head attention is assumed: for models with grouped-query
    attention this overstates the KV cache, which errs on the side of "does not fit".
    """
    hidden = (parameters_b * 1e9 * 128 / 12) ** (1 / 3)
    hidden_rounded = max(128, round(hidden / 128) * 128)
    heads = hidden_rounded // 128
    return Architecture(
        name=f"approximation for {parameters_b:g}B",
        layers=max(1, round(hidden / 128)),
        hidden_size=hidden_rounded,
        attention_heads=heads,
        kv_heads=heads,
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def architecture_from_config(config: dict[str, Any]) -> Architecture | None:
    """The architecture a Hugging Face config.json describes, or None if it lacks the core sizes."""
    layers = _positive_int(config.get("num_hidden_layers"))
    hidden = _positive_int(config.get("hidden_size"))
    heads = _positive_int(config.get("num_attention_heads"))
    if layers is None or hidden is None or heads is None:
        return None
    names = config.get("architectures")
    return Architecture(
        name=str(names[0]) if isinstance(names, list) and names else "config.json",
        layers=layers,
        hidden_size=hidden,
        attention_heads=heads,
        kv_heads=_positive_int(config.get("num_key_value_heads")) or heads,
        intermediate_size=_positive_int(config.get("intermediate_size")),
        vocab_size=_positive_int(config.get("vocab_size")),
        tied_embeddings=config.get("tie_word_embeddings") is True,
        head_dim=_positive_int(config.get("head_dim")),
    )


_MAX_SAFETENSORS_HEADER = 100_000_000


def _safetensors_parameters(path: Path) -> int | None:
    """Element count of every tensor in a .safetensors file, read from its JSON header alone."""
    try:
        with path.open("rb") as stream:
            prefix = stream.read(8)
            if len(prefix) != 8:
                return None
            (length,) = struct.unpack("<Q", prefix)
            if length > _MAX_SAFETENSORS_HEADER:
                return None
            header = json.loads(stream.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    total = 0
    for key, tensor in header.items():
        if key == "__metadata__":
            continue
        shape = tensor.get("shape") if isinstance(tensor, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            return None
        total += math.prod(shape)
    return total


_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}


def parameters_from_folder(folder: Path) -> float | None:
    """Billions of parameters from a model folder's files, or None when they do not tell.

    In order: the safetensors headers (exact, for unquantized checkpoints), the architecture in
    config.json, the byte total in model.safetensors.index.json. Quantized checkpoints pack several
    weights into one stored element, so only the architecture counts for them.
    """
    config = _read_json(folder / "config.json") or {}
    quantized = isinstance(config.get("quantization_config"), dict)
    if not quantized:
        shards = sorted(folder.glob("*.safetensors"))
        counts = [_safetensors_parameters(shard) for shard in shards]
        if shards and all(count is not None for count in counts):
            return sum(c for c in counts if c is not None) / 1e9
    architecture = architecture_from_config(config)
    if architecture is not None:
        parameters = architecture.parameters()
        if parameters is not None:
            return parameters / 1e9
    index = _read_json(folder / "model.safetensors.index.json")
    dtype_bytes = _DTYPE_BYTES.get(str(config.get("torch_dtype")))
    if index is not None and dtype_bytes is not None and not quantized:
        metadata = index.get("metadata")
        total = metadata.get("total_size") if isinstance(metadata, dict) else None
        if isinstance(total, int | float) and total > 0:
            return total / dtype_bytes / 1e9
    return None


def infer_parameters_b(*, local_path: Path | None = None, model_id: str | None = None) -> float | None:
    """Billions of parameters from what is known of the model's source, or None when nothing tells.

    A local folder's files first (see `parameters_from_folder`), then the size in its name, then the size in
    the model id (`meta-llama/Llama-2-13b-chat-hf` -> 13.0).
    """
    if local_path is not None:
        if local_path.is_dir():
            from_files = parameters_from_folder(local_path)
            if from_files is not None:
                return from_files
        from_name = parameters_from_name(local_path.name)
        if from_name is not None:
            return from_name
    if model_id is not None:
        return parameters_from_name(model_id)
    return None


def resolve_architecture(
    *,
    local_path: Path | None = None,
    model_id: str | None = None,
    parameters_b: float | None = None,
    other_names: tuple[str, ...] = (),
) -> tuple[Architecture | None, str]:
    """The architecture to size the KV cache with, and where it came from.

    config.json of a local folder, else the table of known models by folder name, model id or any of
    `other_names`, else the documented approximation from the parameter count (None when that is unknown).
    """
    if local_path is not None and local_path.is_dir():
        from_config = architecture_from_config(_read_json(local_path / "config.json") or {})
        if from_config is not None:
            return from_config, "config.json"
    for name in (local_path.name if local_path is not None else None, model_id, *other_names):
        if name:
            known = known_architecture(name)
            if known is not None:
                return known, f"known architecture {known.name}"
    if parameters_b is not None and parameters_b > 0:
        return approximate_architecture(parameters_b), "approximation from the parameter count"
    return None, "unknown"


def kv_layout(architecture: Architecture) -> str:
    """`layers x kv-heads x head-size`, the part of an architecture the KV cache depends on (`32x8x128`)."""
    return f"{architecture.layers}x{architecture.kv_heads}x{architecture.head_size}"


_KV_LAYOUT = re.compile(r"^(\d{1,4})x(\d{1,4})x(\d{1,5})$")
_KNOWN_BY_NAME = {architecture.name: architecture for architecture in KNOWN_ARCHITECTURES.values()}


def architecture_tag(architecture: Architecture) -> str:
    """How an architecture travels in a tag: its name when it is a known one, else its KV layout."""
    return (
        architecture.name
        if _KNOWN_BY_NAME.get(architecture.name) == architecture
        else kv_layout(architecture)
    )


def architecture_from_tag(text: str) -> Architecture | None:
    """The inverse of `architecture_tag`, or None for anything else."""
    text = text.strip()
    if text in _KNOWN_BY_NAME:
        return _KNOWN_BY_NAME[text]
    match = _KV_LAYOUT.match(text)
    if match is None:
        return None
    layers, kv_heads, head_size = (int(g) for g in match.groups())
    if min(layers, kv_heads, head_size) < 1:
        return None
    return Architecture(
        name=f"KV layout {text}",
        layers=layers,
        hidden_size=kv_heads * head_size,
        attention_heads=kv_heads,
        kv_heads=kv_heads,
        head_dim=head_size,
    )


# ---------------------------------------------------------------------------------------------------------
# The memory arithmetic


@dataclass(frozen=True, kw_only=True)
class FitReport:
    """How a model sits on a shape; every figure in GB."""

    shape: str
    engine: str
    gpus_used: int
    gpu_memory_gb: float
    usable_gpu_memory_gb: float
    weights_gb: float
    overhead_gb: float
    kv_cache_per_sequence_gb: float
    required_gpu_memory_gb: float
    full_length_sequences: int
    concurrency: int
    max_model_len: int
    kv_source: str
    adapters_gb: float = 0.0  # vLLM's LoRA slots (max LoRAs x max rank), reserved whether used or not

    @property
    def fits(self) -> bool:
        return self.required_gpu_memory_gb <= self.usable_gpu_memory_gb

    @property
    def concurrency_met(self) -> bool:
        return self.full_length_sequences >= self.concurrency

    def summary(self) -> str:
        """One line a user can act on."""
        head = (
            f"needs {self.required_gpu_memory_gb:.1f} GB (weights {self.weights_gb:.1f} + overhead "
            f"{self.overhead_gb:.1f}"
            + (f" + LoRA slots {self.adapters_gb:.2f}" if self.adapters_gb else "")
            + f" + KV cache {self.kv_cache_per_sequence_gb:.1f} for one "
            f"{self.max_model_len}-token sequence) of {self.usable_gpu_memory_gb:.1f} GB usable on "
            f"{self.gpus_used} GPU(s) of {self.shape} ({self.engine})"
        )
        if not self.fits:
            return f"does not fit: {head}"
        return f"fits: {head}; {self.full_length_sequences} full-length sequence(s) at once"


def _choice(name: str, value: str, allowed: dict[str, float]) -> float:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(sorted(allowed))}")
    return allowed[value]


def weights_gb(parameters_b: float, quantization: str, architecture: Architecture | None = None) -> float:
    """Weight memory. With a known architecture, embeddings and output head stay at 2 bytes when quantized."""
    per_parameter = _choice("quantization", quantization, BYTES_PER_PARAMETER)
    total = parameters_b * 1e9
    kept = architecture.embedding_parameters if architecture is not None and per_parameter < 2.0 else 0
    kept = min(kept, int(total))
    return ((total - kept) * per_parameter + kept * 2.0) / 1e9


def kv_cache_gb(architecture: Architecture, tokens: int, gpus: int = 1) -> float:
    """KV cache for `tokens` tokens spread over `gpus` tensor-parallel GPUs.

    KV heads split across GPUs; when there are fewer KV heads than GPUs each GPU keeps a copy of one.
    """
    per_gpu_heads = max(1, math.ceil(architecture.kv_heads / gpus))
    share = per_gpu_heads * gpus / architecture.kv_heads
    return architecture.kv_bytes_per_token() * share * tokens / 1e9


def estimate_fit(
    *,
    shape: GpuShape | str,
    engine: str,
    parameters_b: float,
    quantization: str = "none",
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    tensor_parallelism: int = 1,
    concurrency: int = 1,
    architecture: Architecture | None = None,
    kv_source: str | None = None,
    memory_utilisation: float | None = None,
    overhead_gb_per_gpu: float = RUNTIME_OVERHEAD_GB_PER_GPU,
    max_loras: int = 0,
    max_lora_rank: int = 0,
) -> FitReport:
    """GPU-fit of one model replica. Raises ValueError naming the argument on impossible input."""
    gpu_shape = SHAPES.get(shape) if isinstance(shape, str) else shape
    if gpu_shape is None:
        raise ValueError(f"shape {shape!r} is not a known GPU shape; known: {', '.join(sorted(SHAPES))}")
    utilisation = memory_utilisation
    if utilisation is None:
        utilisation = _choice("engine", engine, ENGINE_MEMORY_UTILISATION)
    if not 0 < utilisation <= 1:
        raise ValueError(f"memory utilisation {utilisation} must be in (0, 1]")
    if overhead_gb_per_gpu < 0:
        raise ValueError(f"runtime overhead {overhead_gb_per_gpu} GB per GPU must not be negative")
    if not parameters_b > 0:
        raise ValueError(f"parameters {parameters_b} must be a positive number of billions")
    if max_model_len < 1:
        raise ValueError(f"max model length {max_model_len} must be at least 1 token")
    if concurrency < 1:
        raise ValueError(f"concurrency {concurrency} must be at least 1")
    if not 1 <= tensor_parallelism <= gpu_shape.gpu_count:
        raise ValueError(
            f"tensor parallelism {tensor_parallelism} must be between 1 and the {gpu_shape.gpu_count} "
            f"GPU(s) of {gpu_shape.name}"
        )
    source = kv_source
    if architecture is None:
        architecture = approximate_architecture(parameters_b)
        source = source or "approximation from the parameter count"
    exact = architecture.parameters()
    if exact is not None and abs(exact / 1e9 - parameters_b) <= 0.05 * parameters_b:
        parameters_b = exact / 1e9  # a size stated in a name is rounded: Llama-2-70b has 68.98B
    gpus = tensor_parallelism
    memory = gpus * gpu_shape.gpu_memory_gb
    weights = weights_gb(parameters_b, quantization, architecture)
    overhead = gpus * overhead_gb_per_gpu
    adapters = lora_serving_gb(architecture, max_loras, max_lora_rank) if max_loras else 0.0
    per_sequence = kv_cache_gb(architecture, max_model_len, gpus)
    usable = memory * utilisation
    room = usable - weights - overhead - adapters
    sequences = max(0, math.floor(room / per_sequence)) if per_sequence > 0 else 0
    return FitReport(
        shape=gpu_shape.name,
        engine=engine,
        gpus_used=gpus,
        gpu_memory_gb=memory,
        usable_gpu_memory_gb=usable,
        weights_gb=weights,
        overhead_gb=overhead,
        kv_cache_per_sequence_gb=per_sequence,
        required_gpu_memory_gb=weights + overhead + adapters + per_sequence,
        full_length_sequences=sequences,
        concurrency=concurrency,
        max_model_len=max_model_len,
        kv_source=source or f"architecture {architecture.name}",
        adapters_gb=adapters,
    )


def lora_serving_gb(
    architecture: Architecture, max_loras: int, max_lora_rank: int, dtype_bytes: float = 2.0
) -> float:
    """GPU memory vLLM allocates up front for LoRA serving, in GB (one replica, no tensor parallelism).

    vLLM (`BaseLinearLayerWithLoRA.create_lora_weights`) keeps, for every linear layer, an A buffer of
    `max_loras x max_lora_rank x in` and a B buffer of `max_loras x out x max_lora_rank`, in the model's
    dtype, whatever rank the loaded adapters have. Summed over a Llama-style block (q/k/v packed, o,
    gate/up packed, down): `max_loras x max_lora_rank x layers x (7h + 2q + 2kv + 3i)` values, where h is the
    hidden size, q the query width, kv the key/value width and i the MLP width. Llama 3 8B, 4 slots of rank
    16 in bf16: 0.34 GB. vLLM profiles memory after allocating them, so they shrink the KV cache rather
    than fail the start.
    """
    if max_loras < 0 or max_lora_rank < 0:
        raise ValueError("max LoRAs and max LoRA rank must not be negative")
    h = architecture.hidden_size
    q = architecture.attention_heads * architecture.head_size
    kv = architecture.kv_heads * architecture.head_size
    i = architecture.intermediate_size or _llama_intermediate(h)
    values = max_loras * max_lora_rank * architecture.layers * (7 * h + 2 * q + 2 * kv + 3 * i)
    return values * dtype_bytes / 1e9


# ---------------------------------------------------------------------------------------------------------
# Fine-tuning: the memory one training process needs on one GPU
#
# The training job runs `torchrun` with one process per GPU on each of its nodes. Data-parallel (`ddp`)
# every GPU holds the whole model, its trainable state and the activations of its own batch: more GPUs make
# a run faster, never make a bigger model fit. Sharded (`fsdp`, transformers' Trainer with FSDP full_shard)
# the weights and the trainable state are split over every GPU of every node, and each GPU also holds the
# layer being computed, gathered whole (two layers: the next one is prefetched). Per GPU:
#
#     ddp:  weights + trainable state + activations + runtime overhead
#     fsdp: (weights + trainable state) / (nodes x GPUs) + 2 gathered layers + activations + overhead
#
# - weights: 2 bytes a parameter for LoRA (the compute dtype, bf16 or fp16); 4-bit NF4 for QLoRA (as
#   `weights_gb` counts 4-bit weights, embeddings and output head kept at 2 bytes); for full fine-tuning
#   the fp32 master weights are the trainable state below.
# - trainable state: fp32 weight, fp32 gradient and AdamW's two fp32 moments, 16 bytes per trainable
#   parameter: the adapters for LoRA/QLoRA, every parameter for full fine-tuning.
# - activations, for `batch_size x max_seq_len` tokens in 16 bits, after Korthikanti et al., "Reducing
#   Activation Recomputation in Large Transformer Models" (2022): about 34 x hidden bytes per token and
#   layer with fused attention (no stored attention scores). With gradient checkpointing only each layer's
#   input is kept (2 x hidden bytes per token and layer) plus one layer recomputed at a time. The loss adds
#   about 10 bytes per token and vocabulary entry (bf16 logits, their fp32 copy and its gradient).
# - runtime overhead: CUDA context, NCCL buffers and allocator slack, as for serving.
#
# An estimate to refuse what cannot work and to compare shapes, not a promise: real peaks depend on the
# attention kernel, the allocator and the data.

TRAINING_MEMORY_UTILISATION = 0.90
"""Share of a GPU's memory a training process can count on (the caching allocator fragments the rest)."""

TRAINABLE_BYTES_PER_PARAMETER = 16.0
ACTIVATION_BYTES_PER_HIDDEN = 34.0
CHECKPOINT_BYTES_PER_HIDDEN = 2.0
LOSS_BYTES_PER_LOGIT = 10.0
DEFAULT_VOCAB_SIZE = 32_000
"""Llama 2's vocabulary, for an architecture that does not state its own."""

FINE_TUNE_METHODS = ("lora", "qlora", "full")
SHARDINGS = ("ddp", "fsdp")


def lora_parameters(architecture: Architecture, rank: int) -> int:
    """Adapter parameters of rank `rank` on every linear layer of a Llama-style block (PEFT's all-linear)."""
    h = architecture.hidden_size
    q_out = architecture.attention_heads * architecture.head_size
    kv_out = architecture.kv_heads * architecture.head_size
    intermediate = architecture.intermediate_size or _llama_intermediate(h)
    # q, k, v, o, then gate, up, down: rank x (in + out) each.
    per_layer = (h + q_out) + 2 * (h + kv_out) + (q_out + h) + 3 * (h + intermediate)
    return rank * per_layer * architecture.layers


def _llama_intermediate(hidden: int) -> int:
    """Llama's MLP width when config.json is not at hand: 8/3 of hidden, rounded up to a multiple of 256."""
    return math.ceil(hidden * 8 / 3 / 256) * 256


@dataclass(frozen=True, kw_only=True)
class TrainingFitReport:
    """What one training process needs on one GPU of `shape`; every figure in GB."""

    shape: str
    method: str
    gpus: int
    gpu_memory_gb: float
    usable_gpu_memory_gb: float
    weights_gb: float
    trainable_parameters_b: float
    trainable_state_gb: float
    activations_gb: float
    overhead_gb: float
    tokens_per_step: int
    gradient_checkpointing: bool
    architecture_source: str
    nodes: int = 1
    sharding: str = "ddp"
    gathered_gb: float = 0.0  # fsdp: the layers gathered whole while they compute

    @property
    def processes(self) -> int:
        return self.nodes * self.gpus

    @property
    def shards(self) -> int:
        return self.processes if self.sharding == "fsdp" else 1

    @property
    def required_gpu_memory_gb(self) -> float:
        split = (self.weights_gb + self.trainable_state_gb) / self.shards
        return split + self.gathered_gb + self.activations_gb + self.overhead_gb

    @property
    def fits(self) -> bool:
        return self.required_gpu_memory_gb <= self.usable_gpu_memory_gb

    def breakdown(self) -> str:
        if self.method == "full":
            state = f"fp32 weights, gradients and AdamW state {self.trainable_state_gb:.1f}"
        else:
            state = f"weights {self.weights_gb:.1f} + adapters {self.trainable_state_gb:.1f}"
        if self.shards > 1:
            state = (
                f"{state} split over {self.nodes} x {self.gpus} GPUs = "
                f"{(self.weights_gb + self.trainable_state_gb) / self.shards:.1f} + gathered layers "
                f"{self.gathered_gb:.1f}"
            )
        return (
            f"{self.required_gpu_memory_gb:.1f} GB per GPU ({state} + activations {self.activations_gb:.1f} "
            f"for {self.tokens_per_step} tokens + overhead {self.overhead_gb:.1f}) of "
            f"{self.usable_gpu_memory_gb:.1f} GB usable"
        )


def estimate_training_fit(
    *,
    shape: GpuShape | str,
    method: str,
    parameters_b: float,
    architecture: Architecture | None = None,
    max_seq_len: int = 2048,
    batch_size: int = 4,
    lora_r: int = 16,
    gradient_checkpointing: bool = False,
    overhead_gb_per_gpu: float = RUNTIME_OVERHEAD_GB_PER_GPU,
    nodes: int = 1,
    sharding: str = "ddp",
) -> TrainingFitReport:
    """Memory of one training process (one GPU) fine-tuning a model; ValueError names a bad argument."""
    gpu_shape = SHAPES.get(shape) if isinstance(shape, str) else shape
    if gpu_shape is None:
        raise ValueError(f"shape {shape!r} is not a known GPU shape; known: {', '.join(sorted(SHAPES))}")
    if method not in FINE_TUNE_METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(FINE_TUNE_METHODS)}")
    if not parameters_b > 0:
        raise ValueError(f"parameters {parameters_b} must be a positive number of billions")
    if max_seq_len < 1 or batch_size < 1 or lora_r < 1:
        raise ValueError("max_seq_len, batch_size and lora_r must be at least 1")
    if nodes < 1:
        raise ValueError(f"nodes {nodes} must be at least 1")
    if sharding not in SHARDINGS:
        raise ValueError(f"sharding {sharding!r} is not one of {', '.join(SHARDINGS)}")
    source = f"architecture {architecture.name}" if architecture is not None else ""
    if architecture is None:
        architecture = approximate_architecture(parameters_b)
        source = "approximation from the parameter count"
    exact = architecture.parameters()
    if exact is not None and abs(exact / 1e9 - parameters_b) <= 0.05 * parameters_b:
        parameters_b = exact / 1e9
    if method == "full":
        weights, trainable_b = 0.0, parameters_b
    else:
        weights = weights_gb(parameters_b, "awq" if method == "qlora" else "none", architecture)
        trainable_b = lora_parameters(architecture, lora_r) / 1e9
    tokens = batch_size * max_seq_len
    h, layers = architecture.hidden_size, architecture.layers
    if gradient_checkpointing:
        per_token = CHECKPOINT_BYTES_PER_HIDDEN * h * layers + ACTIVATION_BYTES_PER_HIDDEN * h
    else:
        per_token = ACTIVATION_BYTES_PER_HIDDEN * h * layers
    per_token += LOSS_BYTES_PER_LOGIT * (architecture.vocab_size or DEFAULT_VOCAB_SIZE)
    gathered = 0.0
    if sharding == "fsdp":
        # One decoder layer's weights in 16 bits, twice (computing one, prefetching the next).
        gathered = 2 * 2 * parameters_b / layers
    return TrainingFitReport(
        shape=gpu_shape.name,
        method=method,
        gpus=gpu_shape.gpu_count,
        gpu_memory_gb=gpu_shape.gpu_memory_gb,
        usable_gpu_memory_gb=gpu_shape.gpu_memory_gb * TRAINING_MEMORY_UTILISATION,
        weights_gb=weights,
        trainable_parameters_b=trainable_b,
        trainable_state_gb=trainable_b * TRAINABLE_BYTES_PER_PARAMETER,
        activations_gb=tokens * per_token / 1e9,
        overhead_gb=overhead_gb_per_gpu,
        tokens_per_step=tokens,
        gradient_checkpointing=gradient_checkpointing,
        architecture_source=source,
        nodes=nodes,
        sharding=sharding,
        gathered_gb=gathered,
    )


def training_disk_gb(parameters_b: float) -> int:
    """Block storage a fine-tuning job needs: the base download, the written model and its zip (2 bytes a
    parameter each), plus room for the dataset, the adapter and the container; at least OCI's 50 GB."""
    return max(50, math.ceil((3 * 2 * parameters_b + 30) / 10) * 10)
