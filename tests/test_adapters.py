"""The adapter deployment's engine contract for N adapters: flags and environment, for Oracle's service vLLM
container (as AQUA sets a stacked deployment up) and for a custom vLLM image (the launcher finds the adapters
in the model folder). Neither names an adapter in the environment: adding one leaves it as it was."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from domain.adapters import DEFAULT_MAX_LORAS, AdapterServing, lora_rank_for
from domain.container_env import DEPLOYED_MODEL_DIR, ContainerSpec, container_env, env_problems
from serving.launcher import engine_command, lora_modules, read_config

OCID = "ocid1.datasciencemodel.oc1.iad.amaaaaaa4hbtp3iq6bqp7dvgx3rx6yq2qcbuwnblzkjhs7d6gkbqgkzdiyha"
BASE = container_env(ContainerSpec(engine="vllm", method="offline", model=""))


def group(n: int) -> AdapterServing:
    adapters = tuple(f"support-{i:02d}" for i in range(n))
    return AdapterServing(
        base_name="llama3-8b", adapters=adapters, max_loras=DEFAULT_MAX_LORAS, max_lora_rank=16
    )


@pytest.mark.parametrize("container", ["custom", "service"])
def test_one_more_adapter_leaves_the_environment_as_it_was(container: str) -> None:
    envs = [group(n).env(container, BASE, OCID) for n in (1, 3, 10, 40)]  # type: ignore[arg-type]
    assert all(env == envs[0] for env in envs)


def test_a_custom_image_gets_lora_enabled_and_the_folder_to_find_adapters_in() -> None:
    env = group(3).env("custom", BASE, OCID)
    assert shlex.split(env["PARAMS"]) == [
        "--served-model-name", "llama3-8b", "--enable-lora", "--max-loras", "8", "--max-lora-rank", "16",
    ]  # fmt: skip
    assert env["MODEL"] == f"{DEPLOYED_MODEL_DIR}/{OCID}" and env["LORA_ADAPTERS_DIR"] == DEPLOYED_MODEL_DIR
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in env and env_problems(env) == []


def test_the_service_container_loads_the_group_itself_as_aqua_sets_it_up() -> None:
    env = group(10).env("service", BASE, OCID)
    assert env["PARAMS"] == "--served-model-name llama3-8b --max-lora-rank 16 --max-loras 8 --enable_lora"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "true" and env["MODEL"].endswith(f"/{OCID}/")
    # 32 characters: one over the BYOC rule ("under 32"); AQUA sets it on the service container all the same.
    assert env_problems(env) == [
        "variable name 'VLLM_ALLOW_RUNTIME_LORA_UPDATING' must start with a letter, hold only letters, digits "
        "and '_' and be shorter than 32 characters"
    ]


def test_the_launcher_serves_every_adapter_folder_by_its_name(tmp_path: Path) -> None:
    for name, member in (("billing", "ocid-b"), ("support", "ocid-a")):
        (tmp_path / member).mkdir()
        (tmp_path / member / "adapter_config.json").write_text("{}")
        (tmp_path / member / "finetune.json").write_text(json.dumps({"adapterName": name}))
    (tmp_path / "ocid-base").mkdir()
    (tmp_path / "ocid-base" / "config.json").write_text("{}")  # the base: not an adapter
    env = {**group(2).env("custom", BASE, "ocid-base"), "LORA_ADAPTERS_DIR": str(tmp_path)}
    command = engine_command(read_config(env), 8000)
    assert command[command.index("--lora-modules") + 1 :] == [
        f"support={tmp_path / 'ocid-a'}",
        f"billing={tmp_path / 'ocid-b'}",
    ]
    assert lora_modules(tmp_path / "nowhere") == []


def test_ranks_round_up_to_what_vllm_accepts() -> None:
    assert [lora_rank_for(r) for r in ([4], [8, 16], [17], [64, 100], [512])] == [8, 16, 32, 128, 512]
    with pytest.raises(ValueError, match="above vLLM's largest, 512"):
        lora_rank_for([600])


def test_params_that_would_fight_the_group_are_refused() -> None:
    own = container_env(ContainerSpec(engine="vllm", method="offline", model="", params="--max-loras 2"))
    with pytest.raises(ValueError, match="params sets --max-loras"):
        group(2).env("custom", own, OCID)
