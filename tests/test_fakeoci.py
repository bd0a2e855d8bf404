"""The loopback fake OCI service itself: it must reject what OCI rejects and fail the way we tell it to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import oci
import pytest
from oci._vendor import requests

from oci_runtime.retry import Backoff, oci_retry_strategy
from tests.fakeoci import FakeOci, Fault, TestIdentity
from tests.fakeoci.datascience import DataScience
from tests.fakeoci.objectstorage import ObjectStorage

FAST = Backoff(attempts=6, base_s=0.01, cap_s=0.05)
NS = "testns"


def os_client(
    fake: FakeOci, identity: TestIdentity, *, retries: bool = True
) -> oci.object_storage.ObjectStorageClient:
    config = oci.config.from_file(str(identity.config_file))
    kwargs = (
        {"retry_strategy": oci_retry_strategy(FAST)}
        if retries
        else {"retry_strategy": oci.retry.NoneRetryStrategy()}
    )
    return oci.object_storage.ObjectStorageClient(config, service_endpoint=fake.endpoint, **kwargs)


def ds_client(fake: FakeOci, identity: TestIdentity) -> oci.data_science.DataScienceClient:
    config = oci.config.from_file(str(identity.config_file))
    return oci.data_science.DataScienceClient(
        config, service_endpoint=fake.endpoint, retry_strategy=oci_retry_strategy(FAST)
    )


def test_sdk_round_trip_and_multipart(fake_oci: FakeOci, oci_identity: TestIdentity) -> None:
    fake_oci.service(ObjectStorage).create_bucket("models")
    fake_oci.min_part_size = 1  # byte-sized parts here; the 10 MiB floor: tests/test_oci_rules.py
    client = os_client(fake_oci, oci_identity)
    assert client.get_namespace().data == NS
    client.put_object(NS, "models", "dir/a b.txt", b"hello", opc_meta={"fingerprint": "f1"})
    head = client.head_object(NS, "models", "dir/a b.txt").headers
    assert head["content-length"] == "5" and head["opc-meta-fingerprint"] == "f1"
    assert client.get_object(NS, "models", "dir/a b.txt").data.content == b"hello"

    models = oci.object_storage.models
    upload = client.create_multipart_upload(
        NS, "models", models.CreateMultipartUploadDetails(object="m.zip")
    ).data
    etags = [
        client.upload_part(NS, "models", "m.zip", upload.upload_id, n, data).headers["etag"]
        for n, data in ((1, b"a" * 7), (2, b"b" * 3))
    ]
    listed = client.list_multipart_upload_parts(NS, "models", "m.zip", upload.upload_id).data
    assert [(p.part_number, p.size) for p in listed] == [(1, 7), (2, 3)]
    details = models.CommitMultipartUploadDetails(
        parts_to_commit=[
            models.CommitMultipartUploadPartDetails(part_num=n + 1, etag=e) for n, e in enumerate(etags)
        ]
    )
    client.commit_multipart_upload(NS, "models", "m.zip", upload.upload_id, details)
    assert client.get_object(NS, "models", "m.zip").data.content == b"a" * 7 + b"b" * 3
    assert client.list_multipart_uploads(NS, "models").data == []


def test_rejects_unknown_key_and_tampered_requests(
    fake_oci: FakeOci, oci_identity: TestIdentity, tmp_path: Path
) -> None:
    stranger = TestIdentity.create(tmp_path / "stranger")
    with pytest.raises(oci.exceptions.ServiceError) as err:
        os_client(fake_oci, stranger).get_namespace()
    assert err.value.status == 401 and "unknown keyId" in err.value.message

    signer = oci.signer.Signer.from_config(oci.config.from_file(str(oci_identity.config_file)))
    session = requests.Session()
    # signed for one path, sent to another
    prepared = requests.Request("GET", f"{fake_oci.endpoint}/n").prepare()
    signer(prepared)
    prepared.url = f"{fake_oci.endpoint}/n/{NS}/b/models"
    assert session.send(prepared, timeout=5).status_code == 401
    # a JSON body changed after signing
    prepared = requests.Request("POST", f"{fake_oci.endpoint}/20190101/models", data=b'{"a": 1}').prepare()
    signer(prepared)
    prepared.body = b'{"a": 2}'
    response = session.send(prepared, timeout=5)
    assert response.status_code == 401 and "x-content-sha256" in response.json()["message"]
    # a POST signed without the body headers (only PUTs of bytes may do that)
    prepared = requests.Request("POST", f"{fake_oci.endpoint}/20190101/models", data=b"{}").prepare()
    signer.without_content_headers(prepared)
    assert "does not cover" in session.send(prepared, timeout=5).json()["message"]
    # unsigned
    assert session.get(f"{fake_oci.endpoint}/n", timeout=5).status_code == 401


def test_bursts_are_retried_and_logged(fake_oci: FakeOci, oci_identity: TestIdentity) -> None:
    fake_oci.service(ObjectStorage).create_bucket("models")
    fake_oci.faults.burst(429, ops={"PutObject"}, times=2)
    fake_oci.faults.burst(503, ops={"PutObject"}, times=1)
    os_client(fake_oci, oci_identity).put_object(NS, "models", "x", b"payload")
    assert [r.status for r in fake_oci.requests("PutObject")] == [429, 429, 503, 200]
    assert fake_oci.service(ObjectStorage).object_bytes("models", "x") == b"payload"


def test_reset_mid_body_and_slow_parts(fake_oci: FakeOci, oci_identity: TestIdentity) -> None:
    fake_oci.service(ObjectStorage).create_bucket("models")
    fake_oci.faults.add(Fault(kind="reset", ops=frozenset({"PutObject"}), times=1, after_bytes=1000))
    with pytest.raises(oci.exceptions.RequestException):
        os_client(fake_oci, oci_identity, retries=False).put_object(NS, "models", "x", b"z" * 200_000)
    assert fake_oci.requests("PutObject")[0].body_bytes == 1000
    assert fake_oci.service(ObjectStorage).object_info("models", "x") is None

    fake_oci.faults.add(Fault(kind="slow", ops=frozenset({"PutObject"}), times=1, delay_s=0.3))
    start = time.monotonic()
    os_client(fake_oci, oci_identity).put_object(NS, "models", "x", b"z" * 10)
    assert time.monotonic() - start >= 0.3


def test_export_work_request_succeeds_or_fails_on_demand(
    fake_oci: FakeOci, oci_identity: TestIdentity
) -> None:
    store = fake_oci.service(ObjectStorage)
    store.create_bucket("models")
    os_client(fake_oci, oci_identity).put_object(NS, "models", "m.zip", b"PK\x03\x04rest")
    ds = ds_client(fake_oci, oci_identity)
    dsm = oci.data_science.models
    model = ds.create_model(
        dsm.CreateModelDetails(compartment_id="ocid1.compartment.oc1..c", project_id="ocid1.p")
    ).data
    export = dsm.ExportModelArtifactDetails(
        artifact_export_details=dsm.ArtifactExportDetailsObjectStorage(
            namespace=NS, source_bucket="models", source_object_name="m.zip", source_region="us-ashburn-1"
        )
    )
    wr_id = ds.export_model_artifact(model.id, export).headers["opc-work-request-id"]
    states = [ds.get_work_request(wr_id).data.status for _ in range(3)]
    assert states == ["IN_PROGRESS", "SUCCEEDED", "SUCCEEDED"]
    assert fake_oci.service(DataScience).artifact_bytes(model.id) == b"PK\x03\x04rest"

    fake_oci.faults.add(
        Fault(
            kind="work_request_failed",
            ops=frozenset({"ExportModelArtifact"}),
            times=1,
            code="InternalError",
            message="copy failed",
        )
    )
    fresh = ds.create_model(
        dsm.CreateModelDetails(compartment_id="ocid1.compartment.oc1..c", project_id="ocid1.p")
    ).data  # a model's artifact is immutable: a second export onto `model` is refused (test_oci_rules.py)
    wr_id = ds.export_model_artifact(fresh.id, export).headers["opc-work-request-id"]
    statuses = [ds.get_work_request(wr_id).data.status for _ in range(3)]
    assert statuses == ["IN_PROGRESS", "FAILED", "FAILED"]  # ends after as many polls as a success
    errors = ds.list_work_request_errors(wr_id).data
    assert [(e.code, e.message) for e in errors] == [("InternalError", "copy failed")]


def test_standalone_server_serves_signed_requests_and_stops(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakeoci",
            "--data",
            str(tmp_path),
            "--bucket",
            "models",
            "--lifetime",
            "30",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        config = oci.config.from_file(info["config_file"], info["profile"])
        client = oci.object_storage.ObjectStorageClient(config, service_endpoint=info["endpoint"])
        client.put_object(info["namespace"], "models", "k", b"v")
        assert client.get_object(info["namespace"], "models", "k").data.content == b"v"
        added = requests.post(
            f"{info['endpoint']}/_fake/faults", json={"kind": "status", "status": 503, "times": 1}, timeout=5
        )
        assert added.json() == {"added": 1}
        with pytest.raises(oci.exceptions.ServiceError) as err:
            client.get_namespace(retry_strategy=oci.retry.NoneRetryStrategy())
        assert err.value.status == 503
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_client_that_leaves_is_routine_and_stop_ends_every_connection(
    tmp_path: Path, oci_identity: TestIdentity, capfd: pytest.CaptureFixture[str]
) -> None:
    import socket
    import threading

    before = set(threading.enumerate())
    fake = FakeOci(tmp_path / "fake")
    fake.trust(oci_identity)
    fake.start()
    try:
        fake.faults.add(Fault(kind="slow", ops=frozenset({"GetNamespace"}), delay_s=60))
        signer = oci.signer.Signer.from_config(oci.config.from_file(str(oci_identity.config_file)))
        with pytest.raises(requests.exceptions.ReadTimeout):  # the client gives up; the fake still answers
            requests.get(f"{fake.endpoint}/n", auth=signer, timeout=(5, 0.2))
        idle = socket.create_connection(("127.0.0.1", fake.port), timeout=5)  # kept open, never used
    finally:
        started = time.monotonic()
        fake.stop()
        stopped_in = time.monotonic() - started
    idle.close()

    assert stopped_in < 5  # not the slow fault's 60 s, nor the idle socket's 30 s read timeout
    assert [t for t in threading.enumerate() if t not in before] == []  # no thread of the fake lives on
    assert fake.errors == []
    assert capfd.readouterr().err == ""  # no traceback lands in another test's output


def test_a_long_run_of_503s_trips_no_breaker_shared_by_every_client(
    fake_oci: FakeOci, oci_identity: TestIdentity
) -> None:
    from oci_runtime.auth import Auth, make_client

    auth = Auth(config_file=str(oci_identity.config_file))
    quick = Backoff(attempts=4, base_s=0.001, cap_s=0.002, total_s=5)

    def client(cls: type) -> Any:
        return make_client(cls, auth, region="us-ashburn-1", endpoint=fake_oci.endpoint, backoff=quick)

    fake_oci.faults.add(Fault(kind="status", status=503, ops=frozenset({"GetNamespace"})))
    for _ in range(3):  # 12 answers of 503 in a row: the SDK's default breaker opens after 10
        with pytest.raises(oci.exceptions.ServiceError) as err:
            client(oci.object_storage.ObjectStorageClient).get_namespace()
        assert err.value.status == 503
    assert len(fake_oci.requests("GetNamespace")) == 3 * quick.attempts  # every retry was sent
    fake_oci.faults.clear()

    # other clients, another service: answered, not refused for 30 s by a process-wide breaker
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client(oci.data_science.DataScienceClient).get_model("ocid1.datasciencemodel.oc1.iad.gone")
    assert err.value.status == 404
    assert client(oci.object_storage.ObjectStorageClient).get_namespace().data == NS


def test_clients_share_one_loaded_api_key_until_the_key_file_changes(
    fake_oci: FakeOci, oci_identity: TestIdentity, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from oci_runtime.auth import Auth, make_client

    key_file = tmp_path / "key.pem"
    key_file.write_bytes(oci_identity.key_file.read_bytes())
    config = tmp_path / "config"
    config.write_text(oci_identity.config_file.read_text().replace(str(oci_identity.key_file), str(key_file)))
    auth = Auth(config_file=str(config))

    def client() -> Any:
        return make_client(oci.object_storage.ObjectStorageClient, auth, endpoint=fake_oci.endpoint)

    with ThreadPoolExecutor(4) as pool:  # one client per thread, as an upload builds them, all signing
        clients = list(pool.map(lambda _: client(), range(4)))
        assert list(pool.map(lambda c: c.get_namespace().data, clients)) == [NS] * 4
    assert len({id(c.base_client.signer) for c in clients}) == 1  # the key was loaded once
    assert clients[0] is not clients[1]

    key_file.write_bytes(oci_identity.key_file.read_bytes())  # rewritten (rotated): loaded again
    os.utime(key_file, ns=(1, 1))
    fresh = client()
    assert fresh.base_client.signer is not clients[0].base_client.signer
    assert fresh.get_namespace().data == NS
    assert fake_oci.errors == []
