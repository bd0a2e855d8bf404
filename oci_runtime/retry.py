"""The project's one schedule for retries and polls: bounded exponential backoff with full jitter.

`Backoff` is the only configuration type. It drives
- retries of one call, on 429, 5xx and connection errors only: OCI SDK calls through `oci_retry_strategy`
  (the SDK's own retry machinery runs it) and plain HTTP calls such as predict requests through
  `retry_call` (tenacity runs it);
- polls of a slow operation until it settles (a deployment going ACTIVE, a job run or a work request
  ending) through `poll` (tenacity again), which gives back the last state read, so that a caller that
  gives up can say what state it gave up in and fetch the diagnostics.

`sleep` and `clock` are parameters everywhere, so tests pass tiny waits or a fake clock.

Third-party modules (tenacity, requests, oci) are imported where they are used: the serving image's
launcher imports this module for `oci_retry_strategy` alone (its image vendors the oci SDK, nothing
else), and the training entrypoint's import chain runs on the standard library (tests/test_fine_tune.py).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import oci
import requests
import tenacity

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """At most `attempts` calls (None: as many as `total_s` allows) within `total_s` seconds, sleeping a
    random time (full jitter) up to `base_s`, `2 * base_s`, `4 * base_s`, ... (at most `cap_s`) between
    them."""

    attempts: int | None = 6
    base_s: float = 0.5
    cap_s: float = 20.0
    total_s: float = 600.0

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_s < 0 or self.cap_s < 0 or self.total_s <= 0:
            raise ValueError("backoff times must be positive")

    def within(self, total_s: float) -> Backoff:
        """The same schedule, unbounded in attempts, ending `total_s` from its start (a caller's deadline)."""
        return dataclasses.replace(self, attempts=None, total_s=max(total_s, 1e-3))

    def for_each_read(self) -> Backoff:
        """Retries of one status or log read (429/5xx/connection errors) inside a poll: a few, quickly."""
        return dataclasses.replace(self, attempts=4, total_s=max(4 * self.cap_s, 1.0))


DEFAULT_BACKOFF = Backoff()


def status_of(exc: BaseException) -> int | None:
    """The HTTP status carried by an exception from the oci SDK, requests or urllib, if any."""
    for attr in ("status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def is_retryable(exc: BaseException) -> bool:
    """429 and 5xx (but not 501) from a service, and connection-level failures; nothing else."""
    status = status_of(exc)
    if status is not None:
        return status in RETRYABLE_STATUSES
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
    except ImportError:  # pragma: no cover - requests comes with oci
        pass
    try:
        return isinstance(exc, oci.exceptions.RequestException | oci.exceptions.ConnectTimeout)
    except ImportError:  # pragma: no cover
        return False


def retry_call(
    fn: Callable[[], T],
    *,
    backoff: Backoff = DEFAULT_BACKOFF,
    retryable: Callable[[BaseException], bool] = is_retryable,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call `fn` until it succeeds, a non-retryable error occurs, or the attempts or time run out (a retry
    whose sleep would end past `total_s` is not made).

    The last error is re-raised unchanged, so callers can still read its status and message.
    """

    start = clock()

    def out_of_time(state: tenacity.RetryCallState) -> bool:
        return clock() - start + (state.upcoming_sleep or 0.0) > backoff.total_s

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None:
            on_retry(state.attempt_number, _exception(state), state.upcoming_sleep)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable),
        wait=_jitter(backoff),
        stop=_stop(backoff, out_of_time),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)


def poll(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    backoff: Backoff,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[T, bool]:
    """`read()` until `done(last)` or `backoff.total_s` has passed (or its attempts are spent), sleeping on
    the backoff's schedule but never past the deadline. Returns the last thing read and whether it was done.
    Errors from `read` propagate unchanged."""

    deadline = clock() + backoff.total_s
    jitter = _jitter(backoff)

    def until_deadline(state: tenacity.RetryCallState) -> float:
        return max(min(jitter(state), deadline - clock()), 0.0)

    def past_deadline(_state: tenacity.RetryCallState) -> bool:
        return deadline - clock() <= 0

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda last: not done(last)),
        wait=until_deadline,
        stop=_stop(backoff, past_deadline),
        retry_error_callback=_result,  # out of time: the last read, not an error
        sleep=sleep,
    )
    last: T = retrying(read)
    return last, done(last)


def _jitter(backoff: Backoff) -> tenacity.wait.wait_base:
    """tenacity's full jitter: uniform in [0, min(cap_s, base_s * 2**(n-1))] after the n-th attempt."""

    return tenacity.wait_random_exponential(multiplier=backoff.base_s, max=backoff.cap_s)


def _stop(
    backoff: Backoff, out_of_time: Callable[[tenacity.RetryCallState], bool]
) -> Callable[[tenacity.RetryCallState], bool]:
    """Stop when the backoff's attempts are spent or `out_of_time` says so."""

    def stop(state: tenacity.RetryCallState) -> bool:
        spent = backoff.attempts is not None and state.attempt_number >= backoff.attempts
        return spent or out_of_time(state)

    return stop


def _exception(state: tenacity.RetryCallState) -> BaseException:
    assert state.outcome is not None
    exc = state.outcome.exception()
    assert exc is not None
    return exc


def _result(state: tenacity.RetryCallState) -> Any:
    assert state.outcome is not None
    return state.outcome.result()


def oci_retry_strategy(backoff: Backoff = DEFAULT_BACKOFF) -> Any:
    """The same policy as an oci SDK retry strategy (full jitter; 429, 5xx, timeouts, connection errors)."""

    return oci.retry.RetryStrategyBuilder(
        max_attempts_check=backoff.attempts is not None,
        max_attempts=backoff.attempts or 1,
        total_elapsed_time_check=True,
        total_elapsed_time_seconds=int(backoff.total_s),
        retry_max_wait_between_calls_seconds=backoff.cap_s,
        retry_base_sleep_time_seconds=backoff.base_s,
        service_error_check=True,
        service_error_retry_config={429: []},
        service_error_retry_on_any_5xx=True,
        backoff_type=oci.retry.BACKOFF_FULL_JITTER_VALUE,
    ).get_retry_strategy()
