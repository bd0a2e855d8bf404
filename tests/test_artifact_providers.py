"""The ModelArtifact and CatalogModel dynamic providers, called as the engine calls them, against the fake."""

from __future__ import annotations

import base64
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import dill
import oci
import pytest

from components.providers import artifact as artifact_module
from components.providers import catalog as catalog_module
from components.providers.artifact import ModelArtifactProvider, manifest_digest
from components.providers.catalog import (
    ArtifactFailed,
    CatalogModelProvider,
    inline_artifact,
)
from components.providers.objects import ModelObjectsProvider
from components.pulumi_internals import serialize_provider
from domain.errors import UserError
from oci_runtime.retry import Backoff
from oci_runtime.upload import Tuning
from tests.fakeoci import FakeOci, Fault, TestIdentity
from tests.fakeoci.datascience import DataScience
from tests.fakeoci.objectstorage import ObjectStorage
from tests.test_upload import make_model
from tests.test_upload import small_parts_allowed as small_parts_allowed

NS = "testns"
BUCKET = "llm-artifacts-dev"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaafake"
PROJECT = "ocid1.datascienceproject.oc1.iad.aaaaaaaafake"
FAST = Backoff(attempts=8, base_s=0.005, cap_s=0.02)
QUICK_WAIT = Backoff(attempts=None, base_s=0.001, cap_s=0.002, total_s=10)
HF_TOKEN = "hf_FAKEtokenFAKEtokenFAKEtokenFAKE12"


@pytest.fixture
def store(fake_oci: FakeOci) -> ObjectStorage:
    svc = fake_oci.service(ObjectStorage)
    svc.create_bucket(BUCKET, versioning=True)
    return svc


@pytest.fixture
def catalog(fake_oci: FakeOci) -> DataScience:
    return fake_oci.service(DataScience)


def common(fake: FakeOci, identity: TestIdentity) -> dict[str, Any]:
    return {
        "region": "us-ashburn-1",
        "auth": {"mode": "api_key", "profile": "DEFAULT", "configFile": str(identity.config_file)},
        "endpoints": {"objectstorage": fake.endpoint, "datascience": fake.endpoint},
    }


def engine(props: dict[str, Any]) -> dict[str, Any]:
    """Inputs as the engine hands them to a provider: properties that are None are left out."""
    return {k: v for k, v in props.items() if v is not None}


def artifact_props(model: Path, fake: FakeOci, identity: TestIdentity) -> dict[str, Any]:
    return engine(
        {
            **common(fake, identity),
            "localPath": str(model),
            "namespace": NS,
            "bucket": BUCKET,
            "objectPrefix": "models/llama2-7b/",
            "manifestDigest": manifest_digest(model),
            "uri": None,
            "objectName": None,
            "fingerprint": None,
            "sizeBytes": None,
        }
    )


def catalog_props(
    fake: FakeOci, identity: TestIdentity, uploaded: dict[str, Any] | None, **over: Any
) -> dict[str, Any]:
    artifact = (
        {
            "kind": "objectStorage",
            "namespace": NS,
            "bucket": BUCKET,
            "objectName": uploaded["objectName"],
            "region": "us-ashburn-1",
            "byReference": False,
        }
        if uploaded
        else {"kind": "inline"}
    )
    metadata = {"source": "localPath:llama", "method": "offline", "engine": "vllm", "parameters": "7B"}
    if uploaded:
        metadata["fingerprint"] = uploaded["fingerprint"]
    return engine(
        {
            **common(fake, identity),
            "compartmentId": COMPARTMENT,
            "projectId": PROJECT,
            "displayName": "dev-llama2-7b",
            "description": "llama2-7b, served by vllm",
            "freeformTags": {"environment": "dev"},
            "artifact": artifact,
            "customMetadata": metadata,
            "hfToken": None,
            "modelId": None,
            "state": None,
            **over,
        }
    )


def artifacts() -> ModelArtifactProvider:
    return ModelArtifactProvider(tuning=Tuning(part_size=64 << 10, workers=3), backoff=FAST)


def catalogs() -> CatalogModelProvider:
    return CatalogModelProvider(wait=QUICK_WAIT, backoff=FAST)


def test_folder_to_catalog_model_round_trip(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    model = make_model(tmp_path / "llama")
    created = artifacts().create(artifact_props(model, fake_oci, oci_identity))
    outs = created.outs
    assert created.id == outs["uri"] == f"oci://{BUCKET}@{NS}/{outs['objectName']}"
    zipped = store.object_bytes(BUCKET, outs["objectName"])
    assert outs["sizeBytes"] == len(zipped)

    result = catalogs().create(catalog_props(fake_oci, oci_identity, outs))
    stored = catalog.models[result.id]
    assert result.outs["modelId"] == result.id and result.outs["state"] == "ACTIVE"
    assert catalog.artifact_bytes(result.id) == zipped  # the catalog holds exactly the uploaded zip
    assert stored["displayName"] == "dev-llama2-7b" and stored["projectId"] == PROJECT
    assert {m["key"]: m["value"] for m in stored["customMetadataList"]} == {
        "engine": "vllm",
        "fingerprint": outs["fingerprint"],
        "method": "offline",
        "parameters": "7B",
        "source": "localPath:llama",
    }
    assert store.object_info(BUCKET, outs["objectName"]) is not None  # the source zip is never deleted
    with zipfile.ZipFile(io.BytesIO(catalog.artifact_bytes(result.id))) as z:
        assert "config.json" in z.namelist() and z.testzip() is None


def test_a_failed_export_deletes_the_half_made_model_and_names_it(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    outs = artifacts().create(artifact_props(make_model(tmp_path / "m"), fake_oci, oci_identity)).outs
    fake_oci.faults.add(
        Fault(
            kind="work_request_failed",
            ops=frozenset({"ExportModelArtifact"}),
            code="InternalServerError",
            message="Copy of the artifact failed",
        )
    )
    with pytest.raises(ArtifactFailed) as err:
        catalogs().create(catalog_props(fake_oci, oci_identity, outs))
    (created,) = [r for r in fake_oci.log if r.op == "CreateModel"]
    model_id = next(r.path.rsplit("/", 1)[1] for r in fake_oci.log if r.op == "DeleteModel")
    (work_request,) = catalog.work_requests
    message = str(err.value)
    assert model_id in message and work_request in message
    assert "ended FAILED: InternalServerError: Copy of the artifact failed" in message
    assert f"the half-made model {model_id} was deleted" in message
    assert catalog.models == {} and created.status == 200
    assert store.object_info(BUCKET, outs["objectName"]) is not None


def test_a_half_made_model_that_cannot_be_deleted_is_named_for_the_user(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    outs = artifacts().create(artifact_props(make_model(tmp_path / "m"), fake_oci, oci_identity)).outs
    fake_oci.faults.add(Fault(kind="work_request_failed", ops=frozenset({"ExportModelArtifact"})))
    fake_oci.faults.add(Fault(kind="reset", ops=frozenset({"DeleteModel"}), after_bytes=0))

    with pytest.raises(ArtifactFailed) as err:
        catalogs().create(catalog_props(fake_oci, oci_identity, outs))

    (model_id,) = catalog.models  # still there: the message must say so, and which one
    assert f"the half-made model {model_id} could not be deleted (" in str(err.value)
    assert str(err.value).endswith("delete it by hand")


def test_a_missing_source_object_fails_before_any_model_exists(
    fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    props = catalog_props(
        fake_oci, oci_identity, {"objectName": "models/x/nope.zip", "fingerprint": "f" * 64}
    )
    with pytest.raises(
        ArtifactFailed, match=r"oci://llm-artifacts-dev@testns/models/x/nope.zip does not exist"
    ):
        catalogs().create(props)
    assert catalog.models == {} and not fake_oci.requests("CreateModel")


def test_a_project_the_catalog_refuses_is_one_line_and_leaves_nothing(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    outs = artifacts().create(artifact_props(make_model(tmp_path / "m"), fake_oci, oci_identity)).outs
    fake_oci.faults.add(
        Fault(
            kind="status",
            ops=frozenset({"CreateModel"}),
            status=404,
            code="NotAuthorizedOrNotFound",
            message="project not found",
        )
    )

    with pytest.raises(ArtifactFailed) as err:
        catalogs().create(catalog_props(fake_oci, oci_identity, outs))

    assert str(err.value) == (
        f"cannot create catalog model 'dev-llama2-7b' in project {PROJECT}: "
        "404 NotAuthorizedOrNotFound: project not found"
    )
    assert catalog.models == {}


def objects_props(model: Path, fake: FakeOci, identity: TestIdentity, bucket: str = BUCKET) -> dict[str, Any]:
    return engine(
        {
            **common(fake, identity),
            "localPath": str(model),
            "namespace": NS,
            "bucket": bucket,
            "objectPrefix": "models/llama2-7b/",
            "manifestDigest": manifest_digest(model),
            **dict.fromkeys(("prefix", "description", "fingerprint", "sizeBytes")),
        }
    )


def reference_props(fake: FakeOci, identity: TestIdentity, uploaded: dict[str, Any]) -> dict[str, Any]:
    artifact = {
        "kind": "reference",
        "namespace": NS,
        "bucket": uploaded.get("bucket", BUCKET),
        "prefix": uploaded["prefix"],
        "region": "us-ashburn-1",
        "description": uploaded.get("description"),
    }
    props = catalog_props(fake, identity, None, artifact=engine(artifact))
    props["customMetadata"] = {**props["customMetadata"], "fingerprint": uploaded.get("fingerprint", "")}
    return props


def objects() -> ModelObjectsProvider:
    return ModelObjectsProvider(tuning=Tuning(part_size=64 << 10, workers=3), backoff=FAST)


def test_by_reference_uploads_objects_and_registers_the_description_without_a_copy(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    model = make_model(tmp_path / "m")
    outs = objects().create(objects_props(model, fake_oci, oci_identity)).outs
    result = catalogs().create(reference_props(fake_oci, oci_identity, outs))
    registered = catalog.models[result.id]
    assert registered["isModelByReference"]
    assert registered["_description"] == json.loads(outs["description"])
    assert (
        catalog._artifact_dir(result.id).joinpath("segment-00000").read_bytes()
        == outs["description"].encode()
    )
    assert registered["_disposition"] == f'attachment; filename="{result.id}.json"'  # as ADS sends it
    metadata = {m["key"]: m["value"] for m in registered["customMetadataList"]}
    assert metadata["modelDescription"] == "true"
    assert metadata["artifact_location"] == f"oci://{BUCKET}@{NS}/models/llama2-7b/files/"
    assert not fake_oci.requests("ExportModelArtifact") and not fake_oci.requests(
        "RegisterModelArtifactReference"
    )
    # a refresh shows the input's metadata, not the flags the provider adds
    read = catalogs().read(result.id, {**reference_props(fake_oci, oci_identity, outs), "modelId": result.id})
    assert "modelDescription" not in read.outs["customMetadata"]


def test_unchanged_folder_registers_no_new_model_and_one_changed_file_replaces_it(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    model = make_model(tmp_path / "m")
    provider = objects()
    olds = provider.create(objects_props(model, fake_oci, oci_identity)).outs
    first = catalogs().create(reference_props(fake_oci, oci_identity, olds))
    old_model = {**reference_props(fake_oci, oci_identity, olds), "modelId": first.id}

    # unchanged (only touched): the upload sends nothing and the catalog model's inputs do not change
    for p in model.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    news = objects_props(model, fake_oci, oci_identity)
    assert provider.diff(olds["prefix"], olds, news).changes  # the manifest moved: the upload runs again...
    again = provider.update(olds["prefix"], olds, news).outs
    assert again["description"] == olds["description"]  # ...and finds every file stored as it was
    assert (
        catalogs().diff(first.id, old_model, reference_props(fake_oci, oci_identity, again)).changes is False
    )

    # one changed file: a new version of one object, a new description, a new catalog model, same prefix
    (model / "config.json").write_text('{"model_type": "llama", "rope_scaling": null}')
    fresh = provider.update(olds["prefix"], again, objects_props(model, fake_oci, oci_identity)).outs
    assert fresh["prefix"] == olds["prefix"] and fresh["description"] != olds["description"]
    new_model = reference_props(fake_oci, oci_identity, fresh)
    assert set(catalogs().diff(first.id, old_model, new_model).replaces or []) == {
        "artifact",
        "customMetadata",
    }
    second = catalogs().create(new_model)
    assert second.id != first.id and catalog.models[first.id]["isModelByReference"]
    pinned = {
        o["name"]: o["version"] for o in catalog.models[second.id]["_description"]["models"][0]["objects"]
    }
    before = {
        o["name"]: o["version"] for o in catalog.models[first.id]["_description"]["models"][0]["objects"]
    }
    assert {n for n in pinned if pinned[n] != before[n]} == {"models/llama2-7b/files/config.json"}


def test_a_prefix_filled_by_another_tool_is_registered_as_it_stands(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    outs = objects().create(objects_props(make_model(tmp_path / "m"), fake_oci, oci_identity)).outs
    result = catalogs().create(reference_props(fake_oci, oci_identity, {"prefix": outs["prefix"]}))
    assert catalog.models[result.id]["_description"] == json.loads(outs["description"])


def test_unversioned_bucket_is_refused_for_by_reference(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    store.create_bucket("plain")
    with pytest.raises(UserError, match="bucket 'plain' has versioning 'Disabled'"):
        objects().create(objects_props(make_model(tmp_path / "m"), fake_oci, oci_identity, bucket="plain"))
    with pytest.raises(
        ArtifactFailed, match=r"bucket 'plain' has versioning 'Disabled'.*artifact\.mode: copy"
    ):
        catalogs().create(reference_props(fake_oci, oci_identity, {"bucket": "plain", "prefix": "models/x/"}))
    assert catalog.models == {}


def test_a_zip_by_reference_is_refused_at_check() -> None:
    failures = catalogs().validate({"artifact": {"kind": "objectStorage", "byReference": True}})
    assert [f.reason for f in failures if f.property == "artifact"] == [
        "a zip is copied, not registered by reference; use artifact kind 'reference'"
    ]


def test_unchanged_folder_diff_is_empty_and_update_uploads_nothing(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage
) -> None:
    model = make_model(tmp_path / "m")
    provider = artifacts()
    olds = provider.create(artifact_props(model, fake_oci, oci_identity)).outs
    news = artifact_props(model, fake_oci, oci_identity)
    assert provider.diff(olds["uri"], olds, news).changes is False
    mark = len(fake_oci.log)
    again = provider.update(olds["uri"], olds, news).outs
    assert again["objectName"] == olds["objectName"] and again["fingerprint"] == olds["fingerprint"]
    assert not [
        r for r in fake_oci.log[mark:] if r.op in ("UploadPart", "CreateMultipartUpload", "PutObject")
    ]


def test_one_changed_byte_gives_a_new_fingerprint_and_replaces_the_catalog_model(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    model = make_model(tmp_path / "m")
    provider = artifacts()
    olds = provider.create(artifact_props(model, fake_oci, oci_identity)).outs
    shard = sorted(model.glob("*.safetensors"))[0]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1_000_000))

    news = artifact_props(model, fake_oci, oci_identity)
    diff = provider.diff(olds["uri"], olds, news)
    assert diff.changes and not diff.replaces  # the upload is redone in place; its outputs change
    fresh = provider.update(olds["uri"], olds, news).outs
    assert fresh["fingerprint"] != olds["fingerprint"] and fresh["objectName"] != olds["objectName"]

    old_model = catalog_props(fake_oci, oci_identity, olds)
    new_model = catalog_props(fake_oci, oci_identity, fresh)
    assert set(catalogs().diff("ocid1.datasciencemodel.oc1.iad.x", old_model, new_model).replaces or []) == {
        "artifact",
        "customMetadata",
    }
    # the fingerprint alone (same object name) is enough to replace
    same_object = {**new_model, "artifact": old_model["artifact"]}
    assert catalogs().diff("ocid1.x", old_model, same_object).replaces == ["customMetadata"]


def test_display_name_and_tags_update_in_place(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    outs = artifacts().create(artifact_props(make_model(tmp_path / "m"), fake_oci, oci_identity)).outs
    provider = catalogs()
    olds = provider.create(catalog_props(fake_oci, oci_identity, outs)).outs
    news = catalog_props(
        fake_oci, oci_identity, outs, displayName="dev-llama2-7b-v2", freeformTags={"team": "ml"}
    )
    diff = provider.diff(olds["modelId"], olds, news)
    assert diff.changes and not diff.replaces
    updated = provider.update(olds["modelId"], olds, news).outs
    stored = catalog.models[olds["modelId"]]
    assert (stored["displayName"], stored["freeformTags"]) == ("dev-llama2-7b-v2", {"team": "ml"})
    assert updated["modelId"] == olds["modelId"] and len(catalog.models) == 1


def test_delete_is_idempotent_and_read_notices_a_deleted_model(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage, catalog: DataScience
) -> None:
    outs = artifacts().create(artifact_props(make_model(tmp_path / "m"), fake_oci, oci_identity)).outs
    provider = catalogs()
    created = provider.create(catalog_props(fake_oci, oci_identity, outs))
    assert provider.read(created.id, created.outs).id == created.id
    provider.delete(created.id, created.outs)
    provider.delete(created.id, created.outs)  # already gone: still fine
    assert catalog.models == {}
    assert provider.read(created.id, created.outs).id == ""
    assert store.object_info(BUCKET, outs["objectName"]) is not None  # deleting the model keeps the zip


def test_artifact_read_notices_a_deleted_zip(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage
) -> None:
    provider = artifacts()
    created = provider.create(artifact_props(make_model(tmp_path / "m"), fake_oci, oci_identity))
    assert provider.read(created.id, created.outs).id == created.id
    provider.delete(created.id, created.outs)
    assert store.object_info(BUCKET, created.outs["objectName"]) is not None  # delete keeps the zip
    config = oci.config.from_file(str(oci_identity.config_file))
    client = oci.object_storage.ObjectStorageClient(config, service_endpoint=fake_oci.endpoint)
    client.delete_object(NS, BUCKET, created.outs["objectName"])  # someone removes it by hand
    assert provider.read(created.id, created.outs).id == ""


def test_inline_artifact_carries_the_token_file_and_keeps_it_out_of_errors(
    fake_oci: FakeOci, oci_identity: TestIdentity, catalog: DataScience
) -> None:
    props = catalog_props(fake_oci, oci_identity, None, hfToken=HF_TOKEN)
    props["customMetadata"] = {"source": "huggingface:meta-llama/Llama-2-7b-chat-hf", "method": "online"}
    result = catalogs().create(props)
    with zipfile.ZipFile(io.BytesIO(catalog.artifact_bytes(result.id))) as z:
        assert z.read("token").decode() == HF_TOKEN
        assert json.loads(z.read("llmstack.json"))["method"] == "online"
    assert inline_artifact(HF_TOKEN, props["customMetadata"]) == catalog.artifact_bytes(
        result.id
    )  # deterministic

    fake_oci.faults.add(
        Fault(kind="status", ops=frozenset({"CreateModelArtifact"}), status=400, code="InvalidParameter")
    )
    with pytest.raises(ArtifactFailed) as err:
        catalogs().create(props)
    assert HF_TOKEN not in str(err.value) and "400 InvalidParameter" in str(err.value)
    assert list(catalog.models) == [result.id]  # the failed one was deleted


def test_a_failing_commit_in_create_leaves_no_multipart_upload(
    tmp_path: Path, fake_oci: FakeOci, oci_identity: TestIdentity, store: ObjectStorage
) -> None:
    fake_oci.faults.add(
        Fault(kind="status", ops=frozenset({"CommitMultipartUpload"}), status=400, code="InvalidUploadPart")
    )
    with pytest.raises(Exception, match="was aborted"):
        artifacts().create(artifact_props(make_model(tmp_path / "m"), fake_oci, oci_identity))
    assert store.uploads(BUCKET) == []


def test_providers_pickle_with_dill_and_build_clients_inside_methods(
    tmp_path: Path,
    fake_oci: FakeOci,
    oci_identity: TestIdentity,
    store: ObjectStorage,
    catalog: DataScience,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []
    real = artifact_module.make_client

    def counting(cls: Any, *a: Any, **k: Any) -> Any:
        built.append(cls.__name__)
        return real(cls, *a, **k)

    monkeypatch.setattr(artifact_module, "make_client", counting)
    monkeypatch.setattr(catalog_module, "make_client", counting)
    providers = [artifacts(), catalogs()]
    for provider in providers:
        assert not [v for v in vars(provider).values() if type(v).__module__.split(".")[0] == "oci"]
    # what the engine does: serialize with dill, then rebuild in the provider host
    artifact_p, catalog_p = (dill.loads(base64.b64decode(serialize_provider(p))) for p in providers)
    assert built == []  # nothing was built to construct or pickle them
    outs = artifact_p.create(artifact_props(make_model(tmp_path / "m"), fake_oci, oci_identity)).outs
    assert "ObjectStorageClient" in built
    created = catalog_p.create(catalog_props(fake_oci, oci_identity, outs))
    assert "DataScienceClient" in built and created.id in catalog.models


def test_dropping_the_hf_token_replaces_the_model_that_holds_it(
    fake_oci: FakeOci, oci_identity: TestIdentity
) -> None:
    with_token = catalog_props(fake_oci, oci_identity, None, hfToken=HF_TOKEN)
    olds = {**with_token, "modelId": "ocid1.datasciencemodel.oc1.iad.x", "state": "ACTIVE"}
    without = catalog_props(fake_oci, oci_identity, None)  # the token now comes from Vault
    assert "hfToken" not in without  # the engine leaves a None input out

    diff = catalogs().diff(olds["modelId"], olds, without)
    assert diff.changes and diff.replaces == ["hfToken"]  # a new model, without the token file
    # what create returned besides the inputs (modelId, state) is not an input that went away
    assert catalogs().diff(olds["modelId"], olds, with_token).changes is False
