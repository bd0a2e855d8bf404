"""Upload a model folder as objects, one per file, for a catalog model registered by reference.

    folder --scan--> manifest --> record of exactly this state, every pinned version still there? --> done
                              \\-> per file: same size and sha-256 as the version recorded last? --> keep it
                                                                        \\-> upload (multipart if large)
                              --> version ids (`version-id` of each PUT / commit) --> model_description.json

Layout under `dest.prefix` (`models/<name>/` for a stack's model): the files under `files/` (BASE_MODEL of
the service container is that prefix, stable for the model's life) and this upload's records under
`.objects/` (`<manifest digest>.json` per folder state, `latest.json` for the per-file check). The prefix is
not content-addressed on purpose: a changed file gets a new version of the same object name, the new
description pins the new version (the old catalog model still pins the old one: the bucket is versioned),
so a new model differs from the old only in its id, and the deployment swaps models without downtime
(OCI updates `modelId` in place while ACTIVE; a new BASE_MODEL would be an environment change, allowed only
while INACTIVE). The description, not the prefix, defines the model: a file removed from the folder stays
an object under the prefix but is not in the next description.

What the zip upload does well is kept (oci_runtime/upload.py): a large file goes up in parallel parts
with CRC32C checks, an interrupted multipart upload resumes (its stored parts are verified by MD5 and kept),
an unchanged folder reads and sends nothing, and the fingerprint is a sha-256 (of the files' names and
sha-256s, so touched but unchanged files keep it). The bucket must be versioned; else this refuses early.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import oci

from domain import model_description
from domain.errors import UserError
from domain.model_description import PinnedObject
from oci_runtime.upload import (
    META_PREFIX,
    ClientFactory,
    Destination,
    Progress,
    Tuning,
    _service_error,
    _unreachable,
    _Upload,
    check_object_fits,
    head_object,
    looking_up_earlier_uploads,
)
from oci_runtime.zipstream import FileEntry, Manifest, part_size_for, scan

FILES_DIR = "files/"
RECORDS_DIR = ".objects/"
RECORD_LAYOUT = "objects-1"
READ_CHUNK = 8 << 20
LARGE_FILE_LANES = 2


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    path: str  # relative to the folder, `/`-separated
    name: str  # the object name
    sha256: str
    size: int
    version: str

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "version": self.version,
        }


@dataclass(frozen=True)
class ObjectsUploaded:
    namespace: str
    bucket: str
    prefix: str  # the files' prefix, with a final `/`
    files: tuple[StoredFile, ...]
    fingerprint: str
    manifest_digest: str
    sent_bytes: int = 0
    skipped: bool = False  # the record of this folder state was found: nothing read or sent
    reused_files: int = 0  # files found stored with the same sha-256
    reused_parts: int = 0

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def uri(self) -> str:
        return f"oci://{self.bucket}@{self.namespace}/{self.prefix}"

    def description(self) -> dict[str, Any]:
        pinned = [PinnedObject(name=f.name, version=f.version, size=f.size) for f in self.files]
        return model_description.describe(self.namespace, self.bucket, self.prefix, pinned)


def files_prefix(dest: Destination) -> str:
    return f"{dest.prefix}{FILES_DIR}"


def content_fingerprint(files: tuple[StoredFile, ...] | list[StoredFile]) -> str:
    h = hashlib.sha256(b"llmstack-objects-1\n")
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.sha256}\n".encode())
    return h.hexdigest()


class BucketNotVersioned(UserError):
    pass


def require_versioning(client: Any, namespace: str, bucket: str) -> None:
    """A model by reference pins each object by its version id: the bucket must keep versions (ADS checks
    the same, `get_bucket(...).versioning == "Enabled"`)."""
    versioning = client.get_bucket(namespace, bucket).data.versioning
    if versioning != "Enabled":
        raise BucketNotVersioned(
            f"bucket {bucket!r} has versioning {versioning!r}: a model by reference pins every file by its "
            f"version id, so the bucket must keep versions; enable it (oci os bucket update --bucket-name "
            f"{bucket} --versioning Enabled) or copy the model into the catalog (artifact.mode: copy)"
        )


def list_versions(client: Any, namespace: str, bucket: str, prefix: str) -> list[Any]:
    """Every version under `prefix` (ListObjectVersions, all pages: the SDK's pager gathers the items)."""
    return list(
        oci.pagination.list_call_get_all_results(
            client.list_object_versions, namespace, bucket, prefix=prefix, fields="name,size,md5"
        ).data
    )


def current_versions(client: Any, namespace: str, bucket: str, prefix: str) -> list[PinnedObject]:
    """The objects under `prefix` as they are now, each pinned by its current version: a model folder some
    other tool put there, registered by reference as it stands (ADS lists the same way)."""
    newest: dict[str, Any] = {}
    for v in list_versions(client, namespace, bucket, prefix):
        known = newest.get(v.name)
        if known is None or v.time_modified > known.time_modified:
            newest[v.name] = v
    return [
        PinnedObject(name=v.name, version=v.version_id, size=int(v.size or 0))
        for v in newest.values()
        if not v.is_delete_marker and not v.name.endswith("/")
    ]


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class _FileUpload(_Upload):
    """One file as a multipart upload to its final name: the zip upload's pipeline, the file as producer."""

    def __init__(
        self,
        client_factory: ClientFactory,
        dest: Destination,
        entry: FileEntry,
        object_name: str,
        tuning: Tuning,
        progress: Progress,
    ) -> None:
        self.client_factory = client_factory
        self.dest = dest
        self.entry = entry
        self.tuning = tuning
        self.part_size = tuning.part_size or part_size_for(entry.size)
        self.parts_total = max(1, -(-entry.size // self.part_size))
        check_object_fits(entry.size, self.part_size, last_too=self.parts_total == 1)
        self.object_name = object_name
        self.progress = progress
        self.on_part = None
        self.upload_id = ""
        self.stored = {}
        self.etags = {}
        self.sent_bytes = 0
        self.reused = 0
        self._local = threading.local()
        self._slots = threading.Semaphore(tuning.workers + 1)
        self._buffers = queue.SimpleQueue()
        self._failed = []
        self._lock = threading.Lock()

    @property
    def total_size(self) -> int:
        return self.entry.size

    def _fits(self, number: int, size: int) -> bool:
        if not 1 <= number <= self.parts_total:
            return False
        last = self.entry.size - self.part_size * (self.parts_total - 1)
        return size == (last if number == self.parts_total else self.part_size)

    def _create_details(self) -> Any:
        return oci.object_storage.models.CreateMultipartUploadDetails(
            object=self.object_name,
            content_type="application/octet-stream",
            metadata={
                f"{META_PREFIX}file-size": str(self.entry.size),
                f"{META_PREFIX}file-mtime-ns": str(self.entry.mtime_ns),
            },
        )

    def _produce(self, emit: Callable[[int, memoryview], None]) -> None:
        with self.entry.path.open("rb", buffering=0) as fh:
            for number in range(1, self.parts_total + 1):
                buffer = self._take_buffer()
                view = memoryview(buffer)
                filled = 0
                while filled < self.part_size and (n := fh.readinto(view[filled:])):
                    filled += n
                if number < self.parts_total and filled != self.part_size:
                    raise UserError(f"{self.entry.path} changed while it was uploaded; run again")
                emit(number, view[:filled])

    def _made_here(self, head: dict[str, str]) -> bool:
        """The object has this file's size and, in its metadata, the modification time it was sent with."""
        size, mtime = int(head.get("content-length", -1)), head.get(f"{META_PREFIX}file-mtime-ns")
        return size == self.entry.size and mtime == str(self.entry.mtime_ns)


@dataclass
class _Run:
    """Counts kept by the threads of one run."""

    sent: int = 0
    reused_files: int = 0
    reused_parts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, sent: int = 0, files: int = 0, parts: int = 0) -> None:
        with self.lock:
            self.sent += sent
            self.reused_files += files
            self.reused_parts += parts


def upload_objects(
    folder: Path,
    dest: Destination,
    client_factory: ClientFactory,
    *,
    tuning: Tuning | None = None,
    progress: bool | None = None,
) -> ObjectsUploaded:
    """Make sure every file of `folder` is an object under `dest.prefix + "files/"`; upload only what
    changed; return each file's pinned version."""
    tuning = tuning or Tuning()
    manifest = scan(folder)
    client = client_factory()
    prefix = files_prefix(dest)
    with looking_up_earlier_uploads(dest):
        require_versioning(client, dest.namespace, dest.bucket)
        found = _find_recorded(client, dest, manifest)
    if found is not None:
        return ObjectsUploaded(
            dest.namespace,
            dest.bucket,
            prefix,
            found,
            content_fingerprint(found),
            manifest.digest,
            skipped=True,
        )

    latest = _read_record(client, dest, "latest")
    live = {(v.name, v.version_id) for v in list_versions(client, dest.namespace, dest.bucket, prefix)}
    run = _Run()
    bar = Progress(f"uploading {dest.uri(prefix)}", manifest.data_bytes, enabled=progress)
    try:
        small = [e for e in manifest.entries if e.size <= (tuning.part_size or part_size_for(e.size))]
        large = [e for e in manifest.entries if e not in small]
        with ThreadPoolExecutor(max_workers=tuning.workers, thread_name_prefix="upload-file") as pool:
            results = list(
                pool.map(
                    lambda e: _one(client_factory, dest, e, prefix, latest, live, tuning, bar, run), small
                )
            )
        # Two large files at a time, each with half the senders: the two sha-256 passes (each must run in
        # order within its file, and sets the pace) use two cores, and one file's last parts overlap the
        # next file's first. Memory: about (workers + 6) parts in all (379 MiB at 6 x 32 MiB, bench).
        lanes = min(LARGE_FILE_LANES, len(large)) or 1
        halved = replace(tuning, workers=max(1, tuning.workers // lanes))
        with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="upload-large") as pool:
            results += list(
                pool.map(
                    lambda e: _one(client_factory, dest, e, prefix, latest, live, halved, bar, run), large
                )
            )
    except oci.exceptions.ServiceError as exc:
        raise _service_error(exc, dest, "upload to") from exc
    except _unreachable() as exc:
        raise UserError(
            f"upload to {dest.uri(prefix)} interrupted ({type(exc).__name__}); the files sent are stored "
            "and a large file's parts are kept: run the same command again to resume"
        ) from exc
    finally:
        bar.close()
    files = tuple(sorted(results, key=lambda f: f.path))
    record = {
        "layout": RECORD_LAYOUT,
        "manifestDigest": manifest.digest,
        "files": [f.as_json() for f in files],
    }
    body = json.dumps(record).encode()
    try:
        for key in (manifest.digest, "latest"):
            client.put_object(
                dest.namespace, dest.bucket, _record_name(dest, key), body, content_type="application/json"
            )
    except oci.exceptions.ServiceError as exc:
        raise _service_error(exc, dest, "record the upload in") from exc
    return ObjectsUploaded(
        dest.namespace,
        dest.bucket,
        prefix,
        files,
        content_fingerprint(files),
        manifest.digest,
        sent_bytes=run.sent,
        reused_files=run.reused_files,
        reused_parts=run.reused_parts,
    )


def _one(
    client_factory: ClientFactory,
    dest: Destination,
    entry: FileEntry,
    prefix: str,
    latest: dict[str, StoredFile],
    live: set[tuple[str, str]],
    tuning: Tuning,
    bar: Progress,
    run: _Run,
) -> StoredFile:
    name = f"{prefix}{entry.arcname}"
    known = latest.get(entry.arcname)
    if known is not None and known.size == entry.size and (known.name, known.version) in live:
        sha = _sha256_of(entry.path)
        if sha == known.sha256:
            run.add(files=1)
            bar.add(entry.size)
            return known
    if entry.size <= (tuning.part_size or part_size_for(entry.size)):
        data = entry.path.read_bytes()
        if len(data) != entry.size:
            raise UserError(f"{entry.path} changed while it was uploaded; run again")
        response = client_factory().put_object(
            dest.namespace, dest.bucket, name, data, content_type="application/octet-stream"
        )
        run.add(sent=len(data))
        bar.add(len(data))
        return StoredFile(
            path=entry.arcname,
            name=name,
            sha256=hashlib.sha256(data).hexdigest(),
            size=entry.size,
            version=str(response.headers["version-id"]),
        )
    return _multipart(client_factory, dest, entry, name, tuning, bar, run)


def _multipart(
    client_factory: ClientFactory,
    dest: Destination,
    entry: FileEntry,
    name: str,
    tuning: Tuning,
    bar: Progress,
    run: _Run,
) -> StoredFile:
    job = _FileUpload(client_factory, dest, entry, name, tuning, bar)
    with job.kept_for_resume():
        job.open()
        sha = job.run()
        committed = job.commit()
    run.add(sent=job.sent_bytes, parts=job.reused)
    version = committed.get("version-id") or (
        head_object(client_factory(), dest.namespace, dest.bucket, name) or {}
    ).get("version-id")
    if not version:
        raise UserError(f"Object Storage gave no version id for {dest.uri(name)}; is the bucket versioned?")
    return StoredFile(path=entry.arcname, name=name, sha256=sha, size=entry.size, version=str(version))


def _record_name(dest: Destination, key: str) -> str:
    return f"{dest.prefix}{RECORDS_DIR}{key}.json"


def _read_record(client: Any, dest: Destination, key: str) -> dict[str, StoredFile]:
    try:
        data = json.loads(
            client.get_object(dest.namespace, dest.bucket, _record_name(dest, key)).data.content
        )
    except oci.exceptions.ServiceError as exc:
        if exc.status == 404:
            return {}
        raise
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("layout") != RECORD_LAYOUT:
        return {}
    try:
        files = [StoredFile(**f) for f in data.get("files") or []]
    except TypeError:
        return {}
    return {f.path: f for f in files}


def _find_recorded(client: Any, dest: Destination, manifest: Manifest) -> tuple[StoredFile, ...] | None:
    """The files an earlier upload of exactly this folder state stored, if every pinned version is there."""
    recorded = _read_record(client, dest, manifest.digest)
    if not recorded or set(recorded) != {e.arcname for e in manifest.entries}:
        return None
    live = {
        (v.name, v.version_id) for v in list_versions(client, dest.namespace, dest.bucket, files_prefix(dest))
    }
    if any((f.name, f.version) not in live for f in recorded.values()):
        return None
    return tuple(sorted(recorded.values(), key=lambda f: f.path))
