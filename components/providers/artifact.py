"""ModelArtifact: a local model folder, zipped (stored, files at the root) and uploaded to Object Storage.

Inputs carry a cheap manifest digest of the folder (paths, sizes, modification times, see
`oci_runtime.zipstream.Manifest`) so that a preview notices a changed folder without reading every byte; the
provider computes the content fingerprint (sha-256 of the zip) while it streams the upload
(`oci_runtime.upload.upload_folder`: parallel multipart, resumable, skipped when the folder is already there).

A changed folder updates the resource in place: the upload runs again and the outputs follow the new
bytes. The object name is the fingerprint, so a folder whose files were only touched keeps its object
and the catalog model that uses it. Deleting the resource keeps the zip: a catalog model may reference
it, and it is the user's data (the bucket is versioned; clean old zips with a lifecycle rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oci
import pulumi
import pulumi.dynamic

from components.providers.base import DynamicResource, ProviderBase
from domain.settings import AuthSettings
from oci_runtime.auth import Auth, make_client
from oci_runtime.retry import Backoff
from oci_runtime.upload import Destination, Tuning, Uploaded, head_object, upload_folder
from oci_runtime.zipstream import scan

OUTPUT_KEYS = ("uri", "objectName", "fingerprint", "sizeBytes")


def manifest_digest(folder: Path) -> str:
    """The digest the upload records for `folder`: names, sizes and mtimes of the files it would zip."""
    return scan(folder).digest


def auth_inputs(auth: AuthSettings) -> dict[str, str]:
    return {"mode": auth.mode, "profile": auth.profile, "configFile": auth.config_file}


@dataclass(frozen=True, kw_only=True)
class FolderUploadArgs:
    """A local model folder and where in Object Storage it goes: the zip upload's and the objects' inputs."""

    local_path: Path
    namespace: pulumi.Input[str]
    bucket: pulumi.Input[str]
    object_prefix: str
    region: str
    auth: AuthSettings
    endpoints: Mapping[str, str] | None = None  # {"objectstorage": URL}, e.g. a private endpoint

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


ModelArtifactArgs = FolderUploadArgs


class FolderUploadProvider(ProviderBase):
    """What the folder uploads share: which inputs replace, the tuning, the update, the client.

    OCI clients are built inside each call (they do not pickle); `_upload` is each provider's own."""

    replace_on = ("localPath", "namespace", "bucket", "objectPrefix", "region")
    required = ("localPath", "namespace", "bucket", "region")

    def __init__(self, tuning: Tuning | None = None, backoff: Backoff | None = None) -> None:
        super().__init__()
        self.tuning = tuning or Tuning()
        self.backoff = backoff or Backoff()

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(self._upload(news))

    def _client(self, props: Mapping[str, Any]) -> Any:
        return make_client(
            oci.object_storage.ObjectStorageClient,
            Auth.from_inputs(props.get("auth")),
            region=str(props["region"]),
            endpoint=(props.get("endpoints") or {}).get("objectstorage"),
            backoff=self.backoff,
        )

    def _destination(self, props: Mapping[str, Any]) -> Destination:
        return Destination(
            namespace=str(props["namespace"]),
            bucket=str(props["bucket"]),
            prefix=str(props.get("objectPrefix") or ""),
        )

    def _upload(self, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class ModelArtifactProvider(FolderUploadProvider):
    """Uploads the stored zip in create and update."""

    outputs = OUTPUT_KEYS

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        outs = self._upload(props)
        return pulumi.dynamic.CreateResult(outs["uri"], outs)

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        """Refresh: a zip deleted behind Pulumi's back makes the resource gone, so `up` uploads it again."""
        if not props.get("objectName"):
            return pulumi.dynamic.ReadResult(id_, props)
        client = self._client(props)
        head = head_object(client, str(props["namespace"]), str(props["bucket"]), str(props["objectName"]))
        if head is None or int(head.get("content-length", -1)) != props.get("sizeBytes"):
            return pulumi.dynamic.ReadResult("", {})
        return pulumi.dynamic.ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Keep the zip (see the module docstring); there is nothing else to remove."""

    def _upload(self, props: dict[str, Any]) -> dict[str, Any]:
        result = upload_folder(
            Path(str(props["localPath"])),
            self._destination(props),
            lambda: self._client(props),
            tuning=self.tuning,
            progress=False,
        )
        return {**props, **_outs(result)}


def _outs(result: Uploaded) -> dict[str, Any]:
    return {
        "manifestDigest": result.manifest_digest,
        "uri": result.uri,
        "objectName": result.object_name,
        "fingerprint": result.fingerprint,
        "sizeBytes": result.size_bytes,
    }


class ModelArtifact(DynamicResource, module="artifacts", name="ModelArtifact"):
    uri: pulumi.Output[str]
    objectName: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    sizeBytes: pulumi.Output[int]

    def __init__(
        self,
        name: str,
        args: ModelArtifactArgs,
        opts: pulumi.ResourceOptions | None = None,
        provider: ModelArtifactProvider | None = None,
    ) -> None:
        outputs = dict.fromkeys(OUTPUT_KEYS)
        super().__init__(provider or ModelArtifactProvider(), name, {**args.props(), **outputs}, opts)
