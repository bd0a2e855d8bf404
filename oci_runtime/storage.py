"""Object Storage for the fine-tuning job: `oci://bucket@namespace/prefix` addresses, download and upload.

The job reads its dataset (and maybe its base model) from a prefix and writes the model folder to another.
`ObjectStore` is the small interface the entrypoint uses; `OciObjectStore` implements it with the oci SDK
(resource principal inside a job) and tests hand in their own. Object names under a prefix map to relative
paths under a local folder, `prefix/a/b.json` <-> `folder/a/b.json`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import oci

from domain.errors import UserError
from domain.ids import AUTH_MODES, InvalidId, ObjectUri, parse_object_uri
from oci_runtime.auth import Auth, make_client
from oci_runtime.retry import retry_call

PART_SIZE = 128 * 1024 * 1024
CHUNK = 1024 * 1024


def parse_oci_uri(ref: str, *, arg: str) -> ObjectUri:
    """`oci://bucket@ns/prefix` as parts; anything else is a UserError naming `arg`."""
    try:
        return parse_object_uri(ref)
    except InvalidId as exc:
        raise UserError(f"{arg} {ref!r}: {exc.reason}; use {exc.accepted}") from None


class ObjectStore(Protocol):
    """The four calls the job makes; every name is a full object name inside (namespace, bucket)."""

    def list_names(self, namespace: str, bucket: str, prefix: str) -> list[str]: ...

    def download(self, namespace: str, bucket: str, name: str, dest: Path) -> None: ...

    def upload(self, namespace: str, bucket: str, name: str, src: Path) -> None: ...

    def delete(self, namespace: str, bucket: str, name: str) -> None: ...


def objects_at(store: ObjectStore, uri: ObjectUri) -> dict[str, str]:
    """Object name -> path relative to `uri`: the one object named by the prefix, or every object below it."""
    names = store.list_names(uri.namespace, uri.bucket, uri.prefix)
    if uri.prefix and uri.prefix in names:
        return {uri.prefix: PurePosixPath(uri.prefix).name}
    start = f"{uri.prefix}/" if uri.prefix else ""
    return {name: name[len(start) :] for name in names if name.startswith(start) and not name.endswith("/")}


def download_prefix(store: ObjectStore, uri: ObjectUri, dest: Path) -> list[Path]:
    """Copy what `uri` names into `dest`, keeping relative paths; returns the files written."""
    dest = dest.resolve()
    written: list[Path] = []
    for name, relative in sorted(objects_at(store, uri).items()):
        target = (dest / relative).resolve()
        if dest not in target.parents:
            raise UserError(f"{uri}: object {name!r} would land outside {dest}; refusing to download it")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        store.download(uri.namespace, uri.bucket, name, partial)
        os.replace(partial, target)
        written.append(target)
    return written


def files_under(folder: Path) -> list[str]:
    """Relative POSIX paths of the files under `folder`, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def upload_folder(store: ObjectStore, folder: Path, uri: ObjectUri, *, last: Iterable[str] = ()) -> list[str]:
    """Upload every file under `folder` to `uri`; the files named in `last` go after all others.

    A reader that waits for the `last` file (a manifest) never sees a half-written model.
    """
    relatives = files_under(folder)
    late = [r for r in relatives if r in set(last)]
    ordered = [r for r in relatives if r not in late] + late
    for relative in ordered:
        store.upload(uri.namespace, uri.bucket, uri.object_name(relative), folder / relative)
    return [uri.object_name(r) for r in ordered]


def default_auth(mode: str | None) -> Auth:
    """The given mode; else the resource principal inside a Data Science job or notebook; else OCI CLI's."""
    if mode is not None:
        return Auth.from_env(mode)
    if os.environ.get("OCI_RESOURCE_PRINCIPAL_VERSION"):
        return Auth(mode="resource_principal")
    return Auth.from_env()


class OciObjectStore:
    """`ObjectStore` on the oci SDK; the client carries the project's retry policy (429, 5xx, connection)."""

    def __init__(self, client: Any, *, parallel_uploads: int = 4) -> None:
        self.client = client
        self.parallel_uploads = parallel_uploads

    @classmethod
    def connect(cls, *, auth_mode: str | None = None, endpoint: str | None = None) -> OciObjectStore:

        if auth_mode is not None and auth_mode not in AUTH_MODES:
            raise UserError(f"--oci-auth {auth_mode!r}: choose one of {', '.join(AUTH_MODES)}")
        auth = default_auth(auth_mode)
        return cls(make_client(oci.object_storage.ObjectStorageClient, auth, endpoint=endpoint))

    def list_names(self, namespace: str, bucket: str, prefix: str) -> list[str]:
        names: list[str] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"prefix": prefix, "fields": "name"}
            if start:
                kwargs["start"] = start
            page = self.client.list_objects(namespace, bucket, **kwargs).data
            names += [obj.name for obj in page.objects]
            start = page.next_start_with
            if not start:
                return names

    def download(self, namespace: str, bucket: str, name: str, dest: Path) -> None:
        def fetch() -> None:
            response = self.client.get_object(namespace, bucket, name)
            with open(dest, "wb") as fh:
                for chunk in response.data.raw.stream(CHUNK, decode_content=False):
                    fh.write(chunk)

        # The SDK retries the request; this restarts a body stream that broke halfway.
        retry_call(fetch)

    def upload(self, namespace: str, bucket: str, name: str, src: Path) -> None:

        manager = oci.object_storage.UploadManager(
            self.client,
            allow_parallel_uploads=self.parallel_uploads > 1,
            parallel_process_count=self.parallel_uploads,
        )
        manager.upload_file(namespace, bucket, name, str(src), part_size=PART_SIZE)

    def delete(self, namespace: str, bucket: str, name: str) -> None:

        try:
            self.client.delete_object(namespace, bucket, name)
        except oci.exceptions.ServiceError as exc:
            if exc.status != 404:
                raise
