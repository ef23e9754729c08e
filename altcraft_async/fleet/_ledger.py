"""StartLedger: each pair of a run is started at most once, across every worker and crash.

Altcraft's start calls take no idempotency key and every queue redelivers a dead worker's job,
so the SDK remembers in Redis what it started. One hash per pair moves::

    (absent) --claim--> sending --started(token)--> started --finish--> done | failed
    sending, lease run out, claimed again      --> unknown   (reported; restarted only on opt-in)
    sending, the start sent and its reply lost (timeout, 5xx) --> unknown   (at once)
    unknown --started(token) by the original sender (a zombie's late reply)--> started
    started --claim by anyone once the holder's lease ran out--> resume from the token

Every step is one Lua script (atomic in Redis) on Redis' clock. A claim that hands the pair to
an owner bumps the pair's **fence**; ``started`` / ``finish`` / ``release`` carry the owner and
the fence they were given and are refused when another claim came since (a stale owner's writes
never land). ``sending`` is taken immediately before the start request, so the only window in
which a crash leaves the truth unknown is the start's own round trip: such a pair becomes
``unknown`` (``StartUnknown`` in the run's report), never started again unless the ledger was
made with ``on_unknown="restart"``. ``max_in_flight`` caps the account's server-side tasks at
once (sending or started, not finished): a claim past it answers ``full``.

A pair reaching ``done`` / ``failed`` / ``unknown`` is PUBLISHed on a channel named like its
key (the state is the message), so another process can await it without polling
(``FleetRun.wait_pair``); a ``done`` pair keeps its result (builtins, as JSON) in its hash.

Keys (``_keys``): the pair hashes, the run's counters hash and unknown set, the account's
in-flight counter; each write renews the run's TTL.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from attrs import frozen

from .._errors import InvalidRequestError
from ..models._checks import check_number
from ._keys import check_name, counts_key, in_flight_key, pair_key, unknown_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Claim", "ClaimAction", "PairState", "StartLedger"]

#: What a claim tells its caller to do: ``start`` the task (it now owns the pair), ``resume``
#: it from ``token`` (it owns the wait), or not touch it: ``busy`` (another owner's lease runs
#: ``retry_in`` more seconds), ``full`` (the in-flight cap), ``done`` / ``failed`` / ``unknown``.
ClaimAction = Literal["start", "resume", "busy", "full", "done", "failed", "unknown"]

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local k, counts, unknown, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pair, ttl = ARGV[1], tonumber(ARGV[2])
local function touch()
  redis.call('PEXPIRE', k, ttl)
  if redis.call('EXISTS', counts) == 1 then redis.call('PEXPIRE', counts, ttl) end
  if redis.call('EXISTS', unknown) == 1 then redis.call('PEXPIRE', unknown, ttl) end
  if redis.call('EXISTS', inflight) == 1 then redis.call('PEXPIRE', inflight, ttl) end
end
local function count(field, by)
  redis.call('HINCRBY', counts, field, by)
  redis.call('PEXPIRE', counts, ttl)
end
local function in_flight(by)
  redis.call('INCRBY', inflight, by)
  redis.call('PEXPIRE', inflight, ttl)
end
local function unknown_now(detail)
  redis.call('HSET', k, 'state', 'unknown', 'detail', detail, 'since', now)
  count('unknown', 1)
  redis.call('SADD', unknown, pair)
  in_flight(-1)
  redis.call('PUBLISH', k, 'unknown')
end
"""

# ARGV[3..]: owner, lease ms, restart unknown (0/1), max in flight (0: none).
# Returns {action, fence, token or detail or ms left on the holder's lease}.
_CLAIM = (
    _PRELUDE
    + """
local owner, lease = ARGV[3], tonumber(ARGV[4])
local restart, cap = ARGV[5] == '1', tonumber(ARGV[6])
local h = redis.call('HMGET', k, 'state', 'owner', 'lease', 'token', 'detail')
local st = h[1]
local function take(state)
  local fence = redis.call('HINCRBY', k, 'fence', 1)
  redis.call('HSET', k, 'state', state, 'owner', owner, 'lease', now + lease, 'since', now)
  touch()
  return fence
end
if st == 'done' or st == 'failed' then return {st, 0, h[5] or ''} end
if st == 'started' then
  if h[2] ~= owner and tonumber(h[3]) > now then return {'busy', 0, tostring(h[3] - now)} end
  return {'resume', take('started'), h[4]}
end
if st == 'sending' then
  if tonumber(h[3]) > now then return {'busy', 0, tostring(h[3] - now)} end
  h[5] = 'the start was sent by ' .. h[2] .. ' and its task id never stored'
  unknown_now(h[5])
  st = 'unknown'
end
if st == 'unknown' and not restart then
  touch()
  return {'unknown', 0, h[5] or ''}
end
if cap > 0 and tonumber(redis.call('GET', inflight) or '0') >= cap then return {'full', 0, ''} end
if st == 'unknown' then
  count('unknown', -1)
  count('restarted', 1)
  redis.call('SREM', unknown, pair)
  redis.call('HDEL', k, 'detail')
end
in_flight(1)
return {'start', take('sending'), ''}
"""
)

# ARGV[3..]: owner, fence, token, lease ms (the holder's, for the wait). 1: stored, 0: refused.
_STARTED = (
    _PRELUDE
    + """
local h = redis.call('HMGET', k, 'state', 'owner', 'fence')
if h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
if h[1] == 'unknown' then
  count('unknown', -1)
  redis.call('SREM', unknown, pair)
  redis.call('HDEL', k, 'detail')
  in_flight(1)
elseif h[1] ~= 'sending' then
  return 0
end
redis.call('HSET', k, 'state', 'started', 'token', ARGV[5], 'lease', now + tonumber(ARGV[6]),
           'since', now)
count('started', 1)
touch()
return 1
"""
)

# ARGV[3..]: owner, fence, final state (done/failed), detail, result (JSON), task id.
# 1: stored, 0: refused. Publishes the final state on the pair's channel (its key's name).
_FINISH = (
    _PRELUDE
    + """
local h = redis.call('HMGET', k, 'state', 'owner', 'fence')
if (h[1] ~= 'started' and h[1] ~= 'sending') or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then
  return 0
end
redis.call('HSET', k, 'state', ARGV[5], 'detail', ARGV[6], 'result', ARGV[7], 'task', ARGV[8],
           'since', now)
count(ARGV[5], 1)
in_flight(-1)
touch()
redis.call('PUBLISH', k, ARGV[5])
return 1
"""
)

# ARGV[3..]: final state (done/failed), detail, result (JSON), task id. A feedback webhook's
# final status, from anyone (it proves the task ran, so no owner is needed): stored once on a
# pair sending, started or unknown (it resolves an unknown); 1: stored, 0: already final or
# never started. Publishes like _FINISH.
_PUSHED = (
    _PRELUDE
    + """
local st = redis.call('HGET', k, 'state')
if st ~= 'sending' and st ~= 'started' and st ~= 'unknown' then return 0 end
if st == 'unknown' then
  count('unknown', -1)
  redis.call('SREM', unknown, pair)
else
  in_flight(-1)
end
redis.call('HSET', k, 'state', ARGV[3], 'detail', ARGV[4], 'result', ARGV[5], 'task', ARGV[6],
           'since', now, 'pushed', '1')
count(ARGV[3], 1)
touch()
redis.call('PUBLISH', k, ARGV[3])
return 1
"""
)

# ARGV[3..]: owner, fence, detail. The start was sent and its reply lost (a timeout, a 5xx, a
# broken connection after sending): Altcraft may have created the task, so the pair is
# ``unknown`` now rather than when the send lease runs out. 1: stored, 0: refused.
_UNSURE = (
    _PRELUDE
    + """
local h = redis.call('HMGET', k, 'state', 'owner', 'fence')
if h[1] ~= 'sending' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
unknown_now(ARGV[5])
touch()
return 1
"""
)

# ARGV[3..]: owner, fence. The start provably never left: the pair is startable again.
_RELEASE = (
    _PRELUDE
    + """
local h = redis.call('HMGET', k, 'state', 'owner', 'fence')
if h[1] ~= 'sending' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
redis.call('HDEL', k, 'state', 'owner', 'lease', 'since')
in_flight(-1)
touch()
return 1
"""
)

# ARGV[3..]: owner, fence, lease ms. The holder of a started pair keeps it a while longer.
_RENEW = (
    _PRELUDE
    + """
local h = redis.call('HMGET', k, 'state', 'owner', 'fence')
if h[1] ~= 'started' or h[2] ~= ARGV[3] or h[3] ~= ARGV[4] then return 0 end
redis.call('HSET', k, 'lease', now + tonumber(ARGV[5]))
touch()
return 1
"""
)


@frozen
class Claim:
    """The answer to :meth:`StartLedger.claim`: the ``action`` to take and, when it made the
    caller the pair's owner (``start``, ``resume``), the ``fence`` to write with."""

    action: ClaimAction
    fence: int = 0
    token: str | None = None
    detail: str = ""
    retry_in: float | None = None


@frozen
class PairState:
    """A pair's row in the ledger (``state`` None: never claimed, or released). ``result``:
    a ``done`` pair's result as builtins; ``since``: Redis time (ms) of its last change."""

    state: str | None
    owner: str | None
    fence: int
    token: str | None
    detail: str
    result: Any = None
    task_id: str | None = None
    since: int = 0


def _pair_state(text: dict[str, str]) -> PairState:
    """A pair's hash (decoded) as a PairState."""
    return PairState(
        state=text.get("state"),
        owner=text.get("owner"),
        fence=int(text.get("fence", 0)),
        token=text.get("token"),
        detail=text.get("detail", ""),
        result=json.loads(text["result"]) if text.get("result") else None,
        task_id=text.get("task") or None,
        since=int(text.get("since", 0)),
    )


class StartLedger:
    """The start ledger of one run (``run``) of one account on this Redis.

    ``send_lease``: seconds a ``sending`` claim is trusted; it must cover the start request's
    own retries (timeout x attempts), since once it runs out the next claimer calls the pair
    ``unknown``. ``hold``: seconds a resuming owner holds a started pair (renew it with
    :meth:`renew`; a wait split into slices shorter than it). ``on_unknown="restart"`` starts
    ``unknown`` pairs again (a possible duplicate refresh, never lost work). ``ttl``: seconds
    the run's keys live after their last write.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        account: str,
        run: str,
        send_lease: float = 120.0,
        hold: float = 300.0,
        on_unknown: Literal["report", "restart"] = "report",
        max_in_flight: int | None = None,
        ttl: float = 7 * 86400.0,
    ) -> None:
        self.account: str = check_name("account", account)
        self.run: str = check_name("run", run)
        for name, value in (("send_lease", send_lease), ("hold", hold), ("ttl", ttl)):
            check_number(name, value, above=0.0)
        check_number("max_in_flight", max_in_flight, at_least=1, integer=True, optional=True)
        if on_unknown not in ("report", "restart"):
            raise InvalidRequestError(
                f"on_unknown must be 'report' or 'restart', got {on_unknown!r}"
            )
        self.send_lease: float = float(send_lease)
        self.hold: float = float(hold)
        self.on_unknown = on_unknown
        self.max_in_flight = max_in_flight
        self._ttl_ms = round(ttl * 1000)
        self._redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._started = redis.register_script(_STARTED)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)
        self._unsure = redis.register_script(_UNSURE)
        self._renew = redis.register_script(_RENEW)
        self._pushed = redis.register_script(_PUSHED)

    def __repr__(self) -> str:
        return f"StartLedger(account={self.account!r}, run={self.run!r})"

    def _keys(self, pair: str) -> list[str]:
        check_name("pair", pair)
        return [
            pair_key(self.account, self.run, pair),
            counts_key(self.account, self.run),
            unknown_key(self.account, self.run),
            in_flight_key(self.account),
        ]

    async def _call(self, script: Any, pair: str, *args: object) -> Any:
        return await script(keys=self._keys(pair), args=[pair, self._ttl_ms, *args])

    async def claim(self, pair: str, owner: str) -> Claim:
        """Ask to start or resume ``pair`` as ``owner`` (``worker/job/attempt``, say)."""
        check_name("owner", owner)
        action, fence, text = await self._call(
            self._claim,
            pair,
            owner,
            round(self.send_lease * 1000),
            int(self.on_unknown == "restart"),
            self.max_in_flight or 0,
        )
        action = action.decode()
        text = text.decode() if isinstance(text, bytes) else str(text)
        if action == "resume":
            return Claim("resume", int(fence), token=text)
        if action == "busy":
            return Claim("busy", retry_in=int(text) / 1000)
        if action == "start":
            return Claim("start", int(fence))
        return Claim(action, detail=text)

    async def started(self, pair: str, owner: str, fence: int, token: str) -> bool:
        """Store the started task's resume token; False when ``owner`` lost the pair."""
        return bool(
            await self._call(self._started, pair, owner, fence, token, round(self.hold * 1000))
        )

    async def finish(
        self,
        pair: str,
        owner: str,
        fence: int,
        *,
        failed: bool = False,
        detail: str = "",
        result: Any = None,
        task_id: str = "",
    ) -> bool:
        """Mark the pair ``done`` (or ``failed``) once, keeping ``result`` (builtins, as
        :func:`~altcraft_async.to_builtins` makes them) for any process to read, and tell the
        pair's subscribers; False when ``owner`` lost it or it was finished already."""
        state = "failed" if failed else "done"
        text = "" if result is None else json.dumps(result, separators=(",", ":"))
        return bool(
            await self._call(self._finish, pair, owner, fence, state, detail, text, task_id)
        )

    async def pushed(
        self,
        pair: str,
        *,
        failed: bool = False,
        detail: str = "",
        result: Any = None,
        task_id: str = "",
    ) -> bool:
        """Store a final status that came by feedback webhook, whoever owns the pair: the
        webhook proves the task ran, so it finishes a ``sending`` or ``started`` pair and
        resolves an ``unknown`` one. False when the pair was final already (the owner's poll
        won) or never started."""
        state = "failed" if failed else "done"
        text = "" if result is None else json.dumps(result, separators=(",", ":"))
        return bool(await self._call(self._pushed, pair, state, detail, text, task_id))

    async def unsure(self, pair: str, owner: str, fence: int, detail: str) -> bool:
        """The start request left and its reply was lost (timeout, 5xx, broken connection):
        the pair is ``unknown`` at once. False when ``owner`` lost it."""
        return bool(await self._call(self._unsure, pair, owner, fence, detail))

    async def release(self, pair: str, owner: str, fence: int) -> bool:
        """Give back a ``sending`` claim whose start request provably never left."""
        return bool(await self._call(self._release, pair, owner, fence))

    async def renew(self, pair: str, owner: str, fence: int) -> bool:
        """Hold a started pair ``hold`` seconds more; False when ``owner`` lost it."""
        return bool(await self._call(self._renew, pair, owner, fence, round(self.hold * 1000)))

    async def startable(self, pair: str) -> bool:
        """Whether a claim now would likely say ``start`` (the pair is free and the in-flight
        cap not reached): one read, so a caller takes a rate slot only when it may start."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(self._keys(pair)[0], "state")
            pipe.get(in_flight_key(self.account))
            state, in_flight = await pipe.execute()
        if state not in (None, b"unknown") or (
            state == b"unknown" and self.on_unknown != "restart"
        ):
            return False
        return self.max_in_flight is None or int(in_flight or 0) < self.max_in_flight

    async def pair(self, pair: str) -> PairState:
        """The pair's row as it is now."""
        row = await self._redis.hgetall(self._keys(pair)[0])  # type: ignore[misc]
        text = {key.decode(): value.decode() for key, value in row.items()}
        return _pair_state(text)

    async def counts(self) -> dict[str, int]:
        """The run's counters: started, done, failed, unknown, restarted (missing ones 0)."""
        row = await self._redis.hgetall(counts_key(self.account, self.run))  # type: ignore[misc]
        found = {key.decode(): int(value) for key, value in row.items()}
        return {name: found.get(name, 0) for name in _COUNTERS}

    async def unknown(self) -> list[str]:
        """The run's pairs left ``unknown``, sorted."""
        members = await self._redis.smembers(unknown_key(self.account, self.run))  # type: ignore[misc]
        return sorted(member.decode() for member in members)

    async def in_flight(self) -> int:
        """The account's server-side tasks sending or started and not finished."""
        value = await self._redis.get(in_flight_key(self.account))
        return int(value or 0)


_COUNTERS = ("started", "done", "failed", "unknown", "restarted")
