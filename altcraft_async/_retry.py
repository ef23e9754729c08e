"""Which failed requests to retry and when: the retry policy as pure logic, and the driver.

Reads and status polls are retried on connection errors, timeouts, 5xx, 429 and unreadable
replies. Calls that *start* a task are not retried after the request may have reached the
server (a retry could start a duplicate task) unless the caller opts in; they are retried when
the request provably never left (connection refused) or was refused with 429.

:func:`retry_target` drives any attempt under a policy (in the shape of google-api-core's
``retry_target``): tries, pauses and the overall deadline, with the clock, the pause and the
jitter passed in, so that it runs as well on a fake clock as on the loop's.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from attrs import field, frozen

from ._errors import (
    AltcraftError,
    APIError,
    DecodeError,
    HTTPStatusError,
    RequestTimeoutError,
    TransportError,
)
from ._poll import Backoff
from .models._checks import number_in_range

__all__ = [
    "OnRetry",
    "RetryPolicy",
    "Try",
    "http_status_of",
    "parse_retry_after",
    "retry_pause",
    "retry_target",
]

T = TypeVar("T")


# delta-seconds; fractions are accepted too (some proxies and test servers send "0.25")
_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
_RETRY_BACKOFF = Backoff(initial=0.1, factor=2.0, max_interval=5.0, jitter=1.0)


@frozen
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter.

    - ``attempts``: tries in all, the first included.
    - ``backoff``: delays between tries (full jitter by default).
    - ``retry_after_cap``: longest ``Retry-After`` honoured; a longer one ends the retries.
    - ``deadline``: seconds for all tries together (None: bounded by ``attempts`` only).
    - ``retry_starts``: also retry task-starting calls after the request may have been sent.
    """

    attempts: int = field(default=4, validator=number_in_range(at_least=1, integer=True))
    backoff: Backoff = _RETRY_BACKOFF
    retry_after_cap: float = field(
        default=30.0, validator=number_in_range(at_least=0.0, unbounded=True)
    )
    deadline: float | None = field(
        default=None, validator=number_in_range(above=0.0, optional=True, unbounded=True)
    )
    retry_starts: bool = False

    def should_retry(self, error: AltcraftError, *, starts_task: bool) -> bool:
        """Whether ``error`` is worth another try for a call of this kind.

        The HTTP status counts whether or not the reply carried an Altcraft envelope: an
        envelope error sent with HTTP 503 or 429 is as transient as a bare one.
        """
        status = http_status_of(error)
        if status == 429:
            return True  # refused before processing: safe even for a start
        if status is not None:
            transient = status >= 500
        elif isinstance(error, TransportError):
            if not error.transient:
                return False
            if not error.sent:
                return True  # never left: safe even for a start
            transient = True
        else:
            transient = isinstance(error, DecodeError) and error.transient
        return transient and (not starts_task or self.retry_starts)

    def delay(self, attempt: int, error: AltcraftError, rand: float, now: datetime) -> float | None:
        """Seconds before try ``attempt + 1`` (0-based ``attempt`` just failed); None: give up."""
        wait = self.backoff.delay(attempt, rand)
        if isinstance(error, HTTPStatusError | APIError):
            retry_after = parse_retry_after(error.headers.get("Retry-After"), now)
            if retry_after is not None:
                if retry_after > self.retry_after_cap:
                    return None
                wait = max(wait, retry_after)
        return wait


def http_status_of(error: AltcraftError) -> int | None:
    """The HTTP status behind an error, or None (APIErrors sent with HTTP 200 included)."""
    if isinstance(error, HTTPStatusError):
        return error.status
    if isinstance(error, APIError) and error.http_status is not None:
        status = error.http_status
        return status if status >= 500 or status == 429 else None
    return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None.

    The header comes from the network: whatever it holds ends in a number (``inf`` for a
    delta too long for a float, which is then beyond any cap) or None, never an exception. A
    date that cannot be represented (the parser overflows on a year or day of 20 digits) is
    as unreadable as any other garbage, and ignored: the policy's own backoff applies.
    """
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Try:
    """One try as :func:`retry_target` hands it to the attempt: its ``number`` (0 for the
    first), the seconds ``left`` of the policy's deadline when it starts (None: no deadline)
    and ``sent``, which the attempt sets once its request may have reached the server (what
    a deadline cutting the try short reports)."""

    __slots__ = ("left", "number", "sent")

    def __init__(self, number: int, left: float | None) -> None:
        self.number = number
        self.left = left
        self.sent = False

    def __repr__(self) -> str:
        return f"<try {self.number + 1}, sent={self.sent}>"


#: Called before each retry's pause: the number of the failed try (from 1), the pause, the error.
OnRetry = Callable[[int, float, AltcraftError], object]


async def retry_target(
    attempt: Callable[[Try], Awaitable[T]],
    policy: RetryPolicy,
    *,
    starts_task: bool,
    sleep: Callable[[float], Awaitable[object]],
    endpoint: str = "",
    clock: Callable[[], float] = time.monotonic,
    rand: Callable[[], float] = random.random,
    now: Callable[[], datetime] = _utc_now,
    on_retry: OnRetry | None = None,
) -> T:
    """Await ``attempt`` until it succeeds or ``policy`` gives up, and return its result.

    This owns the tries and nothing else: which errors are retried, the pause before each
    retry (``Retry-After`` included), and the policy's deadline over all tries, each try cut
    short when it runs past it (a :class:`RequestTimeoutError` whose ``sent`` is the try's).
    A pause that would end past the deadline is not taken: the try's own error is raised.
    Only :class:`AltcraftError` is retried; anything else (cancellation included) ends the
    call as it is. ``sleep`` is the pause (the client's is cut short by closing the client),
    ``clock`` the seconds the deadline is measured in (a try itself is cut by the running
    loop's timer, the ``left`` seconds after it starts), ``rand`` the jitter, ``now`` the
    date ``Retry-After`` dates are read against.
    """
    deadline = policy.deadline
    started = 0.0 if deadline is None else clock()
    number = 0
    while True:
        current = Try(number, None if deadline is None else deadline - (clock() - started))
        try:
            if current.left is None:
                return await attempt(current)
            return await _by_deadline(attempt(current), current, endpoint)
        except AltcraftError as error:
            number += 1
            delay = retry_pause(policy, number, error, starts_task, rand, now)
            if delay is None:
                raise
            if deadline is not None and delay >= deadline - (clock() - started):
                raise
            if on_retry is not None:
                on_retry(number, delay, error)
        # outside the except block: an error of the sleep does not carry the try's as context
        await sleep(delay)


def retry_pause(
    policy: RetryPolicy,
    tries: int,
    error: AltcraftError,
    starts_task: bool,
    rand: Callable[[], float],
    now: Callable[[], datetime] = _utc_now,
) -> float | None:
    """The pause before another try after ``tries`` failed ones, the last with ``error``,
    or None: give up (what :func:`retry_target` decides; a driver of its own, the send
    path's, asks it too)."""
    if tries >= policy.attempts or not policy.should_retry(error, starts_task=starts_task):
        return None
    return policy.delay(tries - 1, error, rand(), now())


async def _by_deadline(trying: Awaitable[T], current: Try, endpoint: str) -> T:
    """Await one try within the seconds left of the deadline; past them, a
    RequestTimeoutError that says whether the try had sent its request."""
    assert current.left is not None
    try:
        async with asyncio.timeout(max(current.left, 0.0)) as deadline:
            return await trying
    except TimeoutError:
        if not deadline.expired():  # the try's own timeout, or a hook's: not the deadline
            raise
    where = f"{endpoint}: " if endpoint else ""
    raise RequestTimeoutError(
        f"{where}no reply within the retry deadline", endpoint=endpoint, sent=current.sent
    )
