"""FineTune: a Data Science job that fine-tunes a model, and the run that leaves its weights for the catalog.

Job -> JobRun [dynamic: started, waited for, diagnosed] -> `<output>/<run folder>/model.zip`, which
ModelServing registers as the catalog model's artifact (merged weights, or an adapter served beside its base).

The job runs `torchrun ... -m training.finetune` on a GPU shape, the stack's subnet and a training log:
- from the training image (BYOC) when `image` is set, else on a service conda environment with the
  entrypoint's code as the job artifact (`components/training_artifact.py`);
- on one node, or on `nodes` nodes as a multi-node job (one node group, started together, on the stack's
  subnet), where `python -m training.multinode` reads OCI's rendezvous and starts torchrun on each node.

The job gets no secret: the Hugging Face token of a gated base model stays in Vault, and the job reads it
with its resource principal (`--hf-token-secret-id`); the command line holds only addresses and numbers.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_oci as oci
from pulumi_oci.datascience import (
    JobJobConfigurationDetailsArgs as JobConfigArgs,
)
from pulumi_oci.datascience import (
    JobJobEnvironmentConfigurationDetailsArgs as JobEnvironmentArgs,
)
from pulumi_oci.datascience import (
    JobJobInfrastructureConfigurationDetailsArgs as JobInfrastructureArgs,
)
from pulumi_oci.datascience import (
    JobJobLogConfigurationDetailsArgs as JobLogArgs,
)
from pulumi_oci.datascience import (
    JobJobNodeConfigurationDetailsArgs as NodeConfigArgs,
)
from pulumi_oci.datascience import (
    JobJobNodeConfigurationDetailsJobNetworkConfigurationArgs as NodeNetworkArgs,
)
from pulumi_oci.datascience import (
    JobJobNodeConfigurationDetailsJobNodeGroupConfigurationDetailsListArgs as NodeGroupArgs,
)
from pulumi_oci.datascience import (
    JobJobNodeConfigurationDetailsJobNodeGroupConfigurationDetailsListJobConfigurationDetailsArgs as NodeJobConfigArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    JobJobNodeConfigurationDetailsJobNodeGroupConfigurationDetailsListJobEnvironmentConfigurationDetailsArgs as NodeEnvironmentArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    JobJobNodeConfigurationDetailsJobNodeGroupConfigurationDetailsListJobInfrastructureConfigurationDetailsArgs as NodeInfrastructureArgs,  # noqa: E501
)

from components.placement import Placement
from components.providers.catalog import ObjectStorageArtifact
from components.providers.job_run import JobRun, JobRunArgs
from components.training_artifact import ENTRYPOINT
from domain import sizing
from domain.context import (
    TAG_FINETUNE_METHOD,
    TAG_MODEL,
    TAG_PARAMETERS,
    TAG_SHAPE_HOURLY_USD,
    Context,
)
from domain.fine_tune_job import FINE_TUNE_ZIP, command, output_prefix
from domain.ids import image_digest
from domain.settings import FineTuneSettings
from oci_runtime.storage import parse_oci_uri
from oci_runtime.training_run import START_ALLOWANCE_MINUTES

MANAGED_EGRESS = "MANAGED_NETWORKING_INTERNET_ACCESS"
NODE_GROUP = "node-group"  # ADS's name for the one node group of a multi-node job
# A Data Science service conda environment for a job without an image: its Python only starts
# training/job_entry.sh, which brings the pinned environment (docs/finetune.md, "No image to build").
SERVICE_CONDA_SLUG = "pytorch24_p310_gpu_x86_64_v1"


@dataclass(frozen=True, kw_only=True)
class FineTuneArgs:
    context: Context
    model_name: str
    fine_tune: FineTuneSettings
    parameters_b: float  # of the base model (settings refuse a fine-tune whose size nobody can tell)
    placement: Placement  # the job runs where the deployments do: same project, network and log group
    log_id: pulumi.Input[str]
    shape_hourly_usd: float | None = None  # the stack's own price for the training shape, when it sets one


def job_environment(fine_tune: FineTuneSettings) -> dict[str, str]:
    """Variables for the training process: unbuffered output for the log, no Hub traffic it does not need;
    without an image, the service conda environment and the artifact's entrypoint."""
    env = {"PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    if not fine_tune.base_model_is_hub_id:
        env["HF_HUB_OFFLINE"] = "1"  # the base model comes from Object Storage
    if fine_tune.image is None:
        env.update(CONDA_ENV_TYPE="service", CONDA_ENV_SLUG=SERVICE_CONDA_SLUG, JOB_RUN_ENTRYPOINT=ENTRYPOINT)
    return env


def job_details(
    tune: FineTuneSettings,
    command: list[str],
    *,
    managed: bool,
    subnet_id: pulumi.Input[str | None],
    disk_gb: int,
) -> dict[str, Any]:
    """The Job's configuration: one node (job/environment/infrastructure details), or a multi-node job
    (one node group of `nodes` replicas started together on the stack's subnet), as ADS's `dsc_job.py`
    sends it. Without an image the command is the artifact entrypoint's arguments."""
    env = job_environment(tune)
    runtime = str(tune.timeout_minutes)
    arguments = shlex.join(command) if tune.image is None else None
    container: dict[str, Any] | None = (
        None
        if tune.image is None
        else {
            "job_environment_type": "OCIR_CONTAINER",
            "image": tune.image,
            "image_digest": image_digest(tune.image),
            "entrypoints": command[:1],
            "cmds": command[1:],
        }
    )
    if tune.nodes == 1:
        return {
            "job_configuration_details": JobConfigArgs(
                job_type="DEFAULT",
                environment_variables=env,
                command_line_arguments=arguments,
                maximum_runtime_in_minutes=runtime,
            ),
            "job_environment_configuration_details": JobEnvironmentArgs(**container) if container else None,
            "job_infrastructure_configuration_details": JobInfrastructureArgs(
                job_infrastructure_type="ME_STANDALONE" if managed else "STANDALONE",
                shape_name=tune.shape,
                block_storage_size_in_gbs=disk_gb,
                subnet_id=None if managed else subnet_id,
            ),
        }
    group = NodeGroupArgs(
        name=NODE_GROUP,
        replicas=tune.nodes,
        minimum_success_replicas=tune.nodes,
        job_configuration_details=NodeJobConfigArgs(
            job_type="DEFAULT",
            environment_variables=env,
            command_line_arguments=arguments,
            maximum_runtime_in_minutes=runtime,
        ),
        job_environment_configuration_details=NodeEnvironmentArgs(**container) if container else None,
        job_infrastructure_configuration_details=NodeInfrastructureArgs(
            job_infrastructure_type="MULTI_NODE", shape_name=tune.shape, block_storage_size_in_gbs=disk_gb
        ),
    )
    return {
        "job_node_configuration_details": NodeConfigArgs(
            job_node_type="MULTI_NODE",
            startup_order="IN_PARALLEL",
            maximum_runtime_in_minutes=runtime,
            job_network_configuration=NodeNetworkArgs(job_network_type="CUSTOM_NETWORK", subnet_id=subnet_id),
            job_node_group_configuration_details_lists=[group],
        )
    }


class FineTune(pulumi.ComponentResource):
    job_id: pulumi.Output[str]
    job_run_id: pulumi.Output[str]
    object_name: pulumi.Output[str]
    artifact: ObjectStorageArtifact  # the run's zip, as a catalog model's artifact
    output_uri: str
    fingerprint: pulumi.Output[str]

    def __init__(self, name: str, args: FineTuneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-llm-stack:training:FineTune", name, None, opts)
        ctx, tune, model, place = args.context, args.fine_tune, args.model_name, args.placement
        output = parse_oci_uri(output_prefix(tune, ctx.stack, model), arg="output")
        job_command = command(tune, ctx.stack, model, place.token_secret_id)
        price = (
            {TAG_SHAPE_HOURLY_USD: f"{args.shape_hourly_usd:g}"} if args.shape_hourly_usd is not None else {}
        )
        tags = ctx.freeform_tags(
            **{
                TAG_MODEL: model,
                TAG_FINETUNE_METHOD: tune.method,
                TAG_PARAMETERS: f"{args.parameters_b:g}",
                **price,
            }
        )
        managed = place.network_access_type == MANAGED_EGRESS
        disk_gb = sizing.training_disk_gb(args.parameters_b)
        job_artifact = place.job_artifact
        if tune.image is None and job_artifact is None:
            raise ValueError(f"model {model}: a fine-tune without an image needs the job artifact")
        artifact: dict[str, Any] = (
            {
                "job_artifact": str(job_artifact.path),
                "artifact_content_length": str(job_artifact.size),
                "artifact_content_disposition": f"attachment; filename={job_artifact.file_name}",
            }
            if tune.image is None and job_artifact is not None
            else {}
        )

        job = oci.datascience.Job(
            f"{name}-job",
            compartment_id=place.compartment_id,
            project_id=place.project_id,
            display_name=ctx.display_name(model, "finetune"),
            description=f"Fine-tunes {tune.base_model} ({tune.method}) into model {model}",
            freeform_tags=tags,
            delete_related_job_runs=True,
            **job_details(tune, job_command, managed=managed, subnet_id=place.subnet_id, disk_gb=disk_gb),
            **artifact,
            job_log_configuration_details=JobLogArgs(
                enable_logging=True,
                enable_auto_log_creation=False,
                log_group_id=place.log_group_id,
                log_id=args.log_id,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        run = JobRun(
            f"{name}-run",
            JobRunArgs(
                job_id=job.id,
                compartment_id=place.compartment_id,
                project_id=place.project_id,
                display_name=ctx.display_name(model, "finetune", output.prefix.rsplit("-", 1)[-1]),
                region=place.region,
                auth=place.auth,
                wait_minutes=tune.timeout_minutes + START_ALLOWANCE_MINUTES,
                namespace=output.namespace,
                bucket=output.bucket,
                object_name=output.object_name(FINE_TUNE_ZIP),
                log_group_id=place.log_group_id,
                log_id=args.log_id,
                freeform_tags=tags,
                # A new run folder means new weights; a replaced job (new command or image) a new job id.
                triggers={"runFolder": output.prefix},
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(place.depends_on)),
        )

        self.job_id = job.id
        self.job_run_id = run.jobRunId
        self.object_name = run.objectName
        self.artifact = ObjectStorageArtifact(
            namespace=output.namespace, bucket=output.bucket, object_name=run.objectName, region=place.region
        )
        self.output_uri = str(output)
        self.fingerprint = run.jobRunId.apply(lambda run_id: f"jobrun:{run_id}")
        self.register_outputs(
            {
                "job_id": self.job_id,
                "job_run_id": self.job_run_id,
                "object_name": self.object_name,
                "output_uri": self.output_uri,
            }
        )
