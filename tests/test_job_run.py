"""A fine-tuning job run, started and awaited against the loopback fake OCI: the real SDK, signed requests."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import dill
import oci
import pytest

from components.providers.job_run import JobRunProvider
from oci_runtime.auth import Auth
from oci_runtime.retry import Backoff
from oci_runtime.training_run import StoredObject, TrainingFailed, TrainingRun, delete_run, run_training
from tests.fakeoci.core import FakeOci, Fault, TestIdentity
from tests.fakeoci.jobruns import JobRuns
from tests.fakeoci.loggingsearch import LoggingSearch
from tests.fakeoci.objectstorage import ObjectStorage

FAST_POLL = Backoff(attempts=None, base_s=0.001, cap_s=0.005)
JOB = "ocid1.datasciencejob.oc1.iad.fakejob"
LOG_GROUP = "ocid1.loggroup.oc1.iad.fakegroup"
TRAIN_LOG = "ocid1.log.oc1.iad.faketrain"
BUCKET = "llm-finetunes"
ZIP = "llama2-7b-support/dev-support-0123456789ab/model.zip"
OOM = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.95 GiB (GPU 0; 22.19 GiB total)"


@pytest.fixture
def runs(fake_oci: FakeOci) -> JobRuns:
    return fake_oci.service(JobRuns)


@pytest.fixture
def logs(fake_oci: FakeOci) -> LoggingSearch:
    return fake_oci.service(LoggingSearch)


def put_zip(fake: FakeOci, identity: TestIdentity, data: bytes = b"PK\x05\x06" + b"\x00" * 18) -> None:
    fake.service(ObjectStorage).create_bucket(BUCKET)
    config = oci.config.from_file(str(identity.config_file))
    client = oci.object_storage.ObjectStorageClient(config, service_endpoint=fake.endpoint)
    client.put_object(fake.namespace, BUCKET, ZIP, data)


def training_run(fake: FakeOci, identity: TestIdentity, **changes: Any) -> TrainingRun:
    run = TrainingRun(
        job_id=JOB,
        compartment_id="ocid1.compartment.oc1..fakecompartment",
        project_id="ocid1.datascienceproject.oc1.iad.fakeproject",
        display_name="oci-llm-stack-dev-support-finetune-0123456789ab",
        region="us-ashburn-1",
        timeout_s=5.0,
        artifact=StoredObject(namespace=fake.namespace, bucket=BUCKET, name=ZIP),
        freeform_tags={"team": "ml-platform"},
        auth=Auth(mode="api_key", config_file=str(identity.config_file)),
        log_group_id=LOG_GROUP,
        log_id=TRAIN_LOG,
        endpoints={
            "datascience": fake.endpoint,
            "loggingsearch": fake.endpoint,
            "objectstorage": fake.endpoint,
        },
        polling=FAST_POLL,
    )
    return dataclasses.replace(run, **changes)


def failure(run: TrainingRun) -> str:
    with pytest.raises(TrainingFailed) as caught:
        run_training(run)
    return str(caught.value)


def test_a_run_that_succeeds_after_n_polls_reports_its_zip(
    fake_oci: FakeOci, runs: JobRuns, oci_identity: TestIdentity
) -> None:
    runs.script(JOB, polls=3)
    put_zip(fake_oci, oci_identity, b"x" * 1234)
    sleeps: list[float] = []

    trained = run_training(
        training_run(fake_oci, oci_identity), sleep=lambda s: (sleeps.append(s), time.sleep(s))
    )

    assert len(fake_oci.requests("CreateJobRun")) == 1
    assert len(fake_oci.requests("GetJobRun")) == 4  # ACCEPTED, IN_PROGRESS twice, SUCCEEDED
    assert len(sleeps) == 3 and all(0 <= s <= FAST_POLL.cap_s for s in sleeps)
    assert trained.state == "SUCCEEDED" and trained.job_run_id.startswith("ocid1.datasciencejobrun.")
    assert trained.artifact_uri == f"oci://{BUCKET}@{fake_oci.namespace}/{ZIP}"
    assert trained.artifact_bytes == 1234
    created = runs.runs[trained.job_run_id].body
    assert (created["jobId"], created["displayName"], created["freeformTags"]) == (
        JOB,
        "oci-llm-stack-dev-support-finetune-0123456789ab",
        {"team": "ml-platform"},
    )


def test_a_failed_run_shows_its_details_and_only_its_own_log_lines(
    fake_oci: FakeOci, runs: JobRuns, logs: LoggingSearch, oci_identity: TestIdentity
) -> None:
    runs.script(
        JOB,
        polls=2,
        ends="FAILED",
        details="Job run failed with exit code 1",
        log_group_id=LOG_GROUP,
        log_id=TRAIN_LOG,
    )
    earlier = "ocid1.datasciencejobrun.oc1.iad.anearlierrun"
    logs.add_lines(TRAIN_LOG, ["finetune: step 300/300 loss 0.4121"], source=earlier)

    run = training_run(fake_oci, oci_identity)
    with pytest.raises(TrainingFailed) as caught:
        run_training(run, sleep=lambda _: logs.add_lines(TRAIN_LOG, [OOM], source=latest_run(runs)))
    lines = str(caught.value).splitlines()

    run_id = latest_run(runs)
    assert lines[0] == f"job run {run_id} of job {JOB} is FAILED"
    assert "lifecycle details: Job run failed with exit code 1" in lines
    assert f"  {OOM}" in lines
    assert not any("0.4121" in line for line in lines)  # another run's lines in the same log are not shown
    assert logs.queries[-1].endswith(f"| where source = '*{run_id}' | sort by datetime desc")
    assert fake_oci.requests("HeadObject") == []  # a failed run is not looked for


def latest_run(runs: JobRuns) -> str:
    return list(runs.runs)[-1]


def test_a_run_that_outlasts_the_wait_is_cancelled_and_explained(
    fake_oci: FakeOci, runs: JobRuns, logs: LoggingSearch, oci_identity: TestIdentity
) -> None:
    runs.script(JOB, polls=1_000_000)
    started = time.monotonic()

    message = failure(training_run(fake_oci, oci_identity, timeout_s=0.05))

    assert time.monotonic() - started < 3
    run_id = latest_run(runs)
    headline = message.splitlines()[0]
    state = "ACCEPTED" if "still ACCEPTED" in headline else "IN_PROGRESS"  # how far it got depends on load
    assert headline == (
        f"job run {run_id} is still {state} after 0.000833333 minutes (fineTune.timeoutMinutes plus 60 "
        "to start); it has been cancelled"
    )
    assert len(fake_oci.requests("CancelJobRun")) == 1
    assert runs.runs[run_id].canceled  # nobody pays for GPUs nobody waits for
    assert f"training log {TRAIN_LOG}: no lines since" in message


def test_a_run_that_cannot_be_read_any_more_is_cancelled_not_left_training(
    fake_oci: FakeOci, runs: JobRuns, oci_identity: TestIdentity
) -> None:
    runs.script(JOB, polls=1_000_000)
    fake_oci.faults.add(
        Fault(kind="status", status=500, code="InternalServerError", ops=frozenset({"GetJobRun"}))
    )

    message = failure(training_run(fake_oci, oci_identity))

    run_id = latest_run(runs)
    assert message == (
        f"cannot read job run {run_id}: 500 InternalServerError: injected fault; it has been cancelled"
    )
    assert runs.runs[run_id].canceled  # the failed create records no run: none may keep training


def test_a_run_that_succeeds_without_its_zip_is_a_failure(
    fake_oci: FakeOci, runs: JobRuns, oci_identity: TestIdentity
) -> None:
    runs.script(JOB, polls=1)
    fake_oci.service(ObjectStorage).create_bucket(BUCKET)

    message = failure(training_run(fake_oci, oci_identity))

    assert message.splitlines()[0] == (
        f"job run {latest_run(runs)} SUCCEEDED but left no oci://{BUCKET}@{fake_oci.namespace}/{ZIP}: does the "
        "job's image run `python -m training.finetune` (with --zip)?"
    )


def test_an_unknown_job_is_one_line_without_a_run(
    fake_oci: FakeOci, runs: JobRuns, oci_identity: TestIdentity
) -> None:
    message = failure(training_run(fake_oci, oci_identity))

    assert message == (f"cannot start a run of job {JOB}: 404 NotAuthorizedOrNotFound: job {JOB} not found")
    assert runs.runs == {}


def test_delete_cancels_a_running_run_then_removes_it_and_tolerates_a_gone_one(
    fake_oci: FakeOci, runs: JobRuns, oci_identity: TestIdentity
) -> None:
    runs.script(JOB, polls=1_000_000)
    auth = Auth(mode="api_key", config_file=str(oci_identity.config_file))
    endpoints = {"datascience": fake_oci.endpoint}
    with pytest.raises(TrainingFailed):
        run_training(training_run(fake_oci, oci_identity, timeout_s=0.01))
    run_id = latest_run(runs)
    runs.runs[run_id].canceled = False  # as if the cancel had not reached it

    delete_run(auth, "us-ashburn-1", run_id, endpoints=endpoints, polling=FAST_POLL)

    assert run_id not in runs.runs
    assert [r.op for r in fake_oci.requests() if r.op in ("CancelJobRun", "DeleteJobRun")][-2:] == [
        "CancelJobRun",
        "DeleteJobRun",
    ]
    delete_run(auth, "us-ashburn-1", run_id, endpoints=endpoints, polling=FAST_POLL)  # already gone: fine


# --- the dynamic provider ---------------------------------------------------------------------------------


def props_for(fake: FakeOci, identity: TestIdentity, **changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "jobId": JOB,
        "compartmentId": "ocid1.compartment.oc1..fakecompartment",
        "projectId": "ocid1.datascienceproject.oc1.iad.fakeproject",
        "displayName": "oci-llm-stack-dev-support-finetune-0123456789ab",
        "region": "us-ashburn-1",
        "auth": {"mode": "api_key", "profile": "DEFAULT", "configFile": str(identity.config_file)},
        "waitMinutes": 1,
        "namespace": fake.namespace,
        "bucket": BUCKET,
        "objectName": ZIP,
        "logGroupId": LOG_GROUP,
        "logId": TRAIN_LOG,
        "freeformTags": {"team": "ml-platform"},
        "triggers": {"runFolder": "llama2-7b-support/dev-support-0123456789ab"},
        "endpoints": {
            "datascience": fake.endpoint,
            "loggingsearch": fake.endpoint,
            "objectstorage": fake.endpoint,
        },
    }
    props.update(changes)
    return props


def test_provider_create_records_the_run_and_its_zip(
    fake_oci: FakeOci, runs: JobRuns, oci_identity: TestIdentity
) -> None:
    runs.script(JOB, polls=2)
    put_zip(fake_oci, oci_identity)
    provider = dill.loads(dill.dumps(JobRunProvider(polling=FAST_POLL)))  # as Pulumi ships it

    result = provider.create(props_for(fake_oci, oci_identity))

    assert result.id == result.outs["jobRunId"] == latest_run(runs)
    assert result.outs["state"] == "SUCCEEDED"
    assert result.outs["artifactUri"] == f"oci://{BUCKET}@{fake_oci.namespace}/{ZIP}"
    assert result.outs["objectName"] == ZIP  # what the catalog model reads, after the run


def test_provider_retrains_only_when_what_it_trains_changes(
    fake_oci: FakeOci, runs: JobRuns, oci_identity: TestIdentity
) -> None:
    runs.script(JOB)
    put_zip(fake_oci, oci_identity)
    provider = JobRunProvider(polling=FAST_POLL)
    olds = provider.create(props_for(fake_oci, oci_identity)).outs

    assert not provider.diff("id", olds, props_for(fake_oci, oci_identity)).changes
    new_folder = props_for(
        fake_oci, oci_identity, triggers={"runFolder": "llama2-7b-support/dev-support-ffff"}
    )
    assert provider.diff("id", olds, new_folder).replaces == ["triggers"]
    new_job = props_for(fake_oci, oci_identity, jobId="ocid1.datasciencejob.oc1.iad.other")
    assert provider.diff("id", olds, new_job).replaces == ["jobId"]

    longer = props_for(fake_oci, oci_identity, waitMinutes=600, freeformTags={"team": "platform"})
    diff = provider.diff("id", olds, longer)
    assert diff.changes and not diff.replaces
    kept = provider.update("id", olds, longer).outs
    assert (kept["jobRunId"], kept["waitMinutes"]) == (olds["jobRunId"], 600)
    assert len(fake_oci.requests("CreateJobRun")) == 1  # no second training run


def test_provider_check_refuses_a_bad_wait(fake_oci: FakeOci, oci_identity: TestIdentity) -> None:
    result = JobRunProvider().check({}, props_for(fake_oci, oci_identity, waitMinutes=0, jobId=""))

    assert [(f.property, f.reason) for f in result.failures] == [
        ("jobId", "jobId is required"),
        ("waitMinutes", "waitMinutes must be a positive number of minutes, got 0"),
    ]
    assert fake_oci.requests() == []
