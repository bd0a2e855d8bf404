"""Plans of the default path (issue 15): Oracle's vLLM service container and models by reference, beside the
custom-image and copied-zip paths; every recorded OCI input is a property pulumi_oci knows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domain.oci_rules import update_verdict
from llmstack.cli import main
from tests.conftest import IMAGE, PROJECT_DIR, has_resource, model_of, one, resource_count
from tests.test_components import CATALOG, DEPLOYMENT, PlanOf, _known_inputs, _unknown_keys

OBJECTS = "pulumi-python:dynamic/artifacts:ModelObjects"
ZIP = "pulumi-python:dynamic/artifacts:ModelArtifact"
SMC = "dsmc://odsc-vllm-serving:0.19.1.265"


def unknown_inputs(plan: Any) -> list[str]:
    """Recorded inputs that pulumi_oci's input types do not list (the mock engine takes anything)."""
    found = []
    for resource in plan.resources:
        if resource.type.startswith("oci:"):
            known = _known_inputs(resource.type)
            found += [f"{resource.type}.{k}" for k in resource.inputs if k not in known]
            found += [
                b for k, v in resource.inputs.items() if k in known for b in _unknown_keys(v, known[k], k)
            ]
    return found


def environment(plan: Any) -> dict[str, Any]:
    env: dict[str, Any] = one(plan, DEPLOYMENT).inputs["modelDeploymentConfigurationDetails"][
        "environmentConfigurationDetails"
    ]
    return env


def tags(plan: Any) -> tuple[str, str]:
    t = one(plan, DEPLOYMENT).inputs["freeformTags"]
    return t["llmstack-container"], t["llmstack-artifact"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    model = tmp_path / "Llama-2-7b-chat-hf"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    return model


def test_vllm_without_an_image_runs_the_service_container_from_a_local_folder_by_reference(
    config: dict[str, Any], plan_of: PlanOf, folder: Path
) -> None:
    model = model_of(config)
    model["source"] = {"localPath": str(folder)}
    del model["serving"]["image"]
    model["serving"]["params"] = "--enforce-eager"
    plan = plan_of(config)
    assert unknown_inputs(plan) == []
    objects = has_resource(plan, OBJECTS, localPath=str(folder), objectPrefix="models/llama2-7b-chat/")
    assert resource_count(plan, ZIP) == 0  # no zip
    catalog = one(plan, CATALOG)
    assert catalog.inputs["artifact"]["kind"] == "reference"  # no catalog copy
    assert catalog.inputs["artifact"]["prefix"] == "models/llama2-7b-chat/files/"
    assert objects.name in {d.rsplit("::", 1)[-1] for d in catalog.dependencies}
    env = environment(plan)
    assert env["image"] == SMC and "imageDigest" not in env  # no digest for a service container
    assert (env["serverPort"], env["healthCheckPort"]) == (8080, 8080)
    variables = env["environmentVariables"]
    assert variables["BASE_MODEL"] == "models/llama2-7b-chat/files"
    assert variables["PARAMS"].startswith(
        "--served-model-name odsc-llm --disable-custom-all-reduce --seed 42"
    )
    assert variables["PARAMS"].endswith("--enforce-eager")
    assert variables["MODEL_DEPLOY_PREDICT_ENDPOINT"] == "/v1/chat/completions"
    assert variables["MODEL_DEPLOY_ENABLE_STREAMING"] == "true"
    assert "ENGINE" not in variables and "MODEL" not in variables  # not our launcher's contract
    assert tags(plan) == ("service", "reference")
    readiness = one(plan, "pulumi-python:dynamic/readiness:Readiness").inputs
    assert (readiness["smokeApi"], readiness["servedModel"]) == ("chat", "odsc-llm")


def test_a_custom_image_runs_as_today_and_reads_a_model_by_reference_under_its_prefix(
    config: dict[str, Any], plan_of: PlanOf, folder: Path
) -> None:
    model_of(config)["source"] = {"localPath": str(folder)}
    plan = plan_of(config)
    assert unknown_inputs(plan) == []
    env = environment(plan)
    assert env["image"] == IMAGE and env["imageDigest"] == IMAGE.split("@")[1]
    assert env["environmentVariables"]["ENGINE"] == "vllm"
    assert env["environmentVariables"]["MODEL"] == "/opt/ds/model/deployed_model/models/llama2-7b-chat/files"
    assert tags(plan) == ("custom", "reference")
    # and the zip path, when asked: copied into the catalog as before
    model_of(config)["artifact"] = {"mode": "copy"}
    plan = plan_of(config)
    assert resource_count(plan, ZIP) == 1 and resource_count(plan, OBJECTS) == 0
    assert environment(plan)["environmentVariables"]["MODEL"] == "/opt/ds/model/deployed_model"
    assert tags(plan) == ("custom", "copy")


def test_an_object_storage_prefix_is_by_reference_and_a_zip_is_copied(
    config: dict[str, Any], plan_of: PlanOf
) -> None:
    model = model_of(config)
    del model["serving"]["image"]
    model["source"] = {"objectStorage": "oci://llm-models@idxyzabc1234/meta-llama/Llama-2-7b-chat-hf/"}
    plan = plan_of(config)
    assert unknown_inputs(plan) == []
    artifact = one(plan, CATALOG).inputs["artifact"]
    assert (artifact["kind"], artifact["bucket"], artifact["prefix"]) == (
        "reference",
        "llm-models",
        "meta-llama/Llama-2-7b-chat-hf/",
    )
    assert environment(plan)["environmentVariables"]["BASE_MODEL"] == "meta-llama/Llama-2-7b-chat-hf"
    assert tags(plan) == ("service", "reference")

    model["serving"]["image"] = IMAGE
    model["source"] = {"objectStorage": "oci://llm-models@idxyzabc1234/llama-2-7b-chat-hf.zip"}
    plan = plan_of(config)
    assert unknown_inputs(plan) == []
    artifact = one(plan, CATALOG).inputs["artifact"]
    assert (artifact["kind"], artifact["objectName"]) == ("objectStorage", "llama-2-7b-chat-hf.zip")
    assert tags(plan) == ("custom", "copy")


def test_a_changed_model_swaps_only_the_deployments_model_id(
    config: dict[str, Any], plan_of: PlanOf, folder: Path
) -> None:
    """A new catalog model (another fingerprint) changes the deployment's modelId and nothing else, which OCI
    applies in place while ACTIVE (domain/oci_rules.py): the stable prefix keeps BASE_MODEL as it was."""
    model = model_of(config)
    model["source"] = {"localPath": str(folder)}
    del model["serving"]["image"]
    first = plan_of(config)
    before = one(first, DEPLOYMENT).inputs
    (folder / "model.safetensors").write_bytes(b"\1" * 65)  # a new manifest: a new fingerprint, a new model
    second = plan_of(config)
    after = one(second, DEPLOYMENT).inputs
    fingerprints = [one(p, CATALOG).inputs["customMetadata"]["fingerprint"] for p in (first, second)]
    assert fingerprints[0] != fingerprints[1]  # CatalogModel replaces on it: a new model id (provider tests)

    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, dict):
            return {k: v for key, inner in value.items() for k, v in flat(inner, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): json.dumps(value)}

    old, new = flat(before), flat(after)
    changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    model_id = "modelDeploymentConfigurationDetails.modelConfigurationDetails.modelId"
    assert changed <= {model_id}
    assert update_verdict(changed | {model_id}) == "in place"


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_tgi_without_an_image_is_refused_naming_the_key(
    config: dict[str, Any], write_stack: Any, capsys: pytest.CaptureFixture[str], json_flag: list[str]
) -> None:
    model = model_of(config)
    model["serving"] = {"engine": "tgi"}
    model["source"] = {"objectStorage": "oci://llm-models@idxyzabc1234/meta-llama/Llama-2-7b-chat-hf/"}
    code = main(
        ["plan", "--project-dir", str(PROJECT_DIR), "--stack-file", str(write_stack(config)), *json_flag]
    )
    said = capsys.readouterr()
    assert code == 2
    assert "models.llama2-7b-chat.serving.image: missing for engine tgi" in said.err + said.out
    assert "Oracle deprecated its TGI service container" in said.err + said.out


def test_the_service_container_needs_a_model_by_reference_and_an_explicit_version(
    config: dict[str, Any], write_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(serving: dict[str, Any]) -> str:
        model_of(config)["serving"] = serving
        code = main(["plan", "--project-dir", str(PROJECT_DIR), "--stack-file", str(write_stack(config))])
        said = capsys.readouterr()
        assert code == 2
        return said.err + said.out

    # online (huggingface): the container would have no BASE_MODEL
    assert (
        "models.llama2-7b-chat.serving.image: missing: the service container reads its model from"
        in refused({"engine": "vllm"})
    )
    assert (
        "models.llama2-7b-chat.serving.params: sets what the service container sets itself: '--port'"
        in refused({"engine": "vllm", "params": "--port 9000"})
    )
    assert "models.llama2-7b-chat.serving.serviceContainer: not a pinned service container" in refused(
        {"engine": "vllm", "serviceContainer": "odsc-vllm-serving:latest"}
    )
