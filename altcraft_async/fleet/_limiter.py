"""RedisRateLimiter: one request rate for a whole Altcraft account, shared through Redis by
every client of every process (polls and retries included).

It is the SDK's own :class:`~altcraft_async.RateLimiter` (virtual scheduling, GCRA) with the
schedule's tail (TAT) moved into Redis: one Lua script per request reserves
``slot = max(TAT, now); TAT = slot + interval`` on Redis' clock (``TIME``, so the workers'
clocks need not agree) and answers how long to sleep. One round trip per request, no polling,
exact spacing.

Why not a library: ``limits`` only answers hit/test (a caller must poll and sleep, which herds
under thousands of waiters; its fixed windows allow 2x at a boundary) and has no feedback on
429; ``pyrate-limiter`` (leaky bucket, blocking acquire) is viable but has neither the 429
halving shared by all nor the reservation horizon, and would be a dependency for about 30 lines
of Lua with other semantics than the local limiter's; ``redis-cell`` is a Redis module that
managed Redis cannot load. See ``designs/fleet.md`` section 4.

What it adds to the local limiter:

- **Reservation horizon** ``horizon``: the script never reserves a slot more than ``horizon``
  seconds ahead; a refused caller sleeps about ``horizon / 2`` and asks again. A worker that
  dies holding reservations thus wastes at most ``horizon x rate`` slots.
- **Late-wake rule** ``late_tolerance``: a caller that wakes later than that after its slot
  (its event loop was busy) takes a new slot instead of sending, so late sends do not bunch
  into the next second.
- **Adaptive 429, shared**: the interval lives in Redis next to the TAT. A 429 answering a
  request paced after the last cut doubles it, once per burst, for every process; each success
  wins back 5 %. The send path reports both synchronously (it must not block), so they ride on
  this process' next ``acquire`` script call: no extra round trip.
- **Cancellation**: a cancelled waiter's slot is not given back (conservative).

The same script counts the slots it granted (``granted`` in the key), so a run's progress can
report the account's request rate without another write.

Its one key, :func:`~altcraft_async.fleet._keys.rate_key`, expires ``idle_ttl`` seconds after
the last reserved slot.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import anyio

from .._ratelimit import Sleep
from ..models._checks import check_number
from ._keys import check_name, rate_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisRateLimiter"]

# KEYS[1] the rate hash. ARGV: base interval (us), max interval (us), horizon (us), the
# Redis time a 429'd request was paced at (us, -1: none), successes since the last call,
# adaptive (0/1), idle TTL (ms). Returns {wait us (-1: refused, over the horizon), Redis now
# (us), the interval now (us)}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local base, max_iv, horizon = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cut_paced, wins, adaptive = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'
local h = redis.call('HMGET', KEYS[1], 'tat', 'interval', 'last_cut')
local tat = tonumber(h[1]) or 0
local interval = math.max(tonumber(h[2]) or base, base)
local last_cut = tonumber(h[3]) or 0
if adaptive then
  if cut_paced >= 0 and cut_paced >= last_cut then
    interval = math.min(interval * 2, max_iv)
    last_cut = now
  elseif wins > 0 and interval > base then
    interval = math.max(base, interval / (1.05 ^ math.min(wins, 100)))
  end
end
local slot = math.max(tat, now)
local wait = slot - now
if wait > horizon then
  redis.call('HSET', KEYS[1], 'interval', string.format('%.0f', interval),
             'last_cut', string.format('%.0f', last_cut))
  return {-1, now, math.floor(interval)}
end
redis.call('HINCRBY', KEYS[1], 'granted', 1)
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', slot + interval),
           'interval', string.format('%.0f', interval), 'last_cut', string.format('%.0f', last_cut))
redis.call('PEXPIRE', KEYS[1], math.floor((slot + interval - now) / 1000) + tonumber(ARGV[7]))
return {wait, now, math.floor(interval)}
"""

_US = 1_000_000
#: Seconds a clock-offset sample stays in the estimate (the clocks may drift apart slowly).
_OFFSET_BUCKET = 5.0

#: A slot taken ahead by :meth:`RedisRateLimiter.slot`: (its pacing time, the local time the
#: slot was due), spent by the next ``acquire`` in the same task (context) if still on time.
_PREPAID: ContextVar[tuple[float, float] | None] = ContextVar(
    "altcraft_fleet_prepaid", default=None
)


class RedisRateLimiter:
    """Requests per second for a whole account, shared by every client that uses this account
    name on this Redis (a :class:`~altcraft_async.RateLimiterProtocol`)::

        limiter = RedisRateLimiter(redis.asyncio.Redis.from_url(url), rate=50, account="acme")
        client = AltcraftClient(url, token=token, rate_limiter=limiter)

    ``redis`` is a ``redis.asyncio.Redis`` the caller owns (several limiters may share one).
    ``adaptive``: halve on 429 (down to ``min_rate``), for everybody. ``horizon``: seconds
    ahead a slot may be reserved. ``late_tolerance``: seconds late a waiter may still send.
    ``idle_ttl``: seconds the shared state outlives the last reservation. ``clock``: this
    process' monotonic clock (a manual one in tests).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        rate: float,
        account: str = "default",
        adaptive: bool = True,
        min_rate: float = 0.5,
        horizon: float = 2.0,
        late_tolerance: float = 0.05,
        idle_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("rate", rate), ("min_rate", min_rate), ("horizon", horizon)):
            check_number(name, value, above=0.0)
        check_number("idle_ttl", idle_ttl, above=0.0)
        check_number("late_tolerance", late_tolerance, at_least=0.0)
        self.account: str = check_name("account", account)
        self.key: str = rate_key(account)
        self.max_rate: float = float(rate)
        self.min_rate: float = min(float(min_rate), self.max_rate)
        self.adaptive = adaptive
        self.horizon: float = float(horizon)
        self.late_tolerance: float = float(late_tolerance)
        self._idle_ttl_ms = round(idle_ttl * 1000)
        self._redis = redis
        self._script = redis.register_script(_RESERVE)
        self._interval_us = round(_US / rate)
        self._clock = clock
        #: Redis time (s) minus this clock: the best (largest) lower bound seen in the current
        #: and the previous bucket of _OFFSET_BUCKET seconds, and when the current one began.
        self._offset: float | None = None
        self._offsets = [-math.inf, -math.inf]
        self._bucket_began = -math.inf
        self._cut_paced_us = -1  # a 429 to report with the next script call
        self._wins = 0  # successes to report with the next script call
        #: The shared rate as last seen (requests/s), for progress reports.
        self.rate: float = self.max_rate

    def __repr__(self) -> str:
        return f"RedisRateLimiter(account={self.account!r}, rate={self.rate:g}/{self.max_rate:g})"

    async def acquire(self, sleep: Sleep) -> float:
        """Wait for this request's slot on the account's schedule; returns its pacing time
        (this clock's reading when it asked).

        A request sends only if it is at most ``late_tolerance`` past its slot, judged on
        Redis' clock (where the slot is), not from when the reply came back: a reply that
        waited in a busy event loop must not make a late send look on time. A late one takes
        a new slot, so late sends never bunch into the next second."""
        prepaid = _PREPAID.get()
        if prepaid is not None:
            _PREPAID.set(None)
            paced_at, due = prepaid
            if self._clock() - due <= self.late_tolerance:
                return paced_at
        paced_at, _ = await self._next_slot(sleep)
        return paced_at

    async def _next_slot(self, sleep: Sleep) -> tuple[float, float]:
        """Wait for a slot that this task reaches on time: (when it asked, when it was due)."""
        paced_at = self._clock()
        while True:
            due = await self._reserve()
            if due is None:  # over the horizon: ask again when half of it has passed
                await sleep(self.horizon * random.uniform(0.4, 0.6))
                continue
            early = due - self._clock()
            if early > 0:
                await sleep(early)
            if self._clock() - due <= self.late_tolerance:
                return paced_at, due

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Take the next request's slot now: the first request this task sends inside the
        block goes without waiting again, if it goes within ``late_tolerance`` of the slot
        (else it takes a new one). The fleet claims a pair's start in the ledger only once its
        slot has come, so a worker dying while it waits for a slot leaves nothing ``sending``
        (nothing that could turn ``unknown``)."""
        token = _PREPAID.set(await self._next_slot(anyio.sleep))
        try:
            yield
        finally:
            _PREPAID.reset(token)

    async def _reserve(self) -> float | None:
        """Reserve the next slot: when it is due on this clock, or None if it would be more
        than the horizon ahead (nothing reserved)."""
        cut, wins = self._cut_paced_us, self._wins
        self._cut_paced_us, self._wins = -1, 0
        args: list[Any] = [
            self._interval_us,
            round(_US / self.min_rate),
            round(self.horizon * _US),
            cut,
            wins,
            int(self.adaptive),
            self._idle_ttl_ms,
        ]
        try:
            wait, now, interval = await self._script(keys=[self.key], args=args)
        except BaseException:
            # not applied (or unknown): report the feedback again next time
            self._cut_paced_us = max(self._cut_paced_us, cut)
            self._wins += wins
            raise
        offset = self._learn_offset(int(now) / _US)
        self.rate = _US / int(interval)
        return None if int(wait) < 0 else (int(now) + int(wait)) / _US - offset

    def _learn_offset(self, redis_now: float) -> float:
        """Redis' clock minus this one, from a reply just read: ``redis_now - here`` is a lower
        bound (the script ran before the reply was read), the tightest of the last few seconds
        is the estimate (off by the fastest round trip, not by an event loop's delays)."""
        here = self._clock()
        if here - self._bucket_began >= _OFFSET_BUCKET:
            self._offsets = [self._offsets[1], -math.inf]
            self._bucket_began = here
        self._offsets[1] = max(self._offsets[1], redis_now - here)
        self._offset = max(self._offsets)
        return self._offset

    def on_rate_limited(self, paced_at: float) -> None:
        """A request paced at ``paced_at`` got HTTP 429: the next script call halves the shared
        rate, unless the rate was cut after that request was paced (once per burst)."""
        if self.adaptive and self._offset is not None:
            paced_us = round((paced_at + self._offset) * _US)
            self._cut_paced_us = max(self._cut_paced_us, paced_us)

    def on_success(self) -> None:
        if self.adaptive:
            self._wins += 1

    async def shared_rate(self) -> float:
        """The account's current rate in requests per second, read from Redis."""
        interval = await self._redis.hget(self.key, "interval")  # type: ignore[misc]
        return self.max_rate if interval is None else _US / int(interval)
