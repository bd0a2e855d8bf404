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

from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic

from components.providers.artifact import FolderUploadArgs, FolderUploadProvider
from components.providers.base import DynamicResource
from domain import model_description
from oci_runtime.objects import ObjectsUploaded, upload_objects

OUTPUT_KEYS = ("prefix", "description", "fingerprint", "sizeBytes")


ModelObjectsArgs = FolderUploadArgs


class ModelObjectsProvider(FolderUploadProvider):
    """Uploads the folder's files as objects in create and update."""

    outputs = OUTPUT_KEYS

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._upload(props)
        return pulumi.dynamic.CreateResult(
            f"oci://{props['bucket']}@{props['namespace']}/{outs['prefix']}", outs
        )

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Keep the objects (see the module docstring)."""

    def _upload(self, props: dict[str, Any]) -> dict[str, Any]:
        result = upload_objects(
            Path(str(props["localPath"])),
            self._destination(props),
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
