"""ModelArtifact: a local model folder, zipped (stored, files at the root) and uploaded to Object Storage.

Inputs carry a cheap manifest digest of the folder (paths, sizes, modification times) so that a preview
notices a changed folder without reading every byte; the provider computes the content fingerprint
(sha-256 of the zip) while it uploads.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic

from components.providers.base import DynamicResource, ProviderBase
from components.settings import AuthSettings


def manifest_digest(folder: Path) -> str:
    """sha-256 over (relative path, size, mtime in ns) of every file, in sorted order."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            stat = path.stat()
            rel = path.relative_to(folder).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def auth_inputs(auth: AuthSettings) -> dict[str, str]:
    return {"mode": auth.mode, "profile": auth.profile, "configFile": auth.config_file}


@dataclass(frozen=True, kw_only=True)
class ModelArtifactArgs:
    local_path: Path
    namespace: pulumi.Input[str]
    bucket: pulumi.Input[str]
    object_prefix: str
    region: str
    auth: AuthSettings

    def props(self) -> dict[str, Any]:
        return {
            "localPath": str(self.local_path),
            "namespace": self.namespace,
            "bucket": self.bucket,
            "objectPrefix": self.object_prefix,
            "region": self.region,
            "auth": auth_inputs(self.auth),
            "manifestDigest": manifest_digest(self.local_path),
        }


class ModelArtifactProvider(ProviderBase):
    replace_on = ("localPath", "namespace", "bucket", "objectPrefix", "region", "manifestDigest")
    required = ("localPath", "namespace", "bucket", "region")

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        raise NotImplementedError("artifact upload is implemented by the artifact upload provider")


class ModelArtifact(DynamicResource, module="artifacts", name="ModelArtifact"):
    uri: pulumi.Output[str]
    objectName: pulumi.Output[str]
    fingerprint: pulumi.Output[str]
    sizeBytes: pulumi.Output[int]

    def __init__(
        self, name: str, args: ModelArtifactArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        outputs = {"uri": None, "objectName": None, "fingerprint": None, "sizeBytes": None}
        super().__init__(ModelArtifactProvider(), name, {**args.props(), **outputs}, opts)
