"""Issue 14: the rules OCI enforces on a first `pulumi up`, read from the plan as `llmstack plan --json`
records it. Each test names the rule and fails when the plan would break it.

Sources of the statements: domain/iam.py's docstring (Data Science custom networking, large model artifact
export, Vault key policy reference, Object Storage lifecycle).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmstack.cli import main
from tests.conftest import COMPARTMENT, PROJECT_DIR, TENANCY, local_model, model_of
from tests.test_fine_tune import fine_tune

PlanJson = dict[str, Any]
POLICY = "oci:Identity/policy:Policy"
BUCKET = "oci:ObjectStorage/bucket:Bucket"
LIFECYCLE = "oci:ObjectStorage/objectLifecyclePolicy:ObjectLifecyclePolicy"
CATALOG = "pulumi-python:dynamic/catalog:CatalogModel"
READINESS = "pulumi-python:dynamic/readiness:Readiness"
RUN = "pulumi-python:dynamic/training:JobRun"
DEPLOYMENT = "oci:DataScience/modelDeployment:ModelDeployment"
OTHER = "ocid1.compartment.oc1..aaaaaaaaotherotherotherotherotherotherotherotherotherother"
KEY = "ocid1.key.oc1.iad.aaaaaaaaghkze4gy7mpwoz5zvsqm5xobdikwmcsyyp2dkue7cevasbpknl2a"
SUBNET = "ocid1.subnet.oc1.iad.aaaaaaaaxbemvtswhbuvbjxktsnjcaeuovhmhmvjydttwk7ssrcezudwtwaq"
NETWORK = f"Allow service datascience to use virtual-network-family in compartment id {COMPARTMENT}"


@pytest.fixture
def plan_json(
    write_stack: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> Callable[[dict[str, Any]], PlanJson]:
    """`llmstack plan --json --stack-file <config>`, parsed."""

    def run(config: dict[str, Any]) -> PlanJson:
        path = write_stack(config)
        code = main(["plan", "--project-dir", str(PROJECT_DIR), "--stack-file", str(path), "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        plan: PlanJson = json.loads(out)
        return plan

    return run


def of_type(plan: PlanJson, type_: str) -> list[dict[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == type_]


def named(plan: PlanJson, name: str) -> dict[str, Any]:
    return next(r for r in plan["resources"] if r["name"] == name)


def statements(plan: PlanJson, compartment: str | None = None) -> list[str]:
    return [
        s
        for r in of_type(plan, POLICY)
        if compartment is None or r["inputs"]["compartmentId"] == compartment
        for s in r["inputs"]["statements"]
    ]


def depends_on_policies(plan: PlanJson, resource: dict[str, Any]) -> set[str]:
    urns = {r["urn"]: r for r in of_type(plan, POLICY)}
    return {urns[u]["name"] for u in resource["dependencies"] if u in urns}


def export_statements(compartment: str, *buckets: str) -> list[str]:
    names = ", ".join(f"target.bucket.name = '{b}'" for b in sorted(buckets))
    return [
        f"Allow service {who} to manage object-family in compartment id {compartment} where any {{{names}}}"
        for who in ("datascience", "objectstorage-us-ashburn-1")
    ]


# -- 1: the Data Science service may use the subnet ---------------------------------------------------------


def test_1_own_vcn_lets_data_science_use_the_subnet(config: dict[str, Any], plan_json: Any) -> None:
    assert NETWORK in statements(plan_json(config), COMPARTMENT)


def test_1_an_existing_subnet_too(config: dict[str, Any], plan_json: Any) -> None:
    config["oci-llm-stack:network"] = {"existingSubnetId": SUBNET}
    plan = plan_json(config)
    assert not [r for r in plan["resources"] if r["type"] == "oci:Core/vcn:Vcn"]
    assert NETWORK in statements(plan, COMPARTMENT)


def test_1_managed_egress_needs_no_network_grant(config: dict[str, Any], plan_json: Any) -> None:
    config["oci-llm-stack:network"] = {"egress": "managed"}
    assert not any("virtual-network-family" in s for s in statements(plan_json(config)))


def test_1_fine_tune_jobs_on_the_subnet_are_covered(config: dict[str, Any], plan_json: Any) -> None:
    model_of(config)["source"] = {"fineTune": fine_tune()}
    assert NETWORK in statements(plan_json(config), COMPARTMENT)


# -- 2: the catalog may copy from every source bucket --------------------------------------------------------


def test_2_object_storage_source_bucket_is_granted(config: dict[str, Any], plan_json: Any) -> None:
    model_of(config)["source"] = {"objectStorage": "oci://llm-models@idxyzabc1234/llama-2-7b.zip"}
    model_of(config)["parameters"] = "7B"
    have = statements(plan_json(config), COMPARTMENT)
    datascience = export_statements(COMPARTMENT, "llm-models")[0]
    assert datascience in have
    # Object Storage's grant also covers the artifact bucket (its lifecycle rules, point 12).
    assert export_statements(COMPARTMENT, "llm-artifacts-test", "llm-models")[1] in have


def test_2_local_folder_exports_from_the_artifact_bucket(
    config: dict[str, Any], plan_json: Any, tmp_path: Path
) -> None:
    local_model(config, tmp_path)
    have = statements(plan_json(config), COMPARTMENT)
    assert set(export_statements(COMPARTMENT, "llm-artifacts-test")) <= set(have)


def test_2_fine_tune_output_bucket_is_granted(config: dict[str, Any], plan_json: Any) -> None:
    model_of(config)["source"] = {"fineTune": fine_tune()}
    have = statements(plan_json(config), COMPARTMENT)
    assert export_statements(COMPARTMENT, "llm-finetunes")[0] in have


def test_2_an_online_model_exports_nothing(config: dict[str, Any], plan_json: Any) -> None:
    assert not any("service datascience to manage" in s for s in statements(plan_json(config)))


def test_2_no_statement_is_broader_than_oracle_documents(config: dict[str, Any], plan_json: Any) -> None:
    model_of(config)["source"] = {"objectStorage": "oci://llm-models@idxyzabc1234/llama-2-7b.zip"}
    model_of(config)["parameters"] = "7B"
    for s in statements(plan_json(config)):
        if "object-family" in s or "keys" in s:
            assert " where " in s, s


def test_2_root_compartment_statements_say_tenancy(config: dict[str, Any], plan_json: Any) -> None:
    config["oci-llm-stack:compartmentId"] = TENANCY
    have = statements(plan_json(config))
    assert "Allow service datascience to use virtual-network-family in tenancy" in have


# -- 3: a bucket under a Vault key ----------------------------------------------------------------------------


def test_3_object_storage_may_use_the_key_before_the_bucket_exists(
    config: dict[str, Any], plan_json: Any
) -> None:
    config["oci-llm-stack:artifactBucket"] = {"name": "llm-artifacts-test", "kmsKeyId": KEY}
    plan = plan_json(config)
    statement = (
        f"Allow service objectstorage-us-ashburn-1 to use keys in compartment id {COMPARTMENT} "
        f"where target.key.id = '{KEY}'"
    )
    holder = next(r for r in of_type(plan, POLICY) if statement in r["inputs"]["statements"])
    bucket = of_type(plan, BUCKET)[0]
    assert bucket["inputs"]["kmsKeyId"] == KEY
    assert holder["name"] in depends_on_policies(plan, bucket)


def test_3_no_key_no_key_grant(config: dict[str, Any], plan_json: Any) -> None:
    assert not any("use keys" in s for s in statements(plan_json(config)))


# -- 4: whatever acts with the grants waits for them ---------------------------------------------------------


def test_4_catalog_model_readiness_and_deployment_wait_for_the_policies(
    config: dict[str, Any], plan_json: Any
) -> None:
    model_of(config)["source"] = {"objectStorage": "oci://llm-models@idxyzabc1234/llama-2-7b.zip"}
    model_of(config)["parameters"] = "7B"
    plan = plan_json(config)
    every = {r["name"] for r in of_type(plan, POLICY)}
    for type_ in (CATALOG, READINESS, DEPLOYMENT):
        assert depends_on_policies(plan, of_type(plan, type_)[0]) == every, type_


def test_4_job_runs_wait_for_the_policies(config: dict[str, Any], plan_json: Any) -> None:
    model_of(config)["source"] = {"fineTune": fine_tune()}
    plan = plan_json(config)
    every = {r["name"] for r in of_type(plan, POLICY)}
    assert "llm-identity-training-policy" in every
    assert depends_on_policies(plan, of_type(plan, RUN)[0]) == every


def test_4_policies_come_before_what_needs_them_in_the_recorded_order(
    config: dict[str, Any], plan_json: Any
) -> None:
    plan = plan_json(config)
    order = [r["name"] for r in plan["resources"]]
    last_policy = max(order.index(r["name"]) for r in of_type(plan, POLICY))
    for type_ in (BUCKET, CATALOG, DEPLOYMENT, READINESS):
        assert order.index(of_type(plan, type_)[0]["name"]) > last_policy, type_


# -- 10: job runs' log permissions ---------------------------------------------------------------------------


def test_10_job_runs_may_write_their_existing_log(config: dict[str, Any], plan_json: Any) -> None:
    """ADS lists `use log-groups`/`use logging-family` as a broad example; writing to an existing custom log
    (the job never creates one: enable_auto_log_creation is false) needs `use log-content`."""
    model_of(config)["source"] = {"fineTune": fine_tune()}
    plan = plan_json(config)
    job = of_type(plan, "oci:DataScience/job:Job")[0]
    assert job["inputs"]["jobLogConfigurationDetails"]["enableAutoLogCreation"] is False
    training = named(plan, "llm-identity-training-policy")["inputs"]["statements"]
    assert (
        f"Allow dynamic-group oci-llm-stack-test-training-jobs to use log-content in compartment id {COMPARTMENT}"
        in training
    )


# -- 12: lifecycle rules on the versioned bucket --------------------------------------------------------------


def test_12_previous_versions_and_incomplete_uploads_expire(config: dict[str, Any], plan_json: Any) -> None:
    plan = plan_json(config)
    lifecycle = of_type(plan, LIFECYCLE)[0]
    rules = {r["target"]: r for r in lifecycle["inputs"]["rules"]}
    assert rules["previous-object-versions"]["action"] == "DELETE"
    assert rules["multipart-uploads"]["action"] == "ABORT"  # the only action OCI takes for this target
    assert all(r["timeUnit"] == "DAYS" and r["isEnabled"] for r in rules.values())
    assert (rules["previous-object-versions"]["timeAmount"], rules["multipart-uploads"]["timeAmount"]) == (
        "30",
        "7",
    )
    # Object Storage deletes on its own rights: the grant on the artifact bucket comes first.
    grant = export_statements(COMPARTMENT, "llm-artifacts-test")[1]
    holder = next(r for r in of_type(plan, POLICY) if grant in r["inputs"]["statements"])
    assert holder["name"] in depends_on_policies(plan, lifecycle)


# -- 14-17: the fakes are as strict as OCI; the upload keeps OCI's rules ------------------------------------


def _os_client(fake: Any, identity: Any) -> Any:
    import oci

    config = oci.config.from_file(str(identity.config_file))
    return oci.object_storage.ObjectStorageClient(
        config, service_endpoint=fake.endpoint, retry_strategy=oci.retry.NoneRetryStrategy()
    )


def test_14_the_fake_refuses_bare_metadata_keys_as_oci_does(fake_oci: Any, oci_identity: Any) -> None:
    import oci

    from tests.fakeoci.objectstorage import ObjectStorage

    fake_oci.service(ObjectStorage).create_bucket("models")
    client = _os_client(fake_oci, oci_identity)
    details = oci.object_storage.models.CreateMultipartUploadDetails
    with pytest.raises(oci.exceptions.ServiceError) as refused:
        client.create_multipart_upload("testns", "models", details(object="m.zip", metadata={"layout": "1"}))
    assert (refused.value.status, refused.value.code) == (400, "InvalidParameter")
    ok = details(object="m.zip", metadata={"opc-meta-layout": "1"})
    assert client.create_multipart_upload("testns", "models", ok).data.upload_id


def test_14_the_upload_sends_opc_meta_keys(fake_oci: Any, oci_identity: Any, tmp_path: Path) -> None:
    """A folder upload passes the strict fake, and the keys the lost-commit recovery reads are stored."""
    import oci

    from oci_runtime.auth import Auth, make_client
    from oci_runtime.upload import Destination, Tuning, upload_folder
    from tests.fakeoci.objectstorage import ObjectStorage

    fake_oci.service(ObjectStorage).create_bucket("models", versioning=True)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * (21 << 20))  # three parts of 10 MiB, the last short
    auth = Auth(config_file=str(oci_identity.config_file))

    def clients() -> Any:
        return make_client(oci.object_storage.ObjectStorageClient, auth, endpoint=fake_oci.endpoint)

    dest = Destination(namespace="testns", bucket="models", prefix="models/m/")
    result = upload_folder(folder, dest, clients, tuning=Tuning(part_size=10 << 20, workers=2))
    head = _os_client(fake_oci, oci_identity).head_object("testns", "models", result.object_name).headers
    assert head["opc-meta-manifest-digest"] and head["opc-meta-layout"]


def test_15_part_limits_in_the_upload_the_cli_and_the_fake(
    fake_oci: Any, oci_identity: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import oci

    from domain.errors import UserError
    from oci_runtime.upload import check_object_fits
    from tests.fakeoci.objectstorage import ObjectStorage

    mib = 1 << 20
    with pytest.raises(UserError, match="between 10 MiB and 50 GiB"):
        check_object_fits(100 * mib, 9 * mib)
    with pytest.raises(UserError, match="between 10 MiB and 50 GiB"):
        check_object_fits(100 << 30, 51 << 30)
    check_object_fits(3 * mib, 9 * mib, last_too=True)  # one part is its own last part
    with pytest.raises(UserError, match=r"10,000; use a part size of at least 11 MiB"):
        check_object_fits(10_001 * 10 * mib, 10 * mib)  # up front, before any byte is sent
    with pytest.raises(UserError, match="at most 10 TiB"):
        check_object_fits((10 << 40) + 1, 5 << 30)

    folder = tmp_path / "m"
    folder.mkdir()
    code = main(["package", str(folder), "--to", "oci://b@ns/", "--part-size-mib", "9"])
    assert code != 0 and "--part-size-mib must be 10 to 51200" in capsys.readouterr().err

    fake_oci.service(ObjectStorage).create_bucket("models")
    client = _os_client(fake_oci, oci_identity)
    m = oci.object_storage.models
    upload = client.create_multipart_upload("testns", "models", m.CreateMultipartUploadDetails(object="z"))
    etags = [
        client.upload_part("testns", "models", "z", upload.data.upload_id, n, b"x" * size).headers["etag"]
        for n, size in ((1, mib), (2, mib))
    ]
    commit = m.CommitMultipartUploadDetails(
        parts_to_commit=[
            m.CommitMultipartUploadPartDetails(part_num=n + 1, etag=e) for n, e in enumerate(etags)
        ]
    )
    with pytest.raises(oci.exceptions.ServiceError, match="smaller than 10485760 bytes"):
        client.commit_multipart_upload("testns", "models", "z", upload.data.upload_id, commit)
    only_last = m.CommitMultipartUploadDetails(
        parts_to_commit=[m.CommitMultipartUploadPartDetails(part_num=1, etag=etags[0])]
    )
    client.commit_multipart_upload("testns", "models", "z", upload.data.upload_id, only_last)


def test_16_a_second_export_onto_a_model_with_an_artifact_is_refused(
    fake_oci: Any, oci_identity: Any
) -> None:
    import oci

    from tests.fakeoci.datascience import DataScience
    from tests.fakeoci.objectstorage import ObjectStorage

    fake_oci.service(ObjectStorage).create_bucket("models")
    _os_client(fake_oci, oci_identity).put_object("testns", "models", "m.zip", b"PK\x03\x04one")
    config = oci.config.from_file(str(oci_identity.config_file))
    ds = oci.data_science.DataScienceClient(config, service_endpoint=fake_oci.endpoint)
    dsm = oci.data_science.models
    model = ds.create_model(
        dsm.CreateModelDetails(compartment_id="ocid1.compartment.oc1..c", project_id="p")
    ).data
    export = dsm.ExportModelArtifactDetails(
        artifact_export_details=dsm.ArtifactExportDetailsObjectStorage(
            namespace="testns",
            source_bucket="models",
            source_object_name="m.zip",
            source_region="us-ashburn-1",
        )
    )
    wr = ds.export_model_artifact(model.id, export).headers["opc-work-request-id"]
    while ds.get_work_request(wr).data.status != "SUCCEEDED":
        pass
    with pytest.raises(oci.exceptions.ServiceError) as refused:
        ds.export_model_artifact(model.id, export)
    assert refused.value.status == 409
    assert fake_oci.service(DataScience).artifact_bytes(model.id) == b"PK\x03\x04one"


def test_17_the_plan_fingerprint_has_the_providers_shape(
    config: dict[str, Any], plan_json: Any, tmp_path: Path
) -> None:
    import re

    local_model(config, tmp_path)
    catalog = of_type(plan_json(config), CATALOG)[0]
    assert re.fullmatch(r"[0-9a-f]{64}", catalog["inputs"]["customMetadata"]["fingerprint"])


# -- 6-9, 11, 13: rules settings check before anything is created ------------------------------------------


def test_6_a_deployment_subnet_holds_127_free_addresses() -> None:
    from domain.oci_rules import subnet_problem

    assert subnet_problem("10.0.1.0/24") is None and subnet_problem("10.0.0.0/16") is None
    problem = subnet_problem("10.0.1.0/25")
    assert problem is not None and "125 usable" in problem and "127" in problem


def test_7_tensor_parallel_deployments_get_shared_memory_in_the_env_budget(
    config: dict[str, Any], plan_json: Any
) -> None:
    from domain.container_env import env_size_bytes

    model_of(config)["compute"] = {"shape": "VM.GPU.A10.2"}
    model_of(config)["serving"]["tensorParallelism"] = 2
    deployment = of_type(plan_json(config), DEPLOYMENT)[0]
    details = deployment["inputs"]["modelDeploymentConfigurationDetails"]
    env = details["environmentConfigurationDetails"]["environmentVariables"]
    assert env["SHM_SIZE"] == "10g"
    assert env_size_bytes(env) < 2048
    single = of_type(plan_json(_one_gpu(config)), DEPLOYMENT)[0]
    assert (
        "SHM_SIZE"
        not in single["inputs"]["modelDeploymentConfigurationDetails"]["environmentConfigurationDetails"][
            "environmentVariables"
        ]
    )


def _one_gpu(config: dict[str, Any]) -> dict[str, Any]:
    model_of(config)["compute"] = {"shape": "VM.GPU.A10.1"}
    model_of(config)["serving"]["tensorParallelism"] = 1
    return config


def test_8_what_oci_changes_only_while_inactive_replaces_the_deployment(
    config: dict[str, Any], plan_json: Any
) -> None:
    from domain.oci_rules import INACTIVE_ONLY, update_verdict

    deployment = of_type(plan_json(config), DEPLOYMENT)[0]
    assert deployment["replaceOnChanges"] == sorted(INACTIVE_ONLY)
    # The description is static: a replica or shape change stays an in-place, zero-downtime update.
    assert deployment["inputs"]["description"] == "llama2-7b-chat served by vllm"
    model_of(config)["compute"] = {"shape": "VM.GPU.A10.2", "replicas": 3}
    assert (
        of_type(plan_json(config), DEPLOYMENT)[0]["inputs"]["description"]
        == deployment["inputs"]["description"]
    )
    model = "modelDeploymentConfigurationDetails.modelConfigurationDetails"
    assert (
        update_verdict({f"{model}.instanceConfiguration.instanceShapeName", f"{model}.modelId"}) == "in place"
    )
    assert update_verdict({f"{model}.bandwidthMbps"}) == "in place"
    assert update_verdict({f"{model}.modelId", f"{model}.bandwidthMbps"}) == "refused"
    assert (
        update_verdict({"modelDeploymentConfigurationDetails.environmentConfigurationDetails.image"})
        == "replace"
    )


def test_9_engine_shape_and_quantization_combinations_from_one_table() -> None:
    from domain.shapes import SHAPES, serving_problems

    assert serving_problems("vllm", "VM.GPU2.1")[0].startswith("vllm needs compute capability 7.0")
    assert serving_problems("tgi", "BM.GPU2.2")
    for quantization in ("awq", "fp8", "int8"):
        assert serving_problems("vllm", "VM.GPU3.2", quantization), quantization
    assert serving_problems("vllm", "VM.GPU3.2", "gptq") == []
    assert "ROCm" in serving_problems("vllm", "BM.GPU.MI300X.8")[0]
    for shape in ("VM.GPU.A10.1", "VM.GPU.A10.2", "BM.GPU.A10.4", "BM.GPU3.8", "BM.GPU4.8"):
        assert shape in SHAPES and serving_problems("vllm", shape) == []
    for shape in ("BM.GPU.A100-v2.8", "BM.GPU.H100.8", "BM.GPU.H200.8", "BM.GPU.L40S.4"):
        assert serving_problems("vllm", shape, "fp8") == []


def test_11_ocir_hosts_come_from_the_sdks_region_table() -> None:
    import oci.regions

    from domain.oci_rules import ocir_host

    assert ocir_host("us-ashburn-1") == "iad.ocir.io"
    # Every OC1 region the SDK knows has a host; the old hand list had 29.
    oc1 = [r for r in oci.regions.REGIONS if oci.regions.REGION_REALMS.get(r) == "oc1"]
    assert len({ocir_host(r) for r in oc1}) == len(oc1) > 29
    with pytest.raises(ValueError, match="not in the OCI SDK's region table"):
        ocir_host("xx-nowhere-1")


def test_11_the_region_table_is_the_installed_sdks() -> None:
    """domain/regions.py is generated from `oci.regions`; a new SDK's regions fail here until regenerated."""
    from domain.regions import REGIONS
    from oci_runtime.regions import render, sdk_regions

    assert sdk_regions() == REGIONS, "run `make regions`"
    assert (PROJECT_DIR / "domain" / "regions.py").read_text() == render()


def test_13_the_tenancy_comes_from_the_oci_config_profile(tmp_path: Path) -> None:
    from domain.oci_rules import tenancy_from_profile

    config = tmp_path / "config"
    config.write_text(f"[DEFAULT]\nregion=us-ashburn-1\n\n[work]\ntenancy={TENANCY}\n")
    found = tenancy_from_profile(str(config), "work")
    assert found is not None and found.tenancy_id == TENANCY and found.origin == f"{config} [work]"
    assert tenancy_from_profile(str(config), "DEFAULT") is None
    assert tenancy_from_profile(str(tmp_path / "missing"), "DEFAULT") is None


# -- the rules as settings apply them (refusals before anything is created) ---------------------------------


def settings_problems(config: dict[str, Any]) -> list[str]:
    from domain.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as caught:
        load_settings(config, stack="test", project_dir=PROJECT_DIR)
    return [str(p) for p in caught.value.problems]


def test_2_a_source_bucket_in_another_compartment_is_granted_there(
    config: dict[str, Any], plan_json: Any
) -> None:
    model_of(config)["source"] = {"objectStorage": "oci://llm-models@idxyzabc1234/llama-2-7b.zip"}
    model_of(config)["parameters"] = "7B"
    config["oci-llm-stack:bucketCompartments"] = {"llm-models": OTHER}
    plan = plan_json(config)
    there = [r for r in of_type(plan, POLICY) if r["inputs"]["compartmentId"] == OTHER]
    assert len(there) == 1
    assert set(export_statements(OTHER, "llm-models")) == set(there[0]["inputs"]["statements"])
    assert not any("llm-models" in s for s in statements(plan, COMPARTMENT))
    catalog = of_type(plan, CATALOG)[0]
    assert there[0]["name"] in depends_on_policies(plan, catalog)


def test_1_an_existing_subnet_in_another_compartment(config: dict[str, Any], plan_json: Any) -> None:
    config["oci-llm-stack:network"] = {"existingSubnetId": SUBNET, "subnetCompartmentId": OTHER}
    have = statements(plan_json(config), OTHER)
    assert have == [f"Allow service datascience to use virtual-network-family in compartment id {OTHER}"]


def test_3_a_key_in_another_compartment(config: dict[str, Any], plan_json: Any) -> None:
    config["oci-llm-stack:artifactBucket"] = {
        "name": "llm-artifacts-test",
        "kmsKeyId": KEY,
        "kmsKeyCompartmentId": OTHER,
    }
    plan = plan_json(config)
    (holder,) = [r for r in of_type(plan, POLICY) if r["inputs"]["compartmentId"] == OTHER]
    assert holder["inputs"]["statements"][0].endswith(f"where target.key.id = '{KEY}'")
    assert holder["name"] in depends_on_policies(plan, of_type(plan, BUCKET)[0])


def test_6_settings_refuse_a_subnet_smaller_than_24(config: dict[str, Any]) -> None:
    config["oci-llm-stack:network"] = {"vcnCidr": "10.0.0.0/16", "subnetCidr": "10.0.1.0/25"}
    (problem,) = settings_problems(config)
    assert problem.startswith("network.subnetCidr: a /25 subnet has 125 usable addresses")


def test_9_settings_refuse_what_cannot_run(config: dict[str, Any]) -> None:
    model_of(config)["compute"] = {"shape": "VM.GPU2.1"}
    assert any("vllm needs compute capability 7.0" in p for p in settings_problems(config))
    model_of(config)["compute"] = {"shape": "BM.GPU.MI300X.8"}
    assert any("ROCm" in p for p in settings_problems(config))


def test_11_settings_refuse_an_image_of_another_regions_registry(config: dict[str, Any]) -> None:
    model_of(config)["serving"]["image"] = model_of(config)["serving"]["image"].replace(
        "iad.ocir.io", "fra.ocir.io"
    )
    (problem,) = settings_problems(config)
    assert "another region's registry" in problem and "iad.ocir.io" in problem
    config["oci:region"] = "xx-nowhere-1"
    assert any("not in the OCI SDK's region table" in p for p in settings_problems(config))


def test_12_lifecycle_days_are_settings(config: dict[str, Any], plan_json: Any) -> None:
    config["oci-llm-stack:artifactBucket"] = {
        "name": "llm-artifacts-test",
        "previousVersionsDays": 90,
        "incompleteUploadsDays": 2,
    }
    rules = {
        r["target"]: r["timeAmount"] for r in of_type(plan_json(config), LIFECYCLE)[0]["inputs"]["rules"]
    }
    assert rules == {"previous-object-versions": "90", "multipart-uploads": "2"}


def test_13_the_plan_takes_the_tenancy_from_the_profile_and_says_so(
    config: dict[str, Any], plan_json: Any, tmp_path: Path
) -> None:
    oci_config = tmp_path / "oci-config"
    oci_config.write_text(f"[work]\ntenancy={TENANCY}\nregion=us-ashburn-1\n")
    del config["oci-llm-stack:tenancyId"]
    config["oci-llm-stack:auth"] = {"configFile": str(oci_config), "profile": "work"}
    plan = plan_json(config)
    assert plan["tenancy"] == {"id": TENANCY, "from": f"{oci_config} [work]"}
    group = of_type(plan, "oci:Identity/dynamicGroup:DynamicGroup")[0]
    assert group["inputs"]["compartmentId"] == TENANCY
    config["oci-llm-stack:auth"] = {"configFile": str(tmp_path / "none"), "profile": "work"}
    assert any(p.startswith("tenancyId:") for p in settings_problems(config))
