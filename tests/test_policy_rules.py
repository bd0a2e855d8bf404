"""Each guardrail rule, called directly: pass, fail, missing property and config override.

The inputs are shaped like what the engine hands a policy (camelCase, as `llmstack plan` records them).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from policy.figures import UNKNOWN
from policy.rules import (
    RULES,
    RULES_BY_NAME,
    PolicyConfig,
    StackResource,
    evaluate,
    load_policy_config,
    parse_policy_config,
)

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = "oci:DataScience/modelDeployment:ModelDeployment"
IMAGE = "iad.ocir.io/idxyzabc1234/llm/serving:vllm-3f9c2e1@sha256:" + "a2" * 32

TAGS = {"environment": "dev", "team": "ml-platform", "pulumi-stack": "dev"}


def deployment(**changes: Any) -> dict[str, Any]:
    """A ModelDeployment of Llama 2 7B on one A10 as ModelServing declares it."""
    inputs: dict[str, Any] = {
        "compartmentId": "ocid1.compartment.oc1..aaaa",
        "projectId": "ocid1.datascienceproject.oc1.iad.aaaa",
        "displayName": "oci-llm-stack-dev-llama2-7b-chat",
        "freeformTags": {
            **TAGS,
            "llmstack-model": "llama2-7b-chat",
            "llmstack-engine": "vllm",
            "llmstack-parameters-b": "7",
            "llmstack-quantization": "none",
            "llmstack-max-model-len": "4096",
            "llmstack-tensor-parallelism": "1",
            "llmstack-source": "online",
            "llmstack-architecture": "Llama-2-7B",
        },
        "categoryLogDetails": {
            "predict": {"logGroupId": "ocid1.loggroup.oc1.iad.g", "logId": "ocid1.log.oc1.iad.p"},
            "access": {"logGroupId": "ocid1.loggroup.oc1.iad.g", "logId": "ocid1.log.oc1.iad.a"},
        },
        "modelDeploymentConfigurationDetails": {
            "deploymentType": "SINGLE_MODEL",
            "modelConfigurationDetails": {
                "modelId": "ocid1.datasciencemodel.oc1.iad.m",
                "bandwidthMbps": 10,
                "instanceConfiguration": {
                    "instanceShapeName": "VM.GPU.A10.1",
                    "networkAccessType": "CUSTOM_NETWORKING",
                    "subnetId": "ocid1.subnet.oc1.iad.s",
                },
                "scalingPolicy": {"policyType": "FIXED_SIZE", "instanceCount": 1},
            },
            "environmentConfigurationDetails": {
                "environmentConfigurationType": "OCIR_CONTAINER",
                "image": IMAGE,
                "imageDigest": IMAGE.rsplit("@", 1)[1],
                "serverPort": 8080,
                "healthCheckPort": 8080,
                "environmentVariables": {"MODEL": "meta-llama/Llama-2-7b-chat-hf", "PORT": "8080"},
            },
        },
    }
    for path, value in changes.items():
        _set(inputs, path, value)
    return inputs


def _set(inputs: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("__")
    node = inputs
    for key in parents:
        node = node[key]
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value


_DELETE = object()
MODEL = "modelDeploymentConfigurationDetails__modelConfigurationDetails"
ENV = "modelDeploymentConfigurationDetails__environmentConfigurationDetails"
FTAGS = "freeformTags"

BUCKET = {
    "compartmentId": "ocid1.compartment.oc1..aaaa",
    "namespace": "idxyzabc1234",
    "name": "llm-artifacts-dev",
    "accessType": "NoPublicAccess",
    "versioning": "Enabled",
    "storageTier": "Standard",
    "freeformTags": TAGS,
}
SUBNET = {
    "cidrBlock": "10.20.1.0/24",
    "displayName": "oci-llm-stack-dev-subnet",
    "prohibitPublicIpOnVnic": True,
    "prohibitInternetIngress": True,
    "vcnId": "ocid1.vcn.oc1.iad.v",
    "freeformTags": TAGS,
}
LOG = {
    "displayName": "oci-llm-stack-dev-llama2-7b-chat-predict",
    "logType": "CUSTOM",
    "isEnabled": True,
    "retentionDuration": 30,
    "logGroupId": "ocid1.loggroup.oc1.iad.g",
    "freeformTags": TAGS,
}
IAM = {
    "compartmentId": "ocid1.compartment.oc1..aaaa",
    "name": "oci-llm-stack-dev-model-deployments",
    "description": "What the dev model deployments may do",
    "statements": [
        "Allow dynamic-group llm-dev-deployments to read repos in compartment id ocid1.compartment.oc1..aa",
        "Allow dynamic-group llm-dev-deployments to use log-content in compartment id ocid1.comp.oc1..aa",
    ],
    "freeformTags": TAGS,
}

BUCKET_T = "oci:ObjectStorage/bucket:Bucket"
SUBNET_T = "oci:Core/subnet:Subnet"
LOG_T = "oci:Logging/log:Log"
IAM_T = "oci:Identity/policy:Policy"
CATALOG_T = "pulumi-python:dynamic/catalog:CatalogModel"


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if value is _DELETE:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def check(rule: str, resource_type: str, inputs: dict[str, Any], **config: Any) -> list[str]:
    return RULES_BY_NAME[rule].validate(resource_type, inputs, config)


def test_the_pack_has_the_promised_rules() -> None:
    assert [r.name for r in RULES] == [
        "image-pinned-by-digest",
        "gpu-memory-fits-model",
        "monthly-budget",
        "required-tags",
        "artifact-bucket-private",
        "artifact-bucket-versioned",
        "no-public-ip-subnet",
        "deployment-logs-enabled",
        "log-retention-minimum",
        "no-plaintext-secrets",
        "no-broad-iam",
        "prod-redundancy",
    ]
    assert [r.name for r in RULES if r.enforcement == "advisory"] == ["prod-redundancy"]
    assert [r.name for r in RULES if r.is_stack_rule] == ["monthly-budget"]


class TestImagePinnedByDigest:
    def test_digest_passes(self) -> None:
        assert check("image-pinned-by-digest", DEPLOYMENT, deployment()) == []

    def test_latest_tag_fails(self) -> None:
        inputs = deployment(
            **{f"{ENV}__image": "iad.ocir.io/ns/llm/serving:latest", f"{ENV}__imageDigest": _DELETE}
        )
        [message] = check("image-pinned-by-digest", DEPLOYMENT, inputs)
        assert "tag 'latest'" in message and "pin it by digest" in message

    def test_untagged_image_is_latest_implied(self) -> None:
        inputs = deployment(**{f"{ENV}__image": "iad.ocir.io/ns/llm/serving", f"{ENV}__imageDigest": _DELETE})
        assert "latest (implied)" in check("image-pinned-by-digest", DEPLOYMENT, inputs)[0]

    def test_digest_field_contradicting_the_image_fails(self) -> None:
        inputs = deployment(**{f"{ENV}__imageDigest": "sha256:" + "b3" * 32})
        assert "differs" in check("image-pinned-by-digest", DEPLOYMENT, inputs)[0]

    def test_missing_image_fails_and_missing_container_is_not_judged(self) -> None:
        assert check("image-pinned-by-digest", DEPLOYMENT, deployment(**{f"{ENV}__image": _DELETE})) == [
            "the container deployment names no image"
        ]
        no_container = deployment(
            **{"modelDeploymentConfigurationDetails__environmentConfigurationDetails": _DELETE}
        )
        assert check("image-pinned-by-digest", DEPLOYMENT, no_container) == []

    def test_a_training_job_image_is_judged_like_a_serving_image(self) -> None:
        job = "oci:DataScience/job:Job"
        pinned = {
            "jobEnvironmentConfigurationDetails": {"jobEnvironmentType": "OCIR_CONTAINER", "image": IMAGE}
        }
        assert check("image-pinned-by-digest", job, pinned) == []
        moving = {
            "jobEnvironmentConfigurationDetails": {
                "jobEnvironmentType": "OCIR_CONTAINER",
                "image": "iad.ocir.io/ns/llm/train:0.1.0",
            }
        }
        [message] = check("image-pinned-by-digest", job, moving)
        assert "tag '0.1.0'" in message and "pin it by digest" in message

    def test_a_service_container_with_an_explicit_version_passes_and_a_custom_tag_alone_still_fails(
        self,
    ) -> None:
        service = deployment(
            **{f"{ENV}__image": "dsmc://odsc-vllm-serving:0.19.1.265", f"{ENV}__imageDigest": _DELETE}
        )
        assert check("image-pinned-by-digest", DEPLOYMENT, service) == []
        latest = deployment(
            **{f"{ENV}__image": "dsmc://odsc-vllm-serving:latest", f"{ENV}__imageDigest": _DELETE}
        )
        [message] = check("image-pinned-by-digest", DEPLOYMENT, latest)
        assert "is not pinned to a version" in message and "odsc-vllm-serving:0.19.1.265" in message
        untagged = deployment(**{f"{ENV}__image": "dsmc://odsc-vllm-serving", f"{ENV}__imageDigest": _DELETE})
        assert "is not pinned to a version" in check("image-pinned-by-digest", DEPLOYMENT, untagged)[0]
        custom = deployment(
            **{f"{ENV}__image": "iad.ocir.io/ns/llm/vllm:0.19.1", f"{ENV}__imageDigest": _DELETE}
        )
        assert "pin it by digest" in check("image-pinned-by-digest", DEPLOYMENT, custom)[0]

    def test_unknown_image_during_preview_is_not_judged(self) -> None:
        assert check("image-pinned-by-digest", DEPLOYMENT, deployment(**{f"{ENV}__image": UNKNOWN})) == []

    def test_config_can_lower_the_level(self) -> None:
        inputs = deployment(
            **{f"{ENV}__image": "iad.ocir.io/ns/llm/serving:v1", f"{ENV}__imageDigest": _DELETE}
        )
        resources = [StackResource(type=DEPLOYMENT, urn="urn:d", inputs=inputs)]
        [violation] = evaluate(resources, parse_policy_config({"image-pinned-by-digest": "advisory"}))
        assert (violation.policy, violation.enforcement) == ("image-pinned-by-digest", "advisory")
        assert evaluate(resources, parse_policy_config({"image-pinned-by-digest": "disabled"})) == []


class TestGpuMemoryFitsModel:
    def test_7b_on_one_a10_passes(self) -> None:
        assert check("gpu-memory-fits-model", DEPLOYMENT, deployment()) == []

    def test_13b_fp16_on_one_a10_fails_with_the_numbers(self) -> None:
        inputs = deployment(
            **{f"{FTAGS}__llmstack-parameters-b": "13", f"{FTAGS}__llmstack-architecture": "Llama-2-13B"}
        )
        [message] = check("gpu-memory-fits-model", DEPLOYMENT, inputs)
        assert message.startswith("llama2-7b-chat does not fit: needs 30.9 GB")
        assert "21.6 GB usable on 1 GPU(s) of VM.GPU.A10.1" in message

    def test_13b_fp16_on_two_a10_passes(self) -> None:
        inputs = deployment(
            **{
                f"{FTAGS}__llmstack-parameters-b": "13",
                f"{FTAGS}__llmstack-tensor-parallelism": "2",
                f"{MODEL}__instanceConfiguration__instanceShapeName": "VM.GPU.A10.2",
            }
        )
        assert check("gpu-memory-fits-model", DEPLOYMENT, inputs) == []

    def test_missing_parameters_tag_fails_naming_the_setting(self) -> None:
        inputs = deployment(**{f"{FTAGS}__llmstack-parameters-b": "unknown"})
        [message] = check("gpu-memory-fits-model", DEPLOYMENT, inputs)
        assert "llmstack-parameters-b" in message and "models.<name>.parameters" in message

    def test_unknown_shape_fails_listing_known_shapes(self) -> None:
        inputs = deployment(**{f"{MODEL}__instanceConfiguration__instanceShapeName": "VM.GPU.A10.3"})
        assert "is not a known GPU shape" in check("gpu-memory-fits-model", DEPLOYMENT, inputs)[0]

    def test_without_the_architecture_tag_the_known_architecture_of_the_name_is_used(self) -> None:
        inputs = deployment(**{f"{FTAGS}__llmstack-architecture": _DELETE})
        assert check("gpu-memory-fits-model", DEPLOYMENT, inputs) == []

    def test_config_can_claim_more_of_the_gpu(self) -> None:
        # 13B AWQ (a bare KV layout: no embedding sizes) with a 20k context on one A10: too much KV cache
        # at vLLM's 0.9; fits at 0.98 with less overhead (6.5 + 0.5 + 16.4 GB of 23.5).
        inputs = deployment(
            **{
                f"{FTAGS}__llmstack-parameters-b": "13",
                f"{FTAGS}__llmstack-architecture": "40x40x128",
                f"{FTAGS}__llmstack-quantization": "awq",
                f"{FTAGS}__llmstack-max-model-len": "20000",
            }
        )
        assert check("gpu-memory-fits-model", DEPLOYMENT, inputs)
        assert (
            check("gpu-memory-fits-model", DEPLOYMENT, inputs, memoryUtilisation=0.98, overheadGbPerGpu=0.5)
            == []
        )


def _stack(*deployments: dict[str, Any]) -> list[StackResource]:
    return [StackResource(type=DEPLOYMENT, urn=f"urn:d{i}", inputs=d) for i, d in enumerate(deployments)]


class TestMonthlyBudget:
    rule = RULES_BY_NAME["monthly-budget"]

    def test_within_the_tagged_budget_passes(self) -> None:
        inputs = deployment(**{f"{FTAGS}__llmstack-budget-monthly-usd": "2500"})
        assert self.rule.validate_stack(_stack(inputs)) == []

    def test_over_the_tagged_budget_fails_with_the_estimate(self) -> None:
        inputs = deployment(
            **{f"{FTAGS}__llmstack-budget-monthly-usd": "1000", f"{MODEL}__scalingPolicy__instanceCount": 2}
        )
        [finding] = self.rule.validate_stack(_stack(inputs))
        assert finding.message.startswith("estimated $2,929/month exceeds the budget of $1,000")
        assert "VM.GPU.A10.1 x2" in finding.message
        assert finding.message.endswith("(list prices of 2026-06-04, 730 h)")

    def test_an_estimate_at_negotiated_prices_says_so(self) -> None:
        inputs = deployment(
            **{f"{FTAGS}__llmstack-budget-monthly-usd": "1000", f"{FTAGS}__llmstack-shape-hourly-usd": "1.5"}
        )
        [finding] = self.rule.validate_stack(_stack(inputs))
        assert finding.message.startswith("estimated $1,104/month exceeds the budget of $1,000")
        assert finding.message.endswith("(list prices of 2026-06-04 with the stack's overrides, 730 h)")

    def test_autoscaling_counts_at_its_maximum(self) -> None:
        scaling = {
            "policyType": "AUTOSCALING",
            "autoScalingPolicies": [
                {"minimumInstanceCount": 1, "maximumInstanceCount": 4, "autoScalingPolicyType": "THRESHOLD"}
            ],
        }
        inputs = deployment(**{f"{MODEL}__scalingPolicy": scaling})
        [finding] = self.rule.validate_stack(_stack(inputs), {"monthlyUsd": 5000})
        assert "x4" in finding.message

    def test_no_budget_means_nothing_to_check(self) -> None:
        assert (
            self.rule.validate_stack(_stack(deployment(**{f"{MODEL}__scalingPolicy__instanceCount": 50})))
            == []
        )

    def test_config_budget_and_prices_override_the_tag_and_the_list(self) -> None:
        inputs = deployment(**{f"{FTAGS}__llmstack-budget-monthly-usd": "100"})
        cheap = {"shapes": {"VM.GPU.A10.1": 0.05}}
        assert self.rule.validate_stack(_stack(inputs), {"monthlyUsd": 1000, "prices": cheap}) == []
        assert self.rule.validate_stack(_stack(inputs), {"monthlyUsd": 1000})

    def test_a_deployment_without_a_shape_cannot_be_priced(self) -> None:
        inputs = deployment(**{f"{MODEL}__instanceConfiguration__instanceShapeName": _DELETE})
        [finding] = self.rule.validate_stack(_stack(inputs), {"monthlyUsd": 1000})
        assert "cannot price llama2-7b-chat" in finding.message


class TestRequiredTags:
    def test_tagged_resource_passes(self) -> None:
        assert check("required-tags", BUCKET_T, BUCKET) == []

    def test_missing_team_fails(self) -> None:
        inputs = with_(BUCKET, freeformTags={"environment": "dev"})
        assert check("required-tags", BUCKET_T, inputs) == [
            "freeform tags team missing (required: environment, team; set `tags`)"
        ]

    def test_no_tags_at_all_on_a_taggable_type_fails(self) -> None:
        assert (
            "environment, team missing"
            in check("required-tags", SUBNET_T, with_(SUBNET, freeformTags=_DELETE))[0]
        )

    def test_untaggable_types_are_not_judged(self) -> None:
        rule = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"
        assert check("required-tags", rule, {"direction": "INGRESS", "protocol": "6"}) == []

    def test_config_adds_a_required_tag(self) -> None:
        assert check("required-tags", BUCKET_T, BUCKET, tags=["environment", "team", "cost-center"]) == [
            "freeform tags cost-center missing (required: environment, team, cost-center; set `tags`)"
        ]


class TestArtifactBucketPrivate:
    def test_private_passes(self) -> None:
        assert check("artifact-bucket-private", BUCKET_T, BUCKET) == []

    def test_public_fails(self) -> None:
        [message] = check("artifact-bucket-private", BUCKET_T, with_(BUCKET, accessType="ObjectRead"))
        assert "accessType ObjectRead" in message

    def test_missing_access_type_is_the_private_default(self) -> None:
        assert check("artifact-bucket-private", BUCKET_T, with_(BUCKET, accessType=_DELETE)) == []

    def test_config_exempts_a_bucket(self) -> None:
        public = with_(BUCKET, accessType="ObjectReadWithoutList", name="public-docs")
        assert check("artifact-bucket-private", BUCKET_T, public, exemptBuckets=["public-docs"]) == []


class TestArtifactBucketVersioned:
    def test_versioned_passes(self) -> None:
        assert check("artifact-bucket-versioned", BUCKET_T, BUCKET) == []

    def test_disabled_fails(self) -> None:
        assert (
            "versioning is Disabled"
            in check("artifact-bucket-versioned", BUCKET_T, with_(BUCKET, versioning="Disabled"))[0]
        )

    def test_missing_versioning_fails_because_the_default_is_off(self) -> None:
        assert "not set" in check("artifact-bucket-versioned", BUCKET_T, with_(BUCKET, versioning=_DELETE))[0]

    def test_config_exempts_a_bucket(self) -> None:
        scratch = with_(BUCKET, versioning="Disabled", name="scratch")
        assert check("artifact-bucket-versioned", BUCKET_T, scratch, exemptBuckets=["scratch"]) == []


class TestNoPublicIpSubnet:
    def test_private_subnet_passes(self) -> None:
        assert check("no-public-ip-subnet", SUBNET_T, SUBNET) == []

    def test_public_subnet_fails(self) -> None:
        assert (
            "is false"
            in check("no-public-ip-subnet", SUBNET_T, with_(SUBNET, prohibitPublicIpOnVnic=False))[0]
        )

    def test_missing_flag_fails_because_public_ips_are_allowed_by_default(self) -> None:
        assert (
            "not set"
            in check("no-public-ip-subnet", SUBNET_T, with_(SUBNET, prohibitPublicIpOnVnic=_DELETE))[0]
        )

    def test_config_exempts_a_subnet(self) -> None:
        bastion = with_(SUBNET, prohibitPublicIpOnVnic=False, displayName="bastion")
        assert check("no-public-ip-subnet", SUBNET_T, bastion, exemptSubnets=["bastion"]) == []


class TestDeploymentLogsEnabled:
    def test_both_logs_pass(self) -> None:
        assert check("deployment-logs-enabled", DEPLOYMENT, deployment()) == []

    def test_missing_access_log_fails(self) -> None:
        inputs = deployment(**{"categoryLogDetails__access": _DELETE})
        assert check("deployment-logs-enabled", DEPLOYMENT, inputs) == [
            "no access log: set categoryLogDetails.access (log group and log)"
        ]

    def test_no_log_details_at_all_fails_twice(self) -> None:
        assert len(check("deployment-logs-enabled", DEPLOYMENT, deployment(categoryLogDetails=_DELETE))) == 2

    def test_disabled_log_fails(self) -> None:
        assert "is disabled" in check("deployment-logs-enabled", LOG_T, with_(LOG, isEnabled=False))[0]

    def test_config_can_require_only_the_predict_log(self) -> None:
        inputs = deployment(**{"categoryLogDetails__access": _DELETE})
        assert check("deployment-logs-enabled", DEPLOYMENT, inputs, categories=["predict"]) == []


class TestLogRetentionMinimum:
    def test_thirty_days_pass_by_default(self) -> None:
        assert check("log-retention-minimum", LOG_T, LOG) == []

    def test_missing_retention_is_the_thirty_day_default(self) -> None:
        assert check("log-retention-minimum", LOG_T, with_(LOG, retentionDuration=_DELETE)) == []

    def test_config_raises_the_minimum(self) -> None:
        assert check("log-retention-minimum", LOG_T, LOG, minimumDays=90) == [
            "log oci-llm-stack-dev-llama2-7b-chat-predict keeps 30 days; at least 90 required"
        ]
        assert check("log-retention-minimum", LOG_T, with_(LOG, retentionDuration=180), minimumDays=90) == []

    def test_engine_doubles_are_accepted_as_integers(self) -> None:
        assert check("log-retention-minimum", LOG_T, LOG, minimumDays=60.0)


HF_TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----"


class TestNoPlaintextSecrets:
    def test_clean_inputs_pass(self) -> None:
        assert check("no-plaintext-secrets", DEPLOYMENT, deployment()) == []

    def test_token_in_an_environment_variable_fails_without_repeating_it(self) -> None:
        inputs = deployment(**{f"{ENV}__environmentVariables__HF_TOKEN": HF_TOKEN})
        [message] = check("no-plaintext-secrets", DEPLOYMENT, inputs)
        assert "environmentVariables.HF_TOKEN holds a Hugging Face token" in message
        assert HF_TOKEN not in message

    def test_key_material_in_a_list_fails(self) -> None:
        inputs = with_(IAM, statements=[*IAM["statements"], PEM])
        assert "statements[2] holds private key material" in check("no-plaintext-secrets", IAM_T, inputs)[0]

    def test_masked_secret_and_missing_inputs_pass(self) -> None:
        catalog = {"artifact": {"kind": "inline"}, "hfToken": "[secret]", "freeformTags": TAGS}
        assert check("no-plaintext-secrets", CATALOG_T, catalog) == []
        assert check("no-plaintext-secrets", CATALOG_T, {}) == []

    def test_the_catalog_token_input_is_allowed_and_config_adds_paths_and_patterns(self) -> None:
        # Under the real CLI the policy sees secret inputs in plain text; this one is meant to hold the token.
        catalog = {"artifact": {"kind": "inline"}, "hfToken": HF_TOKEN}
        assert check("no-plaintext-secrets", CATALOG_T, catalog) == []
        assert check("no-plaintext-secrets", CATALOG_T, catalog, allowedPaths=[]) != []
        inputs = deployment(**{f"{ENV}__environmentVariables__API_KEY": "sk-live-0123456789abcdef"})
        assert check("no-plaintext-secrets", DEPLOYMENT, inputs) == []
        assert check("no-plaintext-secrets", DEPLOYMENT, inputs, extraPatterns=[r"sk-live-\w+"])


class TestNoBroadIam:
    def test_scoped_statements_pass(self) -> None:
        assert check("no-broad-iam", IAM_T, IAM) == []

    def test_manage_all_resources_fails(self) -> None:
        broad = "Allow dynamic-group dg to MANAGE  all-resources in tenancy"
        assert check("no-broad-iam", IAM_T, with_(IAM, statements=[broad])) == [
            f"statement grants too much (\\bmanage\\s+all-resources\\b): {broad}"
        ]

    def test_missing_statements_pass(self) -> None:
        assert check("no-broad-iam", IAM_T, with_(IAM, statements=_DELETE)) == []

    def test_config_forbids_more(self) -> None:
        anyone = "allow any-user to use log-content in tenancy"
        assert check("no-broad-iam", IAM_T, with_(IAM, statements=[anyone])) == []
        assert check("no-broad-iam", IAM_T, with_(IAM, statements=[anyone]), forbiddenPatterns=["any-user"])


class TestProdRedundancy:
    prod_tags = f"{FTAGS}__environment"

    def test_two_replicas_in_prod_pass(self) -> None:
        inputs = deployment(**{self.prod_tags: "prod", f"{MODEL}__scalingPolicy__instanceCount": 2})
        assert check("prod-redundancy", DEPLOYMENT, inputs) == []

    def test_one_replica_in_prod_fails(self) -> None:
        inputs = deployment(**{self.prod_tags: "prod"})
        assert check("prod-redundancy", DEPLOYMENT, inputs) == [
            "llama2-7b-chat runs 1 instance(s) in prod; at least 2 survive one failing"
        ]

    def test_dev_and_a_missing_scaling_policy_outside_prod_are_not_judged(self) -> None:
        assert check("prod-redundancy", DEPLOYMENT, deployment()) == []
        inputs = deployment(**{f"{MODEL}__scalingPolicy": _DELETE})
        assert check("prod-redundancy", DEPLOYMENT, inputs) == []

    def test_missing_scaling_policy_in_prod_is_one_instance(self) -> None:
        inputs = deployment(**{self.prod_tags: "prod", f"{MODEL}__scalingPolicy": _DELETE})
        assert check("prod-redundancy", DEPLOYMENT, inputs)

    def test_autoscaling_minimum_counts(self) -> None:
        scaling = {
            "policyType": "AUTOSCALING",
            "autoScalingPolicies": [{"minimumInstanceCount": 1, "maximumInstanceCount": 3}],
        }
        inputs = deployment(**{self.prod_tags: "prod", f"{MODEL}__scalingPolicy": scaling})
        assert check("prod-redundancy", DEPLOYMENT, inputs)

    def test_config_sets_the_environments_and_the_minimum(self) -> None:
        inputs = deployment(**{self.prod_tags: "live", f"{MODEL}__scalingPolicy__instanceCount": 2})
        assert check("prod-redundancy", DEPLOYMENT, inputs, environments=["live"], minReplicas=3)
        resources = [
            StackResource(type=DEPLOYMENT, urn="urn:d", inputs=deployment(**{self.prod_tags: "prod"}))
        ]
        [violation] = evaluate(
            resources, parse_policy_config({"prod-redundancy": {"enforcementLevel": "mandatory"}})
        )
        assert violation.enforcement == "mandatory"


class TestPolicyConfig:
    @pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
    def test_shipped_configs_parse(self, stack: str) -> None:
        config = load_policy_config(ROOT / "policy" / "config" / f"{stack}.json")
        assert isinstance(config, PolicyConfig)

    def test_prod_config_tightens_the_defaults(self) -> None:
        config = load_policy_config(ROOT / "policy" / "config" / "prod.json")
        assert config.level(RULES_BY_NAME["prod-redundancy"]) == "mandatory"
        assert config.settings(RULES_BY_NAME["log-retention-minimum"])["minimumDays"] == 90

    def test_all_sets_every_level(self) -> None:
        config = parse_policy_config({"all": "advisory", "monthly-budget": "mandatory"})
        assert config.level(RULES_BY_NAME["no-broad-iam"]) == "advisory"
        assert config.level(RULES_BY_NAME["monthly-budget"]) == "mandatory"

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ({"image-pinned": "mandatory"}, "'image-pinned' is not a policy of this pack"),
            ({"monthly-budget": "blocking"}, "enforcement level 'blocking' is not one of advisory"),
            (
                {"log-retention-minimum": {"minimumDays": "90"}},
                "log-retention-minimum.minimumDays='90' is not of type integer",
            ),
            ({"required-tags": {"tag": ["team"]}}, "required-tags.tag is not a setting of this policy"),
            ([], "expected an object of policy names"),
        ],
    )
    def test_bad_config_is_named(self, raw: Any, message: str) -> None:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            parse_policy_config(raw, "policy/config/x.json")

    def test_unreadable_file_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "dev.json"
        path.write_text("{not json")
        with pytest.raises(ValueError, match=r"dev\.json: cannot read policy config"):
            load_policy_config(path)
        path.write_text(json.dumps({"all": "mandatory"}))
        assert load_policy_config(path).default_level == "mandatory"
