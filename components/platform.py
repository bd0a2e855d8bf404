"""LlmPlatform: everything one stack needs, shared parts once and one ModelServing per model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_oci as oci

from components.adapter import Adapter, AdapterArgs
from components.iam import DeploymentIdentity, DeploymentIdentityArgs
from components.logging import DeploymentLogs, DeploymentLogsArgs
from components.model_serving import ModelServing, ModelServingArgs
from components.network import Network, NetworkArgs
from components.placement import Placement
from components.registry import ContainerRegistry, ContainerRegistryArgs
from components.storage import ArtifactBucket, ArtifactBucketArgs
from components.training_artifact import JobArtifact, build_job_artifact
from domain.context import TAG_BUDGET, Context
from domain.fine_tune_rules import lora_slots_of
from domain.iam import service_needs, training_access
from domain.settings import FineTuneSettings, Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
BUILD_DIR = PROJECT_DIR / "build" / "llmstack"  # the no-image training job's artifact is written here


@dataclass(frozen=True, kw_only=True)
class LlmPlatformArgs:
    settings: Settings
    hf_token: pulumi.Output[str] | None = None


def fine_tunes(settings: Settings) -> list[FineTuneSettings]:
    """Every fine-tune of the stack: of deployed models, and of adapters."""
    tunes = [m.source.fine_tune for m in settings.models if m.source.fine_tune is not None]
    return tunes + [a.fine_tune for a in settings.adapters]


def job_artifact(settings: Settings) -> JobArtifact | None:
    """The entrypoint's code as a job artifact, when a fine-tune runs without a training image."""
    if not any(tune.image is None for tune in fine_tunes(settings)):
        return None
    return build_job_artifact(PROJECT_DIR, BUILD_DIR)


class LlmPlatform(pulumi.ComponentResource):
    project_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str | None]
    callers_nsg_id: pulumi.Output[str | None]
    log_group_id: pulumi.Output[str]
    image_repository: pulumi.Output[str]
    bucket_name: pulumi.Output[str]
    models: dict[str, ModelServing]
    adapters: dict[str, Adapter]

    def __init__(self, name: str, args: LlmPlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-llm-stack:platform:LlmPlatform", name, None, opts)
        s = args.settings
        ctx = Context(project=s.project, stack=s.stack, environment=s.environment, tags=s.tags)
        child = pulumi.ResourceOptions(parent=self)

        namespace = oci.objectstorage.get_namespace_output(
            compartment_id=s.compartment_id, opts=pulumi.InvokeOutputOptions(parent=self)
        ).namespace
        network = Network(
            f"{name}-network",
            NetworkArgs(context=ctx, compartment_id=s.compartment_id, settings=s.network),
            opts=child,
        )
        logs = DeploymentLogs(
            f"{name}-logs",
            DeploymentLogsArgs(
                context=ctx,
                compartment_id=s.compartment_id,
                model_names=tuple(m.name for m in s.models),
                training_models=tuple(m.name for m in s.models if m.source.fine_tune is not None),
                adapter_models=tuple(a.name for a in s.adapters),
                retention_days=s.logging.retention_days,
                existing_log_group_id=s.logging.existing_log_group_id,
            ),
            opts=child,
        )
        registry = ContainerRegistry(
            f"{name}-registry",
            ContainerRegistryArgs(
                context=ctx,
                compartment_id=s.compartment_id,
                region=s.region,
                namespace=namespace,
                repository=s.registry.repository,
            ),
            opts=child,
        )
        identity = DeploymentIdentity(
            f"{name}-identity",
            DeploymentIdentityArgs(
                context=ctx,
                tenancy_id=s.tenancy_id,
                compartment_id=s.compartment_id,
                bucket_name=s.artifact_bucket.name,
                services=service_needs(s),
                existing_dynamic_group=s.identity.existing_dynamic_group,
                token_secret_id=s.hf_token_secret_id,
                training=training_access(s),
            ),
            opts=child,
        )
        bucket = ArtifactBucket(
            f"{name}-artifacts",
            ArtifactBucketArgs(
                context=ctx,
                compartment_id=s.compartment_id,
                namespace=namespace,
                name=s.artifact_bucket.name,
                kms_key_id=s.artifact_bucket.kms_key_id,
                previous_versions_days=s.artifact_bucket.previous_versions_days,
                incomplete_uploads_days=s.artifact_bucket.incomplete_uploads_days,
                # The Vault key and lifecycle grants exist before Object Storage acts on them.
                depends_on=identity.policies,
            ),
            opts=child,
        )
        if s.project_id is not None:
            project_id: pulumi.Output[str] = pulumi.Output.from_input(s.project_id)
        else:
            project = oci.datascience.Project(
                f"{name}-project",
                compartment_id=s.compartment_id,
                display_name=ctx.display_name(),
                description=f"LLM deployments of stack {s.stack}",
                freeform_tags=ctx.freeform_tags(),
                opts=child,
            )
            project_id = project.id

        # The monthly-budget policy reads the budget from the deployments' tags (policies see only inputs).
        budget = s.budget.monthly_usd
        serving_ctx = ctx.with_tags(**{TAG_BUDGET: f"{budget:g}"}) if budget is not None else ctx
        placement = Placement(
            region=s.region,
            compartment_id=s.compartment_id,
            project_id=project_id,
            network_access_type=network.network_access_type,
            subnet_id=network.subnet_id,
            log_group_id=logs.log_group_id,
            auth=s.auth,
            token_secret_id=s.hf_token_secret_id,
            job_artifact=job_artifact(s),
            depends_on=[identity],
        )
        self.adapters = {
            adapter.name: Adapter(
                adapter.name,
                AdapterArgs(
                    context=ctx,
                    adapter=adapter,
                    placement=placement,
                    train_log_id=logs.adapter_logs[adapter.name],
                    training_shape_hourly_usd=s.shape_hourly_usd(adapter.fine_tune.shape),
                ),
                opts=child,
            )
            for adapter in s.adapters
        }
        self.models = {
            model.name: ModelServing(
                model.name,
                ModelServingArgs(
                    context=serving_ctx,
                    model=model,
                    placement=placement,
                    logs=logs.logs[model.name],
                    bucket_name=bucket.bucket_name,
                    namespace=namespace,
                    hf_token=args.hf_token,
                    shape_hourly_usd=s.shape_hourly_usd(model.compute.shape),
                    training_shape_hourly_usd=(
                        s.shape_hourly_usd(model.source.fine_tune.shape) if model.source.fine_tune else None
                    ),
                    adapters={
                        a.name: self.adapters[a.name].catalog_model_id for a in s.adapters_of(model.name)
                    },
                    lora_slots=lora_slots_of(s, model.name),
                ),
                opts=child,
            )
            for model in s.models
        }
        self.project_id = project_id
        self.subnet_id = network.subnet_id
        self.callers_nsg_id = network.nsg_id
        self.log_group_id = logs.log_group_id
        self.image_repository = registry.image_repository
        self.bucket_name = bucket.bucket_name
        self.register_outputs(
            {
                "project_id": self.project_id,
                "subnet_id": self.subnet_id,
                "callers_nsg_id": self.callers_nsg_id,
                "log_group_id": self.log_group_id,
                "image_repository": self.image_repository,
                "bucket_name": self.bucket_name,
            }
        )
