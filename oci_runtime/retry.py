"""Bounded exponential backoff with full jitter, on 429, 5xx and connection errors only.

One policy for every kind of I/O the project does: OCI SDK calls (through `oci_retry_strategy`, so the
SDK's own retry machinery runs it) and plain HTTP calls such as predict requests (through `retry_call`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """`attempts` calls in all, sleeping up to `base_s * 2**n` (at most `cap_s`) between them."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 20.0
    total_s: float = 600.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_s < 0 or self.cap_s < 0 or self.total_s <= 0:
            raise ValueError("backoff times must be positive")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The sleeps between attempts: `attempts - 1` values, full jitter."""
        pick = (rng or random).uniform
        for n in range(self.attempts - 1):
            yield pick(0.0, min(self.cap_s, self.base_s * (2**n)))


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
        import requests

        if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
    except ImportError:  # pragma: no cover - requests comes with oci
        pass
    try:
        import oci

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
    """Call `fn` until it succeeds, a non-retryable error occurs, or the attempts or time run out.

    The last error is re-raised unchanged, so callers can still read its status and message.
    """
    start = clock()
    delays = backoff.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            delay = next(delays, None)
            if delay is None or not retryable(exc) or clock() - start + delay > backoff.total_s:
                raise
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)


def oci_retry_strategy(backoff: Backoff = DEFAULT_BACKOFF) -> Any:
    """The same policy as an oci SDK retry strategy (full jitter; 429, 5xx, timeouts, connection errors)."""
    import oci

    return oci.retry.RetryStrategyBuilder(
        max_attempts_check=True,
        max_attempts=backoff.attempts,
        total_elapsed_time_check=True,
        total_elapsed_time_seconds=int(backoff.total_s),
        retry_max_wait_between_calls_seconds=backoff.cap_s,
        retry_base_sleep_time_seconds=backoff.base_s,
        service_error_check=True,
        service_error_retry_config={429: []},
        service_error_retry_on_any_5xx=True,
        backoff_type=oci.retry.BACKOFF_FULL_JITTER_VALUE,
    ).get_retry_strategy()
