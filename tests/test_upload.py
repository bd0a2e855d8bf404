"""Packaging and upload of a model folder, with the real oci SDK against the loopback fake."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import oci
import pytest

from domain.errors import UserError
from llmstack import cli
from oci_runtime import zipstream
from oci_runtime.auth import Auth, make_client
from oci_runtime.retry import Backoff
from oci_runtime.upload import Destination, Progress, Tuning, resumable, upload_folder, write_zip_file
from tests.fakeoci import FakeOci, Fault, TestIdentity
from tests.fakeoci.objectstorage import ObjectStorage

NS = "testns"
BUCKET = "models"
DEST = Destination(namespace=NS, bucket=BUCKET, prefix="models/llama/")
SMALL = Tuning(part_size=64 << 10, workers=3)
FAST = Backoff(attempts=8, base_s=0.005, cap_s=0.02)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def small_parts_allowed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests drive the multipart logic with KiB-sized parts; Object Storage's 10 MiB floor (kept by
    the upload and the fake alike) is tested in tests/test_oci_rules.py."""
    from oci_runtime import upload

    monkeypatch.setattr(upload, "MIN_PART_SIZE", 16 << 10)
    if "fake_oci" in request.fixturenames:
        request.getfixturevalue("fake_oci").min_part_size = 16 << 10


def make_model(folder: Path, *, seed: int = 0, shards: int = 3, shard_bytes: int = 150_000) -> Path:
    rng = __import__("random").Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        (folder / f"model-{i + 1:05d}-of-{shards:05d}.safetensors").write_bytes(rng.randbytes(shard_bytes))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "seed": seed}))
    (folder / "tokenizer").mkdir(exist_ok=True)
    (folder / "tokenizer" / "tokenizer.json").write_text('{"vocab": {}}')
    (folder / ".git").mkdir(exist_ok=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


@pytest.fixture
def store(fake_oci: FakeOci) -> ObjectStorage:
    svc = fake_oci.service(ObjectStorage)
    svc.create_bucket(BUCKET, versioning=True)
    return svc


@pytest.fixture
def clients(fake_oci: FakeOci, oci_identity: TestIdentity) -> Callable[[], Any]:
    auth = Auth(config_file=str(oci_identity.config_file))

    def factory() -> Any:
        return make_client(
            oci.object_storage.ObjectStorageClient, auth, endpoint=fake_oci.endpoint, backoff=FAST
        )

    return factory


def ops(fake: FakeOci, since: int = 0) -> Counter[tuple[str, int]]:
    return Counter((r.op, r.status) for r in fake.log[since:])


# ---------------------------------------------------------------------------------------- the zip


def test_zip_is_stored_rooted_and_the_same_for_the_same_files(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    first = write_zip_file(model, tmp_path / "a.zip")
    for p in model.rglob("*"):  # other timestamps, same content
        if p.is_file():
            os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    second = write_zip_file(model, tmp_path / "b.zip")
    data = (tmp_path / "a.zip").read_bytes()
    assert data == (tmp_path / "b.zip").read_bytes()
    assert first.fingerprint == second.fingerprint == hashlib.sha256(data).hexdigest()
    assert first.manifest_digest != second.manifest_digest  # timestamps are in the manifest, not the zip
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        infos = z.infolist()
        assert [i.filename for i in infos] == sorted(folder_files(model))  # files at the root, sorted
        assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in infos} == {0o100644}
        assert {i.filename: z.read(i) for i in infos} == folder_files(model)


def test_zip64_fields_are_written_where_sizes_need_them(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    out = io.BytesIO()
    # a limit of 1000 bytes stands in for 4 GiB: the shards get zip64 sizes, later entries zip64 offsets
    layout = zipstream.write_zip(zipstream.scan(model), 1 << 20, lambda _n, b: out.write(b), zip64_limit=1000)
    assert len(out.getvalue()) == layout.total_size
    assert any(p.local_zip64 for p in layout.placed)
    with zipfile.ZipFile(out) as z:
        assert z.testzip() is None
        assert {i.filename: z.read(i) for i in z.infolist()} == folder_files(model)
        assert all(i.extract_version == 45 for i in z.infolist() if i.file_size >= 1000)


@pytest.mark.skipif(
    not os.environ.get("LLMSTACK_SLOW_TESTS"), reason="reads 4 GiB; set LLMSTACK_SLOW_TESTS=1"
)
def test_a_real_file_over_4_gib_gets_zip64(tmp_path: Path) -> None:
    big = tmp_path / "m" / "big.bin"
    big.parent.mkdir()
    with big.open("wb") as fh:
        fh.truncate((4 << 30) + 10)  # sparse
    result = write_zip_file(big.parent, tmp_path / "big.zip")
    with zipfile.ZipFile(tmp_path / "big.zip") as z:
        assert z.getinfo("big.bin").file_size == (4 << 30) + 10
    assert result.size_bytes > 4 << 30


def test_a_file_changing_while_packaged_is_an_error(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", shard_bytes=300_000)
    last = sorted(model.glob("*.safetensors"))[-1]

    def emit(number: int, _data: bytes) -> None:
        if number == 1:
            with last.open("ab") as fh:
                fh.write(b"more")

    with pytest.raises(zipstream.FileChanged, match=last.name):
        zipstream.write_zip(zipstream.scan(model), 64 << 10, emit)


def test_bad_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not a folder"):
        zipstream.scan(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no files"):
        zipstream.scan(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "w.bin").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UserError, match="broken symlink"):
        zipstream.scan(tmp_path / "broken")


# ------------------------------------------------------------------------------------------ upload


def test_round_trip_stores_a_valid_zip_equal_to_the_folder(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    result = upload_folder(model, DEST, clients, tuning=SMALL)
    data = store.object_bytes(BUCKET, result.object_name)
    assert result.object_name == f"models/llama/{result.fingerprint[:16]}.zip"
    assert result.uri == f"oci://{BUCKET}@{NS}/{result.object_name}"
    assert hashlib.sha256(data).hexdigest() == result.fingerprint and len(data) == result.size_bytes
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        assert {i.filename: z.read(i) for i in z.infolist()} == folder_files(model)
    # `--output` writes exactly these bytes
    assert write_zip_file(model, tmp_path / "same.zip").fingerprint == result.fingerprint
    # parts went in parallel, each checked by CRC32C; nothing is left behind but the object and its sidecar
    assert ops(fake_oci)[("UploadPart", 200)] == -(-len(data) // SMALL.part_size)  # type: ignore[operator]
    assert store.uploads(BUCKET) == []
    names = [json.loads(p.read_text())["name"] for p in (store.root / NS / BUCKET / "objects").glob("*.json")]
    assert sorted(names) == sorted(
        [result.object_name, f"models/llama/.manifests/{result.manifest_digest}.json"]
    )


def test_the_benchmark_fake_stores_the_same_bytes_without_hashing_them(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    """bench/upload.py runs the fake with --fast-digests: bodies go to disk by splice, unhashed."""
    model = make_model(tmp_path / "m", shards=4)
    expected = write_zip_file(model, tmp_path / "expected.zip")
    fake_oci.fast_digests = True
    result = upload_folder(model, DEST, clients, tuning=SMALL)
    assert store.object_bytes(BUCKET, result.object_name) == (tmp_path / "expected.zip").read_bytes()
    assert result.fingerprint == expected.fingerprint
    assert upload_folder(model, DEST, clients, tuning=SMALL).skipped


@pytest.mark.parametrize("fast_digests", [True, False])
def test_a_fake_that_drops_large_bodies_still_gets_sizes_and_unchanged_folders_right(
    tmp_path: Path,
    fake_oci: FakeOci,
    store: ObjectStorage,
    clients: Callable[[], Any],
    fast_digests: bool,
) -> None:
    """bench/upload.py runs the fake with --discard-bodies: bodies of 1 MiB or more are received, then
    dropped (sparse files of their size); small ones, such as the sidecar, are kept."""
    model = make_model(tmp_path / "m", shards=3, shard_bytes=1_500_000)
    expected = write_zip_file(model, tmp_path / "expected.zip")
    fake_oci.fast_digests, fake_oci.keep_bodies = fast_digests, False
    tuning = Tuning(part_size=1 << 20, workers=3)
    result = upload_folder(model, DEST, clients, tuning=tuning)
    assert result.fingerprint == expected.fingerprint and result.sent_bytes == expected.size_bytes
    head = clients().head_object(NS, BUCKET, result.object_name)
    assert int(head.headers["content-length"]) == expected.size_bytes
    segments = store.root / NS / BUCKET / "objects"
    dropped = [p for p in segments.glob("*.*.*") if p.stat().st_size >= 1 << 20]
    assert len(dropped) == 4 and all(p.stat().st_blocks == 0 for p in dropped)  # 4 full parts, no bytes
    assert upload_folder(model, DEST, clients, tuning=tuning).skipped  # the sidecar was kept


def test_the_upload_benchmark_runs_and_ends_with_its_json_line() -> None:
    out = subprocess.run(
        [sys.executable, "bench/upload.py", "--size-mib", "3"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {
        "baseline_s",
        "streaming_s",
        "reference_s",
        "speedup",
        "peak_rss_mib",
        "unchanged_rerun_s",
        "reference_unchanged_rerun_s",
        "model_bytes",
        "description_bytes",
        "bytes_moved",
    }
    assert result["baseline_s"] > 0 and result["streaming_s"] > 0 and result["unchanged_rerun_s"] > 0
    assert result["reference_s"] > 0 and result["reference_unchanged_rerun_s"] > 0
    moved = result["bytes_moved"]
    # by reference: one byte moved per byte of model (sent once; nothing on disk, nothing copied by the
    # catalog); the seed's path: the zip three times (on disk, sent, copied by the catalog)
    assert moved["reference"] == {
        "written": 0,
        "sent": result["model_bytes"],
        "catalog_copied": 0,
        "total": result["model_bytes"],
    }
    assert moved["baseline"]["total"] == 3 * moved["baseline"]["sent"] >= 3 * result["model_bytes"]
    assert moved["streaming"]["total"] == 2 * moved["streaming"]["sent"]
    # the ratio of the unrounded medians; the rounded ones printed next to it give it within rounding
    assert result["speedup"] == pytest.approx(result["baseline_s"] / result["streaming_s"], rel=0.05)
    assert 0 < result["peak_rss_mib"] <= 512
    assert "run 1 (baseline -> streaming -> reference): baseline" in out.stderr


def test_retries_under_20_percent_faults_give_identical_bytes(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m", shards=4)
    expected = write_zip_file(model, tmp_path / "expected.zip")
    fake_oci.faults.chaos(0.2, seed=7)  # 429s, 503s and connection resets mid-body, on every operation
    result = upload_folder(model, DEST, clients, tuning=SMALL)
    seen = ops(fake_oci)
    injected = {status for (_op, status), n in seen.items() if status in (0, 429, 503)}
    assert injected == {0, 429, 503}, seen
    assert result.fingerprint == expected.fingerprint
    assert store.object_bytes(BUCKET, result.object_name) == (tmp_path / "expected.zip").read_bytes()


@pytest.mark.parametrize(
    ("exc", "kept"),
    [
        (KeyboardInterrupt(), True),
        (ConnectionError("reset"), True),
        (oci.exceptions.RequestException("no answer"), True),
        (oci.exceptions.ServiceError(503, "ServiceUnavailable", {}, "busy"), True),
        (oci.exceptions.ServiceError(429, "TooManyRequests", {}, "slow down"), True),
        (oci.exceptions.ServiceError(400, "InvalidUploadPart", {}, "etag differs"), False),
        (oci.exceptions.ServiceError(404, "NotFound", {}, "no bucket"), False),
        (ValueError("a file changed"), False),
    ],
)
def test_an_upload_is_kept_for_resume_only_when_a_rerun_can_finish_it(exc: BaseException, kept: bool) -> None:
    assert resumable(exc) is kept


def test_a_failing_commit_aborts_the_multipart_upload(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    fake_oci.faults.add(
        Fault(
            kind="status",
            ops=frozenset({"CommitMultipartUpload"}),
            status=400,
            code="InvalidUploadPart",
            message="part 2 is missing or its etag differs",
        )
    )
    with pytest.raises(UserError) as err:
        upload_folder(model, DEST, clients, tuning=SMALL)
    message = str(err.value)
    assert "400 InvalidUploadPart" in message and "was aborted" in message and "\n" not in message
    assert store.uploads(BUCKET) == []
    assert ops(fake_oci)[("AbortMultipartUpload", 204)] == 1
    assert not list((store.root / NS / BUCKET / "objects").glob("*.json"))


@pytest.mark.parametrize("op", ["CommitMultipartUpload", "RenameObject"])
def test_a_step_whose_answer_was_lost_is_recognised_as_done(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any], op: str
) -> None:
    model = make_model(tmp_path / "m")
    fake_oci.faults.add(Fault(kind="lost_answer", ops=frozenset({op}), times=1))

    result = upload_folder(model, DEST, clients, tuning=SMALL)

    # done, answer lost; the SDK's retry finds its source gone, the object tells what happened
    assert [r.status for r in fake_oci.requests(op)] == [0, 404]
    assert store.object_bytes(BUCKET, result.object_name) == write_zip_bytes(model, tmp_path)
    assert store.uploads(BUCKET) == []
    assert upload_folder(model, DEST, clients, tuning=SMALL).skipped  # recorded: not uploaded again


def test_ctrl_c_keeps_the_upload_and_the_next_run_sends_only_missing_parts(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m", shards=4)

    def interrupt(_number: int) -> None:
        if sum(1 for r in fake_oci.log if r.op == "UploadPart" and r.status == 200) >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upload_folder(model, DEST, clients, tuning=Tuning(part_size=64 << 10, workers=1), on_part=interrupt)
    (upload,) = store.uploads(BUCKET)
    stored_parts = len(list((store.root / NS / BUCKET / "uploads" / upload["uploadId"]).glob("part-*.json")))
    assert stored_parts >= 4
    mark = len(fake_oci.log)
    result = upload_folder(model, DEST, clients, tuning=Tuning(part_size=64 << 10, workers=1))
    total_parts = -(-result.size_bytes // (64 << 10))
    assert result.reused_parts == stored_parts
    assert ops(fake_oci, mark)[("UploadPart", 200)] == total_parts - stored_parts
    assert result.fingerprint == write_zip_file(model, tmp_path / "z.zip").fingerprint
    assert store.object_bytes(BUCKET, result.object_name) == (tmp_path / "z.zip").read_bytes()


def test_network_loss_keeps_the_upload_for_the_next_run(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    lost = fake_oci.faults.add(Fault(kind="reset", ops=frozenset({"UploadPart"}), after_bytes=0))
    with pytest.raises(UserError, match=r"interrupted .*run the same command again to resume"):
        upload_folder(model, DEST, clients, tuning=SMALL)
    assert len(store.uploads(BUCKET)) == 1 and lost.fired >= FAST.attempts
    fake_oci.faults.clear()
    result = upload_folder(model, DEST, clients, tuning=SMALL)
    assert store.uploads(BUCKET) == [] and result.reused_parts == 0


def test_a_killed_upload_resumes_sending_only_missing_verified_parts(
    tmp_path: Path,
    fake_oci: FakeOci,
    oci_identity: TestIdentity,
    store: ObjectStorage,
    clients: Callable[[], Any],
) -> None:
    # The CLI in a subprocess keeps Object Storage's 10 MiB floor: about 60 MiB, 6 parts of 10 MiB.
    model = make_model(tmp_path / "m", shards=3, shard_bytes=20 << 20)
    fake_oci.faults.add(Fault(kind="slow", ops=frozenset({"UploadPart"}), delay_s=0.2))
    env = {**os.environ, "OCI_CLI_CONFIG_FILE": str(oci_identity.config_file), "PYTHONPATH": str(ROOT)}
    argv = [
        sys.executable,
        "-m",
        "llmstack",
        "package",
        str(model),
        "--to",
        f"oci://{BUCKET}@{NS}/models/llama/",
        "--endpoint",
        fake_oci.endpoint,
        "--part-size-mib",
        "10",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while ops(fake_oci)[("UploadPart", 200)] < 3:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the upload did not start"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    fake_oci.wait_idle()  # a part the client finished sending before it died may still be landing
    fake_oci.faults.clear()
    (upload,) = store.uploads(BUCKET)
    records = sorted((store.root / NS / BUCKET / "uploads" / upload["uploadId"]).glob("part-*.json"))
    stored = len(records)
    damaged = json.loads(records[0].read_text())  # a stored part that no longer matches must be sent again
    damaged["md5"] = "AAAAAAAAAAAAAAAAAAAAAA=="
    records[0].write_text(json.dumps(damaged))

    mark = len(fake_oci.log)
    result = upload_folder(model, DEST, clients, tuning=Tuning(part_size=10 << 20, workers=2))
    total = -(-result.size_bytes // (10 << 20))
    assert 3 <= stored < total
    assert result.reused_parts == stored - 1
    assert ops(fake_oci, mark)[("UploadPart", 200)] == total - stored + 1
    assert result.sent_bytes < result.size_bytes
    assert store.object_bytes(BUCKET, result.object_name) == write_zip_bytes(model, tmp_path)
    assert store.uploads(BUCKET) == []


def write_zip_bytes(model: Path, tmp_path: Path) -> bytes:
    write_zip_file(model, tmp_path / "expected.zip")
    return (tmp_path / "expected.zip").read_bytes()


def test_unchanged_folder_is_not_read_or_uploaded_again(
    tmp_path: Path,
    fake_oci: FakeOci,
    store: ObjectStorage,
    clients: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = make_model(tmp_path / "m")
    first = upload_folder(model, DEST, clients, tuning=SMALL)
    mark = len(fake_oci.log)

    def no_reading(*_a: object, **_k: object) -> None:
        raise AssertionError("an unchanged folder must not be read")

    monkeypatch.setattr("oci_runtime.upload.write_zip", no_reading)
    again = upload_folder(model, DEST, clients, tuning=SMALL)
    assert again.skipped and again.sent_bytes == 0
    assert (again.object_name, again.fingerprint) == (first.object_name, first.fingerprint)
    assert set(ops(fake_oci, mark)) == {("GetObject", 200), ("HeadObject", 200)}


def test_one_changed_byte_gives_a_new_fingerprint_and_object(
    tmp_path: Path, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    first = upload_folder(model, DEST, clients, tuning=SMALL)
    shard = sorted(model.glob("*.safetensors"))[1]
    data = bytearray(shard.read_bytes())
    data[1234] ^= 0x01
    stat = shard.stat()
    shard.write_bytes(bytes(data))
    os.utime(
        shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000)
    )  # same size; a later mtime, as any edit
    second = upload_folder(model, DEST, clients, tuning=SMALL)
    assert not second.skipped and second.fingerprint != first.fingerprint
    assert second.object_name != first.object_name
    assert store.object_info(BUCKET, first.object_name) is not None  # the old zip is kept


def test_touched_folder_is_uploaded_again_but_keeps_its_object_name(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    first = upload_folder(model, DEST, clients, tuning=SMALL)
    etag = store.object_info(BUCKET, first.object_name)["etag"]  # type: ignore[index]
    for p in model.glob("*.json"):
        os.utime(p)
    second = upload_folder(model, DEST, clients, tuning=SMALL)
    assert not second.skipped and second.manifest_digest != first.manifest_digest
    assert second.object_name == first.object_name
    assert store.object_info(BUCKET, first.object_name)["etag"] == etag  # type: ignore[index]  # not overwritten
    assert store.object_info(BUCKET, DEST.staging(second.manifest_digest)) is None


def test_a_sidecar_this_code_did_not_write_means_upload_again(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    first = upload_folder(model, DEST, clients, tuning=SMALL)
    record = {"layout": zipstream.LAYOUT_VERSION, "manifestDigest": first.manifest_digest}  # no object
    clients().put_object(NS, BUCKET, DEST.sidecar(first.manifest_digest), json.dumps(record).encode())

    again = upload_folder(model, DEST, clients, tuning=SMALL)

    assert not again.skipped and again.fingerprint == first.fingerprint
    assert upload_folder(model, DEST, clients, tuning=SMALL).skipped  # the record was written anew


def test_no_answer_from_object_storage_is_one_line(tmp_path: Path, oci_identity: TestIdentity) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket closes
    auth = Auth(config_file=str(oci_identity.config_file))
    once = Backoff(attempts=2, base_s=0.001, cap_s=0.002)

    def dead() -> Any:
        return make_client(
            oci.object_storage.ObjectStorageClient, auth, endpoint=f"http://127.0.0.1:{port}", backoff=once
        )

    with pytest.raises(UserError) as err:
        upload_folder(make_model(tmp_path / "m"), DEST, dead, tuning=SMALL)

    assert str(err.value).startswith("cannot reach Object Storage to look up earlier uploads in oci://")
    assert "\n" not in str(err.value)


def test_memory_stays_bounded_by_parts_in_flight(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    import tracemalloc

    model = make_model(tmp_path / "m", shards=8, shard_bytes=2 << 20)  # 16 MiB of weights
    part = 256 << 10
    tracemalloc.start()
    try:
        upload_folder(model, DEST, clients, tuning=Tuning(part_size=part, workers=2))
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # parts in flight (2 sending, 1 hashing, 1 being filled) plus the in-process fake's 1 MiB read buffers
    assert peak < 6 << 20, f"peak {peak / 2**20:.1f} MiB for a 16 MiB zip"


# --------------------------------------------------------------------------------------------- CLI


def test_cli_output_writes_the_zip_and_prints_its_sha256(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_model(tmp_path / "m")
    target = tmp_path / "m.zip"
    assert cli.main(["package", str(model), "--output", str(target)]) == 0
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert capsys.readouterr().out == f"{digest}  {target}\n"
    assert not list(tmp_path.glob(".*partial"))


def test_cli_uploads_then_finds_the_folder_unchanged(
    tmp_path: Path,
    fake_oci: FakeOci,
    store: ObjectStorage,
    oci_identity: TestIdentity,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", str(oci_identity.config_file))
    model = make_model(tmp_path / "m")
    argv = [
        "package",
        str(model),
        "--to",
        f"oci://{BUCKET}@{NS}/p",
        "--endpoint",
        fake_oci.endpoint,
        "--json",
    ]
    assert cli.main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    data = store.object_bytes(BUCKET, first["objectName"])
    assert first["objectName"].startswith("p/") and hashlib.sha256(data).hexdigest() == first["fingerprint"]
    assert first["sentBytes"] == len(data) and not first["skipped"]
    assert cli.main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["skipped"] and second["sentBytes"] == 0 and second["objectName"] == first["objectName"]


def test_cli_errors_are_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_model(tmp_path / "m")
    cases = [
        (["package", str(tmp_path / "nope"), "--output", str(tmp_path / "x.zip")], "is not a folder"),
        (
            ["package", str(model), "--to", "s3://bucket/x"],
            "--to 's3://bucket/x': not an Object Storage address; use oci://<bucket>@<namespace>/<prefix>/",
        ),
        (
            ["package", str(model), "--to", "oci://b@ns/", "--part-size-mib", "0"],
            "--part-size-mib must be 10 to 51200 (Object Storage: 10 MiB to 50 GiB per part), got 0",
        ),
        (
            ["package", str(model), "--to", "oci://b@ns/", "--part-size-mib", "60000"],
            "--part-size-mib must be 10 to 51200 (Object Storage: 10 MiB to 50 GiB per part), got 60000",
        ),
        (
            ["package", str(model), "--to", "oci://b@ns/", "--workers", "0"],
            "--workers must be at least 1, got 0",
        ),
        (["package", str(model), "--to", "oci://b@ns/"], "OCI config file"),
    ]
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", str(tmp_path / "no-config"))
    for argv, expected in cases:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err


def test_progress_shows_bytes_rate_and_eta_on_a_terminal_only() -> None:
    ticks = iter([0.0, 1.0, 2.0])
    shown = io.StringIO()
    bar = Progress("uploading", 4 << 20, stream=shown, enabled=True, clock=lambda: next(ticks))
    bar.add(1 << 20)
    bar.add(3 << 20)
    bar.close()
    lines = [line.removesuffix("\x1b[K") for line in shown.getvalue().strip().split("\r") if line]
    assert lines == [
        "uploading 1.0 MiB / 4.0 MiB  1.0 MiB/s  ETA 0:03",
        "uploading 4.0 MiB / 4.0 MiB  2.0 MiB/s  ETA 0:00",
    ]
    quiet = io.StringIO()  # not a terminal
    Progress("uploading", 10, stream=quiet).add(10)
    assert quiet.getvalue() == ""


def test_part_body_rewinds_for_a_retry_and_reads_in_large_blocks() -> None:
    from oci_runtime.upload import PartBody

    data = bytes(range(256)) * 8192  # 2 MiB
    body = PartBody(memoryview(data))
    assert len(body) == len(data)
    first = bytes(body.read(8192))  # http.client asks for 8 KiB; a part goes out in 1 MiB blocks
    assert first == data[: 1 << 20] and body.tell() == 1 << 20
    body.seek(0)
    assert b"".join(bytes(body.read(8192)) for _ in range(3)) == data
    assert bytes(body.read(8192)) == b""


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (None, "key_file's value"),  # the file the profile names is not there
        (b"not a key\n", "is not usable: The provided key is not a private key"),
    ],
)
def test_cli_a_profile_with_an_unusable_key_is_one_line(
    tmp_path: Path,
    oci_identity: TestIdentity,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    key: bytes | None,
    expected: str,
) -> None:
    key_file = tmp_path / "key.pem"
    if key is not None:
        key_file.write_bytes(key)
    config = tmp_path / "config"
    config.write_text(oci_identity.config_file.read_text().replace(str(oci_identity.key_file), str(key_file)))
    monkeypatch.setenv("OCI_CLI_CONFIG_FILE", str(config))

    code = cli.main(["package", str(make_model(tmp_path / "m")), "--to", "oci://b@ns/p/"])

    err = capsys.readouterr().err
    assert code == 2 and err.startswith("llmstack package: ") and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err
