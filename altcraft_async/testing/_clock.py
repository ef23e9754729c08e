"""Server clocks: the fake's notion of time, so slow tasks can be tested in milliseconds.

Task plans (``after_seconds``), progress and every recorded timestamp read the server clock,
never ``time`` directly. Three flavours:

* :class:`RealClock` — wall time; with ``time_scale=10`` a virtual second lasts 0.1 s, so a
  realistic "5 s task" finishes in half a second of a demo.
* :class:`ManualClock` — time stands still until the test calls :meth:`ManualClock.advance`;
  timers due by then fire inside ``advance``, in order, so a test of a 10-minute task takes
  no real time and no ``sleep``.

Clock readings are virtual seconds since the clock started; :meth:`Clock.wall` turns one into
the UTC timestamp the fake writes into replies (``updated``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["DEFAULT_EPOCH", "Clock", "ManualClock", "RealClock", "Timer"]

#: Where a :class:`ManualClock` starts by default: a fixed instant keeps replies reproducible.
DEFAULT_EPOCH = datetime(2024, 4, 19, 13, 31, 8, tzinfo=UTC)


class Timer(Protocol):
    """A scheduled callback that can still be called off (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the fake needs from a clock."""

    def now(self) -> float:
        """Virtual seconds since the clock started."""
        ...

    def wall(self, at: float) -> datetime:
        """The UTC wall time of the virtual instant ``at``."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` once the clock reaches ``when`` (virtual seconds)."""
        ...


class RealClock:
    """Wall time, optionally sped up: ``time_scale`` virtual seconds pass per real second."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {time_scale!r}")
        self.time_scale = time_scale
        self._start = time.monotonic()
        self._epoch = datetime.now(UTC)

    def now(self) -> float:
        return (time.monotonic() - self._start) * self.time_scale

    def wall(self, at: float) -> datetime:
        return self._epoch + timedelta(seconds=at)

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Schedule on the running event loop (so it must be called from inside one)."""
        delay = max(0.0, (when - self.now()) / self.time_scale)
        return asyncio.get_running_loop().call_later(delay, callback)

    def __repr__(self) -> str:
        return f"RealClock(time_scale={self.time_scale}, now={self.now():.3f})"


class _ManualTimer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when told to; timers fire synchronously inside :meth:`advance`."""

    def __init__(self, start: float = 0.0, *, epoch: datetime = DEFAULT_EPOCH) -> None:
        self._now = start
        self._epoch = epoch
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self, at: float) -> datetime:
        return self._epoch + timedelta(seconds=at)

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = _ManualTimer(callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward; each due timer runs with the clock set to its due time."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self._now = max(self._now, when)
                timer.callback()
        self._now = target

    @property
    def pending_timers(self) -> int:
        """Timers scheduled and not yet fired or cancelled."""
        return sum(not timer.cancelled for _, _, timer in self._timers)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now}, pending_timers={self.pending_timers})"
