"""Run a fine-tuning job to its end, and say why when it does not end well.

The JobRun dynamic provider starts one run of a FineTune's Data Science job and waits for it the way the
readiness check waits for a deployment: bounded polling with backoff, then either SUCCEEDED with the
model's zip where the catalog will look for it, or an error carrying the run's lifecycle details and the
last lines of its log (where "CUDA out of memory" or a refused dataset shows up).

A run the wait gives up on is cancelled, so that nobody pays for GPUs nobody waits for; a run that failed
stays in the project as a record of what happened (it costs nothing once it has ended).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import oci

from domain.errors import UserError
from oci_runtime.auth import Auth, make_client
from oci_runtime.logsearch import SERVICE_FAILURES, UNREACHABLE, LogSource, cannot, log_tails, reason
from oci_runtime.retry import Backoff, poll
from oci_runtime.upload import head_object

SUCCEEDED = "SUCCEEDED"
RUNNING_STATES = frozenset({"ACCEPTED", "IN_PROGRESS"})
FAILED_STATES = frozenset({"FAILED", "NEEDS_ATTENTION", "CANCELING", "CANCELED", "DELETING", "DELETED"})
FINISHED_STATES = frozenset({SUCCEEDED, "FAILED", "NEEDS_ATTENTION", "CANCELED", "DELETED"})
START_ALLOWANCE_MINUTES = 60
"""How long a run may wait for GPU capacity before its maximum runtime starts counting."""
TRAINING_POLLING = Backoff(attempts=None, base_s=15.0, cap_s=120.0)
"""Training takes hours: a status read every two minutes at most is plenty."""
CANCEL_WAIT_S = 600.0


@dataclass(frozen=True, kw_only=True)
class StoredObject:
    namespace: str
    bucket: str
    name: str

    def __str__(self) -> str:
        return f"oci://{self.bucket}@{self.namespace}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class TrainingRun:
    """One run of a job. `endpoints` points services elsewhere ({"datascience", "loggingsearch",
    "objectstorage"}: URL), e.g. private endpoints or a test's loopback fake."""

    job_id: str
    compartment_id: str
    project_id: str
    display_name: str
    region: str
    timeout_s: float  # the whole wait: the job's maximum runtime plus START_ALLOWANCE_MINUTES
    artifact: StoredObject  # what the run must leave: the zip the catalog registers
    freeform_tags: Mapping[str, str] = field(default_factory=dict)
    auth: Auth = field(default_factory=Auth)
    log_group_id: str | None = None
    log_id: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=dict)
    polling: Backoff = TRAINING_POLLING  # its total_s is replaced by timeout_s


@dataclass(frozen=True, kw_only=True)
class Trained:
    job_run_id: str
    state: str
    time_started: str | None
    time_finished: str | None
    artifact_uri: str
    artifact_bytes: int | None


class TrainingFailed(UserError):
    """The run failed, was cancelled or did not finish in time; the message holds the diagnostics."""

    exit_code = 1


def run_training(
    run: TrainingRun,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Trained:
    """Start a run of the job and wait until it has SUCCEEDED and left its zip; TrainingFailed otherwise."""
    data_science = _data_science(run)
    began_at = dt.datetime.now(dt.UTC)
    job_run_id = start_run(run, data_science)
    job_run = _wait(run, data_science, job_run_id, clock, sleep, began_at)
    size = _artifact_size(run, job_run_id, job_run, began_at)
    return Trained(
        job_run_id=job_run_id,
        state=SUCCEEDED,
        time_started=_stamp(getattr(job_run, "time_started", None)),
        time_finished=_stamp(getattr(job_run, "time_finished", None)),
        artifact_uri=str(run.artifact),
        artifact_bytes=size,
    )


def start_run(run: TrainingRun, data_science: Any) -> str:

    details = oci.data_science.models.CreateJobRunDetails(
        project_id=run.project_id,
        compartment_id=run.compartment_id,
        job_id=run.job_id,
        display_name=run.display_name,
        freeform_tags=dict(run.freeform_tags),
    )
    try:
        # One retry token for every attempt: a create retried after a lost answer starts one run, not two.
        created = data_science.create_job_run(details, opc_retry_token=uuid.uuid4().hex).data
    except SERVICE_FAILURES as exc:
        raise TrainingFailed(cannot(f"start a run of job {run.job_id}", "Data Science", exc)) from None
    return str(created.id)


def _wait(
    run: TrainingRun,
    data_science: Any,
    job_run_id: str,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    began_at: dt.datetime,
) -> Any:

    def read() -> Any:
        # A run this wait gives up on is recorded nowhere (create failed), so it is cancelled, not left
        # training on GPUs that nobody pays attention to.
        try:
            return data_science.get_job_run(job_run_id).data
        except SERVICE_FAILURES as exc:
            why = cannot(f"read job run {job_run_id}", "Data Science", exc)
            raise TrainingFailed(f"{why}; {cancel(data_science, job_run_id)}") from None

    job_run, settled = poll(
        read,
        lambda r: str(r.lifecycle_state) in {SUCCEEDED, *FAILED_STATES},
        backoff=run.polling.within(run.timeout_s),
        clock=clock,
        sleep=sleep,
    )
    state = job_run.lifecycle_state
    if state == SUCCEEDED:
        return job_run
    if settled:
        headline = f"job run {job_run_id} of job {run.job_id} is {state}"
    else:
        headline = (
            f"job run {job_run_id} is still {state} after {run.timeout_s / 60:g} minutes "
            f"(fineTune.timeoutMinutes plus {START_ALLOWANCE_MINUTES} to start); "
            f"{cancel(data_science, job_run_id)}"
        )
    raise _failed(headline, run, job_run_id, job_run, began_at)


def cancel(data_science: Any, job_run_id: str) -> str:
    """Ask the service to stop a run; says what happened, for the message that explains why."""

    try:
        data_science.cancel_job_run(job_run_id)
    except oci.exceptions.ServiceError as exc:
        return f"cancelling it failed ({exc.status} {exc.code}): cancel it in the console"
    except UNREACHABLE as exc:
        return f"cancelling it failed ({reason(exc)}): cancel it in the console"
    return "it has been cancelled"


def delete_run(
    auth: Auth,
    region: str,
    job_run_id: str,
    *,
    endpoints: Mapping[str, str] | None = None,
    polling: Backoff = TRAINING_POLLING,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Remove a run: cancel it first if it still runs, then delete it. A run already gone is fine."""

    data_science = make_client(
        oci.data_science.DataScienceClient,
        auth,
        region=region,
        endpoint=(endpoints or {}).get("datascience"),
        backoff=polling.for_each_read(),
    )
    try:
        state = data_science.get_job_run(job_run_id).data.lifecycle_state
        if state in RUNNING_STATES:
            data_science.cancel_job_run(job_run_id)
        if state not in FINISHED_STATES:
            state, finished = poll(
                lambda: data_science.get_job_run(job_run_id).data.lifecycle_state,
                lambda s: s in FINISHED_STATES,
                backoff=polling.within(CANCEL_WAIT_S),
                clock=clock,
                sleep=sleep,
            )
            if not finished:
                raise TrainingFailed(
                    f"job run {job_run_id} is still {state} {CANCEL_WAIT_S / 60:g} minutes after it was "
                    "cancelled; delete it in the console, then run this again"
                )
        data_science.delete_job_run(job_run_id)
    except oci.exceptions.ServiceError as exc:
        if exc.status == 404:
            return
        raise TrainingFailed(
            f"cannot delete job run {job_run_id}: {exc.status} {exc.code}: {exc.message}"
        ) from None


def _artifact_size(run: TrainingRun, job_run_id: str, job_run: Any, began_at: dt.datetime) -> int | None:
    """The zip's size; TrainingFailed when the run succeeded without writing it (wrong image?)."""

    storage = make_client(
        oci.object_storage.ObjectStorageClient,
        run.auth,
        region=run.region,
        endpoint=run.endpoints.get("objectstorage"),
        backoff=run.polling.for_each_read(),
    )
    artifact = run.artifact
    try:
        head = head_object(storage, artifact.namespace, artifact.bucket, artifact.name)
    except oci.exceptions.ServiceError:
        return None  # not readable by whoever runs `up`; the catalog registration will say more
    except UNREACHABLE:
        return None
    if head is None:
        raise _failed(
            f"job run {job_run_id} SUCCEEDED but left no {artifact}: does the job's image run "
            "`python -m training.finetune` (with --zip)?",
            run,
            job_run_id,
            job_run,
            began_at,
        )
    length = head.get("content-length")
    return int(length) if length and str(length).isdigit() else None


def _failed(
    headline: str, run: TrainingRun, job_run_id: str, job_run: Any, began_at: dt.datetime
) -> TrainingFailed:
    lines = [headline]
    details = getattr(job_run, "lifecycle_details", None)
    if details:
        lines.append(f"lifecycle details: {details}")
    log_details = getattr(job_run, "log_details", None)
    group = getattr(log_details, "log_group_id", None) or run.log_group_id
    log_id = getattr(log_details, "log_id", None) or run.log_id
    if not group or not log_id:
        lines.append("logs: none configured for this job")
    else:
        accepted = getattr(job_run, "time_accepted", None)
        since = accepted if isinstance(accepted, dt.datetime) else began_at
        lines += log_tails(
            auth=run.auth,
            region=run.region,
            compartment_id=run.compartment_id,
            log_group_id=group,
            logs=[LogSource(label="training", log_id=log_id, source=job_run_id)],
            since=since - dt.timedelta(minutes=1),
            endpoints=run.endpoints,
            backoff=run.polling.for_each_read(),
        )
    return TrainingFailed("\n".join(lines))


def _data_science(run: TrainingRun) -> Any:

    return make_client(
        oci.data_science.DataScienceClient,
        run.auth,
        region=run.region,
        endpoint=run.endpoints.get("datascience"),
        backoff=run.polling.for_each_read(),
    )


def _stamp(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None
