"""CatalogModel: a Data Science model catalog entry whose artifact comes from Object Storage or is inline.

Offline models are registered by reference (`reference`, the default path): the artifact is the small
`model_description.json` that pins each of the model's objects by version id (domain/model_description.py),
uploaded as ADS does (`content-disposition: attachment; filename="<model ocid>.json"`, custom metadata
`modelDescription=true` and `artifact_location`); nothing is copied. The description comes from the upload
(ModelObjects) or, for a prefix some other tool filled, is read from the bucket at create (every object's
current version). The bucket must be versioned; that is checked first. Or they point at a stored zip
(`objectStorage`): the catalog copies it in (`export_model_artifact`, then the work request is polled with
backoff until it ends or the wait times out). The source object is checked first (HEAD) and never
deleted. Online models get a tiny inline artifact holding the Hugging Face token file (`hfToken`, a
secret input, never a plain output), or no token when the container reads it from Vault.

A create that fails after the model exists deletes that half-made model, and the error names the model,
the work request and OCI's own message. Diff: a new artifact (or fingerprint in the custom metadata) or a
new compartment, project or region replaces the model; display name, description, tags and the other
metadata update it in place. Delete is idempotent.

Why not pulumi_oci's native `datascience.ModelArtifactExport` for the copy: see docs/offline-method.md.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import oci
import pulumi
import pulumi.dynamic

from components.providers.artifact import auth_inputs
from components.providers.base import DynamicResource, ProviderBase, partial_diff
from domain import model_description
from domain.settings import AuthSettings
from oci_runtime.auth import Auth, make_client
from oci_runtime.logsearch import SERVICE_FAILURES, UNREACHABLE, cannot, reason
from oci_runtime.objects import BucketNotVersioned, current_versions, require_versioning
from oci_runtime.retry import Backoff, poll
from oci_runtime.upload import head_object

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED")
OUTPUT_KEYS = ("modelId", "state")
METADATA_CATEGORY = "Other"
KINDS = ("reference", "objectStorage", "inline")
# Set by the provider on a model by reference, from its artifact; not part of the `customMetadata` input.
REFERENCE_KEYS = (model_description.METADATA_KEY, model_description.LOCATION_KEY)


@dataclass(frozen=True, kw_only=True)
class ObjectStorageArtifact:
    namespace: pulumi.Input[str]
    bucket: pulumi.Input[str]
    object_name: pulumi.Input[str]
    region: str
    by_reference: bool = False

    def props(self) -> dict[str, Any]:
        return {
            "kind": "objectStorage",
            "namespace": self.namespace,
            "bucket": self.bucket,
            "objectName": self.object_name,
            "region": self.region,
            "byReference": self.by_reference,
        }


@dataclass(frozen=True, kw_only=True)
class ReferenceArtifact:
    """A model folder's objects, registered by reference. `description`: the JSON the upload made; None to
    pin what is under `prefix` when the model is created."""

    namespace: pulumi.Input[str]
    bucket: pulumi.Input[str]
    prefix: pulumi.Input[str]
    region: str
    description: pulumi.Input[str] | None = None

    def props(self) -> dict[str, Any]:
        return {
            "kind": "reference",
            "namespace": self.namespace,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": self.region,
            "description": self.description,
        }


@dataclass(frozen=True, kw_only=True)
class InlineArtifact:
    """An artifact made from small files: the token file for the online method, when `hfToken` is given."""

    def props(self) -> dict[str, Any]:
        return {"kind": "inline"}


@dataclass(frozen=True, kw_only=True)
class CatalogModelArgs:
    compartment_id: str
    project_id: pulumi.Input[str]
    display_name: str
    description: str
    freeform_tags: dict[str, str]
    region: str
    auth: AuthSettings
    artifact: ObjectStorageArtifact | ReferenceArtifact | InlineArtifact
    custom_metadata: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    hf_token: pulumi.Output[str] | None = None  # written as `token` into an inline artifact
    endpoints: Mapping[str, str] | None = None  # {"datascience" | "objectstorage": URL}

    def props(self) -> dict[str, Any]:
        endpoints = {"endpoints": dict(self.endpoints)} if self.endpoints else {}
        return {
            **endpoints,
            "compartmentId": self.compartment_id,
            "projectId": self.project_id,
            "displayName": self.display_name,
            "description": self.description,
            "freeformTags": self.freeform_tags,
            "region": self.region,
            "auth": auth_inputs(self.auth),
            "artifact": self.artifact.props(),
            "customMetadata": self.custom_metadata,
            "hfToken": pulumi.Output.secret(self.hf_token) if self.hf_token is not None else None,
        }


WORK_REQUEST_POLLING = Backoff(attempts=None, base_s=5.0, cap_s=30.0, total_s=3600.0)
"""Polls of a work request: 5 s, doubling up to 30 s (full jitter), for at most an hour: the catalog copies
a 140 GB zip at some hundreds of MB/s."""


class ArtifactFailed(Exception):
    """Raised by create: the message says what failed and that the half-made model is gone."""


class CatalogModelProvider(ProviderBase):
    replace_on = ("compartmentId", "projectId", "region", "artifact", "hfToken")
    required = ("compartmentId", "projectId", "displayName", "region", "artifact")
    outputs = OUTPUT_KEYS

    def __init__(
        self,
        wait: Backoff | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.wait = wait or WORK_REQUEST_POLLING
        self.backoff = backoff or Backoff()
        self.sleep = sleep

    # -- diff
    def validate(self, news: Mapping[str, Any]) -> list[pulumi.dynamic.CheckFailure]:
        failures = super().validate(news)
        artifact = news.get("artifact") or {}
        kind = artifact.get("kind")
        if artifact and kind not in KINDS:
            failures.append(
                pulumi.dynamic.CheckFailure(
                    "artifact", f"artifact.kind {kind!r} is not one of: {', '.join(KINDS)}"
                )
            )
        if artifact.get("byReference"):
            # RegisterModelArtifactReference pins no versions and Oracle's tools do not use it; ADS refuses
            # a zip by reference. A model folder's objects are registered by reference instead.
            failures.append(
                pulumi.dynamic.CheckFailure(
                    "artifact", "a zip is copied, not registered by reference; use artifact kind 'reference'"
                )
            )
        return failures

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        result = partial_diff(olds, news, replace_on=self.replace_on, outputs=self.outputs)
        old_fp = (olds.get("customMetadata") or {}).get("fingerprint")
        new_fp = (news.get("customMetadata") or {}).get("fingerprint")
        replaces = list(result.replaces or [])
        if old_fp != new_fp and "customMetadata" not in replaces:
            result.replaces = sorted([*replaces, "customMetadata"])
        return result

    # -- lifecycle
    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        artifact = dict(props["artifact"])
        if artifact["kind"] == "objectStorage":
            self._check_source(props, artifact)
        description = self._description(props, artifact) if artifact["kind"] == "reference" else None
        ds = self._data_science(props)
        models = oci.data_science.models
        details = models.CreateModelDetails(
            compartment_id=props["compartmentId"],
            project_id=props["projectId"],
            display_name=props["displayName"],
            description=props.get("description") or None,
            freeform_tags=dict(props.get("freeformTags") or {}),
            custom_metadata_list=_metadata(_custom(props)),
        )
        try:
            model = ds.create_model(details).data
        except oci.exceptions.ServiceError as exc:  # nothing was made: say why in one line
            raise ArtifactFailed(
                f"cannot create catalog model {props['displayName']!r} in project {props['projectId']}: "
                f"{exc.status} {exc.code}: {exc.message}"
            ) from exc
        try:
            if description is not None:
                ds.create_model_artifact(
                    model.id,
                    description,
                    content_disposition=f'attachment; filename="{model.id}.json"',  # as ADS sends it
                )
            elif artifact["kind"] == "objectStorage":
                self._copy_in(ds, model.id, artifact)
            else:
                ds.create_model_artifact(
                    model.id,
                    inline_artifact(props.get("hfToken"), props.get("customMetadata")),
                    content_disposition="attachment; filename=artifact.zip",
                )
            state = ds.get_model(model.id).data.lifecycle_state
        except BaseException as exc:
            gone = self._delete_quietly(ds, model.id)
            if not isinstance(exc, Exception):  # Ctrl-C: clean up, then stop as asked
                raise
            raise ArtifactFailed(f"{_reason(exc, model.id)}; {gone}") from exc
        return pulumi.dynamic.CreateResult(model.id, {**props, "modelId": model.id, "state": state})

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        details = oci.data_science.models.UpdateModelDetails(
            display_name=news["displayName"],
            description=news.get("description") or None,
            freeform_tags=dict(news.get("freeformTags") or {}),
            custom_metadata_list=_metadata(_custom(news)),
        )
        model = self._data_science(news).update_model(id_, details).data
        return pulumi.dynamic.UpdateResult({**news, "modelId": id_, "state": model.lifecycle_state})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        try:
            self._data_science(props).delete_model(id_)
        except oci.exceptions.ServiceError as exc:
            if exc.status != 404:  # already gone is what delete wants
                raise

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        try:
            model = self._data_science(props).get_model(id_).data
        except oci.exceptions.ServiceError as exc:
            if exc.status == 404:
                return pulumi.dynamic.ReadResult("", {})
            raise
        if model.lifecycle_state == "DELETED":
            return pulumi.dynamic.ReadResult("", {})
        metadata = {m.key: m.value for m in model.custom_metadata_list or [] if m.key not in REFERENCE_KEYS}
        outs = {
            **props,
            "displayName": model.display_name,
            "description": model.description or "",
            "freeformTags": dict(model.freeform_tags or {}),
            "customMetadata": metadata,
            "modelId": id_,
            "state": model.lifecycle_state,
        }
        return pulumi.dynamic.ReadResult(id_, outs)

    # -- helpers
    def _data_science(self, props: Mapping[str, Any]) -> Any:
        return make_client(
            oci.data_science.DataScienceClient,
            Auth.from_inputs(props.get("auth")),
            region=str(props["region"]),
            endpoint=(props.get("endpoints") or {}).get("datascience"),
            backoff=self.backoff,
        )

    def _object_storage(self, props: Mapping[str, Any], artifact: Mapping[str, Any]) -> Any:
        return make_client(
            oci.object_storage.ObjectStorageClient,
            Auth.from_inputs(props.get("auth")),
            region=str(artifact.get("region") or props["region"]),
            endpoint=(props.get("endpoints") or {}).get("objectstorage"),
            backoff=self.backoff,
        )

    def _description(self, props: Mapping[str, Any], artifact: Mapping[str, Any]) -> bytes:
        """The model_description.json to register: the upload's, or the prefix's objects as they are now.
        Either way the bucket must be versioned (each object is pinned by its version id)."""
        ns, bucket, prefix = str(artifact["namespace"]), str(artifact["bucket"]), str(artifact["prefix"])
        uri = f"oci://{bucket}@{ns}/{prefix}"
        client = self._object_storage(props, artifact)
        try:
            require_versioning(client, ns, bucket)
            if artifact.get("description"):
                return str(artifact["description"]).encode()
            pinned = current_versions(client, ns, bucket, prefix)
        except BucketNotVersioned as exc:
            raise ArtifactFailed(str(exc)) from None
        except SERVICE_FAILURES as exc:
            raise ArtifactFailed(cannot(f"read the model's objects {uri}", "Object Storage", exc)) from exc
        if not pinned:
            raise ArtifactFailed(
                f"no objects under {uri}; upload the model folder there or fix source.objectStorage"
            )
        return model_description.to_bytes(model_description.describe(ns, bucket, prefix, pinned))

    def _check_source(self, props: Mapping[str, Any], artifact: Mapping[str, Any]) -> None:
        """The zip must exist before a model is made for it; by reference needs a versioned bucket."""
        client = self._object_storage(props, artifact)
        ns, bucket, name = str(artifact["namespace"]), str(artifact["bucket"]), str(artifact["objectName"])
        uri = f"oci://{bucket}@{ns}/{name}"
        try:
            head = head_object(client, ns, bucket, name)
        except SERVICE_FAILURES as exc:
            raise ArtifactFailed(cannot(f"read the model artifact {uri}", "Object Storage", exc)) from exc
        if head is None:
            raise ArtifactFailed(
                f"the model artifact {uri} does not exist (HEAD 404); upload it or fix source.objectStorage"
            )

    def _copy_in(self, ds: Any, model_id: str, artifact: Mapping[str, Any]) -> None:
        models = oci.data_science.models
        details = models.ExportModelArtifactDetails(
            artifact_export_details=models.ArtifactExportDetailsObjectStorage(
                namespace=artifact["namespace"],
                source_bucket=artifact["bucket"],
                source_object_name=artifact["objectName"],
                source_region=artifact["region"],
            )
        )
        response = ds.export_model_artifact(model_id, details)
        self._wait(ds, response.headers["opc-work-request-id"], "artifact export")

    def _wait(self, ds: Any, work_request_id: str, what: str) -> None:
        """Poll until the work request ends; FAILED or CANCELED or a timeout raises, naming it."""
        work_request, _ = poll(
            lambda: ds.get_work_request(work_request_id).data,
            lambda wr: wr.status in TERMINAL,
            backoff=self.wait,
            sleep=self.sleep,
        )
        status = work_request.status
        if status == "SUCCEEDED":
            return
        if status in TERMINAL:
            errors = ds.list_work_request_errors(work_request_id).data
            said = "; ".join(f"{e.code}: {e.message}" for e in errors) or "no error details"
            raise WorkRequestFailed(f"{what} work request {work_request_id} ended {status}: {said}")
        raise WorkRequestFailed(
            f"{what} work request {work_request_id} still {status} after {self.wait.total_s:.0f} s"
        )

    def _delete_quietly(self, ds: Any, model_id: str) -> str:
        try:
            ds.delete_model(model_id)
        except oci.exceptions.ServiceError as exc:
            if exc.status != 404:
                return (
                    f"the half-made model {model_id} could not be deleted ({exc.status} {exc.code}): "
                    "delete it by hand"
                )
        except UNREACHABLE as exc:
            return f"the half-made model {model_id} could not be deleted ({reason(exc)}): delete it by hand"
        return f"the half-made model {model_id} was deleted"


class WorkRequestFailed(Exception):
    pass


def _reason(exc: BaseException, model_id: str) -> str:
    if isinstance(exc, WorkRequestFailed):
        return f"catalog model {model_id}: {exc}"
    status, code, message = (getattr(exc, k, None) for k in ("status", "code", "message"))
    if status is not None:
        return f"catalog model {model_id}: adding the artifact failed: {status} {code}: {message}"
    return f"catalog model {model_id}: adding the artifact failed: {type(exc).__name__}: {exc}"


def _custom(props: Mapping[str, Any]) -> dict[str, Any]:
    """The custom metadata to send: the input's, plus ADS's by-reference flag and AQUA's location."""
    custom = dict(props.get("customMetadata") or {})
    artifact = props.get("artifact") or {}
    if artifact.get("kind") == "reference":
        custom[model_description.METADATA_KEY] = "true"
        custom[model_description.LOCATION_KEY] = (
            f"oci://{artifact['bucket']}@{artifact['namespace']}/{artifact['prefix']}"
        )
    return custom


def _metadata(custom: Mapping[str, Any] | None) -> list[Any]:
    return [
        oci.data_science.models.Metadata(key=str(k), value=str(v), category=METADATA_CATEGORY)
        for k, v in sorted((custom or {}).items())
        if v is not None
    ]


def inline_artifact(hf_token: str | None, custom_metadata: Mapping[str, Any] | None) -> bytes:
    """A small deterministic zip: `token` (when given, for TOKEN_FILE) and a note of the model's source."""
    files: dict[str, bytes] = {
        "llmstack.json": json.dumps(
            {k: v for k, v in sorted((custom_metadata or {}).items()) if k in ("source", "method", "engine")},
            sort_keys=True,
        ).encode()
    }
    if hf_token:
        files["token"] = str(hf_token).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            z.writestr(info, files[name])
    return out.getvalue()


class CatalogModel(DynamicResource, module="catalog", name="CatalogModel"):
    modelId: pulumi.Output[str]
    state: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: CatalogModelArgs,
        opts: pulumi.ResourceOptions | None = None,
        provider: CatalogModelProvider | None = None,
    ) -> None:
        secret = pulumi.ResourceOptions(additional_secret_outputs=["hfToken"])
        super().__init__(
            provider or CatalogModelProvider(),
            name,
            {**args.props(), **dict.fromkeys(OUTPUT_KEYS)},
            pulumi.ResourceOptions.merge(secret, opts),
        )
