"""`python -m tests.fakeoci --port N --data DIR`: serve the fake until interrupted or `--lifetime` ends.

Prints one JSON line: the endpoint, the SDK config file and profile signed requests must use, and the
namespace. Faults are added at run time with `POST /_fake/faults` (JSON: a Fault's fields, or a list).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.fakeoci.core import FakeOci, TestIdentity
from tests.fakeoci.objectstorage import ObjectStorage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeoci", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument(
        "--data", type=Path, required=True, help="folder for stored bytes, the key and config"
    )
    parser.add_argument("--namespace", default="testns")
    parser.add_argument("--bucket", action="append", default=[], help="create this bucket (repeatable)")
    parser.add_argument(
        "--versioned-bucket", action="append", default=[], help="create this bucket with versioning Enabled"
    )
    parser.add_argument("--rate-mbps", type=float, default=None, help="throttle bodies to this link speed")
    parser.add_argument(
        "--fast-digests",
        action="store_true",
        help="benchmarks: no MD5 on the fake's side (see objectstorage.py)",
    )
    parser.add_argument(
        "--discard-bodies",
        action="store_true",
        help="benchmarks: receive bodies of 1 MiB or more in full, keep only their sizes (objectstorage.py)",
    )
    parser.add_argument("--lifetime", type=float, default=3600.0, help="stop after this many seconds")
    args = parser.parse_args(argv)

    identity = TestIdentity.create(args.data / "auth")
    fake = FakeOci(args.data / "store", namespace=args.namespace, rate_mbps=args.rate_mbps)
    fake.trust(identity)
    fake.fast_digests = args.fast_digests
    fake.keep_bodies = not args.discard_bodies
    store = fake.service(ObjectStorage)
    existing = (
        {p.name for p in (store.root / args.namespace).glob("*")}
        if (store.root / args.namespace).exists()
        else set()
    )
    for bucket in args.bucket:
        if bucket not in existing:
            store.create_bucket(bucket)
    for bucket in args.versioned_bucket:
        if bucket not in existing:
            store.create_bucket(bucket, versioning=True)
    fake.start(args.port)
    info = {
        "endpoint": fake.endpoint,
        "config_file": str(identity.config_file),
        "profile": identity.profile,
        "namespace": fake.namespace,
    }
    print(json.dumps(info), flush=True)
    try:
        time.sleep(args.lifetime)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
