"""ArtifactBucket: the private, versioned bucket that holds model zips (optionally under a Vault key)."""

from __future__ import annotations

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
            opts=pulumi.ResourceOptions(parent=self, protect=args.context.environment == "prod"),
        )
        self.bucket_name = bucket.name
        self.namespace = bucket.namespace
        self.register_outputs({"bucket_name": self.bucket_name, "namespace": self.namespace})
