"""Fake Data Science job runs: a scripted lifecycle per job, cancel and delete.

    runs = fake.service(JobRuns)
    runs.script(job_id, polls=3)                                   # ACCEPTED, IN_PROGRESS x2, SUCCEEDED
    runs.script(job_id, polls=1, ends="FAILED", details="Job run failed with exit code 1")

A run is created by CreateJobRun for a scripted job (an unscripted job answers 404, as an unknown job
does); each GetJobRun counts a poll: ACCEPTED on the first, IN_PROGRESS until `polls` is reached, then
`ends`. CancelJobRun turns a running run CANCELING, then CANCELED on the next read; DeleteJobRun refuses a
run that has not finished (409), and forgets a finished one.
"""

from __future__ import annotations

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

FINISHED = frozenset({"SUCCEEDED", "FAILED", "CANCELED", "NEEDS_ATTENTION"})


@dataclass
class Script:
    polls: int
    ends: str
    details: str | None
    log_group_id: str | None
    log_id: str | None


@dataclass
class Run:
    id: str
    job_id: str
    body: dict[str, Any]
    script: Script
    polls: int = 0
    canceled: bool = False
    cancel_seen: bool = False
    time_accepted: str = field(default_factory=now_rfc3339)

    @property
    def state(self) -> str:
        if self.canceled:
            return "CANCELED" if self.cancel_seen else "CANCELING"
        if self.polls <= 1 and self.script.polls > 0:
            return "ACCEPTED"
        if self.polls <= self.script.polls:
            return "IN_PROGRESS"
        return self.script.ends

    def as_json(self) -> dict[str, Any]:
        state = self.state
        details = {
            "ACCEPTED": "Waiting for capacity",
            "IN_PROGRESS": "Job run is in progress",
            "CANCELING": "Canceling",
            "CANCELED": "Canceled by the user",
        }.get(state, self.script.details)
        logs = (
            {"logGroupId": self.script.log_group_id, "logId": self.script.log_id}
            if self.script.log_id
            else None
        )
        return {
            "id": self.id,
            "jobId": self.job_id,
            "projectId": self.body.get("projectId"),
            "compartmentId": self.body.get("compartmentId"),
            "displayName": self.body.get("displayName") or f"jobrun-{self.id[-6:]}",
            "createdBy": "ocid1.user.oc1..fakeuser",
            "timeAccepted": self.time_accepted,
            "timeStarted": self.time_accepted if state != "ACCEPTED" else None,
            "timeFinished": now_rfc3339() if state in FINISHED else None,
            "lifecycleState": state,
            "lifecycleDetails": details,
            "logDetails": logs,
            "jobInfrastructureConfigurationDetails": {
                "jobInfrastructureType": "STANDALONE",
                "shapeName": "VM.GPU.A10.1",
                "blockStorageSizeInGBs": 100,
            },
            "freeformTags": self.body.get("freeformTags") or {},
            "definedTags": {},
        }


class JobRuns(Service):
    name = "jobruns"
    prefix = "/20190101"

    def __init__(self, fake: Any) -> None:
        super().__init__(fake)
        self.scripts: dict[str, Script] = {}
        self.runs: dict[str, Run] = {}

    def script(
        self,
        job_id: str,
        *,
        polls: int = 0,
        ends: str = "SUCCEEDED",
        details: str | None = None,
        log_group_id: str | None = None,
        log_id: str | None = None,
    ) -> None:
        """Runs of `job_id` stay ACCEPTED, then IN_PROGRESS, for `polls` reads, then end `ends`."""
        with self.lock:
            self.scripts[job_id] = Script(polls, ends, details, log_group_id, log_id)

    def run(self, run_id: str) -> Run:
        found = self.runs.get(run_id)
        if found is None:
            raise HttpError(404, "NotAuthorizedOrNotFound", f"job run {run_id} not found")
        return found

    @route("POST", "/jobRuns", op="CreateJobRun")
    def create(self, req: Request) -> Response:
        body = req.json() or {}
        for key in ("projectId", "compartmentId", "jobId"):
            if not body.get(key):
                raise HttpError(400, "InvalidParameter", f"{key} is required")
        with self.lock:
            script = self.scripts.get(body["jobId"])
            if script is None:
                raise HttpError(404, "NotAuthorizedOrNotFound", f"job {body['jobId']} not found")
            run = Run(id=self.fake.ocid("datasciencejobrun"), job_id=body["jobId"], body=body, script=script)
            self.runs[run.id] = run
            return json_response(201, run.as_json(), {"etag": "1"})

    @route("GET", "/jobRuns/{jobRunId}", op="GetJobRun")
    def get(self, req: Request) -> Response:
        with self.lock:
            run = self.run(req.params["jobRunId"])
            if run.canceled and run.polls > 0:
                run.cancel_seen = True
            run.polls += 1
            return json_response(200, run.as_json(), {"etag": str(run.polls)})

    @route("POST", "/jobRuns/{jobRunId}/actions/cancelJobRun", op="CancelJobRun")
    def cancel(self, req: Request) -> Response:
        with self.lock:
            run = self.run(req.params["jobRunId"])
            if run.state in FINISHED:
                raise HttpError(409, "IncorrectState", f"job run {run.id} is {run.state}")
            run.canceled = True
            return empty_response(202)

    @route("DELETE", "/jobRuns/{jobRunId}", op="DeleteJobRun")
    def delete(self, req: Request) -> Response:
        with self.lock:
            run = self.run(req.params["jobRunId"])
            if run.state not in FINISHED:
                raise HttpError(409, "IncorrectState", f"job run {run.id} is {run.state}; cancel it first")
            del self.runs[run.id]
            return empty_response(204)
