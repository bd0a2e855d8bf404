"""ModelObjects: a local model folder uploaded as objects, for a catalog model registered by reference.

Inputs carry the folder's cheap manifest digest (names, sizes, mtimes) so that a preview notices a changed
folder without reading it; the provider uploads what changed (`oci_runtime.objects.upload_objects`) and
returns `model_description.json` with every file pinned by its version id, plus a content fingerprint.

An unchanged folder (or one whose files were only touched) gives the same description, so the catalog
model that uses it stays; one changed file gives a new version of one object, a new description and so a
new catalog model under the same prefix (see oci_runtime/objects.py for why the prefix is stable). Delete
keeps the objects: the bucket is versioned and older catalog models pin them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oci
import pulumi
import pulumi.dynamic

from components.providers.artifact import auth_inputs, manifest_digest
from components.providers.base import DynamicResource, ProviderBase
from domain import model_description
from domain.settings import AuthSettings
from oci_runtime.auth import Auth, make_client
from oci_runtime.objects import ObjectsUploaded, upload_objects
from oci_runtime.retry import Backoff
from oci_runtime.upload import Destination, Tuning

OUTPUT_KEYS = ("prefix", "description", "fingerprint", "sizeBytes")


@dataclass(frozen=True, kw_only=True)
class ModelObjectsArgs:
    local_path: Path
    namespace: pulumi.Input[str]
    bucket: pulumi.Input[str]
    object_prefix: str  # `models/<name>/`: the files go under `<object_prefix>files/`
    region: str
    auth: AuthSettings
    endpoints: Mapping[str, str] | None = None

    def props(self) -> dict[str, Any]:
        endpoints = {"endpoints": dict(self.endpoints)} if self.endpoints else {}
        return {
            **endpoints,
            "localPath": str(self.local_path),
            "namespace": self.namespace,
            "bucket": self.bucket,
            "objectPrefix": self.object_prefix,
            "region": self.region,
            "auth": auth_inputs(self.auth),
            "manifestDigest": manifest_digest(self.local_path),
        }


class ModelObjectsProvider(ProviderBase):
    replace_on = ("localPath", "namespace", "bucket", "objectPrefix", "region")
    required = ("localPath", "namespace", "bucket", "region")
    outputs = OUTPUT_KEYS

    def __init__(self, tuning: Tuning | None = None, backoff: Backoff | None = None) -> None:
        super().__init__()
        self.tuning = tuning or Tuning()
        self.backoff = backoff or Backoff()

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._upload(props)
        return pulumi.dynamic.CreateResult(
            f"oci://{props['bucket']}@{props['namespace']}/{outs['prefix']}", outs
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(self._upload(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Keep the objects (see the module docstring)."""

    def _client(self, props: Mapping[str, Any]) -> Any:
        return make_client(
            oci.object_storage.ObjectStorageClient,
            Auth.from_inputs(props.get("auth")),
            region=str(props["region"]),
            endpoint=(props.get("endpoints") or {}).get("objectstorage"),
            backoff=self.backoff,
        )

    def _upload(self, props: dict[str, Any]) -> dict[str, Any]:
        dest = Destination(
            namespace=str(props["namespace"]),
            bucket=str(props["bucket"]),
            prefix=str(props.get("objectPrefix") or ""),
        )
        result = upload_objects(
            Path(str(props["localPath"])),
            dest,
            lambda: self._client(props),
            tuning=self.tuning,
            progress=False,
        )
        return {**props, **outputs(result)}


def outputs(result: ObjectsUploaded) -> dict[str, Any]:
    return {
        "manifestDigest": result.manifest_digest,
        "prefix": result.prefix,
        "description": model_description.to_bytes(result.description()).decode(),
        "fingerprint": result.fingerprint,
        "sizeBytes": result.size_bytes,
    }


class ModelObjects(DynamicResource, module="artifacts", name="ModelObjects"):
    prefix: pulumi.Output[str]
    description: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    sizeBytes: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        args: ModelObjectsArgs,
        opts: pulumi.ResourceOptions | None = None,
        provider: ModelObjectsProvider | None = None,
    ) -> None:
        super().__init__(
            provider or ModelObjectsProvider(), name, {**args.props(), **dict.fromkeys(OUTPUT_KEYS)}, opts
        )
