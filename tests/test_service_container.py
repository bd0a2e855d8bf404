"""The service-managed vLLM container's contract: image URI, pinned tag, environment (ADS / samples)."""

from __future__ import annotations

import re

import pytest

from domain import service_container as smc
from domain.container_env import env_problems
from domain.service_container import (
    InvalidServiceContainer,
    ServiceSpec,
    parse_service_container,
    restricted_params,
    service_env,
)


def test_default_is_a_real_pinned_tag_of_the_vllm_family() -> None:
    container = parse_service_container(smc.DEFAULT_SERVICE_CONTAINER)
    assert container.image == "dsmc://odsc-vllm-serving:0.19.1.265"
    assert parse_service_container("dsmc://odsc-vllm-serving:0.8.1.2").tag == "0.8.1.2"


@pytest.mark.parametrize("value", ["odsc-vllm-serving", "odsc-vllm-serving:latest", "dsmc://x:", 42, "A B:1"])
def test_a_container_without_an_explicit_version_is_refused(value: object) -> None:
    with pytest.raises(InvalidServiceContainer, match=re.escape("odsc-vllm-serving:0.19.1.265")):
        parse_service_container(value)


def test_environment_is_the_containers_contract_with_its_own_flags_first() -> None:
    env = service_env(
        ServiceSpec(
            base_model="models/llama2-7b/files/",
            params="--enforce-eager",
            tensor_parallelism=2,
            max_model_len=4096,
        )
    )
    assert env["BASE_MODEL"] == "models/llama2-7b/files"  # no oci://, no final slash (AQUA)
    assert env["PARAMS"].startswith("--served-model-name odsc-llm --disable-custom-all-reduce --seed 42 ")
    assert env["PARAMS"].endswith("--max-model-len 4096 --tensor-parallel-size 2 --enforce-eager")
    assert env["MODEL_DEPLOY_PREDICT_ENDPOINT"] == "/v1/chat/completions"
    assert env["MODEL_DEPLOY_ENABLE_STREAMING"] == "true"
    assert env["PORT"] == env["HEALTH_CHECK_PORT"] == "8080"
    # The launcher's keys are not the container's: nothing of the BYOC contract leaks in.
    assert not {"ENGINE", "MODEL", "MODEL_DEPLOY_HEALTH_ENDPOINT", "TOKEN_FILE"} & set(env)
    assert env_problems(env) == []


def test_completions_route_when_asked() -> None:
    env = service_env(ServiceSpec(base_model="m", chat=False))
    assert env["MODEL_DEPLOY_PREDICT_ENDPOINT"] == "/v1/completions"


def test_flags_the_container_sets_itself_are_found_in_either_spelling() -> None:
    assert restricted_params("--port 9000 --seed=1 --max-num-seqs 8") == ["--port", "--seed"]
    assert restricted_params("--enforce-eager") == []


def test_deployed_path_of_a_model_by_reference() -> None:
    assert smc.deployed_path("models/x/files/") == "/opt/ds/model/deployed_model/models/x/files"
    assert smc.is_service_image("dsmc://odsc-vllm-serving:0.19.1.265")
    assert not smc.is_service_image("iad.ocir.io/ns/llm/vllm:v1")


def test_model_description_is_adss_format_sorted_and_fingerprinted() -> None:
    from domain import model_description as md

    objects = [
        md.PinnedObject(name="m/b.bin", version="v2", size=3),
        md.PinnedObject(name="m/a.json", version="v1", size=0),
    ]
    doc = md.describe("ns", "bucket", "m/", objects)
    assert doc == {
        "version": "1.0",
        "type": "modelOSSReferenceDescription",
        "models": [
            {
                "namespace": "ns",
                "bucketName": "bucket",
                "prefix": "m/",
                "objects": [
                    {"name": "m/a.json", "version": "v1", "sizeInBytes": 0},
                    {"name": "m/b.bin", "version": "v2", "sizeInBytes": 3},
                ],
            }
        ],
    }
    assert md.problems(doc) == []
    moved = md.describe(
        "ns", "bucket", "m/", [objects[0], md.PinnedObject(name="m/a.json", version="v3", size=0)]
    )
    assert md.fingerprint(moved) != md.fingerprint(doc)
    assert md.problems({"version": "1.0", "type": "x", "models": [{"objects": [{"name": "a"}]}]}) == [
        "type must be 'modelOSSReferenceDescription'",
        "models[0].namespace must be a string",
        "models[0].bucketName must be a string",
        "models[0].prefix must be a string",
        "models[0].objects[0] needs name, version and sizeInBytes >= 0",
    ]
