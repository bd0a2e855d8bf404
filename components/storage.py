"""ArtifactBucket: the private, versioned bucket that holds model zips (optionally under a Vault key).

A versioned bucket keeps every replaced object and, like any bucket, every interrupted multipart upload until
someone deletes them, and bills them. Lifecycle rules delete previous versions and abort uncommitted uploads
after a number of days (SDK `ObjectLifecycleRule.target`: "previous-object-versions" takes DELETE,
"multipart-uploads" takes ABORT only). Object Storage acts on its own rights for both the Vault key and the
lifecycle rules: the policies granting them (domain/iam.py) come first, through `depends_on`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_oci as oci

from domain.context import Context


@dataclass(frozen=True, kw_only=True)
class ArtifactBucketArgs:
    context: Context
    compartment_id: str
    namespace: pulumi.Input[str]
    name: str
    kms_key_id: str | None = None
    previous_versions_days: int = 30
    incomplete_uploads_days: int = 7
    depends_on: Sequence[
        pulumi.Resource
    ] = ()  # the policies letting Object Storage use the key and the rules


class ArtifactBucket(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(
        self, name: str, args: ArtifactBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("oci-llm-stack:storage:ArtifactBucket", name, None, opts)
        bucket = oci.objectstorage.Bucket(
            f"{name}-bucket",
            compartment_id=args.compartment_id,
            namespace=args.namespace,
            name=args.name,
            access_type="NoPublicAccess",
            versioning="Enabled",
            storage_tier="Standard",
            kms_key_id=args.kms_key_id,
            freeform_tags=args.context.freeform_tags(),
            # Losing this bucket loses every uploaded model; delete it by hand if you mean it.
            opts=pulumi.ResourceOptions(
                parent=self, protect=args.context.environment == "prod", depends_on=list(args.depends_on)
            ),
        )
        oci.objectstorage.ObjectLifecyclePolicy(
            f"{name}-lifecycle",
            namespace=args.namespace,
            bucket=bucket.name,
            rules=[
                oci.objectstorage.ObjectLifecyclePolicyRuleArgs(
                    name="delete-previous-versions",
                    action="DELETE",
                    target="previous-object-versions",
                    time_amount=str(args.previous_versions_days),  # a string in pulumi_oci's schema
                    time_unit="DAYS",
                    is_enabled=True,
                ),
                oci.objectstorage.ObjectLifecyclePolicyRuleArgs(
                    name="abort-incomplete-uploads",
                    action="ABORT",
                    target="multipart-uploads",
                    time_amount=str(args.incomplete_uploads_days),
                    time_unit="DAYS",
                    is_enabled=True,
                ),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.bucket_name = bucket.name
        self.namespace = bucket.namespace
        self.register_outputs({"bucket_name": self.bucket_name, "namespace": self.namespace})
