"""A changed model file swaps the deployment's model without downtime (real oci SDK, loopback fake).

By reference under a stable prefix, a new catalog model differs from the old only in its id: the service
container's BASE_MODEL (the prefix) and every other variable stay byte for byte, so the deployment's update
is a `modelId` change, which OCI applies while ACTIVE and keeps serving. A content-addressed prefix would
change BASE_MODEL too, and OCI refuses an environment change while ACTIVE: that is why the prefix is stable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import oci
import pytest

from domain.service_container import ServiceSpec, parse_service_container, service_env
from oci_runtime.auth import Auth, make_client
from tests.fakeoci import FakeOci, TestIdentity
from tests.fakeoci.datascience import DataScience
from tests.fakeoci.modeldeployments import ModelDeployments
from tests.fakeoci.objectstorage import ObjectStorage
from tests.test_artifact_providers import BUCKET, FAST, catalogs, objects, objects_props, reference_props
from tests.test_upload import make_model
from tests.test_upload import small_parts_allowed as small_parts_allowed

IMAGE = parse_service_container("odsc-vllm-serving:0.19.1.265").image


def env_for(prefix: str) -> dict[str, str]:
    return service_env(ServiceSpec(base_model=prefix, params="--enforce-eager"))


def update_details(model_id: str, env: dict[str, str]) -> Any:
    """What the pulumi provider sends on an update: the whole configuration, with this model id and env."""
    m = oci.data_science.models
    return m.UpdateModelDeploymentDetails(
        model_deployment_configuration_details=m.UpdateSingleModelDeploymentConfigurationDetails(
            model_configuration_details=m.UpdateModelConfigurationDetails(
                model_id=model_id,
                instance_configuration=m.InstanceConfiguration(instance_shape_name="VM.GPU.A10.1"),
                scaling_policy=m.FixedSizeScalingPolicy(instance_count=1),
            ),
            environment_configuration_details=m.UpdateOcirModelDeploymentEnvironmentConfigurationDetails(
                image=IMAGE, environment_variables=env, server_port=8080, health_check_port=8080
            ),
        )
    )


def test_one_changed_file_gives_a_new_model_and_a_model_id_only_swap_that_keeps_serving(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity
) -> None:
    fake_oci.service(ObjectStorage).create_bucket(BUCKET, versioning=True)
    catalog = fake_oci.service(DataScience)
    model = make_model(tmp_path / "m")
    up = objects().create(objects_props(model, fake_oci, oci_identity)).outs
    first = catalogs().create(reference_props(fake_oci, oci_identity, up)).id
    (model / "config.json").write_text('{"model_type": "llama", "changed": 1}')
    again = objects().update(up["prefix"], up, objects_props(model, fake_oci, oci_identity)).outs
    second = catalogs().create(reference_props(fake_oci, oci_identity, again)).id
    assert second != first and catalog.models[second]["isModelByReference"]
    assert again["prefix"] == up["prefix"] and env_for(again["prefix"]) == env_for(up["prefix"])

    deployments = fake_oci.service(ModelDeployments)
    md = deployments.script(polls=0)
    md.image, md.model_id, md.environment = IMAGE, first, env_for(up["prefix"])
    auth = Auth(config_file=str(oci_identity.config_file))
    ds = make_client(oci.data_science.DataScienceClient, auth, endpoint=fake_oci.endpoint, backoff=FAST)
    serving = make_client(
        oci.model_deployment.ModelDeploymentClient, auth, endpoint=fake_oci.endpoint, backoff=FAST
    )

    ds.update_model_deployment(md.id, update_details(second, env_for(again["prefix"])))
    assert ds.get_model_deployment(md.id).data.lifecycle_state == "UPDATING"
    answer = serving.predict(md.id, {"inputs": "Say hello.", "parameters": {"max_new_tokens": 8}})
    assert answer.status == 200  # no downtime: the old instances answer while the new model loads
    states = [ds.get_model_deployment(md.id).data.lifecycle_state for _ in range(3)]
    assert states == ["UPDATING", "ACTIVE", "ACTIVE"]
    got = ds.get_model_deployment(md.id).data
    assert got.lifecycle_state == "ACTIVE"
    assert got.model_deployment_configuration_details.model_configuration_details.model_id == second
    assert md.updates == [{"modelId": second}]  # the model id, and nothing else, changed


def test_a_new_base_model_is_an_environment_change_oci_refuses_while_active(
    fake_oci: FakeOci, oci_identity: TestIdentity
) -> None:
    deployments = fake_oci.service(ModelDeployments)
    md = deployments.script(polls=0)
    md.image, md.environment = IMAGE, env_for("models/llama/aaaa1111")
    auth = Auth(config_file=str(oci_identity.config_file))
    ds = make_client(oci.data_science.DataScienceClient, auth, endpoint=fake_oci.endpoint, backoff=FAST)
    content_addressed = env_for("models/llama/bbbb2222")
    with pytest.raises(
        oci.exceptions.ServiceError, match="only modelId, instanceShapeName and instanceCount"
    ):
        ds.update_model_deployment(
            md.id, update_details("ocid1.datasciencemodel.oc1.iad.new", content_addressed)
        )
    assert md.updates == []


def test_list_containers_finds_the_latest_vllm_service_container(
    fake_oci: FakeOci, oci_identity: TestIdentity
) -> None:
    auth = Auth(config_file=str(oci_identity.config_file))
    ds = make_client(oci.data_science.DataScienceClient, auth, endpoint=fake_oci.endpoint, backoff=FAST)
    latest = ds.list_containers(container_name="odsc-vllm-serving", is_latest=True).data
    assert [(c.container_name, c.tag) for c in latest] == [("odsc-vllm-serving", "0.19.1.265")]
    workload = latest[0].workload_configuration_details_list[0]
    assert (workload.server_port, workload.health_check_port) == (8080, 8080)
    assert workload.cmd.split() == [
        "--served-model-name",
        "odsc-llm",
        "--disable-custom-all-reduce",
        "--seed",
        "42",
    ]
