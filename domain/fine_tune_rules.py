"""The rules of issue 17's settings, as plain functions the stack's settings call: nodes, adapters, no image.

Kept out of `domain/settings.py` so that the settings' parser (whatever its style) only hooks them in: each
rule takes plain values and returns `(key path, message)` problems worded like the settings' own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain import sizing
from domain.adapters import DEFAULT_MAX_LORAS, VLLM_LORA_RANKS, AdapterServing, lora_rank_for
from domain.errors import Found, show
from domain.fine_tune_job import entrypoint_args, training_fit
from domain.training_args import checked

if TYPE_CHECKING:
    from domain.settings import FineTuneSettings, ModelSettings, Settings

MAX_NODES = 16  # Data Science multi-node job runs; more is a quota question, not a settings one
Finding = tuple[str, str]


@dataclass(frozen=True, kw_only=True)
class NetworkFacts:
    egress: str  # nat | managed | none
    has_subnet: bool  # the stack's own subnet (a new VCN, or existingSubnetId)


def entrypoint_problems(tune: FineTuneSettings) -> Found:
    """The job's arguments against the training entrypoint's own rules, at the settings' keys."""
    aliases = {name: str(field.alias) for name, field in type(tune).model_fields.items()}
    args = entrypoint_args(tune)
    if tune.base_is_stack_model:
        args["base_model"] = "stack/model"  # resolved to the base's weights by the stack's settings
    found: Found = []
    for finding in checked(**args)[1]:
        accepted = f"accepted: {finding.accepted}" if finding.accepted is not None else finding.reason
        found.append(((aliases[finding.field],), f"invalid value {show(finding.value)}; {accepted}"))
    return found


def node_problems(path: str, nodes: int, network: NetworkFacts) -> list[Finding]:
    """A multi-node job runs on the stack's subnet (CUSTOM_NETWORK) with the stack's training log."""
    if nodes > 1 and not network.has_subnet:
        return [
            (
                f"{path}.nodes",
                f"{nodes} nodes need the stack's subnet: a multi-node job run's nodes reach each other on a "
                "custom network, and network.egress is 'managed' (no subnet); accepted: nodes: 1, or "
                "network.egress: nat (or an existingSubnetId)",
            )
        ]
    return []


def image_problems(path: str, image: str | None, network: NetworkFacts) -> list[Finding]:
    """Without a training image the job installs its pinned environment at start: it needs the internet."""
    if image is None and network.egress == "none":
        return [
            (
                f"{path}.image",
                "missing, and network.egress is 'none': a job without a training image installs Python "
                "3.11 and the pinned train extra from PyPI when it starts (docs/finetune.md); accepted: a "
                "training image in OCIR, or network.egress: nat",
            )
        ]
    return []


def sharding_for(fit_of: Mapping[str, sizing.TrainingFitReport], method: str) -> str:
    """`ddp` when one process holds the whole run, else `fsdp` when that fits (never for 4-bit QLoRA)."""
    if fit_of["ddp"].fits or method == "qlora" or fit_of["ddp"].processes == 1:
        return "ddp"
    return "fsdp" if fit_of["fsdp"].fits else "ddp"


def adapter_base_problems(path: str, base: str, save: str, models: Mapping[str, str | None]) -> list[Finding]:
    """`save: adapter` serves the adapter on its base's deployment: the base must be a model of the stack.

    `models` maps each deployed model of the stack to its Hugging Face id (None for other sources).
    """
    if save != "adapter":  # (`save: adapter` with `method: full` is the entrypoint's own refusal)
        return []
    if base not in models:
        known = ", ".join(sorted(models)) or "none"
        return [
            (
                f"{path}.baseModel",
                f"{base!r} is not a model of this stack; an adapter is served on its base model's "
                f"deployment, so baseModel names that model (models.<name>); accepted: one of {known}",
            )
        ]
    if models[base] is None:
        return [
            (
                f"{path}.baseModel",
                f"model {base!r} is not from Hugging Face: the training job reads the base weights by their "
                "Hugging Face id (a zip or a local folder it cannot read yet); accepted: a base model whose "
                "source is huggingface",
            )
        ]
    return []


def lora_slots(
    path: str, ranks: list[int], max_loras: int | None, max_lora_rank: int | None
) -> tuple[tuple[int, int], list[Finding]]:
    """vLLM's (max LoRAs, max LoRA rank) for a base's adapters, defaults derived from them, and problems."""
    found: list[Finding] = []
    try:
        needed = lora_rank_for(ranks)
    except ValueError as exc:
        return (0, 0), [(f"{path}.maxLoraRank", str(exc))]
    rank = needed if max_lora_rank is None else max_lora_rank
    allowed = ", ".join(map(str, VLLM_LORA_RANKS))
    if max_lora_rank is not None and max_lora_rank not in VLLM_LORA_RANKS:
        found.append(
            (f"{path}.maxLoraRank", f"{max_lora_rank} is not a rank vLLM accepts; accepted: {allowed}")
        )
    elif rank < max(ranks, default=0):
        found.append(
            (
                f"{path}.maxLoraRank",
                f"{rank} is below an adapter's loraR ({max(ranks)}): vLLM would refuse that adapter; "
                f"accepted: {needed} or more, one of {allowed}",
            )
        )
    loras = DEFAULT_MAX_LORAS if max_loras is None else max_loras
    if loras < 1:
        found.append((f"{path}.maxLoras", f"{loras}: accepted: an integer from 1 up"))
    return (loras, rank), found


def resolved_fine_tunes(settings: Settings) -> tuple[dict[str, ModelSettings], Found]:
    """Each fine-tune with its adapter's base resolved (the base model's Hugging Face id, its size) and
    its sharding chosen; and what is wrong with nodes, adapters and a missing image."""
    found: Found = []
    hub_ids = {n: m.source.huggingface for n, m in settings.models_by_name.items() if not m.is_adapter}
    network = NetworkFacts(
        egress=settings.network.egress,
        has_subnet=settings.network.existing_subnet_id is not None or settings.network.egress != "managed",
    )
    resolved = dict(settings.models_by_name)
    for name, model in settings.models_by_name.items():
        tune = model.source.fine_tune
        if tune is None:
            continue
        at = ("models", name, "source", "fineTune")
        problems = node_problems("", tune.nodes, network) + image_problems("", tune.image, network)
        if model.is_adapter or tune.base_is_stack_model:
            problems += adapter_base_problems("", tune.base_model, tune.save, hub_ids)
            if not model.is_adapter and tune.base_is_stack_model:
                problems.append(
                    (
                        ".baseModel",
                        f"{tune.base_model!r} names a model of this stack, which only an adapter is "
                        "trained from; accepted: save: adapter, or a Hugging Face id or a model folder "
                        "in a bucket",
                    )
                )
        found += [((*at, *key_.strip(".").split(".")), message) for key_, message in problems]
        if problems:
            continue
        size = model.parameters_b
        base_name = None
        if model.is_adapter:
            base_name = tune.base_model
            base = settings.models_by_name[base_name]
            tune = tune.model_copy(update={"base_model": hub_ids[base_name]})
            size = size or base.parameters_b
        if size is not None and tune.sharding == "auto":
            fits = {how: training_fit(tune, size, sharding=how) for how in ("ddp", "fsdp")}
            tune = tune.model_copy(update={"sharding": sharding_for(fits, tune.method)})
        source = model.source.model_copy(update={"fine_tune": tune})
        copy = model.model_copy(update={"source": source, "parameters_b": size})
        copy._adapter_base = base_name
        resolved[name] = copy
    return resolved, found


def lora_slots_of(settings: Settings, base: str) -> tuple[int, int]:
    """(max LoRAs, max LoRA rank) vLLM gets for the adapters served on `base`; (0, 0) without any."""
    adapters = settings.adapters_of(base)
    if not adapters:
        return 0, 0
    serving = settings.model(base).serving
    slots, _ = lora_slots(
        "", [a.fine_tune.lora_r for a in adapters], serving.max_loras, serving.max_lora_rank
    )
    return slots


def adapter_serving(settings: Settings, base: str) -> AdapterServing:
    """The engine's view of `base` and its adapters."""
    loras, rank = lora_slots_of(settings, base)
    adapters = tuple(a.name for a in settings.adapters_of(base))
    return AdapterServing(base_name=base, adapters=adapters, max_loras=loras, max_lora_rank=rank)
