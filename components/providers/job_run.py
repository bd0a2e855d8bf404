"""JobRun: one run of a fine-tuning job, counted as done only when it SUCCEEDED and left the model's zip.

pulumi_oci's `datascience.JobRun` cannot be used for this: waiting (`asynchronous = false`) it counts
FAILED, CANCELED and NEEDS_ATTENTION as a finished create, so a failed training would go on to register a
model that does not exist, and it shows nothing of why. This resource starts the run and waits for it with
`oci_runtime.training_run` (bounded polling, diagnostics from the run's log), like Readiness does for a
deployment.

A new run starts when the job or what it trains changes (`triggers`: the digest of the run folder's
inputs); a new timeout, display name or tags do not retrain. A create that fails records nothing, so the
next `pulumi up` starts a fresh run; delete cancels a run that is still going and removes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

from components.providers.artifact import auth_inputs
from components.providers.base import DynamicResource, ProviderBase
from domain.settings import AuthSettings
from oci_runtime.auth import Auth
from oci_runtime.retry import Backoff
from oci_runtime.training_run import (
    TRAINING_POLLING,
    StoredObject,
    Trained,
    TrainingRun,
    delete_run,
    run_training,
)

OUTPUT_KEYS = ("jobRunId", "state", "timeStarted", "timeFinished", "artifactUri", "artifactBytes")


@dataclass(frozen=True, kw_only=True)
class JobRunArgs:
    job_id: pulumi.Input[str]
    compartment_id: str
    project_id: pulumi.Input[str]
    display_name: str
    region: str
    auth: AuthSettings
    wait_minutes: int  # the job's maximum runtime plus time to get capacity
    namespace: str
    bucket: str
    object_name: str  # the zip the run must leave
    log_group_id: pulumi.Input[str]
    log_id: pulumi.Input[str]
    freeform_tags: dict[str, str]
    triggers: dict[str, pulumi.Input[Any]]
    endpoints: Mapping[str, str] | None = None  # {"datascience" | "loggingsearch" | "objectstorage": URL}

    def props(self) -> dict[str, Any]:
        endpoints = {"endpoints": dict(self.endpoints)} if self.endpoints else {}
        return {
            **endpoints,
            "jobId": self.job_id,
            "compartmentId": self.compartment_id,
            "projectId": self.project_id,
            "displayName": self.display_name,
            "region": self.region,
            "auth": auth_inputs(self.auth),
            "waitMinutes": self.wait_minutes,
            "namespace": self.namespace,
            "bucket": self.bucket,
            "objectName": self.object_name,
            "logGroupId": self.log_group_id,
            "logId": self.log_id,
            "freeformTags": self.freeform_tags,
            "triggers": self.triggers,
        }


class JobRunProvider(ProviderBase):
    replace_on = (
        "jobId",
        "compartmentId",
        "projectId",
        "region",
        "namespace",
        "bucket",
        "objectName",
        "triggers",
    )
    required = ("jobId", "compartmentId", "projectId", "region", "namespace", "bucket", "objectName")
    outputs = OUTPUT_KEYS

    def __init__(self, polling: Backoff | None = None) -> None:
        super().__init__()
        self.polling = polling or TRAINING_POLLING

    def validate(self, news: Mapping[str, Any]) -> list[pulumi.dynamic.CheckFailure]:
        failures = super().validate(news)
        minutes = news.get("waitMinutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not minutes > 0:
            failures.append(
                pulumi.dynamic.CheckFailure(
                    "waitMinutes", f"waitMinutes must be a positive number of minutes, got {minutes!r}"
                )
            )
        return failures

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        trained = run_training(self._run(props))
        return pulumi.dynamic.CreateResult(trained.job_run_id, {**props, **_outs(trained)})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        """Only what does not retrain changes in place (timeout, names, tags, logs): the run stands."""
        return pulumi.dynamic.UpdateResult({**news, **{key: olds.get(key) for key in OUTPUT_KEYS}})

    def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
        return pulumi.dynamic.ReadResult(id_, props)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        delete_run(
            Auth.from_inputs(props.get("auth")),
            str(props["region"]),
            id_,
            endpoints=dict(props.get("endpoints") or {}),
            polling=self.polling,
        )

    def _run(self, props: Mapping[str, Any]) -> TrainingRun:
        return TrainingRun(
            job_id=str(props["jobId"]),
            compartment_id=str(props["compartmentId"]),
            project_id=str(props["projectId"]),
            display_name=str(props.get("displayName") or ""),
            region=str(props["region"]),
            timeout_s=float(props["waitMinutes"]) * 60,
            artifact=StoredObject(
                namespace=str(props["namespace"]), bucket=str(props["bucket"]), name=str(props["objectName"])
            ),
            freeform_tags=dict(props.get("freeformTags") or {}),
            auth=Auth.from_inputs(props.get("auth")),
            log_group_id=props.get("logGroupId") or None,
            log_id=props.get("logId") or None,
            endpoints=dict(props.get("endpoints") or {}),
            polling=self.polling,
        )


def _outs(trained: Trained) -> dict[str, Any]:
    return {
        "jobRunId": trained.job_run_id,
        "state": trained.state,
        "timeStarted": trained.time_started,
        "timeFinished": trained.time_finished,
        "artifactUri": trained.artifact_uri,
        "artifactBytes": trained.artifact_bytes,
    }


class JobRun(DynamicResource, module="training", name="JobRun"):
    jobRunId: pulumi.Output[str]
    state: pulumi.Output[str]
    timeStarted: pulumi.Output[str]
    timeFinished: pulumi.Output[str]
    artifactUri: pulumi.Output[str]
    artifactBytes: pulumi.Output[int]
    objectName: pulumi.Output[str]

    def __init__(self, name: str, args: JobRunArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(JobRunProvider(), name, {**args.props(), **dict.fromkeys(OUTPUT_KEYS)}, opts)
