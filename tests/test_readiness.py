"""Readiness against the loopback fake OCI: the real SDK, signed requests, scripted deployment lifecycles."""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from typing import Any

import dill
import oci
import pytest

from components.providers.readiness import ReadinessProvider
from oci_runtime.auth import Auth
from oci_runtime.logsearch import SERVICE_FAILURES, cannot
from oci_runtime.readiness import NotReady, ReadinessCheck, check_readiness
from oci_runtime.retry import Backoff
from tests.fakeoci.core import FakeOci, Fault, TestIdentity
from tests.fakeoci.loggingsearch import LoggingSearch
from tests.fakeoci.modeldeployments import Deployment, Engine, ModelDeployments

FAST_POLL = Backoff(attempts=None, base_s=0.001, cap_s=0.005)
LOG_GROUP = "ocid1.loggroup.oc1.iad.fakegroup"
PREDICT_LOG = "ocid1.log.oc1.iad.fakepredict"
ACCESS_LOG = "ocid1.log.oc1.iad.fakeaccess"
OOM = "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 172.00 MiB (GPU 0; 22.19 GiB total)"


@pytest.fixture
def deployments(fake_oci: FakeOci) -> ModelDeployments:
    return fake_oci.service(ModelDeployments)


@pytest.fixture
def logs(fake_oci: FakeOci) -> LoggingSearch:
    return fake_oci.service(LoggingSearch)


def script(deployments: ModelDeployments, **kwargs: Any) -> Deployment:
    return deployments.script(
        log_group_id=LOG_GROUP, predict_log_id=PREDICT_LOG, access_log_id=ACCESS_LOG, **kwargs
    )


def check_for(
    fake: FakeOci, md: Deployment, identity: TestIdentity, timeout_s: float = 5.0
) -> ReadinessCheck:
    return ReadinessCheck(
        deployment_id=md.id,
        deployment_url=md.url,
        region="us-ashburn-1",
        smoke_prompt="Say hello.",
        timeout_s=timeout_s,
        auth=Auth(mode="api_key", config_file=str(identity.config_file)),
        log_group_id=LOG_GROUP,
        predict_log_id=PREDICT_LOG,
        access_log_id=ACCESS_LOG,
        endpoints={"datascience": fake.endpoint, "loggingsearch": fake.endpoint},
        polling=FAST_POLL,
    )


def not_ready(check: ReadinessCheck) -> str:
    with pytest.raises(NotReady) as caught:
        check_readiness(check)
    return str(caught.value)


def test_ready_after_n_polls_and_a_real_completion(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments, polls=3)
    sleeps: list[float] = []

    ready = check_readiness(
        check_for(fake_oci, md, oci_identity), sleep=lambda s: (sleeps.append(s), time.sleep(s))
    )

    assert len(fake_oci.requests("GetModelDeployment")) == 4  # three CREATING, then ACTIVE
    assert len(sleeps) == 3 and all(0 <= s <= FAST_POLL.cap_s for s in sleeps)
    assert [r.status for r in fake_oci.requests("Predict")] == [200]
    assert md.engine.received[0]["inputs"] == "Say hello."
    assert (ready.predict_url, ready.stream_url) == (
        f"{md.url}/predict",
        f"{md.url}/predictWithResponseStream",
    )
    assert ready.state == "ACTIVE" and ready.smoke_latency_ms >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ready.checked_at)


def test_timeout_is_an_error_with_diagnostics(
    fake_oci: FakeOci, deployments: ModelDeployments, logs: LoggingSearch, oci_identity: TestIdentity
) -> None:
    md = script(deployments, polls=1_000_000)
    logs.add_lines(PREDICT_LOG, ["Downloading meta-llama/Llama-2-7b-chat-hf: 41%"])
    started = time.monotonic()

    message = not_ready(check_for(fake_oci, md, oci_identity, timeout_s=0.05))

    assert time.monotonic() - started < 3
    lines = message.splitlines()
    assert lines[0].startswith(f"model deployment {md.id} is still CREATING after 0.0008")
    assert lines[0].endswith(" minutes (readiness.timeoutMinutes)")
    assert "lifecycle details: Creating the model deployment" in lines
    assert (
        f"work request {md.work_request_id} (MODEL_DEPLOYMENT_CREATE): ACCEPTED, no errors recorded" in lines
    )
    assert "  Downloading meta-llama/Llama-2-7b-chat-hf: 41%" in lines
    assert fake_oci.requests("Predict") == []


@pytest.mark.parametrize("state", ["FAILED", "NEEDS_ATTENTION", "INACTIVE"])
def test_a_failed_deployment_shows_its_details_work_request_errors_and_log_lines(
    fake_oci: FakeOci,
    deployments: ModelDeployments,
    logs: LoggingSearch,
    oci_identity: TestIdentity,
    state: str,
) -> None:
    md = script(
        deployments,
        polls=2,
        ends=state,
        details="Errors occurred while creating the model deployment",
        work_request_error=("ContainerFailure", "The container exited with code 1"),
    )
    logs.add_lines(PREDICT_LOG, ["Loading safetensors checkpoint shards: 100%", OOM])
    logs.add_lines(ACCESS_LOG, ['"GET /health HTTP/1.1" 503'])

    message = not_ready(check_for(fake_oci, md, oci_identity))

    assert message.splitlines() == [
        f"model deployment {md.id} is {state}",
        "lifecycle details: Errors occurred while creating the model deployment",
        f"work request {md.work_request_id} (MODEL_DEPLOYMENT_CREATE) is FAILED:",
        "  ContainerFailure: The container exited with code 1",
        f"last 2 lines of the predict log {PREDICT_LOG}:",
        "  Loading safetensors checkpoint shards: 100%",
        f"  {OOM}",
        f"last 1 lines of the access log {ACCESS_LOG}:",
        '  "GET /health HTTP/1.1" 503',
    ]
    assert len(fake_oci.requests("GetModelDeployment")) == 3
    assert fake_oci.requests("Predict") == []
    queries = fake_oci.service(LoggingSearch).queries
    assert queries == [
        f'search "{md.compartment_id}/{LOG_GROUP}/{PREDICT_LOG}" | sort by datetime desc',
        f'search "{md.compartment_id}/{LOG_GROUP}/{ACCESS_LOG}" | sort by datetime desc',
    ]


def test_503_then_200_from_the_model_is_ready(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments, polls=1)
    fake_oci.faults.burst(503, ops=["Predict"], times=2)

    ready = check_readiness(check_for(fake_oci, md, oci_identity))

    assert ready.state == "ACTIVE"
    assert [r.status for r in fake_oci.requests("Predict")] == [503, 503, 200]


def test_active_but_failing_to_answer_is_not_ready_and_shows_the_logs(
    fake_oci: FakeOci, deployments: ModelDeployments, logs: LoggingSearch, oci_identity: TestIdentity
) -> None:
    md = script(deployments, polls=0)
    fake_oci.faults.add(
        Fault(kind="status", status=500, code="InternalServerError", ops=frozenset({"Predict"}))
    )
    logs.add_lines(
        PREDICT_LOG,
        ["huggingface_hub.errors.GatedRepoError: 401 Client Error for url: https://huggingface.co/..."],
    )

    # Time passes only in the check's sleeps: "until the deadline" does not depend on how fast this
    # machine signs and sends the first request (a cold, loaded run used to get no retry at all).
    now = [0.0]
    check = dataclasses.replace(
        check_for(fake_oci, md, oci_identity, timeout_s=0.3),
        polling=Backoff(attempts=None, base_s=0.05, cap_s=0.1),
    )
    with pytest.raises(NotReady) as caught:
        check_readiness(check, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    message = str(caught.value)

    first = message.splitlines()[0]
    assert first.startswith(
        f"model deployment {md.id} is ACTIVE but its smoke prompt failed: 500 InternalServerError"
    )
    assert "GatedRepoError: 401 Client Error" in message
    assert len(fake_oci.requests("Predict")) > 1  # retried until the deadline, then gave up


def test_a_refused_signature_on_the_smoke_prompt_is_not_ready(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments)
    fake_oci.faults.add(Fault(kind="status", status=401, code="NotAuthenticated", ops=frozenset({"Predict"})))

    message = not_ready(check_for(fake_oci, md, oci_identity))

    assert "ACTIVE but its smoke prompt failed: 401 NotAuthenticated" in message
    assert len(fake_oci.requests("Predict")) == 1


def test_an_empty_completion_is_not_ready(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments, engine=Engine(tokens=[]))

    message = not_ready(check_for(fake_oci, md, oci_identity))

    assert message.splitlines()[0].endswith(
        "is ACTIVE but answered the smoke prompt with an empty completion"
    )


def test_unreadable_logs_do_not_hide_the_failure(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments, polls=0, ends="FAILED", details="Container failed to start")
    fake_oci.faults.add(
        Fault(kind="status", status=404, code="NotAuthorizedOrNotFound", ops=frozenset({"SearchLogs"}))
    )

    message = not_ready(check_for(fake_oci, md, oci_identity))

    assert "lifecycle details: Container failed to start" in message
    assert f"predict log {PREDICT_LOG}: not readable (404 NotAuthorizedOrNotFound)" in message


def test_an_unknown_deployment_is_one_clear_error(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments)
    gone = check_for(fake_oci, md, oci_identity)
    gone = ReadinessCheck(
        **{**gone.__dict__, "deployment_id": "ocid1.datasciencemodeldeployment.oc1.iad.gone"}
    )

    message = not_ready(gone)

    assert message.startswith(
        "cannot read model deployment ocid1.datasciencemodeldeployment.oc1.iad.gone: 404"
    )


def test_data_science_out_of_reach_is_one_clear_error(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    check = check_for(fake_oci, script(deployments), oci_identity)
    check = ReadinessCheck(**{**check.__dict__, "endpoints": {"datascience": closed}})

    message = not_ready(check)

    assert message.startswith(f"cannot reach Data Science to read model deployment {check.deployment_id}: ")
    assert "\n" not in message


# --- the dynamic provider ---------------------------------------------------------------------


def props_for(fake: FakeOci, md: Deployment, identity: TestIdentity, **changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "deploymentId": md.id,
        "deploymentUrl": md.url,
        "region": "us-ashburn-1",
        "auth": {"mode": "api_key", "profile": "DEFAULT", "configFile": str(identity.config_file)},
        "engine": "vllm",
        "smokePrompt": "Say hello.",
        "timeoutMinutes": 1,
        "logGroupId": LOG_GROUP,
        "predictLogId": PREDICT_LOG,
        "accessLogId": ACCESS_LOG,
        "triggers": {
            "modelId": "ocid1.datasciencemodel.oc1.iad.m1",
            "image": "img@sha256:aa",
            "envDigest": "e1",
            "shape": "VM.GPU.A10.1",
            "replicas": 1,
        },
        "endpoints": {"datascience": fake.endpoint, "loggingsearch": fake.endpoint},
    }
    props.update(changes)
    return props


def test_provider_create_outputs_the_checked_urls(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments, polls=2)
    provider = dill.loads(dill.dumps(ReadinessProvider(polling=FAST_POLL)))  # as Pulumi ships it

    result = provider.create(props_for(fake_oci, md, oci_identity))

    assert result.id.startswith(f"{md.id}/")
    assert result.outs["predictUrl"] == f"{md.url}/predict"
    assert result.outs["streamUrl"] == f"{md.url}/predictWithResponseStream"
    assert result.outs["state"] == "ACTIVE" and isinstance(result.outs["smokeLatencyMs"], int)
    assert result.outs["triggers"]["shape"] == "VM.GPU.A10.1"


def test_provider_create_fails_with_the_log_lines(
    fake_oci: FakeOci, deployments: ModelDeployments, logs: LoggingSearch, oci_identity: TestIdentity
) -> None:
    md = script(deployments, polls=1, ends="FAILED", details="Container exited")
    logs.add_lines(PREDICT_LOG, [OOM])

    with pytest.raises(NotReady, match="CUDA out of memory"):
        ReadinessProvider(polling=FAST_POLL).create(props_for(fake_oci, md, oci_identity))


def test_provider_rechecks_only_when_what_it_guards_changes(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments)
    provider = ReadinessProvider(polling=FAST_POLL)
    olds = provider.create(props_for(fake_oci, md, oci_identity)).outs
    news = props_for(fake_oci, md, oci_identity)

    same = provider.diff("id", olds, news)
    assert not same.changes

    new_image = props_for(fake_oci, md, oci_identity, triggers={**news["triggers"], "image": "img@sha256:bb"})
    assert provider.diff("id", olds, new_image).replaces == ["triggers"]

    auth_only = props_for(
        fake_oci, md, oci_identity, auth={"mode": "api_key", "profile": "OTHER", "configFile": "x"}
    )
    assert not provider.diff("id", olds, auth_only).changes

    longer = props_for(fake_oci, md, oci_identity, timeoutMinutes=90)
    diff = provider.diff("id", olds, longer)
    assert diff.changes and not diff.replaces
    kept = provider.update("id", olds, longer).outs
    assert kept["checkedAt"] == olds["checkedAt"] and kept["timeoutMinutes"] == 90
    assert len(fake_oci.requests("Predict")) == 1  # no new smoke prompt

    reworded = props_for(fake_oci, md, oci_identity, smokePrompt="Name a colour.")
    provider.update("id", olds, reworded)
    assert len(fake_oci.requests("Predict")) == 2
    assert md.engine.received[-1]["inputs"] == "Name a colour."


def test_provider_check_refuses_a_bad_timeout(
    fake_oci: FakeOci, deployments: ModelDeployments, oci_identity: TestIdentity
) -> None:
    md = script(deployments)

    result = ReadinessProvider().check({}, props_for(fake_oci, md, oci_identity, timeoutMinutes=0))

    assert [(f.property, f.reason) for f in result.failures] == [
        ("timeoutMinutes", "timeoutMinutes must be a positive number of minutes, got 0")
    ]
    assert fake_oci.requests() == []


def test_a_failed_call_is_one_line_that_says_whether_the_service_refused_or_never_answered() -> None:
    refused = oci.exceptions.ServiceError(404, "NotAuthorizedOrNotFound", {}, "job not found")
    unreachable = ConnectionRefusedError(111, "Connection   refused")
    assert isinstance(refused, SERVICE_FAILURES) and isinstance(unreachable, SERVICE_FAILURES)

    assert cannot("read job run r1", "Data Science", refused) == (
        "cannot read job run r1: 404 NotAuthorizedOrNotFound: job not found"
    )
    assert cannot("read job run r1", "Data Science", unreachable) == (
        "cannot reach Data Science to read job run r1: ConnectionRefusedError: [Errno 111] Connection refused"
    )
