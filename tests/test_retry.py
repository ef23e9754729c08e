"""The retry policy as pure logic: which errors are retried and how long to wait."""

from __future__ import annotations

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
from altcraft_async._retry import parse_retry_after

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
