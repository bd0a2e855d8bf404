"""CatalogModel: a Data Science model catalog entry whose artifact comes from Object Storage or is inline.

Offline models point at a stored zip (`objectStorage`): the catalog copies it in (export from Object
Storage, or a reference for a versioned bucket) and the source object stays where it is. Online models get
a tiny inline artifact holding the Hugging Face token file (`hfToken`, a secret input, never a plain
output), or no token when the container reads it from Vault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi.dynamic

from components.providers.artifact import auth_inputs
from components.providers.base import DynamicResource, ProviderBase
from components.settings import AuthSettings


@dataclass(frozen=True, kw_only=True)
class ObjectStorageArtifact:
    namespace: pulumi.Input[str]
    bucket: pulumi.Input[str]
    object_name: pulumi.Input[str]
    region: str
    by_reference: bool = False

    def props(self) -> dict[str, Any]:
        return {
            "kind": "objectStorage",
            "namespace": self.namespace,
            "bucket": self.bucket,
            "objectName": self.object_name,
            "region": self.region,
            "byReference": self.by_reference,
        }


@dataclass(frozen=True, kw_only=True)
class InlineArtifact:
    """An artifact made from small files: the token file for the online method, when `hfToken` is given."""

    def props(self) -> dict[str, Any]:
        return {"kind": "inline"}


@dataclass(frozen=True, kw_only=True)
class CatalogModelArgs:
    compartment_id: str
    project_id: pulumi.Input[str]
    display_name: str
    description: str
    freeform_tags: dict[str, str]
    region: str
    auth: AuthSettings
    artifact: ObjectStorageArtifact | InlineArtifact
    custom_metadata: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    hf_token: pulumi.Output[str] | None = None  # written as `token` into an inline artifact

    def props(self) -> dict[str, Any]:
        return {
            "compartmentId": self.compartment_id,
            "projectId": self.project_id,
            "displayName": self.display_name,
            "description": self.description,
            "freeformTags": self.freeform_tags,
            "region": self.region,
            "auth": auth_inputs(self.auth),
            "artifact": self.artifact.props(),
            "customMetadata": self.custom_metadata,
            "hfToken": pulumi.Output.secret(self.hf_token) if self.hf_token is not None else None,
        }


class CatalogModelProvider(ProviderBase):
    replace_on = ("compartmentId", "projectId", "region", "artifact", "customMetadata", "hfToken")
    required = ("compartmentId", "projectId", "displayName", "region", "artifact")

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        raise NotImplementedError("catalog registration is implemented by the catalog provider")


class CatalogModel(DynamicResource, module="catalog", name="CatalogModel"):
    modelId: pulumi.Output[str]
    state: pulumi.Output[str]

    def __init__(self, name: str, args: CatalogModelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["hfToken"])
        super().__init__(
            CatalogModelProvider(),
            name,
            {**args.props(), "modelId": None, "state": None},
            pulumi.ResourceOptions.merge(secret, opts),
        )
