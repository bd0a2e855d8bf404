"""LoRA adapters served together on one deployment of their base model: the engine's side of the contract.

A stack's fine-tunes with `save: adapter` are catalog models of their own, members of one OCI model group
(`STACKED`: the base model plus each adapter, `inference_key` = the model's name in the stack) that one
model deployment (`deployment_type: MODEL_GROUP`) serves. The service puts every member's artifact under
`/opt/ds/model/deployed_model/<member model OCID>/` (AQUA reads the base there; the members' folders follow
the same convention, which is inferred, not documented). vLLM serves the base under its own name and each
adapter under its name: a client picks one with the OpenAI `model` field.

Two containers, two ways to tell vLLM about the adapters; neither puts an adapter's name or OCID in the
deployment's environment, so adding or changing an adapter changes the model group alone, and the
deployment's `model_group_id` (updatable in place), not its environment (which OCI changes only while the
deployment is inactive, so a change there replaces it):

- Oracle's service vLLM container (`dsmc://odsc-vllm-serving:*`), as AQUA configures a stacked deployment
  (ads/aqua/modeldeployment/deployment.py): `MODEL` is the base's folder, `PARAMS` carries
  `--served-model-name <base> --max-lora-rank R --enable_lora`, and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=true`
  lets the container load the group's adapters at run time (no `--lora-modules`). We add `--max-loras N`:
  vLLM's default of 1 would let one adapter at a time into a batch.
- A custom vLLM image (the project's launcher): `PARAMS` carries `--served-model-name <base> --enable-lora
  --max-loras N --max-lora-rank R`, and `LORA_ADAPTERS_DIR` tells the launcher to look in the deployment's
  model folder at start: every member folder with an `adapter_config.json` becomes `--lora-modules
  <name>=<folder>`, named by the `adapterName` its fine-tune wrote into `finetune.json`.

`--max-lora-rank` must be one of vLLM's ranks (`MaxLoRARanks`: 1, 8, 16, 32, 64, 128, 256, 320, 512) and
at least every adapter's rank; `--max-loras` is how many adapters can be in one batch (8 unless the stack
says otherwise: a fixed default, so that one more adapter does not change the environment), and the GPU
memory vLLM reserves grows with both (`domain.sizing.lora_serving_gb`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from domain.container_env import DEPLOYED_MODEL_DIR

if TYPE_CHECKING:
    from domain.settings import FineTuneSettings

Container = Literal["service", "custom"]
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
DEFAULT_MAX_LORAS = 8  # a default only: settings may ask for more or fewer
RUNTIME_LORA_UPDATING = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
ADAPTERS_DIR = "LORA_ADAPTERS_DIR"  # the launcher's cue: find the adapters in this folder at start
MANIFEST_NAME_KEY = "adapterName"  # in an adapter's finetune.json: the name it is served under
_LAUNCHER_FLAGS = ("--enable-lora", "--enable_lora", "--max-loras", "--max-lora-rank", "--lora-modules")


@dataclass(frozen=True, kw_only=True)
class AdapterSettings:
    """A fine-tune kept as a LoRA adapter, served on its base model's deployment under its own name."""

    name: str
    base: str  # the stack's model it is trained from and served on
    fine_tune: FineTuneSettings  # baseModel resolved to the base's Hugging Face id
    parameters_b: float


def member_folder(model_id: str) -> str:
    """Where a model group deployment unpacks one member's artifact."""
    return f"{DEPLOYED_MODEL_DIR}/{model_id}"


def lora_rank_for(ranks: Sequence[int]) -> int:
    """The smallest rank vLLM accepts that holds every adapter's rank."""
    highest = max(ranks, default=1)
    for rank in VLLM_LORA_RANKS:
        if rank >= highest:
            return rank
    raise ValueError(f"adapter rank {highest} is above vLLM's largest, {VLLM_LORA_RANKS[-1]}")


@dataclass(frozen=True, kw_only=True)
class AdapterServing:
    """One base model and its adapters, as the engine is told about them."""

    base_name: str
    adapters: tuple[str, ...]  # the names the adapters are served under (model group inference keys)
    max_loras: int
    max_lora_rank: int

    def __post_init__(self) -> None:
        if not self.adapters:
            raise ValueError("an adapter deployment needs at least one adapter")
        if self.max_lora_rank not in VLLM_LORA_RANKS:
            raise ValueError(f"max LoRA rank {self.max_lora_rank} is not one of vLLM's {VLLM_LORA_RANKS}")
        if self.max_loras < 1:
            raise ValueError(f"max LoRAs {self.max_loras} must be at least 1")
        if self.base_name in self.adapters:
            raise ValueError(f"{self.base_name!r} names both the base model and an adapter")

    def flags(self, container: Container) -> list[str]:
        """The vLLM flags for this group (added to the model's own `params`)."""
        served = ["--served-model-name", self.base_name]
        if container == "service":
            # AQUA's order and spelling; the container registers the group's adapters itself.
            return [
                *served,
                "--max-lora-rank",
                str(self.max_lora_rank),
                "--max-loras",
                str(self.max_loras),
                "--enable_lora",
            ]
        return [
            *served,
            "--enable-lora",
            "--max-loras",
            str(self.max_loras),
            "--max-lora-rank",
            str(self.max_lora_rank),
        ]

    def env(self, container: Container, base_env: Mapping[str, str], base_model_id: str) -> dict[str, str]:
        """The deployment's environment: the base model's, with MODEL and PARAMS for the group.

        `base_env` is what the base alone would get (`domain.container_env.container_env`); an online base
        (a Hugging Face id in MODEL) keeps its MODEL, an offline one is read from its member folder.
        """
        env = dict(base_env)
        if env.get("MODEL", DEPLOYED_MODEL_DIR).startswith(DEPLOYED_MODEL_DIR):
            env["MODEL"] = member_folder(base_model_id) + ("/" if container == "service" else "")
        own = shlex.split(env.get("PARAMS", ""))
        clash = [flag for flag in own if flag.split("=", 1)[0] in (*_LAUNCHER_FLAGS, "--served-model-name")]
        if clash:
            raise ValueError(f"params sets {', '.join(clash)}, which the adapter deployment sets itself")
        env["PARAMS"] = shlex.join([*own, *self.flags(container)])
        if container == "service":
            env[RUNTIME_LORA_UPDATING] = "true"
        else:
            env[ADAPTERS_DIR] = DEPLOYED_MODEL_DIR
        return env
