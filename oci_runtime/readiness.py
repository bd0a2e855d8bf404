"""Is a model deployment ready? ACTIVE, and it has answered a real prompt; if not, why not.

The Readiness dynamic provider runs `check_readiness` after each ModelDeployment. A deployment that goes
ACTIVE may still fail its first request (weights loading, a crash on the first batch), so the check ends
only with a non-empty completion from the predict URL. When the deployment fails, stalls or will not
answer, the error carries what a user would otherwise dig out of the console: the lifecycle details, the
last work request's errors, and the last lines of the predict and access logs (where "CUDA out of
memory" or "401 from Hugging Face" shows up).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import oci

from domain.errors import UserError
from oci_runtime.auth import Auth, make_client
from oci_runtime.logsearch import SERVICE_FAILURES, UNREACHABLE, LogSource, cannot, log_tails, reason
from oci_runtime.predict import Api, GenerationParams, PredictClient, PredictError
from oci_runtime.retry import Backoff, poll

ACTIVE = "ACTIVE"
FAILED_STATES = frozenset({"FAILED", "NEEDS_ATTENTION", "INACTIVE", "DELETING", "DELETED"})
SMOKE_PARAMS = GenerationParams(max_new_tokens=16)  # values both engines accept
SMOKE_REQUEST_TIMEOUT_S = 120.0  # a first request can be slow: compilation, cache warm-up
WORK_REQUEST_ERRORS = 5


POLLING = Backoff(attempts=None, base_s=5.0, cap_s=60.0)
"""Status reads of a deployment: 5 s, doubling, at most 60 s apart (full jitter), until the timeout."""


@dataclass(frozen=True, kw_only=True)
class ReadinessCheck:
    """What to check. `endpoints` points services elsewhere ({"datascience", "loggingsearch"}: URL)."""

    deployment_id: str
    deployment_url: str
    region: str
    smoke_prompt: str
    timeout_s: float
    auth: Auth = field(default_factory=Auth)
    log_group_id: str | None = None
    predict_log_id: str | None = None
    access_log_id: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=dict)
    polling: Backoff = POLLING  # its total_s is replaced by timeout_s
    api: str = "legacy"  # how the smoke prompt is sent (oci_runtime.predict.APIS)
    model: str | None = None  # the served model name, for the OpenAI APIs

    @property
    def predict_url(self) -> str:
        return f"{self.deployment_url.rstrip('/')}/predict"

    @property
    def stream_url(self) -> str:
        return f"{self.deployment_url.rstrip('/')}/predictWithResponseStream"


@dataclass(frozen=True, kw_only=True)
class Ready:
    predict_url: str
    stream_url: str
    state: str
    smoke_latency_ms: int
    checked_at: str


class NotReady(UserError):
    """The deployment failed, stalled or did not answer; the message holds the diagnostics, one per line."""

    exit_code = 1


def check_readiness(
    check: ReadinessCheck,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Ready:
    """Wait for ACTIVE (bounded by `timeout_s`), then require a non-empty completion of the smoke prompt."""

    started = clock()
    deadline = started + check.timeout_s
    began_at = dt.datetime.now(dt.UTC)
    data_science = make_client(
        oci.data_science.DataScienceClient,
        check.auth,
        region=check.region,
        endpoint=check.endpoints.get("datascience"),
        backoff=check.polling.for_each_read(),
    )
    deployment = _wait_until_active(check, data_science, deadline, clock, sleep, began_at)

    latency_start = [clock()]

    def restart_timer(_attempt: int, _exc: BaseException, delay: float) -> None:
        latency_start[0] = clock() + delay

    remaining = max(deadline - clock(), 0.0)
    client = PredictClient(
        check.predict_url,
        auth=check.auth,
        timeout_s=SMOKE_REQUEST_TIMEOUT_S,  # one answer may take this long, even near the deadline
        backoff=check.polling.within(remaining),
        stream_endpoint=check.stream_url,
        on_retry=restart_timer,
        sleep=sleep,
        clock=clock,  # the retries end at the same deadline as the wait for ACTIVE
        api=cast(Api, check.api),
        model=check.model,
    )
    try:
        completion = client.predict(check.smoke_prompt, SMOKE_PARAMS)
    except PredictError as exc:
        raise _not_ready(
            f"model deployment {check.deployment_id} is ACTIVE but its smoke prompt failed: {exc}",
            check,
            data_science,
            deployment,
            began_at,
        ) from None
    latency_ms = round((clock() - latency_start[0]) * 1000)
    if not completion.strip():
        raise _not_ready(
            f"model deployment {check.deployment_id} is ACTIVE but answered the smoke prompt with an empty "
            f"completion",
            check,
            data_science,
            deployment,
            began_at,
        )
    return Ready(
        predict_url=check.predict_url,
        stream_url=check.stream_url,
        state=ACTIVE,
        smoke_latency_ms=max(latency_ms, 0),
        checked_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def _wait_until_active(
    check: ReadinessCheck,
    data_science: Any,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    began_at: dt.datetime,
) -> Any:

    def read() -> Any:
        try:
            return data_science.get_model_deployment(check.deployment_id).data
        except SERVICE_FAILURES as exc:
            raise NotReady(
                cannot(f"read model deployment {check.deployment_id}", "Data Science", exc)
            ) from None

    deployment, settled = poll(
        read,
        lambda d: str(d.lifecycle_state) in {ACTIVE, *FAILED_STATES},
        backoff=check.polling.within(deadline - clock()),
        clock=clock,
        sleep=sleep,
    )
    state = deployment.lifecycle_state
    if state == ACTIVE:
        return deployment
    if settled:
        headline = f"model deployment {check.deployment_id} is {state}"
    else:
        minutes = check.timeout_s / 60
        headline = (
            f"model deployment {check.deployment_id} is still {state} after {minutes:g} minutes "
            "(readiness.timeoutMinutes)"
        )
    raise _not_ready(headline, check, data_science, deployment, began_at)


def _not_ready(
    headline: str, check: ReadinessCheck, data_science: Any, deployment: Any, began_at: dt.datetime
) -> NotReady:
    lines = [headline]
    details = getattr(deployment, "lifecycle_details", None)
    if details:
        lines.append(f"lifecycle details: {details}")
    lines += _work_request_errors(data_science, deployment, check.deployment_id)
    lines += _log_tails(check, deployment, began_at)
    return NotReady("\n".join(lines))


def _work_request_errors(data_science: Any, deployment: Any, deployment_id: str) -> list[str]:

    try:
        requests = data_science.list_work_requests(
            deployment.compartment_id,
            resource_id=deployment_id,
            sort_by="timeAccepted",
            sort_order="DESC",
            limit=1,
        ).data
        if not requests:
            return []
        latest = requests[0]
        errors = data_science.list_work_request_errors(latest.id).data
    except oci.exceptions.ServiceError as exc:
        return [f"work requests: not readable ({exc.status} {exc.code})"]
    except UNREACHABLE as exc:
        return [f"work requests: not readable ({reason(exc)})"]
    if not errors:
        return [f"work request {latest.id} ({latest.operation_type}): {latest.status}, no errors recorded"]
    lines = [f"work request {latest.id} ({latest.operation_type}) is {latest.status}:"]
    lines += [f"  {error.code}: {error.message}" for error in errors[-WORK_REQUEST_ERRORS:]]
    return lines


def _log_tails(check: ReadinessCheck, deployment: Any, began_at: dt.datetime) -> list[str]:
    logs = [
        LogSource(label=label, log_id=log_id)
        for label, log_id in (("predict", check.predict_log_id), ("access", check.access_log_id))
        if log_id
    ]
    if not check.log_group_id or not logs:
        return ["logs: none configured for this deployment"]
    return log_tails(
        auth=check.auth,
        region=check.region,
        compartment_id=deployment.compartment_id,
        log_group_id=check.log_group_id,
        logs=logs,
        since=began_at - dt.timedelta(minutes=10),
        endpoints=check.endpoints,
        backoff=check.polling.for_each_read(),
    )
