"""DeploymentIdentity: who the model deployments (and fine-tuning job runs) are to OCI, and what they may do.

The samples match every model deployment in the tenancy and let `any-user` write logs tenancy-wide; here
the dynamic group matches only this compartment's deployments and every grant is scoped to the compartment
(and to the artifact bucket, or the one Vault secret). A stack that fine-tunes gets a second dynamic group,
of its compartment's job runs, with its own grants: read the dataset (and base model) buckets, write the
output bucket; deployments never get write access to a bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from domain.context import Context


def matching_rule(compartment_id: str) -> str:
    return (
        f"ALL {{resource.type = 'datasciencemodeldeployment', resource.compartment.id = '{compartment_id}'}}"
    )


def job_matching_rule(compartment_id: str) -> str:
    return f"ALL {{resource.type = 'datasciencejobrun', resource.compartment.id = '{compartment_id}'}}"


def location(compartment_id: str) -> str:
    """Where a statement applies: `compartment id <ocid>`, or `tenancy` when the compartment is the root."""
    return "tenancy" if compartment_id.startswith("ocid1.tenancy.") else f"compartment id {compartment_id}"


def _in_bucket(bucket: str) -> str:
    return f"where target.bucket.name = '{bucket}'"


def _runtime_grants(group: str, where: str, grants: list[str], token_secret_id: str | None) -> list[str]:
    """What every workload here needs (pull its image, write its logs), `grants`, then the token's secret."""
    statements = [
        f"Allow {group} to read repos in {where}",
        f"Allow {group} to use log-content in {where}",
        *grants,
    ]
    if token_secret_id is not None:
        statements.append(
            f"Allow {group} to read secret-bundles in {where} where target.secret.id = '{token_secret_id}'"
        )
    return statements


def policy_statements(
    *,
    dynamic_group: str,
    compartment_id: str,
    bucket: str,
    token_secret_id: str | None = None,
) -> list[str]:
    """The grants the deployments (and the Data Science service, for catalog copies) need; nothing broader."""
    where = location(compartment_id)
    group = f"dynamic-group {dynamic_group}"
    grants = [
        f"Allow {group} to read buckets in {where} {_in_bucket(bucket)}",
        f"Allow {group} to read objects in {where} {_in_bucket(bucket)}",
        f"Allow service datascience to read objects in {where} {_in_bucket(bucket)}",
    ]
    return _runtime_grants(group, where, grants, token_secret_id)


def training_policy_statements(
    *,
    dynamic_group: str,
    compartment_id: str,
    read_buckets: Sequence[str],
    write_buckets: Sequence[str],
    token_secret_id: str | None = None,
) -> list[str]:
    """What a fine-tuning job run needs: its image, its log, its buckets (and the token's secret)."""
    where = location(compartment_id)
    group = f"dynamic-group {dynamic_group}"
    writes = sorted(set(write_buckets))
    reads = sorted(set(read_buckets) - set(writes))
    grants = [f"Allow {group} to read buckets in {where} {_in_bucket(b)}" for b in sorted({*reads, *writes})]
    grants += [f"Allow {group} to read objects in {where} {_in_bucket(b)}" for b in reads]
    for bucket in writes:
        # The job writes the model (and replaces a failed attempt's objects); the catalog then copies it in.
        grants.append(f"Allow {group} to manage objects in {where} {_in_bucket(bucket)}")
        grants.append(f"Allow service datascience to read objects in {where} {_in_bucket(bucket)}")
    return _runtime_grants(group, where, grants, token_secret_id)


@dataclass(frozen=True, kw_only=True)
class TrainingAccess:
    """The buckets the stack's fine-tuning jobs read and write."""

    read_buckets: tuple[str, ...]
    write_buckets: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class DeploymentIdentityArgs:
    context: Context
    tenancy_id: str
    compartment_id: str
    bucket_name: str
    existing_dynamic_group: str | None = None
    token_secret_id: str | None = None
    training: TrainingAccess | None = None  # set when a model is fine-tuned in this stack


class DeploymentIdentity(pulumi.ComponentResource):
    dynamic_group_name: pulumi.Output[str]
    policy_id: pulumi.Output[str]
    training_policy_id: pulumi.Output[str | None]

    def __init__(
        self, name: str, args: DeploymentIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("oci-llm-stack:iam:DeploymentIdentity", name, None, opts)
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
        self.register_outputs(
            {
                "dynamic_group_name": self.dynamic_group_name,
                "policy_id": self.policy_id,
                "training_policy_id": self.training_policy_id,
            }
        )

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
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """A dynamic group matching `rule` (or the existing one) and a policy of `statements(its name)`."""
        ctx = args.context
        if args.existing_dynamic_group is not None:
            group_name = pulumi.Output.from_input(args.existing_dynamic_group)
            depends: list[pulumi.Resource] = []
        else:
            group = oci.identity.DynamicGroup(
                group_resource,
                compartment_id=args.tenancy_id,
                name=ctx.display_name(role),
                description=f"{who.capitalize()} of {ctx.project} stack {ctx.stack}",
                matching_rule=rule,
                freeform_tags=ctx.freeform_tags(),
                opts=pulumi.ResourceOptions(parent=self),
            )
            group_name, depends = group.name, [group]
        policy = oci.identity.Policy(
            policy_resource,
            compartment_id=args.compartment_id,
            name=ctx.display_name(role),
            description=f"What the {ctx.stack} {who} may do",
            statements=group_name.apply(statements),
            freeform_tags=ctx.freeform_tags(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        return group_name, policy.id
