"""The retry policy as pure logic (which errors are retried and how long to wait), and the
retry driver that applies it, run on a fake clock with a fake sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from altcraft_async import (
    AltcraftError,
    AuthenticationError,
    Backoff,
    DecodeError,
    HTTPStatusError,
    InvalidRequestError,
    RequestTimeoutError,
    RetryPolicy,
    TransportError,
)
from altcraft_async._retry import Try, parse_retry_after, retry_target

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def http(status: int, retry_after: str | None = None) -> HTTPStatusError:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return HTTPStatusError("x", status=status, headers=headers)


@pytest.mark.parametrize(
    ("error", "read", "start", "start_opted_in"),
    [
        (TransportError("refused", sent=False), True, True, True),
        (TransportError("reset", sent=True), True, False, True),
        (RequestTimeoutError("slow"), True, False, True),
        (http(500), True, False, True),
        (http(503), True, False, True),
        (http(429), True, True, True),
        (http(404), False, False, False),
        (DecodeError("garbage"), True, False, True),
        (AuthenticationError(401, "bad token"), False, False, False),
        (InvalidRequestError("bad"), False, False, False),
    ],
)
def test_should_retry(error: AltcraftError, read: bool, start: bool, start_opted_in: bool) -> None:
    assert RetryPolicy().should_retry(error, starts_task=False) is read
    assert RetryPolicy().should_retry(error, starts_task=True) is start
    assert RetryPolicy(retry_starts=True).should_retry(error, starts_task=True) is start_opted_in


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        # absurd dates from the network: ignored (raised OverflowError), or beyond any cap
        ("Mon, 01 Jan 99999999999999999999 00:00:00 GMT", None),
        ("Mon, -6210762351 Jan 0 0:0:0 GMT", None),
        ("Fri, 31 Dec 9999 23:59:59 -2359", 251_635_118_339.0),  # past datetime.max in UTC
        ("9" * 400, float("inf")),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_delay_honours_retry_after_over_backoff() -> None:
    policy = RetryPolicy(backoff=Backoff(initial=0.1, jitter=0.0))
    assert policy.delay(0, http(429, "2"), 0.5, NOW) == 2.0
    assert policy.delay(0, http(503), 0.5, NOW) == pytest.approx(0.1)


def test_retry_after_beyond_the_cap_gives_up() -> None:
    assert RetryPolicy(retry_after_cap=10).delay(0, http(429, "60"), 0.5, NOW) is None


def test_default_policy_tries_at_least_three_times() -> None:
    assert RetryPolicy().attempts >= 3


# --- retry_target: the one retry driver, on a fake clock (no real time passes) ---------------

EXACT = Backoff(initial=1.0, factor=2.0, max_interval=100.0, jitter=0.0)


class FakeTime:
    """A clock that only the fake sleep moves; records every pause asked for."""

    def __init__(self, *, late: float = 0.0) -> None:
        self.now = 0.0
        self.late = late  # how much later than asked each sleep wakes
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        self.now += delay + self.late


class Script:
    """An attempt that fails with the given errors in turn (each after ``spends`` seconds of
    the fake clock), then returns ``"done"``; records the tries it was given."""

    def __init__(self, time: FakeTime, *errors: AltcraftError, spends: float = 0.0) -> None:
        self.time = time
        self.errors = list(errors)
        self.spends = spends
        self.tries: list[tuple[int, float | None]] = []

    async def __call__(self, current: Try) -> str:
        self.tries.append((current.number, current.left))
        self.time.now += self.spends
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def drive(
    attempt: Callable[[Try], Awaitable[str]],
    policy: RetryPolicy,
    time: FakeTime,
    *,
    starts_task: bool = False,
    retries: list[tuple[int, float, str]] | None = None,
) -> str:
    def on_retry(tries: int, delay: float, error: AltcraftError) -> None:
        if retries is not None:
            retries.append((tries, delay, type(error).__name__))

    return await retry_target(
        attempt,
        policy,
        starts_task=starts_task,
        sleep=time.sleep,
        endpoint="segments.get_counters",
        clock=time.clock,
        rand=lambda: 0.5,
        now=lambda: NOW,
        on_retry=on_retry,
    )


@pytest.mark.anyio
async def test_success_after_failures_with_the_backoff_delays_passed_to_sleep() -> None:
    time = FakeTime()
    attempt = Script(time, http(503), TransportError("reset"), RequestTimeoutError("slow"))
    retries: list[tuple[int, float, str]] = []
    result = await drive(attempt, RetryPolicy(attempts=4, backoff=EXACT), time, retries=retries)
    assert result == "done"
    assert time.slept == [1.0, 2.0, 4.0]
    assert [number for number, _ in attempt.tries] == [0, 1, 2, 3]
    assert all(left is None for _, left in attempt.tries)  # no deadline
    assert retries == [
        (1, 1.0, "HTTPStatusError"),
        (2, 2.0, "TransportError"),
        (3, 4.0, "RequestTimeoutError"),
    ]


@pytest.mark.anyio
async def test_attempts_exhausted_raise_the_last_error() -> None:
    time = FakeTime()
    last = http(503)
    attempt = Script(time, http(500), http(502), last)
    with pytest.raises(HTTPStatusError) as info:
        await drive(attempt, RetryPolicy(attempts=3, backoff=EXACT), time)
    assert info.value is last and len(attempt.tries) == 3
    assert time.slept == [1.0, 2.0]  # no pause after the last try


@pytest.mark.anyio
async def test_a_non_retryable_error_ends_at_once() -> None:
    time = FakeTime()
    attempt = Script(time, AuthenticationError(401, "bad token"))
    with pytest.raises(AuthenticationError):
        await drive(attempt, RetryPolicy(attempts=5, backoff=EXACT), time)
    assert len(attempt.tries) == 1 and time.slept == []


@pytest.mark.anyio
async def test_a_start_is_retried_only_when_its_request_never_left() -> None:
    time = FakeTime()
    attempt = Script(time, TransportError("refused", sent=False), TransportError("reset"))
    with pytest.raises(TransportError) as info:
        await drive(attempt, RetryPolicy(attempts=5, backoff=EXACT), time, starts_task=True)
    assert info.value.sent is True and len(attempt.tries) == 2 and time.slept == [1.0]


@pytest.mark.anyio
async def test_retry_after_is_honoured_and_beyond_the_cap_gives_up() -> None:
    time = FakeTime()
    attempt = Script(time, http(429, "7"), http(429, "60"))
    policy = RetryPolicy(attempts=5, backoff=EXACT, retry_after_cap=30)
    with pytest.raises(HTTPStatusError) as info:
        await drive(attempt, policy, time)
    assert time.slept == [7.0]  # Retry-After over the 1 s backoff; then 60 s is past the cap
    assert info.value.headers["Retry-After"] == "60" and len(attempt.tries) == 2


@pytest.mark.anyio
async def test_the_deadline_cuts_a_pause_that_would_end_past_it() -> None:
    time = FakeTime()
    attempt = Script(time, http(503), http(503), spends=1.0)
    policy = RetryPolicy(attempts=10, backoff=EXACT, deadline=4.5)
    with pytest.raises(HTTPStatusError):
        await drive(attempt, policy, time)
    # try 1 ends at 1.0, pause 1.0; try 2 ends at 3.0: a 2.0 pause would reach 5.0 > 4.5
    assert time.slept == [1.0]
    assert attempt.tries == [(0, 4.5), (1, 2.5)]  # each try told what is left of the deadline


@pytest.mark.parametrize("sent", [True, False])
@pytest.mark.anyio
async def test_a_deadline_expiring_during_a_try_is_a_timeout_that_says_if_it_was_sent(
    sent: bool,
) -> None:
    """The pause woke late (the fake clock says so): the deadline is past when try 2 starts,
    and that try, stuck, is cut at once; its error tells what the try had marked."""
    time = FakeTime(late=5.0)
    stuck = asyncio.Event()

    async def attempt(current: Try) -> str:
        if current.number == 0:
            raise http(503)
        current.sent = sent
        await stuck.wait()
        raise AssertionError("not reached")

    policy = RetryPolicy(attempts=3, backoff=EXACT, deadline=3.0)
    with pytest.raises(RequestTimeoutError) as info:
        await drive(attempt, policy, time)
    assert info.value.sent is sent and info.value.endpoint == "segments.get_counters"
    assert "retry deadline" in str(info.value)
    assert info.value.__context__ is None  # not the cancellation, nor the 503


@pytest.mark.anyio
async def test_a_timeout_raised_by_the_try_itself_is_not_the_deadline() -> None:
    time = FakeTime()
    own = RequestTimeoutError("per-try timeout", sent=True)
    attempt = Script(time, own)
    with pytest.raises(RequestTimeoutError) as info:
        await drive(attempt, RetryPolicy(attempts=1, deadline=10.0), time)
    assert info.value is own


@pytest.mark.anyio
async def test_errors_that_are_not_ours_are_never_retried() -> None:
    time = FakeTime()

    async def attempt(current: Try) -> str:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await drive(attempt, RetryPolicy(attempts=5, backoff=EXACT), time)
    assert time.slept == []
