"""A model folder uploaded as objects for a catalog model by reference, with the real SDK against the fake."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain import model_description
from domain.errors import UserError
from oci_runtime.objects import BucketNotVersioned, current_versions, upload_objects
from oci_runtime.upload import Destination, Tuning
from tests.fakeoci import FakeOci, Fault
from tests.fakeoci.objectstorage import ObjectStorage
from tests.test_upload import BUCKET, DEST, NS, SMALL, folder_files, make_model, ops
from tests.test_upload import clients as clients
from tests.test_upload import small_parts_allowed as small_parts_allowed
from tests.test_upload import store as store


def test_first_upload_stores_each_file_pinned_by_its_version(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    result = upload_objects(model, DEST, clients, tuning=SMALL)
    files = folder_files(model)
    assert result.prefix == "models/llama/files/"
    assert {f.path for f in result.files} == set(files)  # hidden files (.git) are not the model
    assert result.sent_bytes == result.size_bytes == sum(len(b) for b in files.values())  # once each
    for f in result.files:
        assert f.sha256 == hashlib.sha256(files[f.path]).hexdigest()
        assert f.version == store.object_info(BUCKET, f.name)["versionId"]  # the `version-id` header
        assert store.object_bytes(BUCKET, f.name) == files[f.path]
    # the shards (150 kB > 64 KiB parts) went up in parallel parts; the small files in one PUT each
    assert ops(fake_oci)[("UploadPart", 200)] == 3 * 3 and ops(fake_oci)[("CommitMultipartUpload", 200)] == 3
    doc = result.description()
    assert model_description.problems(doc) == []
    assert doc["models"][0]["prefix"] == "models/llama/files/"
    assert {o["name"] for o in doc["models"][0]["objects"]} == {f"models/llama/files/{p}" for p in files}


def test_an_unchanged_folder_reads_and_sends_nothing_and_pins_the_same_versions(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    first = upload_objects(model, DEST, clients, tuning=SMALL)
    mark = len(fake_oci.log)
    again = upload_objects(model, DEST, clients, tuning=SMALL)
    assert again.skipped and again.sent_bytes == 0
    assert again.description() == first.description() and again.fingerprint == first.fingerprint
    assert not {op for op, _ in ops(fake_oci, mark)} & {"PutObject", "UploadPart", "CreateMultipartUpload"}


def test_touched_files_are_checked_by_sha256_and_not_sent_again(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    first = upload_objects(model, DEST, clients, tuning=SMALL)
    for p in model.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    again = upload_objects(model, DEST, clients, tuning=SMALL)
    assert not again.skipped and again.sent_bytes == 0 and again.reused_files == len(first.files)
    assert again.description() == first.description()


def test_one_changed_file_gets_a_new_version_under_the_same_prefix_and_the_old_one_is_kept(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    first = upload_objects(model, DEST, clients, tuning=SMALL)
    (model / "config.json").write_text('{"model_type": "llama", "changed": true}')
    second = upload_objects(model, DEST, clients, tuning=SMALL)
    changed = {f.path for f in second.files} - {f.path for f in second.files if f in first.files}
    assert changed == {"config.json"}
    assert second.sent_bytes == len((model / "config.json").read_bytes())
    assert second.prefix == first.prefix and second.fingerprint != first.fingerprint
    old = next(f for f in first.files if f.path == "config.json")
    versions = [v["versionId"] for v in store.object_versions(BUCKET, old.name)]
    assert old.version in versions and len(versions) == 2  # the first model's pinned bytes survive


def test_an_interrupted_large_file_resumes_with_its_stored_parts(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m", shards=1, shard_bytes=640 << 10)  # 10 parts of 64 KiB
    fake_oci.faults.add(
        Fault(kind="status", status=400, code="InvalidParameter", ops=frozenset({"CommitMultipartUpload"}))
    )
    with pytest.raises(UserError):
        upload_objects(model, DEST, clients, tuning=Tuning(part_size=64 << 10, workers=1))
    # a refused commit (not retryable) aborts; a lost connection keeps the parts for the next run:
    fake_oci.faults.clear()
    fake_oci.faults.add(Fault(kind="reset", ops=frozenset({"CommitMultipartUpload"}), after_bytes=0))
    with pytest.raises(UserError, match="resume"):
        upload_objects(model, DEST, clients, tuning=Tuning(part_size=64 << 10, workers=1))
    assert len(store.uploads(BUCKET)) == 1
    fake_oci.faults.clear()
    result = upload_objects(model, DEST, clients, tuning=Tuning(part_size=64 << 10, workers=1))
    assert result.reused_parts == 10 and store.uploads(BUCKET) == []
    shard = next(f for f in result.files if f.path.endswith(".safetensors"))
    assert store.object_bytes(BUCKET, shard.name) == (model / shard.path).read_bytes()


def test_a_large_file_whose_commit_answer_was_lost_is_recognised_as_done(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m", shards=1, shard_bytes=640 << 10)  # 10 parts of 64 KiB
    fake_oci.faults.add(Fault(kind="lost_answer", ops=frozenset({"CommitMultipartUpload"}), times=1))

    result = upload_objects(model, DEST, clients, tuning=Tuning(part_size=64 << 10, workers=1))

    # done, answer lost; the SDK's retry finds the upload gone, the object (its size, its mtime) says why
    assert [r.status for r in fake_oci.requests("CommitMultipartUpload")] == [0, 404]
    shard = next(f for f in result.files if f.path.endswith(".safetensors"))
    assert store.object_bytes(BUCKET, shard.name) == (model / shard.path).read_bytes()
    assert shard.version == store.object_info(BUCKET, shard.name)["versionId"]
    assert store.uploads(BUCKET) == []


def test_a_bucket_without_versioning_is_refused_before_any_byte_is_sent(
    tmp_path: Path, fake_oci: FakeOci, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    store.create_bucket("plain")
    model = make_model(tmp_path / "m")
    with pytest.raises(
        BucketNotVersioned, match=r"bucket 'plain' has versioning 'Disabled'.*artifact.mode: copy"
    ):
        upload_objects(model, Destination(namespace=NS, bucket="plain", prefix="m/"), clients, tuning=SMALL)
    assert not {op for op, _ in ops(fake_oci)} & {"PutObject", "UploadPart"}


def test_a_prefix_put_there_by_another_tool_is_pinned_as_it_stands(
    tmp_path: Path, store: ObjectStorage, clients: Callable[[], Any]
) -> None:
    model = make_model(tmp_path / "m")
    result = upload_objects(model, DEST, clients, tuning=SMALL)
    pinned = current_versions(clients(), NS, BUCKET, "models/llama/files/")
    assert sorted((p.name, p.version, p.size) for p in pinned) == sorted(
        (f.name, f.version, f.size) for f in result.files
    )
