"""The one schedule for retries and polls (oci_runtime/retry.py), on a fake clock: no real waiting."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_runtime.retry import Backoff, is_retryable, poll, retry_call

ROOT = Path(__file__).resolve().parent.parent


class Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"status {status}")
        self.status = status


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(*errors: BaseException, then: str = "ok") -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return then

    return calls, fn


def test_retryable_errors_are_retried_with_full_jitter_below_the_doubling_cap() -> None:
    time = FakeTime()
    backoff = Backoff(attempts=6, base_s=1.0, cap_s=3.0, total_s=1000)
    calls, fn = failing(Status(503), Status(429), ConnectionError("reset"), Status(500), Status(502))
    seen: list[tuple[int, str, float]] = []

    result = retry_call(
        fn,  # type: ignore[arg-type]
        backoff=backoff,
        on_retry=lambda n, exc, delay: seen.append((n, str(exc), delay)),
        sleep=time.sleep,
        clock=time.clock,
    )

    assert result == "ok" and len(calls) == 6
    assert [n for n, _, _ in seen] == [1, 2, 3, 4, 5]
    assert [d for _, _, d in seen] == time.sleeps
    for n, delay in enumerate(time.sleeps):
        assert 0 <= delay <= min(3.0, 1.0 * 2**n)


@pytest.mark.parametrize("error", [Status(400), Status(401), Status(404), Status(501), ValueError("bad")])
def test_other_errors_are_raised_at_once_and_unchanged(error: BaseException) -> None:
    time = FakeTime()
    calls, fn = failing(error)

    with pytest.raises(type(error)) as caught:
        retry_call(fn, sleep=time.sleep, clock=time.clock)  # type: ignore[arg-type]

    assert caught.value is error and len(calls) == 1 and time.sleeps == []


def test_the_last_error_is_raised_when_the_attempts_run_out() -> None:
    time = FakeTime()
    errors = [Status(503) for _ in range(4)]
    calls, fn = failing(*errors)

    with pytest.raises(Status) as caught:
        retry_call(fn, backoff=Backoff(attempts=3, base_s=0.1, cap_s=0.1), sleep=time.sleep, clock=time.clock)  # type: ignore[arg-type]

    assert caught.value is errors[2] and len(calls) == 3 and len(time.sleeps) == 2


def test_no_retry_is_made_whose_sleep_would_end_past_the_total_time() -> None:
    time = FakeTime()
    calls, fn = failing(*[Status(503)] * 100)

    with pytest.raises(Status):
        retry_call(
            fn,  # type: ignore[arg-type]
            backoff=Backoff(attempts=None, base_s=1.0, cap_s=1.0, total_s=5.0),
            sleep=time.sleep,
            clock=time.clock,
        )

    assert time.now <= 5.0 and 1 < len(calls) < 100


def test_retryable_is_429_5xx_but_501_and_connection_errors() -> None:
    assert all(is_retryable(Status(s)) for s in (429, 500, 502, 503, 504))
    assert not any(is_retryable(Status(s)) for s in (400, 401, 403, 404, 409, 501))
    assert is_retryable(ConnectionResetError()) and is_retryable(TimeoutError())
    assert not is_retryable(ValueError())


def test_poll_reads_until_done_sleeping_on_the_schedule() -> None:
    time = FakeTime()
    states = iter(["CREATING", "CREATING", "UPDATING", "ACTIVE", "never read"])

    last, done = poll(
        lambda: next(states),
        lambda s: s == "ACTIVE",
        backoff=Backoff(attempts=None, base_s=1.0, cap_s=2.0, total_s=100),
        sleep=time.sleep,
        clock=time.clock,
    )

    assert (last, done) == ("ACTIVE", True)
    assert len(time.sleeps) == 3 and all(0 <= s <= min(2.0, 2**n) for n, s in enumerate(time.sleeps))


def test_poll_gives_back_the_last_state_at_the_deadline_and_never_sleeps_past_it() -> None:
    time = FakeTime()
    reads: list[float] = []

    def read() -> str:
        reads.append(time.now)
        return "CREATING"

    last, done = poll(
        read,
        lambda s: s == "ACTIVE",
        backoff=Backoff(attempts=None, base_s=1.0, cap_s=4.0, total_s=10.0),
        sleep=time.sleep,
        clock=time.clock,
    )

    assert (last, done) == ("CREATING", False)
    assert time.now <= 10.0 and reads[-1] == time.now  # a last read at the deadline, then no more
    assert len(reads) >= 3


def test_poll_lets_a_read_error_through() -> None:
    time = FakeTime()

    def read() -> str:
        raise Status(404)

    with pytest.raises(Status):
        poll(read, lambda s: True, backoff=Backoff(), sleep=time.sleep, clock=time.clock)
    assert time.sleeps == []


def test_within_and_for_each_read_derive_from_one_schedule() -> None:
    polling = Backoff(attempts=None, base_s=5.0, cap_s=60.0)
    assert polling.within(120.0) == Backoff(attempts=None, base_s=5.0, cap_s=60.0, total_s=120.0)
    assert polling.within(0.0).total_s > 0
    assert polling.for_each_read() == Backoff(attempts=4, base_s=5.0, cap_s=60.0, total_s=240.0)
    with pytest.raises(ValueError, match="attempts must be at least 1, got 0"):
        Backoff(attempts=0)
    with pytest.raises(ValueError, match="must be positive"):
        Backoff(total_s=0)
