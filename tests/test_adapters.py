"""The adapter deployment's engine contract for N adapters: flags and environment, for Oracle's service vLLM
container (as AQUA sets a stacked deployment up) and for a custom vLLM image (the launcher)."""

from __future__ import annotations

import shlex

import pytest

from domain.adapters import AdapterServing, default_max_loras, lora_rank_for
from domain.container_env import DEPLOYED_MODEL_DIR, ContainerSpec, container_env, env_problems

OCID = "ocid1.datasciencemodel.oc1.iad.amaaaaaa4hbtp3iq6bqp7dvgx3rx6yq2qcbuwnblzkjhs7d6gkbqgkzdiyha"
BASE = container_env(ContainerSpec(engine="vllm", method="offline", model=""))


def group(n: int) -> AdapterServing:
    adapters = {f"support-{i:02d}": OCID.replace("diyha", f"d{i:04d}") for i in range(n)}
    return AdapterServing(
        base_name="llama3-8b", adapters=adapters, max_loras=default_max_loras(n), max_lora_rank=16
    )


@pytest.mark.parametrize("n", [1, 3, 10])
def test_a_custom_image_gets_every_adapter_by_name_and_folder(n: int) -> None:
    env = group(n).env("custom", BASE, OCID)
    params = shlex.split(env["PARAMS"])
    assert params[:9] == [
        "--served-model-name", "llama3-8b", "--enable-lora", "--max-loras", str(min(n, 8)),
        "--max-lora-rank", "16", "--lora-modules", f"support-00={DEPLOYED_MODEL_DIR}/{OCID[:-5]}d0000",
    ]  # fmt: skip
    assert len(params) == 8 + n and env["MODEL"] == f"{DEPLOYED_MODEL_DIR}/{OCID}"
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in env and env_problems(env) == []


def test_the_service_container_loads_the_group_itself_as_aqua_sets_it_up() -> None:
    env = group(10).env("service", BASE, OCID)
    assert env["PARAMS"] == "--served-model-name llama3-8b --max-lora-rank 16 --max-loras 8 --enable_lora"
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "true" and env["MODEL"].endswith(f"/{OCID}/")


def test_fourteen_adapters_overflow_a_custom_images_environment() -> None:
    assert env_problems(group(12).env("custom", BASE, OCID)) == []
    assert env_problems(group(14).env("custom", BASE, OCID)) == [
        "the container environment takes 2223 bytes; OCI accepts under 2048"
    ]


def test_ranks_round_up_to_what_vllm_accepts() -> None:
    assert [lora_rank_for(r) for r in ([4], [8, 16], [17], [64, 100], [512])] == [8, 16, 32, 128, 512]
    with pytest.raises(ValueError, match="above vLLM's largest, 512"):
        lora_rank_for([600])
    assert [default_max_loras(n) for n in (1, 3, 8, 20)] == [1, 3, 8, 8]


def test_params_that_would_fight_the_group_are_refused() -> None:
    own = container_env(ContainerSpec(engine="vllm", method="offline", model="", params="--max-loras 2"))
    with pytest.raises(ValueError, match="params sets --max-loras"):
        group(2).env("custom", own, OCID)
