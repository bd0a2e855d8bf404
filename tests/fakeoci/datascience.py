"""Fake Data Science: the model catalog (create/get/list/update/delete models, artifacts) and work requests.

A JSON artifact (`filename="<ocid>.json"`) is a model by reference: checked as the service would (ADS's
format, `modelDescription=true`, each pinned object version there in a versioned bucket).
`export_model_artifact` copies an object from the fake Object Storage into the model (hard links, so it is
instant) and answers with a work request that reports ACCEPTED, then IN_PROGRESS, then SUCCEEDED or
FAILED after `work_request_polls` GETs. Other services with long-running operations (model deployments)
create theirs with `fake.service(DataScience).new_work_request(...)`.
A fault of kind "work_request_failed" on ExportModelArtifact (or RegisterModelArtifactReference) makes
the work request end FAILED with the fault's code and message.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from tests.fakeoci.objectstorage import ObjectStorage

MODEL_FIELDS = (
    "compartmentId",
    "projectId",
    "displayName",
    "description",
    "freeformTags",
    "definedTags",
    "customMetadataList",
    "definedMetadataList",
    "inputSchema",
    "outputSchema",
    "modelVersionSetId",
    "versionLabel",
)
DESCRIPTION_TYPE = "modelOSSReferenceDescription"
UPDATABLE_FIELDS = (
    "displayName",
    "description",
    "freeformTags",
    "definedTags",
    "customMetadataList",
    "definedMetadataList",
    "modelVersionSetId",
    "versionLabel",
)


def public(model: dict[str, Any]) -> dict[str, Any]:
    """The model as the API shows it (keys starting with _ are the fake's own bookkeeping)."""
    return {k: v for k, v in model.items() if not k.startswith("_")}


@dataclass
class WorkRequest:
    id: str
    operation_type: str
    compartment_id: str
    resources: list[dict[str, str]]
    polls_to_finish: int
    error: tuple[str, str] | None = None  # (code, message) when it ends FAILED
    on_success: Callable[[], None] | None = None
    polls: int = 0
    time_accepted: str = field(default_factory=now_rfc3339)
    finished: bool = False

    @property
    def status(self) -> str:
        if self.polls == 0 and self.polls_to_finish > 0:
            return "ACCEPTED"
        if self.polls < self.polls_to_finish:
            return "IN_PROGRESS"
        return "FAILED" if self.error else "SUCCEEDED"

    def as_json(self) -> dict[str, Any]:
        status = self.status
        done = status in ("FAILED", "SUCCEEDED")
        return {
            "id": self.id,
            "operationType": self.operation_type,
            "status": status,
            "compartmentId": self.compartment_id,
            "percentComplete": 100.0 if done else 100.0 * self.polls / max(self.polls_to_finish, 1),
            "resources": self.resources,
            "timeAccepted": self.time_accepted,
            "timeStarted": self.time_accepted if status != "ACCEPTED" else None,
            "timeFinished": now_rfc3339() if done else None,
        }


def _description_problems(doc: Any) -> list[str]:
    """ADS's schema (`ads/model/model_file_description_schema.json`), written out again here so that the
    fake does not judge the project's JSON with the project's own code."""
    if not isinstance(doc, dict) or doc.get("version") != "1.0" or doc.get("type") != DESCRIPTION_TYPE:
        return [f"version '1.0' and type {DESCRIPTION_TYPE!r} are required"]
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        return ["models must be a non-empty list"]
    for m in models:
        if not isinstance(m, dict) or not all(
            isinstance(m.get(k), str) for k in ("namespace", "bucketName", "prefix")
        ):
            return ["each model needs namespace, bucketName and prefix"]
        objects = m.get("objects")
        if not isinstance(objects, list) or not objects:
            return ["each model needs at least one object"]
        for o in objects:
            if not (
                isinstance(o, dict)
                and isinstance(o.get("name"), str)
                and isinstance(o.get("version"), str)
                and isinstance(o.get("sizeInBytes"), int)
            ):
                return ["each object needs name, version and sizeInBytes"]
    return []


class DataScience(Service):
    name = "datascience"
    prefix = "/20190101"

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.models: dict[str, dict[str, Any]] = {}
        self.work_requests: dict[str, WorkRequest] = {}
        self.work_request_polls = 2
        self._wr_lock = threading.Lock()

    # -- work requests, shared with other fake services
    def new_work_request(
        self,
        operation_type: str,
        *,
        compartment_id: str,
        resources: list[dict[str, str]],
        error: tuple[str, str] | None = None,
        on_success: Callable[[], None] | None = None,
        polls: int | None = None,
    ) -> WorkRequest:
        """A work request that finishes after `polls` GETs (default `work_request_polls`); `on_success`
        runs when it turns SUCCEEDED, so the effect shows only when the service says it is done."""
        wr = WorkRequest(
            id=self.fake.ocid("datascienceworkrequest"),
            operation_type=operation_type,
            compartment_id=compartment_id,
            resources=resources,
            polls_to_finish=self.work_request_polls if polls is None else polls,
            error=error,
            on_success=on_success,
        )
        with self._wr_lock:
            self.work_requests[wr.id] = wr
        self._maybe_finish(wr)
        return wr

    def _maybe_finish(self, wr: WorkRequest) -> None:
        if not wr.finished and wr.status == "SUCCEEDED":
            wr.finished = True
            if wr.on_success is not None:
                wr.on_success()

    def _work_request(self, req: Request) -> WorkRequest:
        wr = self.work_requests.get(req.params["workRequestId"])
        if wr is None:
            raise HttpError(
                404, "NotAuthorizedOrNotFound", f"work request {req.params['workRequestId']} not found"
            )
        return wr

    @route("GET", "/workRequests/{workRequestId}", op="GetWorkRequest")
    def get_work_request(self, req: Request) -> Response:
        with self._wr_lock:
            wr = self._work_request(req)
            wr.polls += 1
            self._maybe_finish(wr)
            return json_response(200, wr.as_json())

    @route("GET", "/workRequests/{workRequestId}/errors", op="ListWorkRequestErrors")
    def list_work_request_errors(self, req: Request) -> Response:
        wr = self._work_request(req)
        if wr.error is None or wr.status != "FAILED":
            return json_response(200, [])
        code, message = wr.error
        return json_response(200, [{"code": code, "message": message, "timestamp": now_rfc3339()}])

    @route("GET", "/workRequests/{workRequestId}/logs", op="ListWorkRequestLogs")
    def list_work_request_logs(self, req: Request) -> Response:
        wr = self._work_request(req)
        return json_response(
            200, [{"message": f"{wr.operation_type} {wr.status}", "timestamp": now_rfc3339()}]
        )

    # -- models
    def _model(self, req: Request) -> dict[str, Any]:
        model = self.models.get(req.params["modelId"])
        if model is None:
            raise HttpError(404, "NotAuthorizedOrNotFound", f"model {req.params['modelId']} not found")
        return model

    def _artifact_dir(self, model_id: str) -> Path:
        return self.root / "models" / model_id

    def artifact_bytes(self, model_id: str) -> bytes:
        return b"".join(p.read_bytes() for p in self._artifact_files(model_id))

    def _artifact_files(self, model_id: str) -> list[Path]:
        folder = self._artifact_dir(model_id)
        return sorted(folder.glob("segment-*")) if folder.exists() else []

    @route("POST", "/models", op="CreateModel")
    def create_model(self, req: Request) -> Response:
        body = req.json() or {}
        for required in ("compartmentId", "projectId"):
            if not body.get(required):
                raise HttpError(400, "InvalidParameter", f"{required} is required")
        model_id = self.fake.ocid("datasciencemodel")
        model = {
            "id": model_id,
            **{k: body[k] for k in MODEL_FIELDS if k in body},
            "displayName": body.get("displayName") or f"model-{model_id[-8:]}",
            "lifecycleState": "ACTIVE",
            "lifecycleDetails": None,
            "timeCreated": now_rfc3339(),
            "createdBy": req.key_id.split("/")[1] if req.key_id else "unknown",
            "freeformTags": body.get("freeformTags") or {},
            "definedTags": body.get("definedTags") or {},
            "customMetadataList": body.get("customMetadataList") or [],
            "definedMetadataList": body.get("definedMetadataList") or [],
            "isModelByReference": False,
            "_etag": os.urandom(8).hex(),
        }
        with self.lock:
            self.models[model_id] = model
        return json_response(200, public(model), {"etag": model["_etag"]})

    @route("GET", "/models", op="ListModels")
    def list_models(self, req: Request) -> Response:
        wanted = {
            k: req.query[k]
            for k in ("compartmentId", "projectId", "displayName", "lifecycleState", "id")
            if k in req.query
        }
        rows = [m for m in self.models.values() if all(m.get(k) == v for k, v in wanted.items())]
        return json_response(200, [public(m) for m in rows])

    @route("GET", "/models/{modelId}", op="GetModel")
    def get_model(self, req: Request) -> Response:
        model = self._model(req)
        return json_response(200, public(model), {"etag": model["_etag"]})

    @route("PUT", "/models/{modelId}", op="UpdateModel")
    def update_model(self, req: Request) -> Response:
        with self.lock:
            model = self._model(req)
            if_match = req.headers.get("if-match")
            if if_match and if_match != model["_etag"]:
                raise HttpError(412, "PreconditionFailed", "the model's etag does not match if-match")
            body = req.json() or {}
            model.update({k: body[k] for k in UPDATABLE_FIELDS if k in body})
            model["_etag"] = os.urandom(8).hex()
        return json_response(200, public(model), {"etag": model["_etag"]})

    @route("DELETE", "/models/{modelId}", op="DeleteModel")
    def delete_model(self, req: Request) -> Response:
        with self.lock:
            self._model(req)
            del self.models[req.params["modelId"]]
            for path in self._artifact_files(req.params["modelId"]):
                path.unlink()
        return empty_response(204)

    # -- artifacts
    @route("POST", "/models/{modelId}/artifact", op="CreateModelArtifact", sign_body=False, stream_body=True)
    def create_artifact(self, req: Request) -> Response:
        model = self._model(req)
        if model.get("_hasArtifact"):
            raise HttpError(409, "Conflict", f"model {model['id']} already has an artifact")
        folder = self._artifact_dir(model["id"])
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "segment-00000").open("wb") as out:
            req.copy_body(out)
        disposition = req.headers.get("content-disposition") or ""
        if disposition.rstrip('"').endswith(".json"):
            self._check_description(model, (folder / "segment-00000").read_bytes())
        model["_hasArtifact"] = True
        model["_disposition"] = disposition
        return empty_response(200, {"etag": model["_etag"]})

    def _check_description(self, model: dict[str, Any], body: bytes) -> None:
        """A model by reference: `model_description.json` in ADS's format, the model flagged with
        `modelDescription=true`, every object there in a versioned bucket at the pinned version."""
        flags = {m.get("key"): m.get("value") for m in model.get("customMetadataList") or []}
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        found = _description_problems(doc)
        if flags.get("modelDescription") != "true":
            found.append("a model by reference needs custom metadata modelDescription=true")
        store = self.fake.service(ObjectStorage)
        for entry in (doc or {}).get("models") or [] if not found else []:
            try:
                bucket = store.get_bucket_info(entry["bucketName"])
            except HttpError as exc:
                found.append(exc.message)
                continue
            if bucket["versioning"] != "Enabled":
                found.append(f"bucket {bucket['name']!r} must have versioning enabled")
                continue
            for obj in entry["objects"]:
                kept = {v["versionId"]: v for v in store.object_versions(bucket["name"], obj["name"])}
                if obj["version"] not in kept or kept[obj["version"]].get("size") != obj["sizeInBytes"]:
                    found.append(f"object {obj['name']!r} has no version {obj['version']!r} of that size")
        if found:
            (self._artifact_dir(model["id"]) / "segment-00000").unlink()
            raise HttpError(400, "InvalidParameter", "invalid model description: " + "; ".join(found))
        model["isModelByReference"] = True
        model["_description"] = doc

    @route("HEAD", "/models/{modelId}/artifact/content", op="HeadModelArtifact")
    def head_artifact(self, req: Request) -> Response:
        model = self._model(req)
        files = self._artifact_files(model["id"])
        if not files:
            raise HttpError(404, "NotAuthorizedOrNotFound", f"model {model['id']} has no artifact")
        return Response(200, self._artifact_headers(model), files=files, head=True)

    @route("GET", "/models/{modelId}/artifact/content", op="GetModelArtifactContent")
    def get_artifact(self, req: Request) -> Response:
        model = self._model(req)
        files = self._artifact_files(model["id"])
        if not files:
            raise HttpError(404, "NotAuthorizedOrNotFound", f"model {model['id']} has no artifact")
        return Response(200, self._artifact_headers(model), files=files)

    @staticmethod
    def _artifact_headers(model: dict[str, Any]) -> dict[str, str]:
        return {
            "etag": model["_etag"],
            "content-type": "application/octet-stream",
            "content-disposition": model.get("_disposition") or "attachment; filename=artifact.zip",
            "last-modified": http_date(),
        }

    @route("POST", "/models/{modelId}/actions/exportArtifact", op="ExportModelArtifact")
    def export_artifact(self, req: Request) -> Response:
        model = self._model(req)
        if model.get("_hasArtifact"):
            # "Model artifacts stored in the model catalog are immutable by design" (Data Science docs,
            # models-about.htm; ADS model_catalog.rst). The status OCI answers with is not documented: 409
            # Conflict, as CreateModelArtifact here, is the fake's assumption.
            raise HttpError(
                409, "Conflict", f"model {model['id']} already has an artifact; create a new model"
            )
        details = (req.json() or {}).get("artifactExportDetails") or {}
        if details.get("artifactSourceType") != "ORACLE_OBJECT_STORAGE":
            raise HttpError(
                400,
                "InvalidParameter",
                "artifactExportDetails.artifactSourceType must be ORACLE_OBJECT_STORAGE",
            )
        for key in ("namespace", "sourceBucket", "sourceObjectName", "sourceRegion"):
            if not details.get(key):
                raise HttpError(400, "InvalidParameter", f"artifactExportDetails.{key} is required")
        error = self._fault_error(req) or self._export_problem(details)
        model_id = model["id"]

        def copy_in() -> None:
            segments = self.fake.service(ObjectStorage).object_segments(
                details["sourceBucket"], details["sourceObjectName"]
            )
            folder = self._artifact_dir(model_id)
            folder.mkdir(parents=True, exist_ok=True)
            for i, seg in enumerate(segments):
                os.link(seg, folder / f"segment-{i:05d}")
            model["_hasArtifact"] = True
            name = details["sourceObjectName"].rsplit("/", 1)[-1]
            model["_disposition"] = f"attachment; filename={name}"

        wr = self.new_work_request(
            "EXPORT_MODEL_ARTIFACT",
            compartment_id=model["compartmentId"],
            resources=[self._resource(model_id)],
            error=error,
            on_success=copy_in,
        )
        return empty_response(202, {"opc-work-request-id": wr.id})

    def _export_problem(self, details: dict[str, Any]) -> tuple[str, str] | None:
        if details["namespace"] != self.fake.namespace:
            return ("NamespaceNotFound", f"namespace {details['namespace']!r} not found")
        if details["sourceRegion"] != self.fake.region:
            return (
                "InvalidParameter",
                f"source region {details['sourceRegion']!r} is not {self.fake.region}",
            )
        store = self.fake.service(ObjectStorage)
        try:
            segments = store.object_segments(details["sourceBucket"], details["sourceObjectName"])
        except HttpError as exc:
            return (exc.code, exc.message)
        with segments[0].open("rb") as fh:
            if fh.read(4) != b"PK\x03\x04":
                return ("InvalidArtifact", f"object {details['sourceObjectName']!r} is not a zip file")
        return None

    @route("POST", "/models/{modelId}/actions/registerArtifactReference", op="RegisterModelArtifactReference")
    def register_reference(self, req: Request) -> Response:
        model = self._model(req)
        refs = (req.json() or {}).get("modelArtifactReferences") or []
        if not refs:
            raise HttpError(400, "InvalidParameter", "modelArtifactReferences is required")
        error = self._fault_error(req)
        store = self.fake.service(ObjectStorage)
        for ref in refs:
            if error:
                break
            if ref.get("modelArtifactReferenceType") != "OSS":
                raise HttpError(400, "InvalidParameter", "modelArtifactReferenceType must be OSS")
            try:
                bucket = store.get_bucket_info(ref.get("bucketName", ""))
            except HttpError as exc:
                error = (exc.code, exc.message)
                break
            if bucket["versioning"] != "Enabled":
                error = ("InvalidParameter", f"bucket {bucket['name']!r} must have versioning enabled")
        model_id = model["id"]

        def mark() -> None:
            model["isModelByReference"] = True
            model["_references"] = refs

        wr = self.new_work_request(
            "REGISTER_MODEL_ARTIFACT",
            compartment_id=model["compartmentId"],
            resources=[self._resource(model_id)],
            error=error,
            on_success=mark,
        )
        return empty_response(202, {"opc-work-request-id": wr.id})

    @staticmethod
    def _fault_error(req: Request) -> tuple[str, str] | None:
        if req.fault is not None and req.fault.kind == "work_request_failed":
            return (req.fault.code, req.fault.message)
        return None

    def _resource(self, model_id: str) -> dict[str, str]:
        return {
            "entityType": "model",
            "actionType": "UPDATED",
            "identifier": model_id,
            "entityUri": f"/models/{model_id}",
        }
