"""AdapterGroup: a base model and its LoRA adapters as one OCI model group that one deployment serves.

A `STACKED` model group (pulumi_oci `datascience.ModelGroup`): the base model's catalog model is the group's
`base_model_id`, and every member, the base included (AQUA: "must also include base model info in member
models to create stacked model group"), is listed with its `inference_key`, the name a client puts in the
OpenAI `model` field. The deployment (`deployment_type: MODEL_GROUP`) points at the group by id.

Members are immutable in OCI, and `member_model_entries` is not updatable in the provider: adding, removing
or retraining one adapter replaces the group (a new group is made before the old one is deleted), the other
adapters' catalog models and jobs stay as they are, and the deployment's `model_group_id`, which is
updatable, moves to the new group in place. Whether that update is the service's zero-downtime kind (`ZDT`)
or `LIVE` is the provider's choice (pulumi_oci 5.5.0 exposes no `update_type`): see docs/finetune.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_oci as oci
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsArgs as DeploymentConfigArgs,
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsEnvironmentConfigurationDetailsArgs as EnvironmentArgs,
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsInfrastructureConfigurationDetailsArgs as InfrastructureArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsInfrastructureConfigurationDetailsInstanceConfigurationArgs as GroupInstanceArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsInfrastructureConfigurationDetailsScalingPolicyArgs as GroupScalingArgs,  # noqa: E501
)
from pulumi_oci.datascience import (
    ModelDeploymentModelDeploymentConfigurationDetailsModelGroupConfigurationDetailsArgs as GroupConfigArgs,
)
from pulumi_oci.datascience import (
    ModelGroupMemberModelEntriesArgs as MemberEntriesArgs,
)
from pulumi_oci.datascience import (
    ModelGroupMemberModelEntriesMemberModelDetailArgs as MemberArgs,
)
from pulumi_oci.datascience import (
    ModelGroupModelGroupDetailsArgs as GroupDetailsArgs,
)

from domain.context import Context


@dataclass(frozen=True, kw_only=True)
class AdapterGroupArgs:
    context: Context
    base_name: str
    base_model_id: pulumi.Input[str]
    adapters: Mapping[str, pulumi.Input[str]]  # served name -> the adapter's catalog model id
    compartment_id: str
    project_id: pulumi.Input[str]
    freeform_tags: Mapping[str, str]


class AdapterGroup(pulumi.ComponentResource):
    model_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: AdapterGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("oci-llm-stack:serving:AdapterGroup", name, None, opts)
        if not args.adapters:
            raise ValueError(f"{args.base_name}: an adapter group needs at least one adapter")
        members = [MemberArgs(inference_key=args.base_name, model_id=args.base_model_id)]
        members += [
            MemberArgs(inference_key=key, model_id=model_id) for key, model_id in args.adapters.items()
        ]
        group = oci.datascience.ModelGroup(
            f"{name}-group",
            compartment_id=args.compartment_id,
            project_id=args.project_id,
            create_type="CREATE",
            display_name=args.context.display_name(args.base_name, "adapters"),
            description=f"{args.base_name} and its adapters: {', '.join(args.adapters)}",
            freeform_tags=dict(args.freeform_tags),
            model_group_details=GroupDetailsArgs(type="STACKED", base_model_id=args.base_model_id),
            member_model_entries=MemberEntriesArgs(member_model_details=members),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.model_group_id = group.id
        self.register_outputs({"model_group_id": self.model_group_id})


def group_deployment_config(
    *,
    model_group_id: pulumi.Input[str],
    shape: str,
    replicas: int,
    bandwidth_mbps: int,
    network_access_type: str,
    subnet_id: pulumi.Input[str | None],
    environment: EnvironmentArgs,
) -> DeploymentConfigArgs:
    """A MODEL_GROUP deployment's configuration: the group, its instances (fixed count) and the container."""
    return DeploymentConfigArgs(
        deployment_type="MODEL_GROUP",
        model_group_configuration_details=GroupConfigArgs(model_group_id=model_group_id),
        infrastructure_configuration_details=InfrastructureArgs(
            infrastructure_type="INSTANCE_POOL",
            bandwidth_mbps=bandwidth_mbps,
            instance_configuration=GroupInstanceArgs(
                instance_shape_name=shape, network_access_type=network_access_type, subnet_id=subnet_id
            ),
            scaling_policy=GroupScalingArgs(policy_type="FIXED_SIZE", instance_count=replicas),
        ),
        environment_configuration_details=environment,
    )
