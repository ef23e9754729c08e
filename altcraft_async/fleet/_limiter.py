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
- **A start's slot taken ahead** (:meth:`RedisRateLimiter.slot`, the fleet's order: slot,
  claim, send). The claim is a Redis round trip made *after* the slot is handed out, and on a
  busy event loop it comes back late: under load, every claim did, so every start went stale
  and queued again for a fresh slot inside its ``sending`` window. Two rules close that:

  * **Claim lead**: the slot is handed out ``lead`` seconds *before* it is due, ``lead``
    being the claim latency this process has seen lately (a decaying maximum, at most
    ``max_lead``); the start's acquire then sleeps the rest, so it is sent on its slot, not
    before: the pacing (and the rate at the server) is unchanged, and a claim needs no fresh
    slot unless its latency jumps past the lead and ``late_tolerance``. The price: a crash
    in those ``lead`` seconds leaves an unsent start ``sending``; ``max_lead`` bounds it.
  * **Bounded stale path**: a start that still misses its slot (or is retried) takes a fresh
    one only if it comes within ``bound`` seconds of the hand-out; otherwise acquire raises
    a non-transient ``RequestTimeoutError(sent=False)``: the start provably never left, so
    the fleet gives the claim back (``released``) instead of waiting on, unbounded, inside a
    window the engine's job timeout may cut (which left the pair ``unknown``). The block's
    :class:`PrepaidSlot` tells (``passed``) whether an acquire of the start returned: until
    then a cancelled start provably sent nothing, and the fleet gives the claim back too.

  A stale slot is never spent late, not even a little: a late send lands in the next
  second's window, and under load many are late together (the benchmark's 566/s at 500/s).

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

from .._errors import RequestTimeoutError
from .._ratelimit import Sleep
from ..models._checks import check_number
from ._keys import check_name, rate_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["PrepaidSlot", "RedisRateLimiter"]

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

#: Seconds over which the learned claim lead decays by a factor e (a spike is remembered a
#: while, a loop that calmed down gets a short lead back).
_LEAD_MEMORY = 5.0


class PrepaidSlot:
    """A request's rate slot taken ahead by :meth:`RedisRateLimiter.slot`, for the block.

    ``paced_at`` / ``due``: when it was asked for and when it is due (this clock);
    ``handed_at``: when the block got it; ``until``: the latest a fresh slot may be due when
    this one goes stale (the stale path's bound); ``spent``: the first acquire of the block
    took it; ``passed``: an acquire of the block returned (its request went on towards the
    transport, so it may have been sent). Mutable, shared by the block's tasks."""

    __slots__ = ("due", "handed_at", "paced_at", "passed", "spent", "until")

    def __init__(self, paced_at: float, due: float, handed_at: float, until: float) -> None:
        self.paced_at: float = paced_at
        self.due: float = due
        self.handed_at: float = handed_at
        self.until: float = until
        self.spent: bool = False
        self.passed: bool = False

    def __repr__(self) -> str:
        return f"<PrepaidSlot due={self.due:.3f} spent={self.spent} passed={self.passed}>"


#: The slot the current block of :meth:`RedisRateLimiter.slot` took ahead (None: no block).
_PREPAID: ContextVar[PrepaidSlot | None] = ContextVar("altcraft_fleet_prepaid", default=None)


def _no_slot(until: float, now: float) -> RequestTimeoutError:
    """The stale path's end: nothing was sent (``sent=False``), and a retry would queue
    again (``transient=False``): the caller gives the start back."""
    return RequestTimeoutError(
        f"the rate slot taken ahead went stale and no fresh one comes within its bound "
        f"({max(until - now, 0.0):.3f} s left)",
        sent=False,
        transient=False,
    )


class RedisRateLimiter:
    """Requests per second for a whole account, shared by every client that uses this account
    name on this Redis (a :class:`~altcraft_async.RateLimiterProtocol`)::

        limiter = RedisRateLimiter(redis.asyncio.Redis.from_url(url), rate=50, account="acme")
        client = AltcraftClient(url, token=token, rate_limiter=limiter)

    ``redis`` is a ``redis.asyncio.Redis`` the caller owns (several limiters may share one).
    ``adaptive``: halve on 429 (down to ``min_rate``), for everybody. ``horizon``: seconds
    ahead a slot may be reserved. ``late_tolerance``: seconds late a waiter may still send.
    ``idle_ttl``: seconds the shared state outlives the last reservation. ``max_lead``:
    seconds before its slot a :meth:`slot` block may begin (see the module). ``clock``: this
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
        max_lead: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("rate", rate), ("min_rate", min_rate), ("horizon", horizon)):
            check_number(name, value, above=0.0)
        check_number("idle_ttl", idle_ttl, above=0.0)
        check_number("late_tolerance", late_tolerance, at_least=0.0)
        check_number("max_lead", max_lead, at_least=0.0)
        self.account: str = check_name("account", account)
        self.key: str = rate_key(account)
        self.max_rate: float = float(rate)
        self.min_rate: float = min(float(min_rate), self.max_rate)
        self.adaptive = adaptive
        self.horizon: float = float(horizon)
        self.late_tolerance: float = float(late_tolerance)
        self.max_lead: float = float(max_lead)
        #: The claim lead now (seconds) and when it was last learned.
        self.lead: float = 0.0
        self._lead_at = -math.inf
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
        a new slot, so late sends never bunch into the next second. Inside a :meth:`slot`
        block the first acquire spends the slot taken ahead (sleeping until it is due); a
        later or stale one takes a fresh slot within the block's bound or raises
        ``RequestTimeoutError(sent=False)``."""
        prepaid = _PREPAID.get()
        if prepaid is None:
            paced_at, _ = await self._next_slot(sleep)
            return paced_at
        if not prepaid.spent:
            prepaid.spent = True
            self._learn_lead(self._clock() - prepaid.handed_at)
            early = prepaid.due - self._clock()
            if early > 0:
                await sleep(early)
            if self._clock() - prepaid.due <= self.late_tolerance:
                prepaid.passed = True
                return prepaid.paced_at
        paced_at, _ = await self._next_slot(sleep, until=prepaid.until)
        prepaid.passed = True
        return paced_at

    async def _next_slot(
        self, sleep: Sleep, *, until: float = math.inf, lead: float = 0.0
    ) -> tuple[float, float]:
        """Wait for a slot that this task reaches on time, waking ``lead`` seconds before it
        is due: (when it asked, when it is due). A slot that would be due after ``until``
        (this clock) ends the wait with :func:`_no_slot` (it stays reserved: not sent)."""
        paced_at = self._clock()
        while True:
            due = await self._reserve()
            if due is None:  # over the horizon: ask again when half of it has passed
                pause = self.horizon * random.uniform(0.4, 0.6)
                if self._clock() + pause > until:
                    raise _no_slot(until, self._clock())
                await sleep(pause)
                continue
            if due > until:
                raise _no_slot(until, self._clock())
            early = due - lead - self._clock()
            if early > 0:
                await sleep(early)
            if self._clock() - due <= self.late_tolerance:
                return paced_at, due

    def _learn_lead(self, latency: float) -> None:
        """Learn how long a block takes from its slot to its first request (the claim):
        a maximum that decays by e every ``_LEAD_MEMORY`` seconds, at most ``max_lead``."""
        now = self._clock()
        kept = self.lead * math.exp(-max(now - self._lead_at, 0.0) / _LEAD_MEMORY)
        self.lead = min(self.max_lead, max(latency, kept))
        self._lead_at = now

    @asynccontextmanager
    async def slot(self, *, bound: float = math.inf) -> AsyncIterator[PrepaidSlot]:
        """Take the next request's slot now: the first request this task sends inside the
        block goes on it without another reservation (on time: within ``late_tolerance``;
        else it takes a fresh slot due within ``bound`` seconds of the block's start, or
        raises ``RequestTimeoutError(sent=False)``). The block begins up to :attr:`lead`
        seconds before the slot is due, the time its work before the request (the fleet's
        claim) was seen to take. The fleet claims a pair's start in the ledger only once its
        slot has (nearly) come, so a worker dying while it waits for a slot leaves nothing
        ``sending`` (nothing that could turn ``unknown``)."""
        check_number("bound", bound, at_least=0.0, unbounded=True)
        paced_at, due = await self._next_slot(anyio.sleep, lead=self.lead)
        handed_at = self._clock()
        prepaid = PrepaidSlot(paced_at, due, handed_at, handed_at + bound)
        token = _PREPAID.set(prepaid)
        try:
            yield prepaid
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
