"""One naming-and-tagging context, made once from settings and handed to every component."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

PROJECT = "oci-llm-stack"  # the Pulumi project: its config namespace and the prefix of default names

# Facts the policy pack reads from resource inputs travel under these freeform tag keys.
TAG_MODEL = "llmstack-model"
TAG_ENGINE = "llmstack-engine"
TAG_PARAMETERS = "llmstack-parameters-b"
TAG_QUANTIZATION = "llmstack-quantization"
TAG_MAX_MODEL_LEN = "llmstack-max-model-len"
TAG_TENSOR_PARALLELISM = "llmstack-tensor-parallelism"
TAG_SOURCE = "llmstack-source"
# service (Oracle's vLLM container) | custom (an image of ours); reference | copy | none (the artifact)
TAG_CONTAINER = "llmstack-container"
TAG_ARTIFACT = "llmstack-artifact"
# A known architecture's name (`Llama-2-70B`) or the KV layout `layers x kv-heads x head-size`.
TAG_ARCHITECTURE = "llmstack-architecture"
TAG_BUDGET = "llmstack-budget-monthly-usd"
# Set on a deployment when settings override its shape's price; the monthly-budget policy prices with it.
TAG_SHAPE_HOURLY_USD = "llmstack-shape-hourly-usd"
# On a fine-tuning job: lora, qlora or full.
TAG_FINETUNE_METHOD = "llmstack-finetune-method"
TAG_LORA_SLOTS = "llmstack-lora-slots"  # a deployment serving adapters: "<max LoRAs>x<max LoRA rank>"


@dataclass(frozen=True, kw_only=True)
class Context:
    project: str
    stack: str
    environment: str
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def display_name(self, *parts: str) -> str:
        """An OCI display name: `<project>-<stack>[-part...]`."""
        return "-".join((self.project, self.stack, *parts))

    def freeform_tags(self, **extra: str) -> dict[str, str]:
        """The stack's tags plus where the resource comes from; `extra` wins over both."""
        return {
            "environment": self.environment,
            **self.tags,
            "pulumi-project": self.project,
            "pulumi-stack": self.stack,
            **extra,
        }

    def with_tags(self, **extra: str) -> Context:
        return replace(self, tags=MappingProxyType({**self.tags, **extra}))
