"""FineTune: a Data Science job that fine-tunes a model, and the run that leaves its weights for the catalog.

Job (BYOC: the training image runs `torchrun ... -m training.finetune`, GPU shape, the stack's subnet and a
training log) -> JobRun [dynamic: started, waited for, diagnosed] -> `<output>/<run folder>/model.zip`,
which ModelServing registers as the catalog model's artifact and deploys like any stored model.

The job gets no secret: the Hugging Face token of a gated base model stays in Vault, and the job reads it
with its resource principal (`--hf-token-secret-id`); the command line holds only addresses and numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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

from components.providers.job_run import JobRun, JobRunArgs
from domain import sizing
from domain.context import (
    TAG_FINETUNE_METHOD,
    TAG_MODEL,
    TAG_PARAMETERS,
    TAG_SHAPE_HOURLY_USD,
    Context,
)
from domain.ids import image_digest
from domain.settings import FINE_TUNE_ZIP, AuthSettings, FineTuneSettings
from oci_runtime.storage import parse_oci_uri
from oci_runtime.training_run import START_ALLOWANCE_MINUTES

MANAGED_EGRESS = "MANAGED_NETWORKING_INTERNET_ACCESS"


@dataclass(frozen=True, kw_only=True)
class FineTuneArgs:
    context: Context
    model_name: str
    fine_tune: FineTuneSettings
    parameters_b: float  # of the base model (settings refuse a fine-tune whose size nobody can tell)
    region: str
    compartment_id: str
    project_id: pulumi.Input[str]
    network_access_type: str  # as the deployments get it: custom (the stack's subnet) or managed egress
    subnet_id: pulumi.Input[str | None]
    log_group_id: pulumi.Input[str]
    log_id: pulumi.Input[str]
    auth: AuthSettings
    token_secret_id: str | None = None
    shape_hourly_usd: float | None = None  # the stack's own price for the training shape, when it sets one
    depends_on: Sequence[pulumi.Resource] = ()


def job_environment(fine_tune: FineTuneSettings) -> dict[str, str]:
    """Variables for the training process: unbuffered output for the log, no Hub traffic it does not need."""
    env = {"PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
    if not fine_tune.base_model_is_hub_id:
        env["HF_HUB_OFFLINE"] = "1"  # the base model comes from Object Storage
    return env


class FineTune(pulumi.ComponentResource):
    job_id: pulumi.Output[str]
    job_run_id: pulumi.Output[str]
    namespace: str
    bucket: str
    object_name: pulumi.Output[str]
    output_uri: str
    fingerprint: pulumi.Output[str]

    def __init__(self, name: str, args: FineTuneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-llm-stack:training:FineTune", name, None, opts)
        ctx, tune, model = args.context, args.fine_tune, args.model_name
        output = parse_oci_uri(tune.output_prefix(ctx.stack, model), arg="output")
        command = tune.command(ctx.stack, model, args.token_secret_id)
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
        managed = args.network_access_type == MANAGED_EGRESS
        disk_gb = sizing.training_disk_gb(args.parameters_b)

        job = oci.datascience.Job(
            f"{name}-job",
            compartment_id=args.compartment_id,
            project_id=args.project_id,
            display_name=ctx.display_name(model, "finetune"),
            description=f"Fine-tunes {tune.base_model} ({tune.method}) into model {model}",
            freeform_tags=tags,
            delete_related_job_runs=True,
            job_configuration_details=JobConfigArgs(
                job_type="DEFAULT",
                environment_variables=job_environment(tune),
                maximum_runtime_in_minutes=str(tune.timeout_minutes),
            ),
            job_environment_configuration_details=JobEnvironmentArgs(
                job_environment_type="OCIR_CONTAINER",
                image=tune.image,
                image_digest=image_digest(tune.image),
                entrypoints=command[:1],
                cmds=command[1:],
            ),
            job_infrastructure_configuration_details=JobInfrastructureArgs(
                job_infrastructure_type="ME_STANDALONE" if managed else "STANDALONE",
                shape_name=tune.shape,
                block_storage_size_in_gbs=disk_gb,
                subnet_id=None if managed else args.subnet_id,
            ),
            job_log_configuration_details=JobLogArgs(
                enable_logging=True,
                enable_auto_log_creation=False,
                log_group_id=args.log_group_id,
                log_id=args.log_id,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        run = JobRun(
            f"{name}-run",
            JobRunArgs(
                job_id=job.id,
                compartment_id=args.compartment_id,
                project_id=args.project_id,
                display_name=ctx.display_name(model, "finetune", output.prefix.rsplit("-", 1)[-1]),
                region=args.region,
                auth=args.auth,
                wait_minutes=tune.timeout_minutes + START_ALLOWANCE_MINUTES,
                namespace=output.namespace,
                bucket=output.bucket,
                object_name=output.object_name(FINE_TUNE_ZIP),
                log_group_id=args.log_group_id,
                log_id=args.log_id,
                freeform_tags=tags,
                # A new run folder means new weights; a replaced job (new command or image) a new job id.
                triggers={"runFolder": output.prefix},
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )

        self.job_id = job.id
        self.job_run_id = run.jobRunId
        self.namespace = output.namespace
        self.bucket = output.bucket
        self.object_name = run.objectName
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
