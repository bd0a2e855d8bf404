"""ModelServing: one model from its source to a checked predict URL.

source -> [ModelArtifact, for a local folder | FineTune, for a fine-tuned model] -> CatalogModel
       -> ModelDeployment (BYOC, GPU) -> Readiness
A base model with adapters in the stack: CatalogModel + the adapters' catalog models -> AdapterGroup
       -> ModelDeployment (MODEL_GROUP, vLLM with LoRA) -> Readiness
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import pulumi
import pulumi_oci as oci
from pulumi_oci.datascience import (
    ModelDeploymentCategoryLogDetailsAccessArgs as AccessLogArgs,
)
from pulumi_oci.datascience import (
    ModelDeploymentCategoryLogDetailsArgs as LogDetailsArgs,
)
from pulumi_oci.datascience import (
    ModelDeploymentCategoryLogDetailsPredictArgs as PredictLogArgs,
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsArgs as DeploymentConfigArgs,
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsEnvironmentConfigurationDetailsArgs as EnvironmentArgs,
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsEnvironmentConfigurationDetailsCustomHttpEndpointArgs as HttpEndpointArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsModelConfigurationDetailsArgs as ModelConfigArgs,
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsModelConfigurationDetailsInstanceConfigurationArgs as InstanceArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsModelConfigurationDetailsScalingPolicyArgs as ScalingArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsModelConfigurationDetailsScalingPolicyAutoScalingPolicyArgs as AutoScalingArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsModelConfigurationDetailsScalingPolicyAutoScalingPolicyRuleArgs as RuleArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsModelConfigurationDetailsScalingPolicyAutoScalingPolicyRuleScaleInConfigurationArgs as ScaleInArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsModelConfigurationDetailsScalingPolicyAutoScalingPolicyRuleScaleOutConfigurationArgs as ScaleOutArgs,  # noqa: E501
)

from components.fine_tune import FineTune, FineTuneArgs
from components.logging import ModelLogs
from components.model_group import AdapterGroup, AdapterGroupArgs, group_deployment_config
from components.placement import Placement
from components.providers.artifact import FolderUploadArgs, ModelArtifact
from components.providers.catalog import (
    CatalogModel,
    CatalogModelArgs,
    InlineArtifact,
    ObjectStorageArtifact,
    ReferenceArtifact,
)
from components.providers.objects import ModelObjects
from components.providers.readiness import Readiness, ReadinessArgs
from domain import sizing
from domain.adapters import AdapterServing
from domain.container_env import (
    CUSTOM_HTTP_ENDPOINTS,
    PREDICT_API_SPECIFICATION,
    container_env,
    container_spec,
)
from domain.context import (
    TAG_ARCHITECTURE,
    TAG_ARTIFACT,
    TAG_CONTAINER,
    TAG_ENGINE,
    TAG_LORA_SLOTS,
    TAG_MAX_MODEL_LEN,
    TAG_MODEL,
    TAG_PARAMETERS,
    TAG_QUANTIZATION,
    TAG_SHAPE_HOURLY_USD,
    TAG_SOURCE,
    TAG_TENSOR_PARALLELISM,
    Context,
)
from domain.ids import image_digest
from domain.oci_rules import INACTIVE_ONLY
from domain.service_container import PORT as SMC_PORT
from domain.service_container import SERVED_MODEL_NAME, deployed_path, service_env, service_spec
from domain.settings import ComputeSettings, ModelSettings
from oci_runtime.objects import FILES_DIR

# The service waits up to 240 minutes for a deployment; the provider must wait a little longer.
DEPLOYMENT_TIMEOUTS = pulumi.CustomTimeouts(create="245m", update="245m", delete="60m")


@dataclass(frozen=True, kw_only=True)
class ModelServingArgs:
    context: Context
    model: ModelSettings
    placement: Placement
    logs: ModelLogs
    bucket_name: pulumi.Input[str]
    namespace: pulumi.Input[str]
    hf_token: pulumi.Output[str] | None = None
    shape_hourly_usd: float | None = None  # the stack's own price for the shape, when it sets one
    training_shape_hourly_usd: float | None = None  # the same for a fine-tuning job's shape
    # Adapters served on this model's deployment: name -> the adapter's catalog model id, and vLLM's
    # (max LoRAs, max LoRA rank) for them.
    adapters: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    lora_slots: tuple[int, int] = (0, 0)


def model_tags(ctx: Context, model: ModelSettings, shape_hourly_usd: float | None = None) -> dict[str, str]:
    """The stack's tags plus the facts the policy pack needs to judge this model."""
    price = {TAG_SHAPE_HOURLY_USD: f"{shape_hourly_usd:g}"} if shape_hourly_usd is not None else {}
    return ctx.freeform_tags(
        **{
            TAG_MODEL: model.name,
            TAG_ENGINE: model.serving.engine,
            TAG_PARAMETERS: f"{model.parameters_b:g}" if model.parameters_b is not None else "unknown",
            TAG_QUANTIZATION: model.serving.quantization,
            TAG_MAX_MODEL_LEN: str(model.serving.max_model_len),
            TAG_TENSOR_PARALLELISM: str(model.serving.tensor_parallelism),
            TAG_SOURCE: model.source.method,
            TAG_CONTAINER: model.serving.container,
            TAG_ARTIFACT: model.artifact_mode,
            **_architecture_tag(model),
            **price,
        }
    )


def _architecture_tag(model: ModelSettings) -> dict[str, str]:
    """The architecture from config.json or the known-model table, for the GPU-fit policy."""
    source = model.source
    architecture, origin = sizing.resolve_architecture(
        local_path=source.local_path, model_id=source.model_id, other_names=(model.name,)
    )
    if architecture is None or origin.startswith("approximation"):
        return {}
    return {TAG_ARCHITECTURE: sizing.architecture_tag(architecture)}


def scaling_policy(compute: ComputeSettings) -> ScalingArgs:
    """A fixed instance count, or threshold autoscaling on CPU or memory."""
    auto = compute.autoscaling
    if auto is None:
        return ScalingArgs(policy_type="FIXED_SIZE", instance_count=compute.replicas)
    metric = {"cpu": "CPU_UTILIZATION", "memory": "MEMORY_UTILIZATION"}[auto.metric]
    step = {"scaling_configuration_type": "THRESHOLD", "pending_duration": "PT5M"}
    rule = RuleArgs(
        metric_expression_rule_type="PREDEFINED_EXPRESSION",
        metric_type=metric,
        scale_out_configuration=ScaleOutArgs(
            threshold=auto.scale_out_threshold, instance_count_adjustment=1, **step
        ),
        scale_in_configuration=ScaleInArgs(
            threshold=auto.scale_in_threshold, instance_count_adjustment=1, **step
        ),
    )
    return ScalingArgs(
        policy_type="AUTOSCALING",
        is_enabled=True,
        cool_down_in_seconds=auto.cooldown_seconds,
        auto_scaling_policies=[
            AutoScalingArgs(
                auto_scaling_policy_type="THRESHOLD",
                initial_instance_count=compute.replicas,
                minimum_instance_count=auto.min_replicas,
                maximum_instance_count=auto.max_replicas,
                rules=[rule],
            )
        ],
    )


class ModelServing(pulumi.ComponentResource):
    catalog_model_id: pulumi.Output[str]
    deployment_id: pulumi.Output[str]
    predict_url: pulumi.Output[str]
    stream_url: pulumi.Output[str]
    openai_base_url: pulumi.Output[str]
    fine_tune: FineTune | None = None

    def __init__(self, name: str, args: ModelServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-llm-stack:serving:ModelServing", name, None, opts)
        ctx, model, place = args.context, args.model, args.placement
        child = pulumi.ResourceOptions(parent=self)
        tags = model_tags(ctx, model, args.shape_hourly_usd)
        # Online with a token in Pulumi config: the token travels as a file in the catalog model's artifact.
        token_in_artifact = (
            model.source.method == "online" and not place.token_secret_id and args.hf_token is not None
        )

        artifact, fingerprint, files_prefix = self._artifact(name, args, child)
        catalog = CatalogModel(
            f"{name}-model",
            CatalogModelArgs(
                compartment_id=place.compartment_id,
                project_id=place.project_id,
                display_name=ctx.display_name(model.name),
                description=f"{model.name} ({model.source.describe()}), served by {model.serving.engine}",
                freeform_tags=tags,
                region=place.region,
                auth=place.auth,
                artifact=artifact,
                custom_metadata=catalog_metadata(model, fingerprint),
                hf_token=args.hf_token
                if model.source.method == "online" and not place.token_secret_id
                else None,
            ),
            # The export acts with the Data Science service's rights on the source bucket: grants first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(place.depends_on)),
        )

        service = model.serving.container == "service"
        if service:
            if files_prefix is None:  # settings refuse this; a guard for other callers
                raise ValueError(f"model {model.name}: the service container needs a model by reference")
            env = service_env(service_spec(model, files_prefix))
        else:
            spec = container_spec(model, place.token_secret_id, token_in_artifact=token_in_artifact)
            if files_prefix is not None:
                spec = replace(spec, model_dir=deployed_path(files_prefix))
            env = container_env(spec)
        image = model.serving.image_uri
        port = SMC_PORT if service else model.serving.port

        def environment(variables: pulumi.Input[Mapping[str, str]]) -> EnvironmentArgs:
            return EnvironmentArgs(
                environment_configuration_type="OCIR_CONTAINER",
                # The service container: `dsmc://<name>:<tag>`, no digest (as ADS sends it).
                image=image,
                image_digest=None if service else image_digest(image),
                server_port=port,
                health_check_port=port,
                environment_variables=variables,
                # OpenAI paths go to the container unchanged; /predict stays reachable for the
                # {"inputs", "parameters"} payload and the `route` header form (domain.container_env),
                # through our adapter: the service container's /predict is its predict endpoint.
                predict_api_specification=PREDICT_API_SPECIFICATION,
                custom_http_endpoints=None
                if service
                else [
                    HttpEndpointArgs(endpoint_uri_suffix=suffix, http_methods=list(methods))
                    for suffix, methods in CUSTOM_HTTP_ENDPOINTS
                ],
            )

        group: AdapterGroup | None = None
        if args.adapters:
            loras, rank = args.lora_slots
            tags = {**tags, TAG_LORA_SLOTS: f"{loras}x{rank}"}
            group = AdapterGroup(
                f"{name}-adapters",
                AdapterGroupArgs(
                    context=ctx,
                    base_name=model.name,
                    base_model_id=catalog.id,
                    adapters=args.adapters,
                    compartment_id=place.compartment_id,
                    project_id=place.project_id,
                    freeform_tags=tags,
                ),
                opts=child,
            )
            serving = AdapterServing(
                base_name=model.name, adapters=tuple(args.adapters), max_loras=loras, max_lora_rank=rank
            )
            # No adapter in the environment: the launcher finds the group's adapters in the model folder.
            group_env = catalog.id.apply(
                lambda base_id: serving.env("service" if service else "custom", env, base_id)
            )
            config = group_deployment_config(
                model_group_id=group.model_group_id,
                shape=model.compute.shape,
                replicas=model.compute.replicas,
                bandwidth_mbps=model.compute.bandwidth_mbps,
                network_access_type=place.network_access_type,
                subnet_id=place.subnet_id,
                environment=environment(group_env),
            )
        else:
            config = DeploymentConfigArgs(
                deployment_type="SINGLE_MODEL",
                model_configuration_details=ModelConfigArgs(
                    model_id=catalog.id,
                    bandwidth_mbps=model.compute.bandwidth_mbps,
                    instance_configuration=InstanceArgs(
                        instance_shape_name=model.compute.shape,
                        network_access_type=place.network_access_type,
                        subnet_id=place.subnet_id,
                    ),
                    scaling_policy=scaling_policy(model.compute),
                ),
                environment_configuration_details=environment(env),
            )
        deployment = oci.datascience.ModelDeployment(
            f"{name}-deployment",
            compartment_id=place.compartment_id,
            project_id=place.project_id,
            display_name=ctx.display_name(model.name),
            # Static: shape and replica count change in place while ACTIVE, a description with them would not.
            description=f"{model.name} served by {model.serving.engine}"
            + (f", with adapters {', '.join(args.adapters)}" if args.adapters else ""),
            freeform_tags=tags,
            model_deployment_configuration_details=config,
            category_log_details=LogDetailsArgs(
                predict=PredictLogArgs(log_group_id=place.log_group_id, log_id=args.logs.predict_log_id),
                access=AccessLogArgs(log_group_id=place.log_group_id, log_id=args.logs.access_log_id),
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=DEPLOYMENT_TIMEOUTS,
                depends_on=list(place.depends_on),
                # OCI changes these only while INACTIVE: a new deployment replaces the old (oci_rules.py).
                replace_on_changes=list(INACTIVE_ONLY),
            ),
        )

        readiness = Readiness(
            f"{name}-readiness",
            ReadinessArgs(
                deployment_id=deployment.id,
                deployment_url=deployment.model_deployment_url,
                region=place.region,
                auth=place.auth,
                engine=model.serving.engine,
                smoke_prompt=model.readiness.smoke_prompt,
                timeout_minutes=model.readiness.timeout_minutes,
                log_group_id=place.log_group_id,
                predict_log_id=args.logs.predict_log_id,
                access_log_id=args.logs.access_log_id,
                triggers={
                    "modelId": catalog.id,
                    **({"modelGroupId": group.model_group_id} if group is not None else {}),
                    "image": image,
                    "envDigest": hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest(),
                    "shape": model.compute.shape,
                    "replicas": model.compute.replicas,
                },
                smoke_api="chat" if service else "legacy",
                served_model=SERVED_MODEL_NAME if service else None,
            ),
            # Its smoke prompt goes through the deployment, which reads its image and logs with the grants.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(place.depends_on)),
        )

        self.catalog_model_id = catalog.id
        self.deployment_id = deployment.id
        self.predict_url = readiness.predictUrl
        self.stream_url = readiness.streamUrl
        # What OpenAI clients take as base_url: OCI strips `.../predict`, the engine sees `/v1/...`.
        self.openai_base_url = readiness.predictUrl.apply(lambda url: f"{url.rstrip('/')}/v1")
        self.register_outputs(
            {
                "openai_base_url": self.openai_base_url,
                "catalog_model_id": self.catalog_model_id,
                "deployment_id": self.deployment_id,
                "predict_url": self.predict_url,
                "stream_url": self.stream_url,
            }
        )

    def _artifact(
        self, name: str, args: ModelServingArgs, child: pulumi.ResourceOptions
    ) -> tuple[
        ObjectStorageArtifact | ReferenceArtifact | InlineArtifact, pulumi.Output[str] | None, str | None
    ]:
        """Where the catalog model's artifact comes from, its fingerprint when this stack uploads it, and
        the object prefix of its files when it is registered by reference."""
        source, by_reference = args.model.source, args.model.artifact_mode == "reference"
        place = args.placement
        folder = (
            FolderUploadArgs(
                local_path=source.local_path,
                namespace=args.namespace,
                bucket=args.bucket_name,
                object_prefix=f"models/{args.model.name}/",
                region=place.region,
                auth=place.auth,
            )
            if source.local_path is not None
            else None
        )
        if folder is not None and by_reference:
            # A stable prefix per model: a changed file is a new version of the same object, so a new
            # model changes only the deployment's modelId (in place, no downtime; oci_runtime/objects.py).
            objects = ModelObjects(f"{name}-objects", folder, opts=child)
            reference = ReferenceArtifact(
                namespace=args.namespace,
                bucket=args.bucket_name,
                prefix=objects.prefix,
                region=place.region,
                description=objects.description,
            )
            return reference, objects.fingerprint, f"models/{args.model.name}/{FILES_DIR}"
        if source.object_storage is not None and by_reference:
            uri = source.object_storage
            reference = ReferenceArtifact(
                namespace=uri.namespace, bucket=uri.bucket, prefix=uri.path, region=place.region
            )
            return reference, None, uri.path
        if folder is not None:
            upload = ModelArtifact(f"{name}-artifact", folder, opts=child)
            stored = ObjectStorageArtifact(
                namespace=args.namespace,
                bucket=args.bucket_name,
                object_name=upload.objectName,
                region=place.region,
            )
            return stored, upload.fingerprint, None
        if source.fine_tune is not None:
            tune = self._fine_tune(name, args, child)
            return tune.artifact, tune.fingerprint, None
        if source.object_storage is not None:
            uri = source.object_storage
            stored = ObjectStorageArtifact(
                namespace=uri.namespace, bucket=uri.bucket, object_name=uri.path, region=place.region
            )
            return stored, None, None
        return InlineArtifact(), None, None

    def _fine_tune(self, name: str, args: ModelServingArgs, child: pulumi.ResourceOptions) -> FineTune:
        model = args.model
        if model.source.fine_tune is None or model.parameters_b is None or args.logs.train_log_id is None:
            raise ValueError(
                f"model {model.name}: a fine-tune needs its settings, its size and a training log"
            )
        self.fine_tune = FineTune(
            f"{name}-finetune",
            FineTuneArgs(
                context=args.context,
                model_name=model.name,
                fine_tune=model.source.fine_tune,
                parameters_b=model.parameters_b,
                placement=args.placement,
                log_id=args.logs.train_log_id,
                shape_hourly_usd=args.training_shape_hourly_usd,
            ),
            opts=child,
        )
        return self.fine_tune


def catalog_metadata(
    model: ModelSettings, fingerprint: pulumi.Output[str] | None
) -> dict[str, pulumi.Input[str]]:
    """Custom metadata on the catalog model: where it came from and how it is served."""
    metadata: dict[str, pulumi.Input[str]] = {
        "source": model.source.describe(),
        "method": model.source.method,
        "engine": model.serving.engine,
        "parameters": f"{model.parameters_b:g}B" if model.parameters_b is not None else "unknown",
    }
    if fingerprint is not None:
        metadata["fingerprint"] = fingerprint
    return metadata
