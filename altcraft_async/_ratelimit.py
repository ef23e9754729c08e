"""The client-side rate limit: one request rate over every HTTP try of a client.

The send path asks a limiter for a slot before each try and tells it how the try went, through
:class:`RateLimiterProtocol`; :class:`RateLimiter` is the in-process implementation. A limiter
shared by several processes (a Redis one, say: ``designs/fleet.md``) plugs in with
``AltcraftClient(rate_limiter=...)``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["RateLimiter", "RateLimiterProtocol", "Sleep"]

#: Waits the given seconds; the client's own one is cut short by closing the client.
Sleep = Callable[[float], Awaitable[object]]


@runtime_checkable
class RateLimiterProtocol(Protocol):
    """What the send path needs of a rate limiter.

    ``acquire`` waits for the next slot with the ``sleep`` it is given (so that closing the
    client ends the wait) and returns its pacing time: the ``time.monotonic()`` reading when
    the request asked for its slot. A try answered with HTTP 429 is reported with
    ``on_rate_limited(paced_at)``, a successful one with ``on_success()``; both are called
    synchronously on the send path and must not block.
    """

    async def acquire(self, sleep: Sleep) -> float: ...

    def on_rate_limited(self, paced_at: float) -> None: ...

    def on_success(self) -> None: ...


class RateLimiter:
    """Requests per second shared by every call of a client (polls included).

    Each request takes the next free slot on a schedule spaced ``1/rate`` apart. In adaptive
    mode a 429 halves the rate (down to ``min_rate``) and each success wins back a little.
    """

    def __init__(self, rate: float, *, adaptive: bool = False, min_rate: float = 0.5) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.max_rate = rate
        self.rate: float = rate
        self.adaptive = adaptive
        self.min_rate: float = min(min_rate, rate)
        self._next_slot = 0.0
        self._last_cut = 0.0  # when the rate was last halved
        #: Slots given back while later ones were still taken: their end -> their start.
        self._freed: dict[float, float] = {}

    async def acquire(self, sleep: Sleep = anyio.sleep) -> float:
        """Wait for the next slot; returns when the request asked for it (its pacing time).

        ``sleep`` waits for the slot: the client passes one that closing the client cuts short.
        """
        now = time.monotonic()
        if self._freed:  # forget slots that are past by now
            self._freed = {end: start for end, start in self._freed.items() if end > now}
        slot = max(now, self._next_slot)
        self._next_slot = after = slot + 1.0 / self.rate
        if slot > now:
            try:
                await sleep(slot - now)
            except BaseException:
                self._give_back(slot, after)
                raise
        return now

    def _give_back(self, slot: float, after: float) -> None:
        """Return a slot whose waiter was cancelled. Only the end of the schedule can shrink
        (moving others' slots could break the rate), so a slot in the middle is remembered and
        returned too once every slot after it has been given back."""
        if self._next_slot != after:
            self._freed[after] = slot
            return
        while slot in self._freed:
            slot = self._freed.pop(slot)
        self._next_slot = slot

    def on_rate_limited(self, paced_at: float) -> None:
        """A request paced at ``paced_at`` (what :meth:`acquire` returned) got HTTP 429. Only
        requests paced after the last cut count: a burst of 429s answering requests paced at
        the old rate says the same thing once, not once per request."""
        if self.adaptive and paced_at >= self._last_cut:
            self.rate = max(self.min_rate, self.rate / 2)
            self._last_cut = time.monotonic()

    def on_success(self) -> None:
        if self.adaptive and self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate * 1.05)
