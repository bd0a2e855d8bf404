"""Fake Data Science model deployments: a scripted lifecycle, and the work requests that go with it.

    deployments = fake.service(ModelDeployments)
    md = deployments.script(polls=3)                         # CREATING for 3 GETs, then ACTIVE
    md = deployments.script(polls=1, ends="FAILED", details="Container failed to start",
                            work_request_error=("ContainerStartFailed", "exit code 1"))

`md.url` is its predict base (`{fake.endpoint}/{id}`: `/predict`, `/predictWithResponseStream`, served by
tests/fakeoci/inference.py with `md.engine`). Each deployment gets a MODEL_DEPLOYMENT_CREATE work request
(from the fake DataScience service), FAILED with `work_request_error` when given; ListWorkRequests finds
it by `resourceId`.

UpdateModelDeployment follows OCI's rule (the SDK's `update_model_deployment` docstring): while ACTIVE only
`modelId`, `instanceShapeName` and `instanceCount` (or, alone, the load balancer shape or the log details)
may change, with no downtime: the deployment reports UPDATING for `update_polls` GETs and keeps answering
predictions; any other change (image, environment) is refused with 409 unless the deployment is INACTIVE.
ListContainers lists the service-managed containers (`containers`, a ContainerSummary per tag, shaped as in
ADS's test fixture of a real response).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakeoci.core import (
    HttpError,
    Request,
    Response,
    Service,
    empty_response,
    json_response,
    now_rfc3339,
    route,
)
from tests.fakeoci.datascience import DataScience

TOKENS = ("Hello", " there", ",", " friend", ".")
COMPARTMENT = "ocid1.compartment.oc1..fakecompartment"


@dataclass
class Engine:
    """What a model server answers: these tokens, one SSE event each when streaming."""

    name: str = "vllm"  # "tgi" checks parameters as TGI does: temperature > 0, top_p < 1
    tokens: list[str] = field(default_factory=lambda: list(TOKENS))
    streams: bool = True  # False: answers a stream request with plain JSON (OCI then says 409)
    # A test sets this to hold a stream after its first token until it has seen that token.
    hold_after_first: threading.Event | None = None
    stream_done: threading.Event = field(default_factory=threading.Event)
    received: list[dict[str, Any]] = field(default_factory=list)
    # Each OpenAI-routed request: (method, path at the front door, path the container got, headers).
    seen: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def completion(self) -> str:
        return "".join(self.tokens)


@dataclass
class Deployment:
    id: str
    url: str
    compartment_id: str
    polls_to_settle: int
    ends: str
    details: str | None
    engine: Engine
    log_group_id: str | None
    predict_log_id: str | None
    access_log_id: str | None
    work_request_id: str
    image: str = "iad.ocir.io/testns/llm/vllm:v1@sha256:" + "ab" * 32
    upstream: str | None = None  # a real container behind the OpenAI routes (e.g. the serving adapter)
    model_id: str = "ocid1.datasciencemodel.oc1.iad.fakemodel"
    shape: str = "VM.GPU.A10.1"
    instance_count: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    updating_polls: int = 0  # GETs left that report UPDATING
    updates: list[dict[str, Any]] = field(default_factory=list)  # what each accepted update changed
    # Whether the front door itself sends `/predict` + `route: /v1/...` to the container's `/v1/...` (what
    # AQUA documents for its service containers) or, the other reading for a BYOC image, calls the
    # container's `/predict` with the header and leaves the routing to it (only with an `upstream`).
    maps_route_header: bool = True
    polls: int = 0
    time_created: str = field(default_factory=now_rfc3339)

    @property
    def state(self) -> str:
        settled = self.polls_to_settle == 0 or self.polls > self.polls_to_settle
        if settled and self.updating_polls > 0:
            return "UPDATING"
        return self.ends if settled else "CREATING"

    def as_json(self) -> dict[str, Any]:
        state = self.state
        logs: dict[str, Any] = {}
        if self.log_group_id and self.predict_log_id:
            logs["predict"] = {"logGroupId": self.log_group_id, "logId": self.predict_log_id}
        if self.log_group_id and self.access_log_id:
            logs["access"] = {"logGroupId": self.log_group_id, "logId": self.access_log_id}
        return {
            "id": self.id,
            "displayName": f"md-{self.id[-8:]}",
            "compartmentId": self.compartment_id,
            "projectId": "ocid1.datascienceproject.oc1.iad.fakeproject",
            "createdBy": "ocid1.user.oc1..fakeuser",
            "timeCreated": self.time_created,
            "modelDeploymentUrl": self.url,
            "lifecycleState": state,
            "lifecycleDetails": self.details if state != "CREATING" else "Creating the model deployment",
            "categoryLogDetails": logs or None,
            "modelDeploymentConfigurationDetails": {
                "deploymentType": "SINGLE_MODEL",
                "modelConfigurationDetails": {
                    "modelId": self.model_id,
                    "instanceConfiguration": {"instanceShapeName": self.shape},
                    "scalingPolicy": {"policyType": "FIXED_SIZE", "instanceCount": self.instance_count},
                    "bandwidthMbps": 10,
                },
                "environmentConfigurationDetails": {
                    "environmentConfigurationType": "OCIR_CONTAINER",
                    "image": self.image,
                    "serverPort": 8080,
                    "healthCheckPort": 8080,
                    "environmentVariables": dict(self.environment),
                },
            },
            "freeformTags": {},
            "definedTags": {},
        }


def service_container(tag: str, *, latest: bool, name: str = "odsc-vllm-serving") -> dict[str, Any]:
    """A ContainerSummary as ListContainers returns it (ADS tests/unitary/with_extras/aqua/test_deployment.py)."""
    return {
        "containerName": name,
        "displayName": f"{name}:{tag}",
        "familyName": name,
        "description": "vLLM inference container",
        "isLatest": latest,
        "targetWorkloads": ["MODEL_DEPLOYMENT", "JOB_RUN"],
        "usages": ["INFERENCE", "BATCH_INFERENCE"],
        "tag": tag,
        "lifecycleState": "ACTIVE",
        "workloadConfigurationDetailsList": [
            {
                "workloadType": "MODEL_DEPLOYMENT",
                "cmd": "--served-model-name odsc-llm --disable-custom-all-reduce --seed 42 ",
                "serverPort": 8080,
                "healthCheckPort": 8080,
                "additionalConfigurations": {
                    "HEALTH_CHECK_PORT": "8080",
                    "MODEL_DEPLOY_PREDICT_ENDPOINT": "/v1/completions",
                    "PORT": "8080",
                    "modelFormats": "SAFETENSORS",
                    "platforms": "NVIDIA_GPU",
                    "restrictedParams": '["--port","--host","--served-model-name","--seed"]',
                },
            }
        ],
        "tagConfigurationList": [],
        "freeformTags": {},
        "definedTags": {},
    }


class ModelDeployments(Service):
    name = "modeldeployments"
    prefix = "/20190101"

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.deployments: dict[str, Deployment] = {}
        self.update_polls = 2
        self.containers: list[dict[str, Any]] = [service_container("0.19.1.265", latest=True)]

    def script(
        self,
        *,
        polls: int = 0,
        ends: str = "ACTIVE",
        details: str | None = None,
        work_request_error: tuple[str, str] | None = None,
        engine: Engine | None = None,
        log_group_id: str | None = None,
        predict_log_id: str | None = None,
        access_log_id: str | None = None,
        compartment_id: str = COMPARTMENT,
    ) -> Deployment:
        """A deployment that answers CREATING to its first `polls` GETs, then `ends`."""
        md_id = self.fake.ocid("datasciencemodeldeployment")
        work_request = self.fake.service(DataScience).new_work_request(
            "MODEL_DEPLOYMENT_CREATE",
            compartment_id=compartment_id,
            resources=[
                {
                    "entityType": "modelDeployment",
                    "actionType": "CREATED" if ends == "ACTIVE" else "FAILED",
                    "identifier": md_id,
                    "entityUri": f"/modelDeployments/{md_id}",
                }
            ],
            error=work_request_error,
            polls=0 if work_request_error or ends != "ACTIVE" else max(polls, 1),
        )
        deployment = Deployment(
            id=md_id,
            url=f"{self.fake.endpoint}/{md_id}",
            compartment_id=compartment_id,
            polls_to_settle=polls,
            ends=ends,
            details=details,
            engine=engine or Engine(),
            log_group_id=log_group_id,
            predict_log_id=predict_log_id,
            access_log_id=access_log_id,
            work_request_id=work_request.id,
        )
        with self.lock:
            self.deployments[md_id] = deployment
        return deployment

    def get(self, md_id: str) -> Deployment:
        deployment = self.deployments.get(md_id)
        if deployment is None:
            raise HttpError(404, "NotAuthorizedOrNotFound", f"model deployment {md_id} not found")
        return deployment

    @route("GET", "/modelDeployments/{modelDeploymentId}", op="GetModelDeployment")
    def get_model_deployment(self, req: Request) -> Response:
        with self.lock:
            deployment = self.get(req.params["modelDeploymentId"])
            deployment.polls += 1
            shown = deployment.as_json()
            deployment.updating_polls = max(deployment.updating_polls - 1, 0)
            return json_response(200, shown, {"etag": f"{deployment.polls}"})

    @route("PUT", "/modelDeployments/{modelDeploymentId}", op="UpdateModelDeployment")
    def update_model_deployment(self, req: Request) -> Response:
        body = req.json() or {}
        with self.lock:
            deployment = self.get(req.params["modelDeploymentId"])
            config = body.get("modelDeploymentConfigurationDetails") or {}
            model = config.get("modelConfigurationDetails") or {}
            env = config.get("environmentConfigurationDetails") or {}
            wanted = {
                "modelId": model.get("modelId", deployment.model_id),
                "instanceShapeName": (model.get("instanceConfiguration") or {}).get(
                    "instanceShapeName", deployment.shape
                ),
                "instanceCount": (model.get("scalingPolicy") or {}).get(
                    "instanceCount", deployment.instance_count
                ),
                "image": env.get("image", deployment.image),
                "environmentVariables": env.get("environmentVariables", deployment.environment),
            }
            now = {
                "modelId": deployment.model_id,
                "instanceShapeName": deployment.shape,
                "instanceCount": deployment.instance_count,
                "image": deployment.image,
                "environmentVariables": deployment.environment,
            }
            changed = sorted(k for k in wanted if wanted[k] != now[k])
            live = ("modelId", "instanceShapeName", "instanceCount")
            if deployment.state in ("ACTIVE", "NEEDS_ATTENTION") and set(changed) - set(live):
                raise HttpError(
                    409,
                    "IncorrectState",
                    f"while {deployment.state} only modelId, instanceShapeName and instanceCount can be updated; "
                    f"deactivate the model deployment to change {', '.join(sorted(set(changed) - set(live)))}",
                )
            if deployment.state not in ("ACTIVE", "NEEDS_ATTENTION", "INACTIVE"):
                raise HttpError(409, "IncorrectState", f"model deployment is {deployment.state}")
            deployment.model_id = wanted["modelId"]
            deployment.shape = wanted["instanceShapeName"]
            deployment.instance_count = int(wanted["instanceCount"])
            deployment.image = wanted["image"]
            deployment.environment = dict(wanted["environmentVariables"])
            deployment.updates.append({k: wanted[k] for k in changed})
            deployment.updating_polls = self.update_polls if changed else 0
            work_request = self.fake.service(DataScience).new_work_request(
                "MODEL_DEPLOYMENT_UPDATE",
                compartment_id=deployment.compartment_id,
                resources=[
                    {
                        "entityType": "modelDeployment",
                        "actionType": "UPDATED",
                        "identifier": deployment.id,
                        "entityUri": f"/modelDeployments/{deployment.id}",
                    }
                ],
                polls=self.update_polls,
            )
        return empty_response(202, {"opc-work-request-id": work_request.id})

    @route("GET", "/containers", op="ListContainers")
    def list_containers(self, req: Request) -> Response:
        filters = {
            "containerName": lambda c, v: c["containerName"] == v,
            "isLatest": lambda c, v: c["isLatest"] == (v == "true"),
            "targetWorkload": lambda c, v: v in c["targetWorkloads"],
            "usageQueryParam": lambda c, v: v in c["usages"],
            "tagQueryParam": lambda c, v: c["tag"] == v,
        }
        rows = [
            c
            for c in self.containers
            if all(f(c, req.query[k]) for k, f in filters.items() if k in req.query)
        ]
        return json_response(200, rows)

    @route("GET", "/workRequests", op="ListWorkRequests")
    def list_work_requests(self, req: Request) -> Response:
        if not req.query.get("compartmentId"):
            raise HttpError(400, "InvalidParameter", "compartmentId is required")
        data_science = self.fake.service(DataScience)
        rows = [
            (index, wr)
            for index, wr in enumerate(data_science.work_requests.values())
            if wr.compartment_id == req.query["compartmentId"]
            and req.query.get("operationType", wr.operation_type) == wr.operation_type
            and req.query.get("status", wr.status) == wr.status
            and (
                "resourceId" not in req.query
                or any(r.get("identifier") == req.query["resourceId"] for r in wr.resources)
            )
        ]
        rows.sort(
            key=lambda row: (row[1].time_accepted, row[0]), reverse=req.query.get("sortOrder") == "DESC"
        )
        limit = int(req.query.get("limit") or 100)
        return json_response(200, [wr.as_json() for _, wr in rows[:limit]])
