"""Which failed requests to retry and when: the retry policy as pure logic.

Reads and status polls are retried on connection errors, timeouts, 5xx, 429 and unreadable
replies. Calls that *start* a task are not retried after the request may have reached the
server (a retry could start a duplicate task) unless the caller opts in; they are retried when
the request provably never left (connection refused) or was refused with 429.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from attrs import field, frozen

from ._errors import AltcraftError, APIError, DecodeError, HTTPStatusError, TransportError
from ._poll import Backoff
from .models._checks import number_in_range

__all__ = ["RetryPolicy", "http_status_of", "parse_retry_after"]


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
