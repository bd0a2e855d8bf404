"""DeploymentIdentity: who the model deployments (and fine-tuning job runs) are to OCI, and what they and the
OCI services acting for them may do.

The samples match every model deployment in the tenancy and let `any-user` write logs tenancy-wide; here
the dynamic group matches only this compartment's deployments and every grant is scoped to the compartment
(and to the artifact bucket, or the one Vault secret). A stack that fine-tunes gets a second dynamic group,
of its compartment's job runs, with its own grants: read the dataset (and base model) buckets, write the
output bucket; deployments never get write access to a bucket. The services get what Oracle documents for
custom networking, catalog copies, Vault keys and lifecycle rules (statements and sources in domain/iam.py),
one policy per compartment the statements name.

With `identity.existingDynamicGroup` an administrator owns identity: the stack writes no dynamic group and
no policy, and `llmstack preflight` checks that the tenancy's policies hold every statement listed here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from domain.context import Context
from domain.iam import (
    ServiceNeeds,
    TrainingAccess,
    job_matching_rule,
    matching_rule,
    policy_statements,
    service_statements,
    training_policy_statements,
)

__all__ = [
    "DeploymentIdentity",
    "DeploymentIdentityArgs",
    "TrainingAccess",
    "job_matching_rule",
    "matching_rule",
    "policy_statements",
    "training_policy_statements",
]


@dataclass(frozen=True, kw_only=True)
class DeploymentIdentityArgs:
    context: Context
    tenancy_id: str
    compartment_id: str
    bucket_name: str
    services: ServiceNeeds
    existing_dynamic_group: str | None = None
    token_secret_id: str | None = None
    training: TrainingAccess | None = None  # set when a model is fine-tuned in this stack


class DeploymentIdentity(pulumi.ComponentResource):
    """Dynamic groups and policies; depend on this component to act only once every grant exists."""

    dynamic_group_name: pulumi.Output[str]
    policy_id: pulumi.Output[str | None]
    training_policy_id: pulumi.Output[str | None]
    policies: list[pulumi.Resource]  # every policy written, for the resources that act with these rights

    def __init__(
        self, name: str, args: DeploymentIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("oci-llm-stack:iam:DeploymentIdentity", name, None, opts)
        self.policies = []
        self.dynamic_group_name, self.policy_id = self._grant(
            args,
            group_resource=f"{name}-deployments",
            policy_resource=f"{name}-policy",
            role="model-deployments",
            who="model deployments",
            rule=matching_rule(args.compartment_id),
            statements=lambda group: policy_statements(
                dynamic_group=group,
                compartment_id=args.compartment_id,
                bucket=args.bucket_name,
                token_secret_id=args.token_secret_id,
            ),
        )
        self.training_policy_id = pulumi.Output.from_input(None)
        training = args.training
        if training is not None:
            # The job runs' own group (or the existing group, which must match them too) and grants.
            _, self.training_policy_id = self._grant(
                args,
                group_resource=f"{name}-jobs",
                policy_resource=f"{name}-training-policy",
                role="training-jobs",
                who="fine-tuning job runs",
                rule=job_matching_rule(args.compartment_id),
                statements=lambda group: training_policy_statements(
                    dynamic_group=group,
                    compartment_id=args.compartment_id,
                    read_buckets=training.read_buckets,
                    write_buckets=training.write_buckets,
                    token_secret_id=args.token_secret_id,
                ),
            )
        if args.existing_dynamic_group is None:
            self._service_policies(name, args)
        self.register_outputs(
            {
                "dynamic_group_name": self.dynamic_group_name,
                "policy_id": self.policy_id,
                "training_policy_id": self.training_policy_id,
            }
        )

    def _service_policies(self, name: str, args: DeploymentIdentityArgs) -> None:
        """One policy per compartment for the services' statements (the stack's own keeps the plain name)."""
        ctx = args.context
        for compartment, statements in sorted(service_statements(args.services).items()):
            suffix = "" if compartment == args.compartment_id else "-" + _short(compartment)
            policy = oci.identity.Policy(
                f"{name}-service-policy{suffix}",
                compartment_id=compartment,
                name=ctx.display_name("services" + suffix),
                description=f"What OCI services may do for the {ctx.stack} stack",
                statements=statements,
                freeform_tags=ctx.freeform_tags(),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.policies.append(policy)

    def _grant(
        self,
        args: DeploymentIdentityArgs,
        *,
        group_resource: str,
        policy_resource: str,
        role: str,
        who: str,
        rule: str,
        statements: Callable[[str], list[str]],
    ) -> tuple[pulumi.Output[str], pulumi.Output[str | None]]:
        """A dynamic group matching `rule` and a policy of `statements(its name)`; or the existing group."""
        ctx = args.context
        if args.existing_dynamic_group is not None:
            return pulumi.Output.from_input(args.existing_dynamic_group), pulumi.Output.from_input(None)
        group = oci.identity.DynamicGroup(
            group_resource,
            compartment_id=args.tenancy_id,
            name=ctx.display_name(role),
            description=f"{who.capitalize()} of {ctx.project} stack {ctx.stack}",
            matching_rule=rule,
            freeform_tags=ctx.freeform_tags(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = oci.identity.Policy(
            policy_resource,
            compartment_id=args.compartment_id,
            name=ctx.display_name(role),
            description=f"What the {ctx.stack} {who} may do",
            statements=group.name.apply(statements),
            freeform_tags=ctx.freeform_tags(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[group]),
        )
        self.policies.append(policy)
        return group.name, policy.id


def _short(ocid: str) -> str:
    """A stable short name part for a compartment (resource and policy names must stay unique)."""
    return hashlib.sha256(ocid.encode()).hexdigest()[:8]
