"""Upload a model folder to Object Storage as a stored zip, streamed: no zip on disk, bounded memory.

    folder --scan--> manifest (names, sizes, mtimes) --> already uploaded? (sidecar + HEAD) --> done
                                                     \\-> zip parts --> parallel multipart upload --> commit
                                                                    \\-> sha-256 (the fingerprint)

- Memory: at most `workers + 3` parts exist at once (being sent or hashed, being filled, being handed over).
- Unchanged folder: a sidecar object `<prefix>.manifests/<manifest digest>.json` records what an upload of
  exactly this folder state produced; when it and the object it names (same size and multipart MD5) are
  there, nothing is read or sent. Any file whose size or modification time changed gives a new digest.
- Resume: the multipart upload is named after the manifest digest (`<prefix>.staging/<digest>.zip`), so a
  run after an interruption finds it, recomputes each part, keeps the stored parts whose MD5 matches and
  sends only the rest. Interrupted runs (Ctrl-C, network loss after retries) keep the upload for that;
  any other failure aborts it, so nothing is left behind.
- The committed object is renamed to `<prefix><fingerprint[:16]>.zip`: the same bytes always get the same
  name, whatever the folder's timestamps.
- Each part carries a CRC32C that the service checks (`opc-content-crc32c`); SDK calls retry 429, 5xx and
  connection errors with the project's backoff (oci_runtime/retry.py, through `make_client`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import oci

from domain.errors import UserError
from domain.ids import InvalidId, parse_object_uri
from oci_runtime.retry import is_retryable
from oci_runtime.zipstream import (
    LAYOUT_VERSION,
    ZIP64_LIMIT,
    Manifest,
    ZipLayout,
    part_size_for,
    scan,
    write_zip,
)

ClientFactory = Callable[[], Any]  # returns an oci.object_storage.ObjectStorageClient
# Object Storage's multipart limits. 50 GiB per part, 10,000 parts and 10 TiB per object: the current
# "Using Multipart Uploads" page (docs.cloud.oracle.com/iaas/Content/Object/Tasks/usingmultipartuploads.htm).
# The 10 MiB minimum (waived for the last part) is Oracle's earlier text of the same page ("Individual parts
# can be as large as 50 GiB or as small as 10 MiB"), not restated on the current page; the SDK's own
# streaming uploader uses 10 MiB parts (oci/object_storage/transfer/constants.py). Kept as the safe floor.
MIN_PART_SIZE = 10 << 20
MAX_PART_SIZE = 50 << 30
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 10 << 40
# User metadata on a multipart upload: keys "must be in "opc-meta-*" format" (SDK
# CreateMultipartUploadDetails.metadata; the SDK's own assembler adds the prefix, this upload sends it).
META_PREFIX = "opc-meta-"
SIDECAR_DIR = ".manifests/"
STAGING_DIR = ".staging/"


@dataclass(frozen=True, kw_only=True)
class Destination:
    namespace: str
    bucket: str
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.prefix and not self.prefix.endswith("/"):
            object.__setattr__(self, "prefix", self.prefix + "/")

    @classmethod
    def parse(cls, uri: str, *, what: str = "--to") -> Destination:
        try:
            parsed = parse_object_uri(uri)
        except InvalidId as exc:
            raise UserError(f"{what} {uri!r}: {exc.reason}; use {exc.accepted}/") from None
        return cls(namespace=parsed.namespace, bucket=parsed.bucket, prefix=parsed.path)

    def uri(self, object_name: str) -> str:
        return f"oci://{self.bucket}@{self.namespace}/{object_name}"

    def sidecar(self, digest: str) -> str:
        return f"{self.prefix}{SIDECAR_DIR}{digest}.json"

    def staging(self, digest: str) -> str:
        return f"{self.prefix}{STAGING_DIR}{digest[:32]}.zip"

    def final(self, fingerprint: str) -> str:
        return f"{self.prefix}{fingerprint[:16]}.zip"


@dataclass(frozen=True, kw_only=True)
class Tuning:
    """How the upload runs. Memory is about (workers + 3) x part size: 288 MiB by default."""

    part_size: int | None = None  # None: 32 MiB, doubled until the zip fits in 10,000 parts
    workers: int = 6
    zip64_limit: int = ZIP64_LIMIT

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UserError(f"workers must be at least 1, got {self.workers}")
        if self.part_size is not None and self.part_size < 1:
            raise UserError(f"part size must be positive, got {self.part_size}")


def check_object_fits(total: int, part_size: int, *, last_too: bool = False) -> None:
    """Refuse, before any byte is sent, an upload Object Storage would refuse: parts of 10 MiB (but the last)
    to 50 GiB, at most 10,000 of them, at most 10 TiB in all. A zip of one part is its own last part."""
    if not (part_size >= MIN_PART_SIZE or last_too) or part_size > MAX_PART_SIZE:
        raise UserError(
            f"part size must be between {MIN_PART_SIZE >> 20} MiB and {MAX_PART_SIZE >> 30} GiB "
            f"(Object Storage's limits), got {part_size} bytes"
        )
    if total > MAX_OBJECT_SIZE:
        raise UserError(f"the zip would be {total} bytes; Object Storage stores objects of at most 10 TiB")
    parts = max(1, -(-total // part_size))
    if parts > MAX_PARTS:
        least = -(-total // MAX_PARTS)
        raise UserError(
            f"the zip is {total} bytes: {parts} parts of {part_size >> 20} MiB, and Object Storage takes at "
            f"most {MAX_PARTS:,}; use a part size of at least {-(-least // (1 << 20))} MiB, or leave it unset"
        )


@dataclass(frozen=True)
class Uploaded:
    object_name: str
    uri: str
    fingerprint: str
    size_bytes: int
    manifest_digest: str
    sent_bytes: int = 0  # bytes sent by this run: 0 when the folder was already there
    reused_parts: int = 0  # parts found stored (resume) and verified
    skipped: bool = False


class Progress:
    """Bytes, rate and ETA on one terminal line; silent when the stream is not a terminal."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.total = total
        self.done = 0
        self._start = clock()
        self._shown = -1.0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = self.clock()
            if self.enabled and (now - self._shown >= 0.25 or self.done >= self.total):
                self._shown = now
                self.stream.write("\r" + self.line(now) + "\x1b[K")
                self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max((self.clock() if now is None else now) - self._start, 1e-6)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return (
            f"{self.label} {_size(self.done)} / {_size(self.total)}  {_size(rate)}/s  "
            f"ETA {int(eta // 60)}:{int(eta % 60):02d}"
        )

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------ zip to a file


def write_zip_file(
    folder: Path, output: Path, *, zip64_limit: int = ZIP64_LIMIT, progress: bool | None = None
) -> Uploaded:
    """The same bytes an upload sends, into `output`; returns their sha-256 and size."""
    manifest = scan(folder)
    layout = ZipLayout.of(manifest, zip64_limit=zip64_limit)
    sha = hashlib.sha256()
    bar = Progress(f"writing {output.name}", layout.total_size, enabled=progress)
    tmp = output.with_name(f".{output.name}.partial")
    try:
        with tmp.open("wb") as out:

            def emit(_n: int, data: memoryview) -> None:
                sha.update(data)
                out.write(data)
                bar.add(len(data))

            write_zip(manifest, 8 << 20, emit, zip64_limit=zip64_limit)
        tmp.replace(output)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
        bar.close()
    return Uploaded(
        object_name=output.name,
        uri=str(output),
        fingerprint=sha.hexdigest(),
        size_bytes=layout.total_size,
        manifest_digest=manifest.digest,
    )


# ----------------------------------------------------------------------------------- unchanged check


def find_uploaded(client: Any, dest: Destination, manifest: Manifest) -> Uploaded | None:
    """What an earlier upload of exactly this folder state produced, if its object is still there."""
    digest = manifest.digest
    try:
        data = client.get_object(dest.namespace, dest.bucket, dest.sidecar(digest)).data.content
        record = json.loads(data)
    except oci.exceptions.ServiceError as exc:
        if exc.status == 404:
            return None
        raise
    except ValueError:
        return None
    if (
        not isinstance(record, dict)
        or record.get("layout") != LAYOUT_VERSION
        or record.get("manifestDigest") != digest
        or not isinstance(record.get("objectName"), str)
        or not isinstance(record.get("fingerprint"), str)
        or not isinstance(record.get("sizeBytes"), int)
    ):
        return None  # not a record this code wrote: upload again, which writes a good one
    head = head_object(client, dest.namespace, dest.bucket, record["objectName"])
    if head is None or int(head.get("content-length", -1)) != record["sizeBytes"]:
        return None
    if _content_md5(head) != record.get("contentMd5"):
        return None
    return Uploaded(
        object_name=record["objectName"],
        uri=dest.uri(record["objectName"]),
        fingerprint=record["fingerprint"],
        size_bytes=record["sizeBytes"],
        manifest_digest=digest,
        skipped=True,
    )


def head_object(client: Any, namespace: str, bucket: str, name: str) -> dict[str, str] | None:
    """The object's headers (lower-case keys), or None when it does not exist."""
    try:
        response = client.head_object(namespace, bucket, name)
    except oci.exceptions.ServiceError as exc:
        if exc.status == 404:
            return None
        raise
    return {k.lower(): v for k, v in response.headers.items()}


def _content_md5(head: dict[str, str]) -> str | None:
    return head.get("opc-multipart-md5") or head.get("content-md5")


# -------------------------------------------------------------------------------------------- upload


@dataclass
class _Part:
    number: int
    data: memoryview  # a view of a pooled buffer, handed back when the hasher and the sender are done
    users: int = 2  # the hasher and the sender
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Stored:
    size: int
    md5: str
    etag: str


class _Upload:
    """One streaming multipart upload: producer (zip), hasher (sha-256, in order), senders (parallel)."""

    def __init__(
        self,
        client_factory: ClientFactory,
        dest: Destination,
        manifest: Manifest,
        tuning: Tuning,
        progress: Progress,
        on_part: Callable[[int], None] | None,
    ) -> None:
        self.client_factory = client_factory
        self.dest = dest
        self.manifest = manifest
        self.tuning = tuning
        self.layout = ZipLayout.of(manifest, zip64_limit=tuning.zip64_limit)
        self.part_size = tuning.part_size or part_size_for(self.layout.total_size)
        self.parts_total = max(1, -(-self.layout.total_size // self.part_size))
        check_object_fits(self.layout.total_size, self.part_size, last_too=self.parts_total == 1)
        self.object_name = dest.staging(manifest.digest)
        self.progress = progress
        self.on_part = on_part
        self.upload_id = ""
        self.stored: dict[int, _Stored] = {}
        self.etags: dict[int, str] = {}
        self.sent_bytes = 0
        self.reused = 0
        self._local = threading.local()
        self._slots = threading.Semaphore(tuning.workers + 1)
        self._buffers: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._failed: list[BaseException] = []
        self._lock = threading.Lock()

    # -- clients, one per thread
    def client(self) -> Any:
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self.client_factory()
        return c

    # -- start or resume
    def open(self) -> None:
        client = self.client()
        uploads = oci.pagination.list_call_get_all_results(
            client.list_multipart_uploads, self.dest.namespace, self.dest.bucket
        ).data
        ours = sorted(
            (u for u in uploads if u.object == self.object_name), key=lambda u: u.time_created, reverse=True
        )
        for upload in ours:
            parts = oci.pagination.list_call_get_all_results(
                client.list_multipart_upload_parts,
                self.dest.namespace,
                self.dest.bucket,
                self.object_name,
                upload.upload_id,
            ).data
            stored = {p.part_number: _Stored(p.size, p.md5, p.etag) for p in parts}
            if not self.upload_id and all(self._fits(n, s.size) for n, s in stored.items()):
                self.upload_id, self.stored = upload.upload_id, stored
            else:  # a duplicate, or laid out with another part size: it can never be completed
                self._abort(upload.upload_id)
        if not self.upload_id:
            self.upload_id = client.create_multipart_upload(
                self.dest.namespace, self.dest.bucket, self._create_details()
            ).data.upload_id

    def _create_details(self) -> Any:
        return oci.object_storage.models.CreateMultipartUploadDetails(
            object=self.object_name,
            content_type="application/zip",
            metadata={
                f"{META_PREFIX}manifest-digest": self.manifest.digest,
                f"{META_PREFIX}layout": LAYOUT_VERSION,
            },
        )

    def _fits(self, number: int, size: int) -> bool:
        if not 1 <= number <= self.parts_total:
            return False
        last = self.layout.total_size - self.part_size * (self.parts_total - 1)
        return size == (last if number == self.parts_total else self.part_size)

    @contextlib.contextmanager
    def kept_for_resume(self) -> Iterator[None]:
        """Abort the multipart upload when it fails in a way a rerun cannot resume (see `resumable`)."""
        try:
            yield
        except BaseException as exc:
            if self.upload_id and not resumable(exc):
                # the first error matters more; if the abort fails too, a lifecycle rule cleans up
                with contextlib.suppress(Exception):
                    self._abort(self.upload_id)
            raise

    def _abort(self, upload_id: str) -> None:
        try:
            self.client().abort_multipart_upload(
                self.dest.namespace, self.dest.bucket, self.object_name, upload_id
            )
        except oci.exceptions.ServiceError as exc:
            if exc.status != 404:
                raise

    # -- the pipeline
    def run(self) -> str:
        sha = hashlib.sha256()
        hash_q: queue.Queue[_Part | None] = queue.Queue()
        hasher = threading.Thread(target=self._hash, args=(hash_q, sha), name="zip-sha256", daemon=True)
        hasher.start()
        futures: list[Future[None]] = []
        pool = ThreadPoolExecutor(max_workers=self.tuning.workers, thread_name_prefix="upload-part")

        def emit(number: int, data: memoryview) -> None:
            self._slots.acquire()
            if self._failed:
                self._slots.release()
                raise self._failed[0]
            part = _Part(number, data)
            hash_q.put(part)
            futures.append(pool.submit(self._send, part))

        ok = False
        try:
            self._produce(emit)
            ok = True
        finally:
            pool.shutdown(wait=True, cancel_futures=not ok)
            hash_q.put(None)
            hasher.join()
        for f in futures:
            f.result()
        if self._failed:
            raise self._failed[0]
        return sha.hexdigest()

    def _produce(self, emit: Callable[[int, memoryview], None]) -> None:
        """Hand every part, in order, to `emit` (the zip's parts here; a file's in oci_runtime/objects.py)."""
        write_zip(
            self.manifest,
            self.part_size,
            emit,
            zip64_limit=self.tuning.zip64_limit,
            take_buffer=self._take_buffer,
        )

    def _take_buffer(self) -> bytearray:
        try:
            return self._buffers.get_nowait()
        except queue.Empty:
            return bytearray(self.part_size)

    def _done_with(self, part: _Part) -> None:
        with part.lock:
            part.users -= 1
            last = part.users == 0
        if last:
            buffer = part.data.obj
            part.data.release()
            if isinstance(buffer, bytearray) and len(buffer) == self.part_size:
                self._buffers.put(buffer)
            self._slots.release()

    def _hash(self, hash_q: queue.Queue[_Part | None], sha: Any) -> None:
        while (part := hash_q.get()) is not None:
            sha.update(part.data)
            self._done_with(part)

    def _send(self, part: _Part) -> None:
        try:
            if self._failed:
                return
            stored = self.stored.get(part.number)
            md5 = (
                base64.b64encode(hashlib.md5(part.data, usedforsecurity=False).digest()).decode()
                if stored
                else ""
            )
            if stored is not None and stored.size == len(part.data) and stored.md5 == md5:
                etag = stored.etag
                with self._lock:
                    self.reused += 1
            else:
                etag = self._put(part)
                with self._lock:
                    self.sent_bytes += len(part.data)
            with self._lock:
                self.etags[part.number] = etag
            self.progress.add(len(part.data))
            if self.on_part is not None:
                self.on_part(part.number)
        except BaseException as exc:
            with self._lock:
                self._failed.append(exc)
            raise
        finally:
            self._done_with(part)

    def _put(self, part: _Part) -> str:
        crc = _crc32c(part.data)
        response = self.client().upload_part(
            self.dest.namespace,
            self.dest.bucket,
            self.object_name,
            self.upload_id,
            part.number,
            PartBody(part.data),
            opc_checksum_algorithm="CRC32C" if crc else None,
            opc_content_crc32c=crc,
        )
        return str(response.headers["etag"])

    def commit(self) -> dict[str, str]:
        models = oci.object_storage.models
        details = models.CommitMultipartUploadDetails(
            parts_to_commit=[
                models.CommitMultipartUploadPartDetails(part_num=n, etag=self.etags[n])
                for n in sorted(self.etags)
            ]
        )
        try:
            response = self.client().commit_multipart_upload(
                self.dest.namespace, self.dest.bucket, self.object_name, self.upload_id, details
            )
        except oci.exceptions.ServiceError as exc:
            committed = self._committed_before(exc)
            if committed is None:
                raise
            return committed
        return {k.lower(): v for k, v in response.headers.items()}

    def _committed_before(self, exc: Any) -> dict[str, str] | None:
        """A commit retried after its answer was lost finds the upload gone (404). When the object is
        there as this upload made it, the first try worked: the object's headers; else None."""
        if exc.status != 404:
            return None
        head = head_object(self.client(), self.dest.namespace, self.dest.bucket, self.object_name)
        return head if head is not None and self._made_here(head) else None

    def _made_here(self, head: dict[str, str]) -> bool:
        """The object has this upload's size, and the manifest and layout it was started with (metadata)."""
        return (
            int(head.get("content-length", -1)) == self.layout.total_size
            and head.get(f"{META_PREFIX}manifest-digest") == self.manifest.digest
            and head.get(f"{META_PREFIX}layout") == LAYOUT_VERSION
        )


class PartBody:
    """A part as the SDK takes a body, without copying it: `read()`, and `tell()`/`seek()` so that a retry
    can send it again. `read` hands out up to 1 MiB at a time (http.client asks for 8 KiB)."""

    CHUNK = 1 << 20

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def __len__(self) -> int:  # the whole part, as a file's size (requests subtracts `tell()` itself)
        return len(self._view)

    def read(self, size: int = -1) -> memoryview:
        end = (
            len(self._view)
            if size is None or size < 0
            else min(len(self._view), self._pos + max(size, self.CHUNK))
        )
        chunk = self._view[self._pos : end]
        self._pos = end
        return chunk

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = max(0, min(len(self._view), base + offset))
        return self._pos


def _crc32c(data: memoryview) -> str | None:
    try:
        import crc32c
    except ImportError:  # pragma: no cover - crc32c comes with the oci SDK
        return None
    return base64.b64encode(crc32c.crc32c(data).to_bytes(4, "big")).decode()


def upload_folder(
    folder: Path,
    dest: Destination,
    client_factory: ClientFactory,
    *,
    tuning: Tuning = Tuning(),
    progress: bool | None = None,
    on_part: Callable[[int], None] | None = None,
) -> Uploaded:
    """Make sure the zip of `folder` is in `dest`; upload (or finish uploading) it only when needed."""
    manifest = scan(folder)
    client = client_factory()
    with looking_up_earlier_uploads(dest):
        found = find_uploaded(client, dest, manifest)
    if found is not None:
        return found

    job: _Upload | None = None
    bar = Progress(f"uploading {dest.uri(dest.prefix)}", 0, enabled=progress)
    try:
        job = _Upload(client_factory, dest, manifest, tuning, bar, on_part)
        bar.total = job.layout.total_size
        with job.kept_for_resume():
            job.open()
            try:
                fingerprint = job.run()
            finally:
                bar.close()
            committed = job.commit()
    except oci.exceptions.ServiceError as exc:
        raise _service_error(exc, dest, "upload to", job, resumable(exc)) from exc
    except _unreachable() as exc:
        raise UserError(
            f"upload to {dest.uri(dest.prefix)} interrupted ({type(exc).__name__}); "
            f"{_kept(job)}run the same command again to resume"
        ) from exc

    final = dest.final(fingerprint)
    try:
        _place(client, dest, job.object_name, final, committed)
        record = {
            "layout": LAYOUT_VERSION,
            "manifestDigest": manifest.digest,
            "objectName": final,
            "fingerprint": fingerprint,
            "sizeBytes": job.layout.total_size,
            "contentMd5": _content_md5(committed),
            "partSize": job.part_size,
            "entries": manifest.as_json(),
        }
        client.put_object(
            dest.namespace,
            dest.bucket,
            dest.sidecar(manifest.digest),
            json.dumps(record).encode(),
            content_type="application/json",
        )
    except oci.exceptions.ServiceError as exc:
        raise _service_error(exc, dest, "finish the upload in") from exc
    except _unreachable() as exc:
        raise UserError(
            f"the zip is in {dest.uri(job.object_name)}, but naming it {final} failed "
            f"({type(exc).__name__}); run the same command again"
        ) from exc
    return Uploaded(
        object_name=final,
        uri=dest.uri(final),
        fingerprint=fingerprint,
        size_bytes=job.layout.total_size,
        manifest_digest=manifest.digest,
        sent_bytes=job.sent_bytes,
        reused_parts=job.reused,
    )


def _place(client: Any, dest: Destination, staging: str, final: str, committed: dict[str, str]) -> None:
    """Give the committed object its content name; when that name already holds the same bytes, keep it."""
    existing = head_object(client, dest.namespace, dest.bucket, final)
    if existing is not None and _content_md5(existing) == _content_md5(committed):
        try:
            client.delete_object(dest.namespace, dest.bucket, staging)
        except oci.exceptions.ServiceError as exc:
            if exc.status != 404:  # gone already: a retry after a lost answer
                raise
        return
    details = oci.object_storage.models.RenameObjectDetails(source_name=staging, new_name=final)
    try:
        client.rename_object(dest.namespace, dest.bucket, details)
    except oci.exceptions.ServiceError as exc:
        # a rename retried after its answer was lost finds its source gone, and the object in place
        moved = head_object(client, dest.namespace, dest.bucket, final) if exc.status == 404 else None
        if moved is None or _content_md5(moved) != _content_md5(committed):
            raise


@contextlib.contextmanager
def looking_up_earlier_uploads(dest: Destination) -> Iterator[None]:
    """What finding an earlier upload in `dest` may raise, as one line a user can act on."""
    try:
        yield
    except oci.exceptions.ServiceError as exc:
        raise _service_error(exc, dest, "look up earlier uploads in") from exc
    except _unreachable() as exc:
        raise UserError(
            f"cannot reach Object Storage to look up earlier uploads in {dest.uri(dest.prefix)} "
            f"({type(exc).__name__}); check the network and the endpoint, then run again"
        ) from exc


def resumable(exc: BaseException) -> bool:
    """Whether a multipart upload stopped by `exc` is kept for the next run to resume: after Ctrl-C, no
    answer, or a service error worth retrying (429, 5xx); any other failure would stop a rerun too."""
    if isinstance(exc, oci.exceptions.ServiceError):
        return is_retryable(exc)
    return isinstance(exc, (KeyboardInterrupt, *_unreachable()))


def _unreachable() -> tuple[type[BaseException], ...]:
    """What the SDK raises when, after its retries, it got no answer at all."""
    return (oci.exceptions.RequestException, oci.exceptions.ConnectTimeout, ConnectionError, TimeoutError)


def _kept(job: _Upload | None) -> str:
    if job is None or not job.upload_id:
        return ""
    return f"{len(job.etags)} of {job.parts_total} parts are stored (multipart upload {job.upload_id}); "


def _service_error(
    exc: Any, dest: Destination, doing: str, job: _Upload | None = None, kept: bool = False
) -> UserError:
    where = dest.uri(dest.prefix)
    what = f"cannot {doing} {where}: {exc.status} {exc.code}: {exc.message}"
    if job is not None and job.upload_id:
        what += (
            f"; {_kept(job)}run again to resume"
            if kept
            else f"; multipart upload {job.upload_id} was aborted"
        )
    return UserError(what)
