"""Benchmark: the seed's offline upload, the streaming upload and the upload by reference, into the same fake.

    python bench/upload.py [--size-mib 1024] [--rate-mbps 1000] [--repeat 3] [--keep-bodies]

baseline  = what the seed does: write a stored zip to disk with `zipfile`, then upload it the way
            `oci os object put` does (UploadManager, 10 parallel parts of 128 MiB: oci-cli's defaults).
streaming = `oci_runtime.upload.upload_folder`: zip parts streamed straight into a parallel multipart upload.
reference = `oci_runtime.objects.upload_objects`: each file an object (large ones in parallel parts) in a
            versioned bucket, pinned by version id for a catalog model by reference (the default path).
Each side runs in its own process (timed around the work only, not the interpreter start), in alternating
order from one run to the next; the fake runs in another, with `--fast-digests --discard-bodies`: it
receives every byte but neither hashes nor keeps them (the real service does both on its own machines), so
that its work takes little of the CPUs the sides share with it (`--keep-bodies` lets it store them);
optionally throttled to `--rate-mbps`. Bytes moved per path: written to the client's disk, sent to Object
Storage, and copied by the catalog (export_model_artifact copies the whole zip once more; a model by
reference copies nothing, its catalog artifact is the small model_description.json). The last line of
output is one JSON object:
{"baseline_s", "streaming_s", "reference_s", "speedup", "peak_rss_mib", "unchanged_rerun_s",
 "reference_unchanged_rerun_s", "model_bytes", "bytes_moved"}.
Targets: speedup >= 2.0, peak RSS <= 512 MiB, unchanged re-run <= 5% of the first upload, reference_s <=
streaming_s and one byte moved per byte of model by reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "bench"
REFERENCE_BUCKET = "bench-versioned"  # a model by reference needs versioning (each object pinned)


def make_model(folder: Path, size_mib: int) -> None:
    """Safetensors-like shards (at most 256 MiB each) plus the small JSON files a HF model folder has."""
    folder.mkdir(parents=True)
    shards = max(1, -(-size_mib // 256))
    block = bytearray(os.urandom(1 << 20))
    left = size_mib
    for i in range(shards):
        mib = min(256, left) if i < shards - 1 else left
        left -= mib
        with (folder / f"model-{i + 1:05d}-of-{shards:05d}.safetensors").open("wb") as fh:
            for j in range(mib):
                block[:8] = (i * 1_000_003 + j).to_bytes(8, "little")  # no two MiB alike
                fh.write(block)
    for name, data in {
        "config.json": {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32},
        "generation_config.json": {"temperature": 0.6, "top_p": 0.9},
        "tokenizer_config.json": {"model_max_length": 4096},
        "special_tokens_map.json": {"bos_token": "<s>", "eos_token": "</s>"},
        "model.safetensors.index.json": {"metadata": {"total_size": size_mib << 20}},
    }.items():
        (folder / name).write_text(json.dumps(data))


def start_fake(
    data: Path, rate_mbps: float | None, keep_bodies: bool = False
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    argv = [sys.executable, "-m", "tests.fakeoci", "--data", str(data), "--bucket", BUCKET, "--fast-digests"]
    argv += ["--versioned-bucket", REFERENCE_BUCKET]
    argv += [] if keep_bodies else ["--discard-bodies"]
    argv += ["--lifetime", "3600"] + (["--rate-mbps", str(rate_mbps)] if rate_mbps else [])
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


# ------------------------------------------------------------------------------------ the two sides


def side_baseline(folder: Path, work: Path, fake: dict[str, Any], name: str) -> dict[str, float]:
    import zipfile

    import oci

    start = time.perf_counter()
    zip_path = work / "my_large_model.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as z:  # `zip my_large_model.zip * -0`
        for path in sorted(folder.iterdir()):
            z.write(path, arcname=path.name)
    zipped = time.perf_counter()
    config = oci.config.from_file(fake["config_file"], fake["profile"])
    client = oci.object_storage.ObjectStorageClient(config, service_endpoint=fake["endpoint"])
    manager = oci.object_storage.UploadManager(client, allow_parallel_uploads=True, parallel_process_count=10)
    manager.upload_file(fake["namespace"], BUCKET, name, str(zip_path), part_size=128 * 1024 * 1024)
    done = time.perf_counter()
    zip_path.unlink()
    return {"seconds": done - start, "zip_s": zipped - start, "upload_s": done - zipped}


def side_streaming(
    folder: Path, fake: dict[str, Any], prefix: str, workers: int, part_mib: int
) -> dict[str, float]:
    from oci_runtime.upload import upload_folder

    first, again, timings = upload_twice(upload_folder, folder, fake, BUCKET, prefix, workers, part_mib)
    assert again.skipped and again.fingerprint == first.fingerprint
    return {**timings, "size_bytes": first.size_bytes}


def side_reference(
    folder: Path, fake: dict[str, Any], prefix: str, workers: int, part_mib: int
) -> dict[str, float]:
    from domain import model_description
    from oci_runtime.objects import upload_objects

    first, again, timings = upload_twice(
        upload_objects, folder, fake, REFERENCE_BUCKET, prefix, workers, part_mib
    )
    assert again.skipped and again.description() == first.description()
    return {
        **timings,
        "size_bytes": first.size_bytes,
        "sent_bytes": first.sent_bytes,
        "description_bytes": len(model_description.to_bytes(first.description())),
    }


def upload_twice(
    upload: Callable[..., Any],
    folder: Path,
    fake: dict[str, Any],
    bucket: str,
    prefix: str,
    workers: int,
    part_mib: int,
) -> tuple[Any, Any, dict[str, float]]:
    """Run `upload` into the fake, then again (it should find the first and send nothing): both results,
    and the seconds each took and the peak RSS."""
    import oci

    from oci_runtime.auth import Auth, make_client
    from oci_runtime.upload import Destination, Tuning

    auth = Auth(config_file=fake["config_file"], profile=fake["profile"])

    def client() -> Any:
        return make_client(oci.object_storage.ObjectStorageClient, auth, endpoint=fake["endpoint"])

    dest = Destination(namespace=fake["namespace"], bucket=bucket, prefix=prefix)
    tuning = Tuning(part_size=part_mib << 20, workers=workers)
    start = time.perf_counter()
    first = upload(folder, dest, client, tuning=tuning, progress=False)
    mid = time.perf_counter()
    again = upload(folder, dest, client, tuning=tuning, progress=False)
    end = time.perf_counter()
    return (
        first,
        again,
        {
            "seconds": mid - start,
            "unchanged_s": end - mid,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    )


def delete_objects(fake: dict[str, Any], prefix: str, bucket: str = BUCKET) -> None:
    """Remove what one side uploaded, so that every run starts from the same, nearly empty, store."""
    import oci

    config = oci.config.from_file(fake["config_file"], fake["profile"])
    client = oci.object_storage.ObjectStorageClient(config, service_endpoint=fake["endpoint"])
    listed = oci.pagination.list_call_get_all_results(
        client.list_objects, fake["namespace"], bucket, prefix=prefix
    ).data
    for obj in listed.objects:
        client.delete_object(fake["namespace"], bucket, obj.name)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_side(argv: list[str], fake_pid: int) -> dict[str, float]:
    os.sync()  # start each side without the other's dirty pages still being written back
    fake_before = cpu_seconds(fake_pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, __file__, *argv],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    result["cpu_s"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result["fake_cpu_s"] = cpu_seconds(fake_pid) - fake_before
    return result


# ------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the generated model folder")
    parser.add_argument("--rate-mbps", type=float, default=None, help="throttle the fake's link (e.g. 1000)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run both sides this many times; report medians"
    )
    parser.add_argument("--workers", type=int, default=6, help="streaming: parts in flight")
    parser.add_argument("--part-size-mib", type=int, default=32, help="streaming: part size")
    parser.add_argument(
        "--keep-bodies",
        action="store_true",
        help="let the fake store what it receives (in the temp folder), as the tests' fake does",
    )
    parser.add_argument("--side", choices=["baseline", "streaming", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--fake", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side == "baseline":
        print(json.dumps(side_baseline(args.folder, args.work, json.loads(args.fake), args.name)))
        return 0
    if args.side in ("streaming", "reference"):
        side = side_streaming if args.side == "streaming" else side_reference
        result = side(args.folder, json.loads(args.fake), args.name, args.workers, args.part_size_mib)
        print(json.dumps(result))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    fake_dir = tmp / "fake"
    fake_proc = None
    try:
        folder = tmp / "model"
        print(f"generating a {args.size_mib} MiB model folder in {folder}", file=sys.stderr)
        make_model(folder, args.size_mib)
        fake_proc, fake = start_fake(fake_dir, args.rate_mbps, args.keep_bodies)
        link = f"{args.rate_mbps:g} Mbps" if args.rate_mbps else "unthrottled loopback"
        print(
            f"fake OCI at {fake['endpoint']} ({link}); {os.cpu_count()} CPUs",
            file=sys.stderr,
        )
        common = ["--folder", str(folder), "--fake", json.dumps(fake), "--work", str(tmp)]
        baseline, streaming, reference = [], [], []
        tuned = ["--workers", str(args.workers), "--part-size-mib", str(args.part_size_mib)]
        for i in range(args.repeat):
            sides = {
                "baseline": ["--side", "baseline", *common, "--name", f"baseline-{i}/my_large_model.zip"],
                "streaming": ["--side", "streaming", *common, "--name", f"streaming-{i}/", *tuned],
                "reference": ["--side", "reference", *common, "--name", f"reference-{i}/", *tuned],
            }
            order = list(sides) if i % 2 == 0 else list(reversed(sides))  # alternating: no side always first
            got = {name: run_side(sides[name], fake_proc.pid) for name in order}
            b, s, r = got["baseline"], got["streaming"], got["reference"]
            baseline.append(b)
            streaming.append(s)
            reference.append(r)
            delete_objects(fake, f"baseline-{i}/")
            delete_objects(fake, f"streaming-{i}/")
            delete_objects(fake, f"reference-{i}/", REFERENCE_BUCKET)
            times = ", ".join(f"{name} {got[name]['seconds']:.2f} s" for name in sides)
            reruns = " / ".join(f"{x['unchanged_s'] * 1000:.0f} ms" for x in (s, r))
            cpu = ", ".join(
                f"{name} {got[name]['cpu_s']:.1f} + {got[name]['fake_cpu_s']:.1f}" for name in sides
            )
            print(
                f"run {i + 1} ({' -> '.join(order)}): {times} (baseline: zip to disk {b['zip_s']:.2f} s "
                f"+ upload {b['upload_s']:.2f} s); unchanged re-run streaming / reference {reruns}; peak RSS "
                f"{s['peak_rss_mib']:.0f} / {r['peak_rss_mib']:.0f} MiB; CPU s (client + fake): {cpu}",
                file=sys.stderr,
            )
        baseline_s = statistics.median(b["seconds"] for b in baseline)
        streaming_s = statistics.median(s["seconds"] for s in streaming)
        reference_s = statistics.median(r["seconds"] for r in reference)
        zip_bytes = int(streaming[0]["size_bytes"])
        model_bytes = int(reference[0]["size_bytes"])
        moved = {
            "baseline": {"written": zip_bytes, "sent": zip_bytes, "catalog_copied": zip_bytes},
            "streaming": {"written": 0, "sent": zip_bytes, "catalog_copied": zip_bytes},
            # its catalog artifact is the description JSON (description_bytes), not a copy of the model
            "reference": {"written": 0, "sent": int(reference[0]["sent_bytes"]), "catalog_copied": 0},
        }
        result = {
            "baseline_s": round(baseline_s, 3),
            "streaming_s": round(streaming_s, 3),
            "reference_s": round(reference_s, 3),
            "speedup": round(baseline_s / streaming_s, 2),
            "peak_rss_mib": round(max(x["peak_rss_mib"] for x in [*streaming, *reference]), 1),
            "unchanged_rerun_s": round(statistics.median(s["unchanged_s"] for s in streaming), 3),
            "reference_unchanged_rerun_s": round(statistics.median(r["unchanged_s"] for r in reference), 3),
            "model_bytes": model_bytes,
            "description_bytes": int(reference[0]["description_bytes"]),
            "bytes_moved": {k: {**v, "total": sum(v.values())} for k, v in moved.items()},
        }
        print(json.dumps(result))
        return 0
    finally:
        if fake_proc is not None:
            fake_proc.terminate()
            fake_proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
