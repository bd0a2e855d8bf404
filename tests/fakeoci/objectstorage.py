"""Fake Object Storage: namespace, buckets, objects (HEAD/GET/PUT/DELETE/list) and multipart uploads.

Bytes live on disk. A committed multipart object keeps its parts as segments (no copy at commit, as in
the real service); GET streams the segments in order. MD5s and ETags follow the service's rules:
`opc-content-md5` per PUT and part, `opc-multipart-md5` = md5(concatenated part digests)-N.
In a bucket with versioning `Enabled`, an overwritten or deleted object keeps its earlier versions: GET and
HEAD with `versionId` serve any of them, ListObjectVersions lists them (newest first per name; a delete
leaves a delete marker), as the real service does. Without versioning an overwrite replaces the object.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import crc32c

from tests.fakeoci.core import (
    HttpError,
    Request,
    Response,
    Service,
    empty_response,
    http_date,
    json_response,
    now_rfc3339,
    route,
)

MAX_PARTS = 10_000
MAX_PART_SIZE = 50 << 30
META_PREFIX = "opc-meta-"
DISCARD_FROM = 1 << 20  # without fake.keep_bodies, bodies this large are received, then dropped


def _key(name: str) -> str:
    return hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()


class _Crc32c:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any) -> None:
        self.value = crc32c.crc32c(data, self.value)

    def digest(self) -> bytes:
        return int(self.value).to_bytes(4, "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode()


def _sparse(path: Path, size: int) -> None:
    """A file of `size` bytes that holds none (reads give zeros): a dropped body's stand-in."""
    with path.open("wb") as out:
        out.truncate(size)


def _b64md5(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class ObjectStorage(Service):
    name = "objectstorage"
    prefix = ""

    # -- helpers for tests and other services
    def create_bucket(
        self, bucket: str, *, versioning: bool = False, compartment_id: str = ""
    ) -> dict[str, Any]:
        with self.lock:
            folder = self._bucket_dir(bucket)
            if (folder / "bucket.json").exists():
                raise HttpError(409, "BucketAlreadyExists", f"bucket {bucket!r} already exists")
            (folder / "objects").mkdir(parents=True)
            (folder / "uploads").mkdir()
            info = {
                "namespace": self.fake.namespace,
                "name": bucket,
                "compartmentId": compartment_id or "ocid1.compartment.oc1..fake",
                "createdBy": "ocid1.user.oc1..fakeuser",
                "timeCreated": now_rfc3339(),
                "etag": uuid.uuid4().hex,
                "versioning": "Enabled" if versioning else "Disabled",
                "publicAccessType": "NoPublicAccess",
                "storageTier": "Standard",
            }
            (folder / "bucket.json").write_text(json.dumps(info))
            return info

    def get_bucket_info(self, bucket: str) -> dict[str, Any]:
        return dict(json.loads((self._bucket(bucket) / "bucket.json").read_text()))

    def object_info(self, bucket: str, name: str) -> dict[str, Any] | None:
        path = self._bucket(bucket) / "objects" / f"{_key(name)}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def object_segments(self, bucket: str, name: str) -> list[Path]:
        info = self.object_info(bucket, name)
        if info is None:
            raise HttpError(404, "ObjectNotFound", f"object {name!r} not found in bucket {bucket!r}")
        folder = self._bucket(bucket) / "objects"
        return [folder / s for s in info["segments"]]

    def object_bytes(self, bucket: str, name: str) -> bytes:
        return b"".join(p.read_bytes() for p in self.object_segments(bucket, name))

    def uploads(self, bucket: str) -> list[dict[str, Any]]:
        folder = self._bucket(bucket) / "uploads"
        found = []
        for upload in sorted(folder.iterdir()):
            try:  # one being created, committed or aborted by another request right now is not listed
                found.append(json.loads((upload / "upload.json").read_text()))
            except FileNotFoundError:
                continue
        return found

    # -- layout
    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / self.fake.namespace / bucket

    def _bucket(self, bucket: str, namespace: str | None = None) -> Path:
        if namespace is not None and namespace != self.fake.namespace:
            raise HttpError(404, "NamespaceNotFound", f"namespace {namespace!r} not found")
        folder = self._bucket_dir(bucket)
        if not (folder / "bucket.json").exists():
            raise HttpError(
                404, "BucketNotFound", f"bucket {bucket!r} does not exist in namespace {namespace!r}"
            )
        return folder

    def _upload_dir(self, req: Request) -> Path:
        upload_id = req.query.get("uploadId", "")
        folder = self._bucket(req.params["bucket"], req.params["ns"]) / "uploads" / upload_id
        meta = folder / "upload.json"
        if (
            not upload_id
            or not meta.exists()
            or json.loads(meta.read_text())["object"] != req.params["object"]
        ):
            raise HttpError(
                404, "NoSuchUpload", f"no multipart upload {upload_id!r} for {req.params['object']!r}"
            )
        return folder

    def _write_object(
        self, bucket_dir: Path, name: str, segments: list[Path], info: dict[str, Any]
    ) -> dict[str, Any]:
        """Move `segments` under the object's name and replace whatever was there (metadata last)."""
        objects = bucket_dir / "objects"
        key = _key(name)
        version = uuid.uuid4().hex
        names = []
        for i, seg in enumerate(segments):
            target = f"{key}.{version}.{i:05d}"
            os.replace(seg, objects / target)
            names.append(target)
        old = self.object_info(bucket_dir.name, name)
        info = {
            **info,
            "name": name,
            "segments": names,
            "etag": uuid.uuid4().hex,
            "versionId": version,
            "lastModified": http_date(),
            "timeCreated": now_rfc3339(),
        }
        tmp = objects / f".{key}.json.tmp"
        tmp.write_text(json.dumps(info))
        if old is not None and self._versioned(bucket_dir):
            self._keep_version(bucket_dir, old)
            old = None
        os.replace(tmp, objects / f"{key}.json")
        if old is not None:
            for seg_name in old["segments"]:
                (objects / seg_name).unlink(missing_ok=True)
        return info

    @staticmethod
    def _versioned(bucket_dir: Path) -> bool:
        return bool(json.loads((bucket_dir / "bucket.json").read_text())["versioning"] == "Enabled")

    @staticmethod
    def _keep_version(bucket_dir: Path, info: dict[str, Any]) -> None:
        """An earlier version, kept with its segments under `versions/` (not listed by ListObjects)."""
        folder = bucket_dir / "versions"
        folder.mkdir(exist_ok=True)
        (folder / f"{_key(info['name'])}.{info['versionId']}.json").write_text(json.dumps(info))

    def object_versions(self, bucket: str, name: str | None = None) -> list[dict[str, Any]]:
        """Every version of every object (or of `name`): the current ones and those kept, newest first."""
        folder = self._bucket(bucket)
        current = [json.loads(p.read_text()) for p in (folder / "objects").glob("*.json")]
        kept = [json.loads(p.read_text()) for p in (folder / "versions").glob("*.json")]
        rows = [{**i, "_current": True} for i in current] + [{**i, "_current": False} for i in kept]
        rows = [r for r in rows if name is None or r["name"] == name]
        return sorted(rows, key=lambda r: (r["name"], r["timeCreated"], r["_current"]), reverse=True)

    def set_versioning(self, bucket: str, versioning: str) -> None:
        path = self._bucket(bucket) / "bucket.json"
        info = json.loads(path.read_text())
        info["versioning"] = versioning
        path.write_text(json.dumps(info))

    @staticmethod
    def _object_headers(info: dict[str, Any]) -> dict[str, str]:
        headers = {
            "etag": info["etag"],
            "last-modified": info["lastModified"],
            "version-id": info["versionId"],
            "content-type": info.get("contentType") or "application/octet-stream",
            "storage-tier": "Standard",
        }
        if info.get("multipartMd5"):
            headers["opc-multipart-md5"] = info["multipartMd5"]
        else:
            headers["content-md5"] = info["md5"]
        for k, v in (info.get("metadata") or {}).items():
            headers[k if k.startswith("opc-meta-") else f"opc-meta-{k}"] = v
        return headers

    def _receive(self, req: Request, tmp: Path, what: str) -> tuple[int, str]:
        """Store the body in `tmp`; check content-md5 and opc-content-crc32c when sent; return (size, md5).

        With `fake.fast_digests` (benchmarks) the body goes to disk by splice, unhashed: a sent content-md5
        or CRC32C is trusted and the MD5 is a stand-in. The real service hashes on its own machines; the
        fake, sharing the client's CPUs, would otherwise slow down both sides of a benchmark alike.
        Without `fake.keep_bodies` (benchmarks) a body of 1 MiB or more is received in full, then dropped:
        the stored file is sparse, of the body's size (sizes, HEAD and listings stay right; a GET reads
        zeros); small bodies (JSON records) are kept. The real service stores bytes on its own machines; on
        the client's machine, filling gigabytes of fresh memory costs the fake more CPU than receiving
        them, and the more so the more memory the client itself fills (a zip written to disk).
        """
        algorithm = (req.headers.get("opc-checksum-algorithm") or "").upper()
        if algorithm not in ("", "CRC32C"):
            raise HttpError(
                400, "InvalidParameter", f"the fake checks only CRC32C checksums, not {algorithm}"
            )
        sent_md5 = req.headers.get("content-md5")
        try:
            keep = self.fake.keep_bodies or req.content_length < DISCARD_FROM
            if self.fake.fast_digests:
                with tmp.open("wb") if keep else open(os.devnull, "wb") as out:
                    size = req.splice_body(out.fileno())
                if not keep:
                    _sparse(tmp, size)
                stand_in = hashlib.md5(f"{size}:{uuid.uuid4()}".encode(), usedforsecurity=False).digest()
                return size, sent_md5 or _b64md5(stand_in)
            md5 = hashlib.md5(usedforsecurity=False)
            crc = _Crc32c()
            with tmp.open("wb") if keep else open(os.devnull, "wb") as out:
                size = req.copy_body(out, md5, crc)
            if not keep:
                _sparse(tmp, size)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        sent_crc = req.headers.get("opc-content-crc32c")
        if algorithm == "CRC32C" and sent_crc and sent_crc != crc.b64():
            tmp.unlink()
            raise HttpError(400, "UnmatchedContentCRC32C", f"opc-content-crc32c does not match {what}")
        digest = _b64md5(md5.digest())
        if sent_md5 and sent_md5 != digest:
            tmp.unlink()
            raise HttpError(400, "UnmatchedContentMD5", f"content-md5 {sent_md5} does not match {what}")
        return size, digest

    # -- namespace and buckets
    @route("GET", "/n", op="GetNamespace")
    def get_namespace(self, req: Request) -> Response:
        return json_response(200, self.fake.namespace)

    @route("GET", "/n/{ns}/b/{bucket}", op="GetBucket")
    def get_bucket(self, req: Request) -> Response:
        info = json.loads((self._bucket(req.params["bucket"], req.params["ns"]) / "bucket.json").read_text())
        return json_response(200, info, {"etag": info["etag"]})

    @route("POST", "/n/{ns}/b", op="CreateBucket")
    def post_bucket(self, req: Request) -> Response:
        body = req.json() or {}
        if req.params["ns"] != self.fake.namespace:
            raise HttpError(404, "NamespaceNotFound", f"namespace {req.params['ns']!r} not found")
        if not body.get("name") or not body.get("compartmentId"):
            raise HttpError(400, "InvalidParameter", "name and compartmentId are required")
        info = self.create_bucket(
            body["name"], versioning=body.get("versioning") == "Enabled", compartment_id=body["compartmentId"]
        )
        return json_response(200, info, {"etag": info["etag"]})

    # -- objects
    @route("GET", "/n/{ns}/b/{bucket}/o", op="ListObjects")
    def list_objects(self, req: Request) -> Response:
        folder = self._bucket(req.params["bucket"], req.params["ns"]) / "objects"
        prefix = req.query.get("prefix", "")
        start = req.query.get("start", "")
        limit = int(req.query.get("limit", "1000"))
        infos = sorted(
            (json.loads(p.read_text()) for p in folder.glob("*.json")), key=lambda i: str(i["name"])
        )
        infos = [i for i in infos if i["name"].startswith(prefix) and i["name"] >= start]
        objects = [
            {
                "name": i["name"],
                "size": i["size"],
                "md5": i.get("md5") or i.get("multipartMd5"),
                "etag": i["etag"],
                "timeCreated": i["timeCreated"],
            }
            for i in infos[:limit]
        ]
        data: dict[str, Any] = {"objects": objects, "prefixes": []}
        if len(infos) > limit:
            data["nextStartWith"] = infos[limit]["name"]
        return json_response(200, data)

    @route("GET", "/n/{ns}/b/{bucket}/objectversions", op="ListObjectVersions")
    def list_object_versions(self, req: Request) -> Response:
        bucket = self._bucket(req.params["bucket"], req.params["ns"])
        prefix = req.query.get("prefix", "")
        limit = int(req.query.get("limit", "1000"))
        skip = int(req.query.get("page", "0"))
        rows = [r for r in self.object_versions(bucket.name) if r["name"].startswith(prefix)]
        rows.sort(key=lambda r: r["name"])  # by name; within a name newest first (a stable sort)
        items = [
            {
                "name": r["name"],
                "size": r.get("size", 0),
                "md5": r.get("md5") or r.get("multipartMd5"),
                "etag": r.get("etag"),
                "timeCreated": r["timeCreated"],
                "timeModified": r["timeCreated"],
                "versionId": r["versionId"],
                "isDeleteMarker": bool(r.get("isDeleteMarker")),
            }
            for r in rows[skip : skip + limit]
        ]
        headers = {"opc-next-page": str(skip + limit)} if len(rows) > skip + limit else {}
        return json_response(200, {"items": items, "prefixes": []}, headers)

    @route("HEAD", "/n/{ns}/b/{bucket}/o/{object+}", op="HeadObject")
    def head_object(self, req: Request) -> Response:
        info, segments = self._current(req)
        return Response(200, self._object_headers(info), files=segments, head=True)

    @route("GET", "/n/{ns}/b/{bucket}/o/{object+}", op="GetObject")
    def get_object(self, req: Request) -> Response:
        info, segments = self._current(req)
        return Response(200, self._object_headers(info), files=segments)

    def _current(self, req: Request) -> tuple[dict[str, Any], list[Path]]:
        bucket = self._bucket(req.params["bucket"], req.params["ns"])
        name = req.params["object"]
        info = self.object_info(bucket.name, name)
        wanted = req.query.get("versionId")
        if wanted and (info is None or info["versionId"] != wanted):
            kept = bucket / "versions" / f"{_key(name)}.{wanted}.json"
            if not kept.exists() or json.loads(kept.read_text()).get("isDeleteMarker"):
                raise HttpError(404, "ObjectNotFound", f"object {name!r} has no version {wanted!r}")
            info = json.loads(kept.read_text())
        if info is None:
            raise HttpError(404, "ObjectNotFound", f"object {name!r} not found")
        return info, [bucket / "objects" / s for s in info["segments"]]

    @route("PUT", "/n/{ns}/b/{bucket}/o/{object+}", op="PutObject", sign_body=False, stream_body=True)
    def put_object(self, req: Request) -> Response:
        bucket = self._bucket(req.params["bucket"], req.params["ns"])
        name = req.params["object"]
        with self.lock:
            current = self.object_info(bucket.name, name)
        if req.headers.get("if-none-match") == "*" and current is not None:
            raise HttpError(412, "IfNoneMatchFailed", f"object {name!r} already exists")
        if_match = req.headers.get("if-match")
        if if_match and (current is None or current["etag"] != if_match):
            raise HttpError(412, "IfMatchFailed", f"the etag of {name!r} does not match")
        tmp = bucket / "objects" / f".put-{uuid.uuid4().hex}"
        size, digest = self._receive(req, tmp, "the body")
        metadata = {k.lower(): v for k, v in req.headers.items() if k.lower().startswith("opc-meta-")}
        with self.lock:
            info = self._write_object(
                bucket,
                name,
                [tmp],
                {
                    "size": size,
                    "md5": digest,
                    "metadata": metadata,
                    "contentType": req.headers.get("content-type"),
                },
            )
        return empty_response(
            200,
            {
                "etag": info["etag"],
                "opc-content-md5": digest,
                "last-modified": info["lastModified"],
                "version-id": info["versionId"],
            },
        )

    @route("DELETE", "/n/{ns}/b/{bucket}/o/{object+}", op="DeleteObject")
    def delete_object(self, req: Request) -> Response:
        bucket = self._bucket(req.params["bucket"], req.params["ns"])
        with self.lock:
            info = self.object_info(bucket.name, req.params["object"])
            if info is None:
                raise HttpError(404, "ObjectNotFound", f"object {req.params['object']!r} not found")
            if self._versioned(bucket):
                self._keep_version(bucket, info)
                marker = {"name": info["name"], "versionId": uuid.uuid4().hex, "size": 0, "segments": []}
                self._keep_version(bucket, {**marker, "isDeleteMarker": True, "timeCreated": now_rfc3339()})
            else:
                for seg in info["segments"]:
                    (bucket / "objects" / seg).unlink(missing_ok=True)
            (bucket / "objects" / f"{_key(info['name'])}.json").unlink()
        return empty_response(204, {"last-modified": http_date()})

    @route("POST", "/n/{ns}/b/{bucket}/actions/renameObject", op="RenameObject")
    def rename_object(self, req: Request) -> Response:
        bucket = self._bucket(req.params["bucket"], req.params["ns"])
        body = req.json() or {}
        source, target = body.get("sourceName"), body.get("newName")
        if not source or not target:
            raise HttpError(400, "InvalidParameter", "sourceName and newName are required")
        with self.lock:
            info = self.object_info(bucket.name, source)
            if info is None:
                raise HttpError(404, "ObjectNotFound", f"object {source!r} not found")
            if body.get("srcObjIfMatchETag") and body["srcObjIfMatchETag"] != info["etag"]:
                raise HttpError(412, "IfMatchFailed", f"the etag of {source!r} does not match")
            if body.get("newObjIfNoneMatchETag") == "*" and self.object_info(bucket.name, target) is not None:
                raise HttpError(412, "IfNoneMatchFailed", f"object {target!r} already exists")
            objects = bucket / "objects"
            segments = [objects / s for s in info["segments"]]
            kept = {k: v for k, v in info.items() if k not in ("name", "segments", "etag", "versionId")}
            moved = self._write_object(bucket, target, segments, kept)
            (objects / f"{_key(source)}.json").unlink()
        return empty_response(
            200,
            {"etag": moved["etag"], "last-modified": moved["lastModified"], "version-id": moved["versionId"]},
        )

    # -- multipart uploads
    @route("POST", "/n/{ns}/b/{bucket}/u", op="CreateMultipartUpload")
    def create_multipart(self, req: Request) -> Response:
        bucket = self._bucket(req.params["bucket"], req.params["ns"])
        body = req.json() or {}
        if not body.get("object"):
            raise HttpError(400, "InvalidParameter", "object is required")
        metadata = body.get("metadata") or {}
        bare = sorted(k for k in metadata if not k.lower().startswith(META_PREFIX))
        if bare:
            # CreateMultipartUploadDetails.metadata: keys "must be in "opc-meta-*" format". OCI's exact error
            # code for this case was not found; 400 InvalidParameter is the fake's stand-in.
            raise HttpError(400, "InvalidParameter", f"metadata keys must start with {META_PREFIX}: {bare}")
        upload_id = uuid.uuid4().hex
        info = {
            "namespace": self.fake.namespace,
            "bucket": bucket.name,
            "object": body["object"],
            "uploadId": upload_id,
            "timeCreated": now_rfc3339(),
            "storageTier": "Standard",
            "contentType": body.get("contentType"),
            "metadata": {k.lower(): v for k, v in metadata.items()},
        }
        folder = bucket / "uploads" / upload_id
        folder.mkdir()
        partial = folder / "upload.json.partial"  # appears whole: a concurrent listing never reads half of it
        partial.write_text(json.dumps(info))
        partial.replace(folder / "upload.json")
        public = {
            k: info[k] for k in ("namespace", "bucket", "object", "uploadId", "timeCreated", "storageTier")
        }
        return json_response(200, public, {"location": f"/n/{self.fake.namespace}/b/{bucket.name}/u"})

    @route("GET", "/n/{ns}/b/{bucket}/u", op="ListMultipartUploads")
    def list_multipart(self, req: Request) -> Response:
        self._bucket(req.params["bucket"], req.params["ns"])
        keys = ("namespace", "bucket", "object", "uploadId", "timeCreated", "storageTier")
        return json_response(200, [{k: u[k] for k in keys} for u in self.uploads(req.params["bucket"])])

    @route("PUT", "/n/{ns}/b/{bucket}/u/{object+}", op="UploadPart", sign_body=False, stream_body=True)
    def upload_part(self, req: Request) -> Response:
        folder = self._upload_dir(req)
        try:
            num = int(req.query.get("uploadPartNum", ""))
        except ValueError:
            num = 0
        if not 1 <= num <= MAX_PARTS:
            raise HttpError(400, "InvalidParameter", f"uploadPartNum must be 1..{MAX_PARTS}")
        if req.content_length > MAX_PART_SIZE:
            raise HttpError(400, "InvalidParameter", "a part holds at most 50 GiB")
        tmp = folder / f".part-{num:05d}-{uuid.uuid4().hex}"
        size, digest = self._receive(req, tmp, f"part {num}")
        etag = uuid.uuid4().hex
        with self.lock:
            if not (folder / "upload.json").exists():  # aborted meanwhile
                tmp.unlink()
                raise HttpError(404, "NoSuchUpload", "the multipart upload was aborted")
            os.replace(tmp, folder / f"part-{num:05d}")
            (folder / f"part-{num:05d}.json").write_text(
                json.dumps({"partNumber": num, "etag": etag, "md5": digest, "size": size})
            )
        return empty_response(200, {"etag": etag, "opc-content-md5": digest, "last-modified": http_date()})

    def _parts(self, folder: Path) -> list[dict[str, Any]]:
        return sorted(
            (json.loads(p.read_text()) for p in folder.glob("part-*.json")),
            key=lambda p: int(p["partNumber"]),
        )

    @route("GET", "/n/{ns}/b/{bucket}/u/{object+}", op="ListMultipartUploadParts")
    def list_parts(self, req: Request) -> Response:
        folder = self._upload_dir(req)
        parts = self._parts(folder)
        limit = int(req.query.get("limit", "1000"))
        after = int(req.query.get("page", "0"))
        parts = [p for p in parts if p["partNumber"] > after]
        headers = {"opc-next-page": str(parts[limit - 1]["partNumber"])} if len(parts) > limit else {}
        return json_response(200, parts[:limit], headers)

    @route("POST", "/n/{ns}/b/{bucket}/u/{object+}", op="CommitMultipartUpload")
    def commit(self, req: Request) -> Response:
        folder = self._upload_dir(req)
        body = req.json() or {}
        wanted = sorted(body.get("partsToCommit") or [], key=lambda p: int(p["partNum"]))
        if not wanted:
            raise HttpError(400, "InvalidParameter", "partsToCommit is empty")
        with self.lock:
            stored = {p["partNumber"]: p for p in self._parts(folder)}
            for w in wanted:
                part = stored.get(int(w["partNum"]))
                if part is None or part["etag"] != w.get("etag"):
                    raise HttpError(
                        400, "InvalidUploadPart", f"part {w['partNum']} is missing or its etag differs"
                    )
            parts = [stored[int(w["partNum"])] for w in wanted]
            small = [p["partNumber"] for p in parts[:-1] if int(p["size"]) < self.fake.min_part_size]
            if small:
                raise HttpError(
                    400,
                    "InvalidParameter",
                    f"parts {small} are smaller than {self.fake.min_part_size} bytes; only the last may be",
                )
            multipart_md5 = hashlib.md5(usedforsecurity=False)
            for p in parts:
                multipart_md5.update(base64.b64decode(p["md5"]))
            upload = json.loads((folder / "upload.json").read_text())
            info = self._write_object(
                folder.parent.parent,
                req.params["object"],
                [folder / f"part-{p['partNumber']:05d}" for p in parts],
                {
                    "size": sum(int(p["size"]) for p in parts),
                    "multipartMd5": f"{_b64md5(multipart_md5.digest())}-{len(parts)}",
                    "metadata": upload.get("metadata") or {},
                    "contentType": upload.get("contentType"),
                },
            )
            shutil.rmtree(folder)
        return empty_response(
            200,
            {
                "etag": info["etag"],
                "opc-multipart-md5": info["multipartMd5"],
                "last-modified": info["lastModified"],
                "version-id": info["versionId"],
            },
        )

    @route("DELETE", "/n/{ns}/b/{bucket}/u/{object+}", op="AbortMultipartUpload")
    def abort(self, req: Request) -> Response:
        folder = self._upload_dir(req)
        with self.lock:
            shutil.rmtree(folder)
        return empty_response(204)
