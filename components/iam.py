"""DeploymentIdentity: who the model deployments are to OCI, and what they may do.

The samples match every model deployment in the tenancy and let `any-user` write logs tenancy-wide; here
the dynamic group matches only this compartment's deployments and every grant is scoped to the compartment
(and to the artifact bucket, or the one Vault secret).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from components.context import Context


def matching_rule(compartment_id: str) -> str:
    return (
        f"ALL {{resource.type = 'datasciencemodeldeployment', resource.compartment.id = '{compartment_id}'}}"
    )


def policy_statements(
    *,
    dynamic_group: str,
    compartment_id: str,
    bucket: str,
    token_secret_id: str | None = None,
) -> list[str]:
    """The grants the deployments (and the Data Science service, for catalog copies) need; nothing broader."""
    where = f"compartment id {compartment_id}"
    group = f"dynamic-group {dynamic_group}"
    in_bucket = f"where target.bucket.name = '{bucket}'"
    statements = [
        f"Allow {group} to read repos in {where}",
        f"Allow {group} to use log-content in {where}",
        f"Allow {group} to read buckets in {where} {in_bucket}",
        f"Allow {group} to read objects in {where} {in_bucket}",
        f"Allow service datascience to read objects in {where} {in_bucket}",
    ]
    if token_secret_id is not None:
        statements.append(
            f"Allow {group} to read secret-bundles in {where} where target.secret.id = '{token_secret_id}'"
        )
    return statements


@dataclass(frozen=True, kw_only=True)
class DeploymentIdentityArgs:
    context: Context
    tenancy_id: str
    compartment_id: str
    bucket_name: str
    existing_dynamic_group: str | None = None
    token_secret_id: str | None = None


class DeploymentIdentity(pulumi.ComponentResource):
    dynamic_group_name: pulumi.Output[str]
    policy_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: DeploymentIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("oci-llm-stack:iam:DeploymentIdentity", name, None, opts)
        ctx = args.context
        child = pulumi.ResourceOptions(parent=self)
        if args.existing_dynamic_group is not None:
            self.dynamic_group_name = pulumi.Output.from_input(args.existing_dynamic_group)
            depends: list[pulumi.Resource] = []
        else:
            group = oci.identity.DynamicGroup(
                f"{name}-deployments",
                compartment_id=args.tenancy_id,
                name=ctx.display_name("model-deployments"),
                description=f"Model deployments of {ctx.project} stack {ctx.stack}",
                matching_rule=matching_rule(args.compartment_id),
                freeform_tags=ctx.freeform_tags(),
                opts=child,
            )
            self.dynamic_group_name = group.name
            depends = [group]
        statements = self.dynamic_group_name.apply(
            lambda group_name: policy_statements(
                dynamic_group=group_name,
                compartment_id=args.compartment_id,
                bucket=args.bucket_name,
                token_secret_id=args.token_secret_id,
            )
        )
        policy = oci.identity.Policy(
            f"{name}-policy",
            compartment_id=args.compartment_id,
            name=ctx.display_name("model-deployments"),
            description=f"What the {ctx.stack} model deployments may do",
            statements=statements,
            freeform_tags=ctx.freeform_tags(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.policy_id = policy.id
        self.register_outputs({"dynamic_group_name": self.dynamic_group_name, "policy_id": self.policy_id})
