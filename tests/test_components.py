"""The graph each stack builds, recorded under the mock engine: types, counts, parents, wiring, inputs."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi_oci
import pytest

from components import pulumi_internals as pulumi_types
from components.iam import matching_rule, policy_statements
from domain.container_env import (
    CUSTOM_HTTP_METHODS,
    DEPLOYED_MODEL_DIR,
    MAX_CUSTOM_HTTP_ENDPOINTS,
    OPENAI_ALLOW_LIST,
    OPENAI_ROUTES,
    TOKEN_FILE,
)
from domain.context import TAG_ENGINE, TAG_MODEL, TAG_PARAMETERS
from tests.conftest import (
    COMPARTMENT,
    FAKE_HF_TOKEN,
    TENANCY,
    has_resource,
    local_model,
    model_of,
    one,
    resource_count,
    resources,
)

Plan = Any
PlanOf = Callable[..., Plan]

VCN = "oci:Core/vcn:Vcn"
SUBNET = "oci:Core/subnet:Subnet"
NAT = "oci:Core/natGateway:NatGateway"
SGW = "oci:Core/serviceGateway:ServiceGateway"
ROUTES = "oci:Core/routeTable:RouteTable"
NSG = "oci:Core/networkSecurityGroup:NetworkSecurityGroup"
LOG_GROUP = "oci:Logging/logGroup:LogGroup"
LOG = "oci:Logging/log:Log"
REPO = "oci:Artifacts/containerRepository:ContainerRepository"
DYNAMIC_GROUP = "oci:Identity/dynamicGroup:DynamicGroup"
POLICY = "oci:Identity/policy:Policy"
BUCKET = "oci:ObjectStorage/bucket:Bucket"
PROJECT = "oci:DataScience/project:Project"
DEPLOYMENT = "oci:DataScience/modelDeployment:ModelDeployment"
ARTIFACT = "pulumi-python:dynamic/artifacts:ModelArtifact"
CATALOG = "pulumi-python:dynamic/catalog:CatalogModel"
READINESS = "pulumi-python:dynamic/readiness:Readiness"
COMPONENTS = {
    "oci-llm-stack:platform:LlmPlatform",
    "oci-llm-stack:network:Network",
    "oci-llm-stack:logging:DeploymentLogs",
    "oci-llm-stack:registry:ContainerRegistry",
    "oci-llm-stack:iam:DeploymentIdentity",
    "oci-llm-stack:storage:ArtifactBucket",
    "oci-llm-stack:serving:ModelServing",
}


def parent_name(plan: Plan, resource: Any) -> str:
    return str(plan.by_urn()[resource.parent].name)


def deployment_env(deployment: Any) -> dict[str, str]:
    details = deployment.inputs["modelDeploymentConfigurationDetails"]["environmentConfigurationDetails"]
    return dict(details["environmentVariables"])


def depends_on(plan: Plan, resource: Any, type_: str) -> list[str]:
    by_urn = plan.by_urn()
    return [by_urn[u].name for u in resource.dependencies if by_urn[u].type == type_]


# -- the whole graph ------------------------------------------------------------------------------------------


def test_dev_like_stack_builds_the_whole_graph(config: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(config)
    counts = {
        t: resource_count(plan, t)
        for t in (
            VCN,
            SUBNET,
            NAT,
            SGW,
            ROUTES,
            NSG,
            LOG_GROUP,
            LOG,
            REPO,
            DYNAMIC_GROUP,
            POLICY,
            BUCKET,
            PROJECT,
            DEPLOYMENT,
            CATALOG,
            READINESS,
            ARTIFACT,
        )
    }
    assert counts == {
        VCN: 1,
        SUBNET: 1,
        NAT: 1,
        SGW: 1,
        ROUTES: 1,
        NSG: 1,
        LOG_GROUP: 1,
        LOG: 2,
        REPO: 1,
        DYNAMIC_GROUP: 1,
        POLICY: 2,  # the deployments' and the services'
        BUCKET: 1,
        PROJECT: 1,
        DEPLOYMENT: 1,
        CATALOG: 1,
        READINESS: 1,
        ARTIFACT: 0,
    }


def test_every_component_calls_register_outputs(config: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(config)
    components = [r for r in plan.resources if not r.custom]
    assert {r.type for r in components} >= COMPONENTS
    assert [r.name for r in components if not r.registered_outputs] == []


def test_every_child_is_parented_to_its_component(config: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(config)
    expected_parent = {
        VCN: "llm-network",
        SUBNET: "llm-network",
        LOG: "llm-logs",
        REPO: "llm-registry",
        POLICY: "llm-identity",
        BUCKET: "llm-artifacts",
        PROJECT: "llm",
        DEPLOYMENT: "llama2-7b-chat",
        CATALOG: "llama2-7b-chat",
        READINESS: "llama2-7b-chat",
    }
    assert {
        t: parent_name(plan, one(plan, t) if t not in (LOG, POLICY) else resources(plan, t)[0])
        for t in expected_parent
    } == expected_parent
    orphans = [r.name for r in plan.resources if r.parent is None and r.type != "pulumi:pulumi:Stack"]
    assert orphans == []


def test_component_type_tokens_follow_the_house_pattern(config: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(config)
    tokens = {r.type for r in plan.resources if not r.custom and r.type != "pulumi:pulumi:Stack"}
    assert all(t.startswith("oci-llm-stack:") and len(t.split(":")) == 3 for t in tokens), tokens


# -- network --------------------------------------------------------------------------------------------------


def test_network_is_private_with_nat_and_service_gateway(config: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(config)
    has_resource(plan, VCN, cidrBlocks=["10.0.0.0/16"], compartmentId=COMPARTMENT)
    subnet = has_resource(
        plan, SUBNET, cidrBlock="10.0.1.0/24", prohibitPublicIpOnVnic=True, prohibitInternetIngress=True
    )
    routes = one(plan, ROUTES).inputs["routeRules"]
    assert sorted(r["destinationType"] for r in routes) == ["CIDR_BLOCK", "SERVICE_CIDR_BLOCK"]
    assert {r["destination"] for r in routes} == {"0.0.0.0/0", "all-iad-services-in-oracle-services-network"}
    assert set(depends_on(plan, subnet, ROUTES)) == {"llm-network-routes"}


def test_offline_only_network_has_no_nat(config: dict[str, Any], plan_of: PlanOf) -> None:
    config["oci-llm-stack:network"]["egress"] = "none"
    model_of(config)["source"] = {"objectStorage": "oci://models@ns/llama-2-7b.zip"}
    plan = plan_of(config)
    assert resource_count(plan, NAT) == 0 and resource_count(plan, SGW) == 1
    (route,) = one(plan, ROUTES).inputs["routeRules"]
    assert route["destinationType"] == "SERVICE_CIDR_BLOCK"


def test_existing_subnet_creates_no_network(config: dict[str, Any], plan_of: PlanOf) -> None:
    subnet_id = "ocid1.subnet.oc1.iad.aaaaaaaawsoh5gfucdkt7rag5h3hk7qxull22m5c4htrafhd4dblyqldhpea"
    config["oci-llm-stack:network"] = {"existingSubnetId": subnet_id}
    plan = plan_of(config)
    assert [r.type for r in plan.resources if r.type.startswith("oci:Core/")] == []
    instance = one(plan, DEPLOYMENT).inputs["modelDeploymentConfigurationDetails"][
        "modelConfigurationDetails"
    ]["instanceConfiguration"]
    assert instance == {
        "instanceShapeName": "VM.GPU.A10.1",
        "networkAccessType": "CUSTOM_NETWORKING",
        "subnetId": subnet_id,
    }


def test_managed_egress_uses_service_networking(config: dict[str, Any], plan_of: PlanOf) -> None:
    config["oci-llm-stack:network"] = {"egress": "managed"}
    plan = plan_of(config)
    assert resource_count(plan, VCN) == 0
    instance = one(plan, DEPLOYMENT).inputs["modelDeploymentConfigurationDetails"][
        "modelConfigurationDetails"
    ]["instanceConfiguration"]
    assert instance == {
        "instanceShapeName": "VM.GPU.A10.1",
        "networkAccessType": "MANAGED_NETWORKING_INTERNET_ACCESS",
    }


# -- logs, registry, bucket, identity ---------------------------------------------------------------------------


def test_logs_are_custom_with_retention_per_model(config: dict[str, Any], plan_of: PlanOf) -> None:
    config["oci-llm-stack:logging"] = {"retentionDays": 90}
    plan = plan_of(config)
    logs = resources(plan, LOG)
    assert sorted(r.name for r in logs) == [
        "llm-logs-llama2-7b-chat-access",
        "llm-logs-llama2-7b-chat-predict",
    ]
    assert all(r.inputs["logType"] == "CUSTOM" and r.inputs["retentionDuration"] == 90 for r in logs)
    assert all(depends_on(plan, r, LOG_GROUP) == ["llm-logs-group"] for r in logs)


def test_existing_log_group_is_used(config: dict[str, Any], plan_of: PlanOf) -> None:
    group = "ocid1.loggroup.oc1.iad.aaaaaaaakzfsoq22cijhiutxgmftcbfvrydrcx7aifugsy77mauoretjo6sa"
    config["oci-llm-stack:logging"] = {"existingLogGroupId": group}
    plan = plan_of(config)
    assert resource_count(plan, LOG_GROUP) == 0
    assert all(r.inputs["logGroupId"] == group for r in resources(plan, LOG))


def test_registry_is_private_and_exported(config: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(config)
    has_resource(plan, REPO, displayName="llm/serving-test", isPublic=False, isImmutable=True)
    assert plan.outputs["imageRepository"] == "iad.ocir.io/idxyzabc1234/llm/serving-test"


def test_bucket_is_private_versioned_and_can_use_a_vault_key(config: dict[str, Any], plan_of: PlanOf) -> None:
    key = "ocid1.key.oc1.iad.aaaaaaaaghkze4gy7mpwoz5zvsqm5xobdikwmcsyyp2dkue7cevasbpknl2a"
    config["oci-llm-stack:artifactBucket"] = {"name": "models-dev", "kmsKeyId": key}
    plan = plan_of(config)
    has_resource(
        plan,
        BUCKET,
        name="models-dev",
        accessType="NoPublicAccess",
        versioning="Enabled",
        kmsKeyId=key,
        namespace="idxyzabc1234",
    )


def policy_named(plan: Any, name: str) -> Any:
    return next(r for r in resources(plan, POLICY) if r.name == name)


def test_policy_statements_are_scoped() -> None:
    statements = policy_statements(dynamic_group="dg", compartment_id=COMPARTMENT, bucket="models")
    where = f"in compartment id {COMPARTMENT}"
    assert statements == [
        f"Allow dynamic-group dg to read repos {where}",
        f"Allow dynamic-group dg to use log-content {where}",
        f"Allow dynamic-group dg to read buckets {where} where target.bucket.name = 'models'",
        f"Allow dynamic-group dg to read objects {where} where target.bucket.name = 'models'",
    ]
    assert not any("tenancy" in s or "manage" in s or "any-user" in s for s in statements)
    with_secret = policy_statements(
        dynamic_group="dg",
        compartment_id=COMPARTMENT,
        bucket="models",
        token_secret_id="ocid1.vaultsecret.oc1.iad.x",
    )
    assert with_secret[-1] == (
        f"Allow dynamic-group dg to read secret-bundles {where} "
        "where target.secret.id = 'ocid1.vaultsecret.oc1.iad.x'"
    )


def test_statements_for_the_root_compartment_say_tenancy(config: dict[str, Any], plan_of: PlanOf) -> None:
    """OCI's policy syntax names the root compartment `tenancy`, not `compartment id <tenancy OCID>`."""
    config["oci-llm-stack:compartmentId"] = TENANCY
    plan = plan_of(config)
    statements = policy_named(plan, "llm-identity-policy").inputs["statements"]
    assert (
        statements[0] == "Allow dynamic-group oci-llm-stack-test-model-deployments to read repos in tenancy"
    )
    assert not any("compartment id" in s for s in statements)
    assert one(plan, DYNAMIC_GROUP).inputs["matchingRule"] == matching_rule(TENANCY)


def test_dynamic_group_matches_only_this_compartments_deployments(
    config: dict[str, Any], plan_of: PlanOf
) -> None:
    plan = plan_of(config)
    group = has_resource(
        plan, DYNAMIC_GROUP, compartmentId=TENANCY, name="oci-llm-stack-test-model-deployments"
    )
    assert group.inputs["matchingRule"] == matching_rule(COMPARTMENT)
    assert "resource.compartment.id" in group.inputs["matchingRule"]
    policy = policy_named(plan, "llm-identity-policy")
    assert policy.inputs["compartmentId"] == COMPARTMENT
    assert policy.inputs["statements"][0] == (
        f"Allow dynamic-group oci-llm-stack-test-model-deployments to read repos in compartment id {COMPARTMENT}"
    )


def test_an_existing_dynamic_group_is_used(config: dict[str, Any], plan_of: PlanOf) -> None:
    """An administrator owns identity then: no group, no policy (`llmstack preflight` checks theirs)."""
    config["oci-llm-stack:identity"] = {"existingDynamicGroup": "ml-deployments"}
    plan = plan_of(config)
    assert resource_count(plan, DYNAMIC_GROUP) == 0
    assert resource_count(plan, POLICY) == 0


def test_an_existing_project_is_used(config: dict[str, Any], plan_of: PlanOf) -> None:
    project = "ocid1.datascienceproject.oc1.iad.aaaaaaaa3yv4njzkdsm2xowqxchcpjhcfcgtr6t747rfquvph3qdys6zcrla"
    config["oci-llm-stack:projectId"] = project
    plan = plan_of(config)
    assert resource_count(plan, PROJECT) == 0
    assert one(plan, DEPLOYMENT).inputs["projectId"] == project


# -- the model deployment ---------------------------------------------------------------------------------------


def test_deployment_is_wired_to_subnet_logs_and_catalog_model(
    config: dict[str, Any], plan_of: PlanOf
) -> None:
    plan = plan_of(config)
    deployment = one(plan, DEPLOYMENT)
    by_name = {r.name: r for r in plan.resources}
    details = deployment.inputs["modelDeploymentConfigurationDetails"]
    model = details["modelConfigurationDetails"]
    assert model["modelId"] == by_name["llama2-7b-chat-model"].id
    assert model["instanceConfiguration"]["subnetId"] == by_name["llm-network-subnet"].id
    logs = deployment.inputs["categoryLogDetails"]
    assert logs["predict"] == {
        "logGroupId": by_name["llm-logs-group"].id,
        "logId": by_name["llm-logs-llama2-7b-chat-predict"].id,
    }
    assert logs["access"]["logId"] == by_name["llm-logs-llama2-7b-chat-access"].id
    assert set(depends_on(plan, deployment, POLICY)) == {"llm-identity-policy", "llm-identity-service-policy"}
    readiness = one(plan, READINESS)
    assert readiness.inputs["deploymentId"] == deployment.id
    assert set(depends_on(plan, readiness, DEPLOYMENT)) == {"llama2-7b-chat-deployment"}


def test_deployment_is_byoc_on_the_gpu_shape(config: dict[str, Any], plan_of: PlanOf) -> None:
    model_of(config)["compute"] = {"shape": "VM.GPU.A10.2", "replicas": 2, "bandwidthMbps": 100}
    plan = plan_of(config)
    details = one(plan, DEPLOYMENT).inputs["modelDeploymentConfigurationDetails"]
    env = details["environmentConfigurationDetails"]
    assert env["environmentConfigurationType"] == "OCIR_CONTAINER"
    assert env["image"].endswith("@sha256:" + "ab" * 32) and env["imageDigest"] == "sha256:" + "ab" * 32
    assert env["serverPort"] == env["healthCheckPort"] == 8080
    model = details["modelConfigurationDetails"]
    assert model["bandwidthMbps"] == 100
    assert model["scalingPolicy"] == {"policyType": "FIXED_SIZE", "instanceCount": 2}
    assert deployment_env(one(plan, DEPLOYMENT))["TENSOR_PARALLELISM"] == "2"


def test_autoscaling_becomes_a_threshold_policy(config: dict[str, Any], plan_of: PlanOf) -> None:
    model_of(config)["compute"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4, "metric": "memory"}
    policy = one(plan_of(config), DEPLOYMENT).inputs["modelDeploymentConfigurationDetails"][
        "modelConfigurationDetails"
    ]["scalingPolicy"]
    assert policy["policyType"] == "AUTOSCALING" and policy["coolDownInSeconds"] == 600
    (auto,) = policy["autoScalingPolicies"]
    assert (auto["minimumInstanceCount"], auto["maximumInstanceCount"], auto["initialInstanceCount"]) == (
        1,
        4,
        1,
    )
    assert auto["rules"][0]["metricType"] == "MEMORY_UTILIZATION"
    assert auto["rules"][0]["scaleOutConfiguration"]["threshold"] == 80


def test_online_vllm_env_names_the_model_and_token_file_never_the_token(
    config: dict[str, Any], plan_of: PlanOf
) -> None:
    config["oci-llm-stack:hfToken"] = FAKE_HF_TOKEN
    plan = plan_of(config, secret_keys=["oci-llm-stack:hfToken"])
    env = deployment_env(one(plan, DEPLOYMENT))
    assert env["MODEL"] == "meta-llama/Llama-2-7b-chat-hf"
    assert env["TOKEN_FILE"] == TOKEN_FILE
    assert "MODEL_DEPLOY_PREDICT_ENDPOINT" not in env  # vLLM sits behind the adapter on OCI's default route
    catalog = one(plan, CATALOG).inputs
    assert (catalog["artifact"], catalog["hfToken"]) == ({"kind": "inline"}, "[secret]")
    assert FAKE_HF_TOKEN not in json.dumps(plan.as_json())


def test_token_from_vault_reaches_the_container_by_ocid(config: dict[str, Any], plan_of: PlanOf) -> None:
    secret = "ocid1.vaultsecret.oc1.iad.amaaaaaahqssvraa4ynbujkfzbzwvqasvmj4wxy7ipnhcgyfpqbl7ro2xboq"
    del config["oci-llm-stack:hfToken"]
    config["oci-llm-stack:hfTokenSecretId"] = secret
    plan = plan_of(config)
    env = deployment_env(one(plan, DEPLOYMENT))
    assert env["TOKEN_SECRET_ID"] == secret and "TOKEN_FILE" not in env
    assert one(plan, CATALOG).inputs["artifact"] == {"kind": "inline"}
    assert "hfToken" not in one(plan, CATALOG).inputs
    statements = policy_named(plan, "llm-identity-policy").inputs["statements"]
    assert statements[-1].endswith(f"where target.secret.id = '{secret}'")


def test_offline_tgi_env_uses_generate_and_the_deployed_model(
    config: dict[str, Any], plan_of: PlanOf
) -> None:
    model_of(config)["source"] = {"objectStorage": "oci://models@idxyzabc1234/llama-2-7b-chat.zip"}
    model_of(config)["serving"].update(
        engine="tgi", quantization="int8", params="--max-batch-prefill-tokens 4096"
    )
    plan = plan_of(config)
    env = deployment_env(one(plan, DEPLOYMENT))
    assert env["MODEL"] == DEPLOYED_MODEL_DIR
    assert env["MODEL_DEPLOY_PREDICT_ENDPOINT"] == "/generate"
    assert env["QUANTIZATION"] == "int8" and env["PARAMS"] == "--max-batch-prefill-tokens 4096"
    assert "TOKEN_FILE" not in env
    assert "hfToken" not in one(plan, CATALOG).inputs  # an offline model needs no token
    artifact = one(plan, CATALOG).inputs["artifact"]
    assert artifact == {
        "kind": "objectStorage",
        "namespace": "idxyzabc1234",
        "bucket": "models",
        "objectName": "llama-2-7b-chat.zip",
        "region": "us-ashburn-1",
        "byReference": False,
    }


def test_local_folder_is_uploaded_before_the_catalog_model(
    config: dict[str, Any], plan_of: PlanOf, tmp_path: Path
) -> None:
    folder = local_model(config, tmp_path)
    model_of(config)["artifact"] = {"mode": "copy"}  # the zip path; by reference: tests/test_default_path.py
    plan = plan_of(config)
    artifact = has_resource(
        plan,
        ARTIFACT,
        localPath=str(folder),
        objectPrefix="models/llama2-7b-chat/",
        bucket="llm-artifacts-test",
    )
    assert len(artifact.inputs["manifestDigest"]) == 64
    catalog = one(plan, CATALOG)
    assert depends_on(plan, catalog, ARTIFACT) == ["llama2-7b-chat-artifact"]
    assert catalog.inputs["artifact"]["objectName"].startswith("models/llama2-7b-chat/")
    # The provider returns the zip's SHA-256 as bare hex; the plan's stand-in has the same shape.
    assert re.fullmatch(r"[0-9a-f]{64}", catalog.inputs["customMetadata"]["fingerprint"])


def test_deployment_carries_the_facts_policies_need(config: dict[str, Any], plan_of: PlanOf) -> None:
    tags = one(plan_of(config), DEPLOYMENT).inputs["freeformTags"]
    assert {tags[TAG_MODEL], tags[TAG_ENGINE], tags[TAG_PARAMETERS]} == {"llama2-7b-chat", "vllm", "7"}
    assert (tags["environment"], tags["team"], tags["pulumi-stack"]) == ("dev", "ml-platform", "test")


def test_every_taggable_resource_carries_the_stack_tags(config: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(config)
    untagged = [
        r.name
        for r in plan.resources
        if r.type.startswith("oci:")
        and "freeformTags" in _known_inputs(r.type)
        and r.inputs.get("freeformTags", {}).get("team") != "ml-platform"
    ]
    assert untagged == []


def test_deployments_wait_long_enough_for_the_service(config: dict[str, Any], plan_of: PlanOf) -> None:
    """The service may take 240 minutes to create or update a deployment; the provider must outwait it."""
    timeouts = one(plan_of(config), DEPLOYMENT).custom_timeouts
    assert (timeouts["create"], timeouts["update"]) == ("245m", "245m")


def test_two_models_get_two_servings_sharing_the_platform(config: dict[str, Any], plan_of: PlanOf) -> None:
    models = config["oci-llm-stack:models"]
    models["llama2-13b-awq"] = {
        "source": {"huggingface": "TheBloke/Llama-2-13B-chat-AWQ"},
        "serving": {"engine": "vllm", "image": model_of(config)["serving"]["image"], "quantization": "awq"},
        "compute": {"shape": "VM.GPU.A10.1"},
    }
    plan = plan_of(config)
    assert resource_count(plan, DEPLOYMENT) == 2 and resource_count(plan, LOG) == 4
    assert resource_count(plan, VCN) == 1 and resource_count(plan, BUCKET) == 1
    assert sorted(plan.outputs["models"]) == ["llama2-13b-awq", "llama2-7b-chat"]


# -- the mock engine accepts anything; the provider does not ------------------------------------------------


def _args_class(type_token: str) -> type:
    _, module_path, name = type_token.split(":")
    module = getattr(pulumi_oci, module_path.split("/")[0].lower())
    return getattr(module, f"{name}Args")  # type: ignore[no-any-return]


def _known_inputs(type_token: str) -> dict[str, Any]:
    return pulumi_types.input_type_types(_args_class(type_token))  # type: ignore[no-any-return]


def _unknown_keys(value: Any, hint: Any, path: str) -> list[str]:
    origin = typing.get_origin(hint)
    if origin is not None and typing.get_args(hint) and isinstance(value, list):
        inner = typing.get_args(hint)[0]
        return [bad for i, item in enumerate(value) for bad in _unknown_keys(item, inner, f"{path}[{i}]")]
    if isinstance(hint, type) and pulumi_types.is_input_type(hint) and isinstance(value, dict):
        known = pulumi_types.input_type_types(hint)
        bad = [f"{path}.{k}" for k in value if k not in known]
        return bad + [
            b for k, v in value.items() if k in known for b in _unknown_keys(v, known[k], f"{path}.{k}")
        ]
    return []


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_recorded_inputs_are_properties_the_provider_knows(stack: str) -> None:
    from llmstack.plan import run_plan
    from tests.conftest import PROJECT_DIR

    plan = run_plan(PROJECT_DIR, stack=stack)
    unknown = []
    for resource in plan.resources:
        if resource.type.startswith("oci:"):
            known = _known_inputs(resource.type)
            unknown += [f"{resource.type}.{k}" for k in resource.inputs if k not in known]
            unknown += [
                b
                for k, v in resource.inputs.items()
                if k in known
                for b in _unknown_keys(v, known[k], f"{resource.type}.{k}")
            ]
    assert unknown == []
    assert resource_count(plan, DEPLOYMENT) == 1


def test_a_misspelt_input_would_be_caught() -> None:
    hint = _known_inputs(DEPLOYMENT)["modelDeploymentConfigurationDetails"]
    assert _unknown_keys({"deploymentType": "SINGLE_MODEL", "modelConfigDetails": {}}, hint, "x") == [
        "x.modelConfigDetails"
    ]


def test_a_public_online_model_gets_no_token_file(config: dict[str, Any], plan_of: PlanOf) -> None:
    del config["oci-llm-stack:hfToken"]
    model_of(config)["source"] = {"huggingface": "TinyLlama/TinyLlama-1.1B-Chat-v1.0"}
    plan = plan_of(config)
    env = deployment_env(one(plan, DEPLOYMENT))
    assert env["MODEL"] == "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
    assert "TOKEN_FILE" not in env and "TOKEN_SECRET_ID" not in env
    assert "hfToken" not in one(plan, CATALOG).inputs


def test_negotiated_prices_travel_to_the_cost_figures(config: dict[str, Any], plan_of: PlanOf) -> None:
    from llmstack import guardrails
    from policy.rules import PolicyConfig

    list_price = guardrails.review(plan_of(config), PolicyConfig()).monthly_usd
    config["oci-llm-stack:pricing"] = {"shapes": {"VM.GPU.A10.1": 1.0}}
    plan = plan_of(config)
    assert one(plan, DEPLOYMENT).inputs["freeformTags"]["llmstack-shape-hourly-usd"] == "1"
    review = guardrails.review(plan, PolicyConfig())
    negotiated = review.monthly_usd
    assert list_price is not None and negotiated is not None
    assert list_price - negotiated == pytest.approx(730.0)  # $1/h less for a 730-hour month
    assert "USD/month at 2026-06-04 list prices (with the stack's price overrides)" in (
        guardrails.render_review(review)
    )


def test_the_callers_nsg_is_exported_for_clients_in_the_vcn(config: dict[str, Any], plan_of: PlanOf) -> None:
    plan = plan_of(config)
    assert plan.outputs["callersNsgId"] == one(plan, NSG).id
    config["oci-llm-stack:network"] = {"egress": "managed"}
    assert plan_of(config).outputs["callersNsgId"] is None


# -- OCI's OpenAI routing, on every deployment of every shipped stack ---------------------------------------


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "finetune"])
def test_every_deployment_of_every_shipped_stack_speaks_openai(stack: str) -> None:
    """predict_api_specification "openai" on each deployment, /predict kept on the allow-list for the
    legacy payload and the `route` header form, inside OCI's limits for custom endpoints."""
    from llmstack.plan import run_plan
    from tests.conftest import PROJECT_DIR

    if stack == "finetune":
        plan = run_plan(PROJECT_DIR, stack_file=PROJECT_DIR / "examples" / "Pulumi.finetune.yaml")
    else:
        plan = run_plan(PROJECT_DIR, stack=stack)
    deployments = resources(plan, DEPLOYMENT)
    assert deployments
    for deployment in deployments:
        env = deployment.inputs["modelDeploymentConfigurationDetails"]["environmentConfigurationDetails"]
        assert env["predictApiSpecification"] == "openai"
        if env["image"].startswith("dsmc://"):
            # The service container's /predict is its own predict endpoint (MODEL_DEPLOY_PREDICT_ENDPOINT):
            # no adapter, no custom endpoint.
            assert "customHttpEndpoints" not in env
            continue
        endpoints = env["customHttpEndpoints"]
        assert 1 <= len(endpoints) <= MAX_CUSTOM_HTTP_ENDPOINTS
        for endpoint in endpoints:
            assert endpoint["endpointUriSuffix"].startswith("/")
            assert set(endpoint["httpMethods"]) <= CUSTOM_HTTP_METHODS
            # a suffix already on the framework's allow-list would be a wasted slot of the 15
            assert endpoint["endpointUriSuffix"] not in OPENAI_ALLOW_LIST
        assert {"endpointUriSuffix": "/predict", "httpMethods": ["POST"]} in endpoints
        # the predict route OCI calls for a bare .../predict is reachable by path as well
        predict_route = env["environmentVariables"].get("MODEL_DEPLOY_PREDICT_ENDPOINT", "/predict")
        routed = {e["endpointUriSuffix"] for e in endpoints} | OPENAI_ALLOW_LIST
        assert predict_route in routed
        # the OpenAI routes clients call are ones OCI forwards; /health is OCI's own poll, not routed
        assert set(OPENAI_ROUTES) <= OPENAI_ALLOW_LIST and "/health" not in routed
        assert env["serverPort"] == env["healthCheckPort"]
