"""`llmstack package DIR --to oci://bucket@ns/prefix/` (stream a stored zip into Object Storage) or
`llmstack package DIR --output FILE.zip` (the same bytes into a file, and their sha-256)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from domain.errors import UserError

if TYPE_CHECKING:
    from oci_runtime.upload import Uploaded

MIN_PART_MIB = 10  # Object Storage's smallest part but the last (sources: oci_runtime/upload.py)
MAX_PART_MIB = 50 << 10  # Object Storage's largest part
HELP = "zip a model folder (stored, files at the root) straight into Object Storage, or into a file"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder", metavar="DIR", type=Path, help="the model folder (its files go at the zip's root)"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", metavar="URI", help="oci://BUCKET@NAMESPACE/PREFIX/ to upload to")
    where.add_argument(
        "--output", metavar="FILE", type=Path, help="write the zip to FILE and print its sha-256"
    )
    parser.add_argument(
        "--auth", help="api_key (default), security_token, instance_principal, resource_principal"
    )
    parser.add_argument("--profile", help="profile of the OCI config file (default: DEFAULT)")
    parser.add_argument("--region", help="region of the bucket (default: the profile's)")
    parser.add_argument("--endpoint", metavar="URL", help="Object Storage endpoint, e.g. a private endpoint")
    parser.add_argument(
        "--part-size-mib", type=int, metavar="N", help="multipart part size (default: 32, more for huge zips)"
    )
    parser.add_argument(
        "--workers", type=int, default=6, metavar="N", help="parts sent in parallel (default: 6)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the result")


def run(args: argparse.Namespace) -> int:
    from oci_runtime.upload import Destination, Tuning, upload_folder, write_zip_file

    if args.output is not None:
        result = write_zip_file(args.folder, args.output)
        print(json.dumps(_as_json(result)) if args.json else f"{result.fingerprint}  {args.output}")
        return 0

    import oci

    from oci_runtime.auth import Auth, make_client

    dest = Destination.parse(args.to)
    if args.part_size_mib is not None and not MIN_PART_MIB <= args.part_size_mib <= MAX_PART_MIB:
        raise UserError(
            f"--part-size-mib must be {MIN_PART_MIB} to {MAX_PART_MIB} (Object Storage: 10 MiB to 50 GiB "
            f"per part), got {args.part_size_mib}"
        )
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    tuning = Tuning(
        part_size=args.part_size_mib << 20 if args.part_size_mib else None,
        workers=args.workers,
    )
    auth = Auth.from_env(args.auth, args.profile)

    def client() -> object:
        return make_client(
            oci.object_storage.ObjectStorageClient, auth, region=args.region, endpoint=args.endpoint
        )

    result = upload_folder(args.folder, dest, client, tuning=tuning)
    if args.json:
        print(json.dumps(_as_json(result)))
    elif result.skipped:
        print(f"{result.uri}  unchanged (sha256 {result.fingerprint}): nothing uploaded")
    else:
        resumed = f", {result.reused_parts} parts reused" if result.reused_parts else ""
        print(f"{result.uri}  sha256 {result.fingerprint}  {result.size_bytes} bytes{resumed}")
    return 0


def _as_json(result: Uploaded) -> dict[str, object]:
    return {
        "uri": result.uri,
        "objectName": result.object_name,
        "fingerprint": result.fingerprint,
        "sizeBytes": result.size_bytes,
        "manifestDigest": result.manifest_digest,
        "sentBytes": result.sent_bytes,
        "reusedParts": result.reused_parts,
        "skipped": result.skipped,
    }
