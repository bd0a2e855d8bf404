"""`llmstack preflight` with the real oci SDK against the loopback fake: a good stack passes; a GPU limit of
0, a missing source object and a missing policy statement are each one line with its fix; no traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import oci
import pytest

from domain.iam import stack_statements
from domain.settings import load_settings
from llmstack.cli import main
from tests.conftest import COMPARTMENT, DIGEST, PROJECT_DIR, TENANCY, model_of
from tests.fakeoci import FakeOci, TestIdentity
from tests.fakeoci.objectstorage import ObjectStorage
from tests.fakeoci.secrets import Secrets
from tests.fakeoci.tenancy import Identity, Limits

SOURCE = "llama-2-7b-chat.zip"


@pytest.fixture
def good(fake_oci: FakeOci, oci_identity: TestIdentity, config: dict[str, Any]) -> dict[str, Any]:
    """A stack whose every need the fake tenancy meets."""
    identity = fake_oci.service(Identity)
    identity.add_compartment(COMPARTMENT, TENANCY)
    identity.add_image(COMPARTMENT, "llm/serving", DIGEST)
    fake_oci.service(Limits).set_limit(
        "data-science", "ds-gpu-a10-count", "A10 GPUs for model deployments", used=1, available=3
    )
    store = fake_oci.service(ObjectStorage)
    store.create_bucket("llm-models")
    oci.object_storage.ObjectStorageClient(
        oci.config.from_file(str(oci_identity.config_file)), service_endpoint=fake_oci.endpoint
    ).put_object(fake_oci.namespace, "llm-models", SOURCE, b"PK\x03\x04")
    secret = fake_oci.service(Secrets).put("hf_token_for_tests")
    del config["oci-llm-stack:hfToken"]
    config["oci-llm-stack:hfTokenSecretId"] = secret
    config["oci-llm-stack:auth"] = {"configFile": str(oci_identity.config_file)}
    model_of(config)["source"] = {"objectStorage": f"oci://llm-models@{fake_oci.namespace}/{SOURCE}"}
    model_of(config)["parameters"] = "7B"
    model_of(config)["compute"] = {"shape": "VM.GPU.A10.1", "autoscaling": {"maxReplicas": 3}}
    return config


@pytest.fixture
def preflight(
    write_stack: Callable[..., Path], fake_oci: FakeOci, capsys: pytest.CaptureFixture[str]
) -> Callable[[dict[str, Any]], tuple[int, dict[str, Any], str]]:
    def run(config: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        path = write_stack(config)
        argv = ["preflight", "--project-dir", str(PROJECT_DIR), "--stack-file", str(path)]
        code = main([*argv, "--endpoint", fake_oci.endpoint, "--json"])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        lines_code = main([*argv, "--endpoint", fake_oci.endpoint])
        text = capsys.readouterr().out
        assert lines_code == code and "Traceback" not in text
        return code, json.loads(out), text

    return run


def by_name(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["check"]: c for c in report["checks"]}


def test_a_good_stack_passes_every_check(good: dict[str, Any], preflight: Any) -> None:
    code, report, text = preflight(good)
    checks = by_name(report)
    assert code == 0 and report["ok"], report
    assert {c["status"] for c in report["checks"]} == {"pass"}
    # Autoscaling to 3 A10.1 replicas needs 3 GPUs; 3 are available.
    assert "3 GPUs needed, 3 available" in checks["GPU limit for VM.GPU.A10.1"]["detail"]
    assert {
        "credentials, region and compartment",
        "source of llama2-7b-chat",
        "Hugging Face token secret",
    } <= set(checks)
    assert "serving image of llama2-7b-chat" in checks
    assert text.rstrip().endswith("all checks passed")


def test_a_gpu_limit_of_zero_is_named_with_its_fix(
    good: dict[str, Any], preflight: Any, fake_oci: FakeOci
) -> None:
    fake_oci.service(Limits).set_limit("data-science", "ds-gpu-a10-count", "A10 GPUs", used=0, available=0)
    code, report, text = preflight(good)
    check = by_name(report)["GPU limit for VM.GPU.A10.1"]
    assert code == 1 and check["status"] == "fail"
    assert "3 GPUs needed, 0 available" in check["detail"]
    assert "request a limit increase of ds-gpu-a10-count to 3" in check["fix"]
    assert "FAIL  GPU limit for VM.GPU.A10.1" in text and "-> request a limit increase" in text


def test_a_missing_source_object_is_named_with_its_fix(good: dict[str, Any], preflight: Any) -> None:
    model_of(good)["source"]["objectStorage"] = model_of(good)["source"]["objectStorage"].replace(
        SOURCE, "gone.zip"
    )
    code, report, _ = preflight(good)
    check = by_name(report)["source of llama2-7b-chat"]
    assert code == 1 and check["status"] == "fail"
    assert "gone.zip" in check["detail"] and "404" in check["detail"]
    assert "llmstack package --to" in check["fix"]


def test_a_missing_image_digest_is_named(good: dict[str, Any], preflight: Any) -> None:
    model_of(good)["serving"]["image"] = model_of(good)["serving"]["image"].replace(
        DIGEST, "sha256:" + "ef" * 32
    )
    code, report, _ = preflight(good)
    check = by_name(report)["serving image of llama2-7b-chat"]
    assert code == 1 and check["status"] == "fail" and "make image" in check["fix"]


def test_an_administrators_policies_are_parsed_and_a_missing_statement_named(
    good: dict[str, Any], preflight: Any, fake_oci: FakeOci
) -> None:
    good["oci-llm-stack:identity"] = {"existingDynamicGroup": "ml-deployments"}
    settings = load_settings(good, stack="test", project_dir=PROJECT_DIR)
    needed = [s for statements in stack_statements(settings, "ml-deployments").values() for s in statements]
    identity = fake_oci.service(Identity)
    # An administrator wrote them in their own words: lower case, the tenancy's root, one broader grant.
    written = [
        s.lower().replace(f"compartment id {COMPARTMENT.lower()}", f"compartment id {COMPARTMENT}")
        for s in needed
    ]
    network = next(s for s in written if "virtual-network-family" in s)
    written.remove(network)
    identity.add_policy(TENANCY, written[:2])
    identity.add_policy(COMPARTMENT, written[2:])
    # The stack's own policy (tagged with its stack) does not count: the next `up` would delete it.
    identity.add_policy(COMPARTMENT, [network], tags={"pulumi-stack": "test"})
    code, report, _ = preflight(good)
    check = by_name(report)["policies for ml-deployments"]
    assert code == 1 and check["status"] == "fail"
    assert check["detail"] == f"1 of {len(needed)} statements missing"
    assert "Allow service datascience to use virtual-network-family" in check["fix"]

    identity.add_policy(TENANCY, ["ALLOW service datascience to use virtual-network-family in tenancy"])
    code, report, _ = preflight(good)
    assert code == 0 and by_name(report)["policies for ml-deployments"]["status"] == "pass"


def test_bad_credentials_are_one_line_not_a_traceback(
    good: dict[str, Any], preflight: Any, tmp_path: Path
) -> None:
    good["oci-llm-stack:auth"] = {"configFile": str(tmp_path / "no-config")}
    code, report, text = preflight(good)
    assert code == 1 and report["checks"][0]["status"] == "fail"
    assert all(len(line) < 1000 for line in text.splitlines())


def test_the_service_container_path_checks_the_prefix_and_names_a_newer_container(
    good: dict[str, Any], preflight: Any, fake_oci: FakeOci, oci_identity: TestIdentity
) -> None:
    from tests.fakeoci.modeldeployments import ModelDeployments, service_container

    store = fake_oci.service(ObjectStorage)
    store.create_bucket("llm-refs", versioning=True)
    oci.object_storage.ObjectStorageClient(
        oci.config.from_file(str(oci_identity.config_file)), service_endpoint=fake_oci.endpoint
    ).put_object(fake_oci.namespace, "llm-refs", "meta-llama/Llama-2-7b-chat-hf/config.json", b"{}")
    model = model_of(good)
    model["source"] = {"objectStorage": f"oci://llm-refs@{fake_oci.namespace}/meta-llama/Llama-2-7b-chat-hf/"}
    del model["serving"]["image"]
    code, report, _ = preflight(good)
    checks = by_name(report)
    assert code == 0, report
    assert checks["source of llama2-7b-chat"]["status"] == "pass"
    assert checks["service container odsc-vllm-serving:0.19.1.265"]["status"] == "pass"
    assert "serving image of llama2-7b-chat" not in checks  # no image to look for

    # ListContainers marks a newer tag latest (a made-up one here): a warning that names it, never an upgrade
    containers = fake_oci.service(ModelDeployments).containers
    containers[:] = [
        service_container("0.19.1.265", latest=False),
        service_container("0.22.1.3", latest=True),
    ]
    code, report, _ = preflight(good)
    check = by_name(report)["service container odsc-vllm-serving:0.19.1.265"]
    assert code == 0 and check["status"] == "warn"
    assert "a newer service container is available: odsc-vllm-serving:0.22.1.3" in check["detail"]
    assert "serving.serviceContainer: odsc-vllm-serving:0.22.1.3" in check["fix"]

    # a prefix in a bucket without versioning cannot be pinned: one failed line with its fix
    model["source"] = {
        "objectStorage": f"oci://llm-models@{fake_oci.namespace}/meta-llama/Llama-2-7b-chat-hf/"
    }
    code, report, _ = preflight(good)
    check = by_name(report)["source of llama2-7b-chat"]
    assert code == 1 and check["status"] == "fail" and "versioning 'Disabled'" in check["detail"]
