"""The run API: start or re-attach to a run by id, its progress, its results, one pair's wait.

A run is its pairs (a list in Redis, written once by whoever starts it) plus the start
ledger's rows. Any process that knows the Redis URL, the account and the run id can attach to
it (:meth:`Fleet.run`): a producer that starts it and watches, a worker, a web handler that
awaits one pair (:meth:`FleetRun.wait_pair`), the CLI. Nothing here talks to Altcraft: the
workers do, through the engine; this module only reads the ledger, so watching a run of
100,000 pairs costs a few Redis reads, not requests against the account's rate.

``wait_pair`` is event-driven: it subscribes to the pair's channel (the ledger publishes a
pair's final state there), waits for Redis to confirm the subscription, then reads the pair,
then waits for a message, all under one deadline. Subscribed before reading, it cannot miss a
pair finishing in between.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import anyio
from attrs import evolve, frozen

from .._codec import from_builtins
from .._errors import InvalidRequestError, TaskTimeoutError
from ..models import CountersSnapshot, SegmentRef
from ..models._checks import check_number
from ._batch import PairOutcome, pair_id, ref_of
from ._keys import check_name, counts_key, in_flight_key, meta_key, pair_key, rate_key, refs_key
from ._ledger import PairState, _pair_state

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["Engine", "Fleet", "FleetRun", "RunProgress", "Supervision"]

#: The states a pair never leaves on its own (``unknown`` only by a zombie's late reply).
FINAL = frozenset({"done", "failed", "unknown"})
#: Pairs read per Redis round trip by :meth:`FleetRun.results`.
_CHUNK = 500


class Engine(Protocol):
    """What runs a run's batches (``altcraft_async.fleet.arq.ArqEngine``): ``enqueue`` them,
    with ids that make enqueueing the same run twice add nothing (the number of batches), and
    ``revive`` the ones no worker will run again and not finished (how many): the
    supervisor's step (:meth:`FleetRun.supervise`)."""

    async def enqueue(
        self, redis_url: str, run: str, refs: Sequence[SegmentRef], batch_size: int
    ) -> int: ...

    async def revive(
        self, redis_url: str, run: str, refs: Sequence[SegmentRef], batch_size: int
    ) -> int: ...


@frozen
class RunProgress:
    """A run as it stands: its ``total`` pairs, how many were ``started`` (ever), finished
    ``done`` / ``failed`` / ``unknown`` (a start that may have gone out, see README), the
    account's server-side tasks ``in_flight`` and its ``request_rate`` (slots granted per
    second by the shared limiter since the previous report; None on the first)."""

    run: str
    total: int
    started: int
    done: int
    failed: int
    unknown: int
    in_flight: int
    request_rate: float | None = None

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.unknown

    @property
    def complete(self) -> bool:
        """Every pair is done, failed or unknown."""
        return self.finished >= self.total


@frozen
class Supervision:
    """What :meth:`FleetRun.supervise` did: the run's last ``progress`` (complete) and the
    batches it ``revived`` (enqueued again: given up by the engine, lost, or never queued)."""

    progress: RunProgress
    revived: int


class Fleet:
    """A connection to the fleet's Redis for one ``account`` (the same name the workers'
    ``worker_settings(account=...)`` use)::

        async with Fleet("redis://redis:6379/0", account="acme") as fleet:
            run = await fleet.start("nightly-2026-12-02", refs, engine=ArqEngine())
            async for progress in run.watch(every=10):
                print(progress)

    ``ttl``: seconds a run's description and pair list live after it was started (the ledger
    renews its own rows on every write).
    """

    def __init__(self, redis_url: str, *, account: str = "default", ttl: float = 7 * 86400.0):
        from redis.asyncio import Redis

        check_number("ttl", ttl, above=0.0)
        self.account: str = check_name("account", account)
        self.redis_url = redis_url
        self._ttl_ms = round(ttl * 1000)
        self.redis: Redis = Redis.from_url(redis_url)

    def __repr__(self) -> str:
        return f"Fleet(account={self.account!r})"  # the URL may hold a password

    async def __aenter__(self) -> Fleet:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def start(
        self,
        run: str,
        refs: Sequence[SegmentRef],
        *,
        engine: Engine | None = None,
        batch_size: int = 200,
    ) -> FleetRun:
        """Start run ``run`` over ``refs``, or re-attach to it when it exists (then ``refs``
        must be the same pairs). With an ``engine``, (re-)enqueue its batches: the ledger
        makes a second enqueue harmless, so calling this again after a crash is the way to
        resume a run whose jobs were lost."""
        check_name("run", run)
        check_number("batch_size", batch_size, at_least=1, integer=True)
        pairs = [pair_id(ref) for ref in refs]
        if not pairs:
            raise InvalidRequestError("a run needs at least one pair")
        if len(set(pairs)) != len(pairs):
            raise InvalidRequestError("a run's pairs must be distinct")
        meta, listed = meta_key(self.account, run), refs_key(self.account, run)
        created = await self.redis.hsetnx(meta, "total", str(len(pairs)))  # type: ignore[misc]
        if created:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(listed)
                for start in range(0, len(pairs), _CHUNK):
                    pipe.rpush(listed, *pairs[start : start + _CHUNK])
                pipe.hset(meta, mapping={"batch_size": batch_size, "created": time.time()})
                pipe.pexpire(listed, self._ttl_ms)
                pipe.pexpire(meta, self._ttl_ms)
                await pipe.execute()
        else:
            existing = [item.decode() for item in await self.redis.lrange(listed, 0, -1)]  # type: ignore[misc]
            if existing != pairs:
                raise InvalidRequestError(
                    f"run {run!r} exists with other pairs ({len(existing)}); "
                    "attach to it with Fleet.run(), or pick another run id"
                )
        if engine is not None:
            await engine.enqueue(self.redis_url, run, list(refs), batch_size)
        return FleetRun(self, run)

    def run(self, run: str) -> FleetRun:
        """Attach to run ``run`` (started here or by any other process)."""
        return FleetRun(self, check_name("run", run))


class FleetRun:
    """One run of a :class:`Fleet`: progress, results, unknowns, one pair's wait."""

    def __init__(self, fleet: Fleet, run: str) -> None:
        self.fleet: Fleet = fleet
        self.run: str = run
        self._redis = fleet.redis
        self._account = fleet.account

    def __repr__(self) -> str:
        return f"FleetRun(account={self._account!r}, run={self.run!r})"

    async def pairs(self) -> list[SegmentRef]:
        """The run's pairs, in the order it was started with (empty: no such run)."""
        listed = await self._redis.lrange(refs_key(self._account, self.run), 0, -1)  # type: ignore[misc]
        return [ref_of(item.decode()) for item in listed]

    async def progress(self) -> RunProgress:
        """The run's counters now (``request_rate`` None: one reading gives no rate)."""
        progress, _ = await self._read()
        return progress

    async def _read(self) -> tuple[RunProgress, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(meta_key(self._account, self.run), "total")
            pipe.hgetall(counts_key(self._account, self.run))
            pipe.get(in_flight_key(self._account))
            pipe.hget(rate_key(self._account), "granted")
            total, counts, in_flight, granted = await pipe.execute()
        if total is None:
            raise InvalidRequestError(f"no run {self.run!r} for account {self._account!r}")
        found = {key.decode(): int(value) for key, value in counts.items()}
        progress = RunProgress(
            run=self.run,
            total=int(total),
            started=found.get("started", 0),
            done=found.get("done", 0),
            failed=found.get("failed", 0),
            unknown=found.get("unknown", 0),
            in_flight=int(in_flight or 0),
        )
        return progress, int(granted or 0)

    async def watch(
        self, every: float = 5.0, *, timeout: float | None = None
    ) -> AsyncIterator[RunProgress]:
        """The run's progress now, then every ``every`` seconds, ending with the report that
        shows it complete; raises ``TimeoutError`` after ``timeout`` seconds (None: never)."""
        check_number("every", every, above=0.0)
        check_number("timeout", timeout, above=0.0, optional=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        last: tuple[float, int] | None = None
        while True:
            progress, granted = await self._read()
            now = time.monotonic()
            if last is not None and now > last[0]:
                rate = max(granted - last[1], 0) / (now - last[0])
                progress = evolve(progress, request_rate=rate)
            last = (now, granted)
            yield progress
            if progress.complete:
                return
            if deadline is not None and now + every > deadline:
                raise TimeoutError(f"run {self.run!r} not complete after {timeout} s")
            await anyio.sleep(every)

    async def supervise(
        self,
        engine: Engine,
        *,
        every: float = 20.0,
        check_every: float = 2.0,
        timeout: float | None = None,
        on_progress: Callable[[RunProgress], object] | None = None,
    ) -> Supervision:
        """Keep the run going until it is complete: read its progress every ``check_every``
        seconds (handed to ``on_progress``), and every ``every`` seconds (and at once) have
        ``engine`` revive the batches no worker will run again. An engine is at-least-once,
        not forever: arq gives a job up past its ``job_timeout`` and a lost queue entry is
        never run; the ledger makes a revived batch harmless (its pairs resume or are
        skipped). Raises ``TimeoutError`` after ``timeout`` seconds (None: never)."""
        check_number("every", every, above=0.0)
        meta = await self._redis.hget(meta_key(self._account, self.run), "batch_size")  # type: ignore[misc]
        if meta is None:
            raise InvalidRequestError(f"no run {self.run!r} for account {self._account!r}")
        refs, batch_size = await self.pairs(), int(meta)
        revived, due = 0, -math.inf
        async for progress in self.watch(every=check_every, timeout=timeout):
            if on_progress is not None:
                on_progress(progress)
            if not progress.complete and time.monotonic() >= due:
                revived += await engine.revive(self.fleet.redis_url, self.run, refs, batch_size)
                due = time.monotonic() + every
        return Supervision(progress, revived)

    async def results(self) -> AsyncIterator[PairOutcome]:
        """Every finished pair of the run (``done`` with its counters, ``failed`` or
        ``unknown`` with the reason), in the run's order; pairs not finished are skipped."""
        pairs = [pair_id(ref) for ref in await self.pairs()]
        for start in range(0, len(pairs), _CHUNK):
            chunk = pairs[start : start + _CHUNK]
            async with self._redis.pipeline(transaction=False) as pipe:
                for pair in chunk:
                    pipe.hgetall(pair_key(self._account, self.run, pair))
                rows = await pipe.execute()
            for pair, row in zip(chunk, rows, strict=True):
                outcome = _outcome(pair, _decode(row))
                if outcome.state in FINAL:
                    yield outcome

    async def unknown(self) -> list[PairOutcome]:
        """The pairs whose start may have gone out unrecorded (see README: what to do)."""
        return [outcome async for outcome in self.results() if outcome.state == "unknown"]

    async def pair(self, ref: SegmentRef) -> PairOutcome | None:
        """One pair as it is now (None: not claimed yet; ``state`` ``sending`` or
        ``started`` while it runs)."""
        pair = pair_id(ref)
        row = await self._redis.hgetall(pair_key(self._account, self.run, pair))  # type: ignore[misc]
        return _outcome(pair, _decode(row)) if row else None

    async def wait_pair(self, ref: SegmentRef, *, timeout: float) -> PairOutcome:
        """Await ``ref``'s final outcome, whoever started it: event-driven (the pair's
        channel), never a request to Altcraft. Raises :class:`~altcraft_async.TaskTimeoutError`
        (with the pair's resume token once started) after ``timeout`` seconds."""
        check_number("timeout", timeout, above=0.0)
        pair = pair_id(ref)
        key = pair_key(self._account, self.run, pair)
        deadline = time.monotonic() + timeout
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(key)
            await _subscribed(pubsub, deadline)  # (at the deadline the read below tells)
            while True:
                row = _decode(await self._redis.hgetall(key))  # type: ignore[misc]
                if row.get("state") in FINAL:
                    return _outcome(pair, row)
                message = None
                while message is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TaskTimeoutError(
                            pair,
                            timeout=timeout,
                            last_status=row.get("state"),
                            resume_token=row.get("token", ""),
                        )
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


async def _subscribed(pubsub: PubSub, deadline: float) -> None:
    """Wait for Redis's confirmation of ``pubsub``'s subscription, until ``deadline``.

    ``subscribe()`` returns once SUBSCRIBE is sent, not once Redis has taken it: a pair that
    finishes after the read that follows and before Redis subscribes is published to nobody.
    The confirmation is the first message of a new subscription, so it is the first read."""
    while (left := deadline - time.monotonic()) > 0:
        message = await pubsub.get_message(timeout=left)
        if message is not None and message["type"] == "subscribe":
            return


def _decode(row: dict[bytes, bytes]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in row.items()}


def _outcome(pair: str, row: dict[str, str]) -> PairOutcome:
    """A ledger row as the pair's outcome (``result`` read back as counters)."""
    state: PairState = _pair_state(row)
    result = None
    if state.result is not None:
        result = from_builtins(list[CountersSnapshot], state.result)
    return PairOutcome(
        ref_of(pair),
        state.state or "released",  # type: ignore[arg-type]  # a row's state is an OutcomeState
        result,
        detail=state.detail,
        task_id=state.task_id,
    )
