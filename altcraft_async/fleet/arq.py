"""The fleet on arq (extra ``[arq]``): a batch job that takes its pairs through the start
ledger, and the ``WorkerSettings`` users run with ``arq worker``.

A job waits for its pairs at most ``slice_s`` seconds (below arq's ``job_timeout``, so a dead
worker's job is picked up again within about ``job_timeout`` + 10 s), then raises
``Retry(defer=...)``: the next try resumes the pairs still running from their tokens in the
ledger. Correctness lives in the ledger, not in arq (which is at-least-once): a redelivered job
finds each pair sending (busy), started (resume) or finished.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from arq import Retry
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import default_queue_name, job_key_prefix, result_key_prefix
from arq.jobs import Job
from arq.worker import func

from .._client import AltcraftClient
from .._ratelimit import RateLimiterProtocol
from ..models import SegmentRef
from ._batch import PairOutcome, run_pair
from ._ledger import StartLedger
from ._limiter import RedisRateLimiter

__all__ = [
    "JOB_NAME",
    "ArqEngine",
    "enqueue_run",
    "refresh_batch",
    "revive_run",
    "worker_settings",
]

JOB_NAME = "altcraft_async_refresh_batch"
#: Outcomes that another try of the job must look at again.
_AGAIN = frozenset({"started", "busy", "full", "released"})


async def refresh_batch(
    ctx: dict[str, Any], run: str, refs: Sequence[Sequence[int | None]]
) -> dict[str, int]:
    """The job: every pair of ``refs`` (``[segment, resource, database]``) through the ledger,
    waiting at most the worker's ``slice_s``; the count of outcomes by state when all are
    final, else ``Retry`` after ``defer_s``."""
    settings = ctx["altcraft_fleet"]
    ledger = StartLedger(
        ctx["redis"],
        account=settings["account"],
        run=run,
        send_lease=settings["send_lease"],
        hold=settings["slice_s"] + settings["send_lease"],
        max_in_flight=settings["max_in_flight"],
    )
    owner = f"job-{ctx['job_id']}".replace(":", "-")
    outcomes: list[PairOutcome] = []

    async def one(ref: SegmentRef) -> None:
        outcomes.append(
            await run_pair(
                ctx["altcraft_client"],
                ledger,
                ref,
                owner,
                timeout=settings["slice_s"],
                limiter=ctx["altcraft_limiter"],
            )
        )

    async with anyio.create_task_group() as group:
        for segment, resource, database in refs:
            assert segment is not None and resource is not None
            group.start_soon(one, SegmentRef(segment, resource, database))
    if any(outcome.state in _AGAIN for outcome in outcomes):
        raise Retry(defer=settings["defer_s"])
    return dict(Counter(outcome.state for outcome in outcomes))


async def enqueue_run(
    redis: ArqRedis, run: str, refs: Sequence[SegmentRef], *, batch_size: int = 200
) -> int:
    """Enqueue ``run``'s batches (job ids ``run.N``); their number. Enqueueing again adds
    nothing for a batch queued, running or finished, and revives a batch arq gave up on (see
    :func:`revive_run`): safe because the ledger decides every pair."""
    batches, _ = await _enqueue(redis, run, refs, batch_size)
    return batches


async def revive_run(
    redis: ArqRedis, run: str, refs: Sequence[SegmentRef], *, batch_size: int = 200
) -> int:
    """The supervisor's step: enqueue every batch of ``run`` that no worker will run again
    and that is not finished; how many. That is a batch arq gave up on (it fails a job that
    overran ``job_timeout`` and never runs it again, and refuses a job id whose result it
    keeps), a batch whose queue entry was lost (its job kept, no longer queued: arq keeps a
    job queued until it ends), or one never enqueued."""
    _, revived = await _enqueue(redis, run, refs, batch_size)
    return revived


async def _enqueue(
    redis: ArqRedis, run: str, refs: Sequence[SegmentRef], batch_size: int
) -> tuple[int, int]:
    """(batches of the run, batches enqueued anew)."""
    batches = [refs[start : start + batch_size] for start in range(0, len(refs), batch_size)]
    anew = 0
    for number, batch in enumerate(batches):
        job_id = f"{run}.{number}"
        result = await Job(job_id, redis).result_info()
        if result is not None and not result.success:
            await redis.delete(result_key_prefix + job_id)
        elif result is None and await redis.zscore(default_queue_name, job_id) is None:
            await redis.delete(job_key_prefix + job_id)  # orphaned: its queue entry was lost
        rows = [[ref.segment_id, ref.resource_id, ref.database_id] for ref in batch]
        anew += await redis.enqueue_job(JOB_NAME, run, rows, _job_id=job_id) is not None
    return len(batches), anew


class ArqEngine:
    """The :class:`~altcraft_async.fleet.Engine` for arq: ``Fleet.start(..., engine=ArqEngine())``
    enqueues the run's batches on the fleet's Redis (``redis_url``: another one)."""

    def __init__(self, redis_url: str | None = None) -> None:
        self.redis_url = redis_url

    def __repr__(self) -> str:
        return "ArqEngine()"

    async def enqueue(
        self, redis_url: str, run: str, refs: Sequence[SegmentRef], batch_size: int
    ) -> int:
        async with self._pool(redis_url) as pool:
            return await enqueue_run(pool, run, refs, batch_size=batch_size)

    async def revive(
        self, redis_url: str, run: str, refs: Sequence[SegmentRef], batch_size: int
    ) -> int:
        async with self._pool(redis_url) as pool:
            return await revive_run(pool, run, refs, batch_size=batch_size)

    @asynccontextmanager
    async def _pool(self, redis_url: str) -> AsyncIterator[ArqRedis]:
        """An arq pool on this engine's Redis (else the run's), closed when the block ends."""
        pool = await create_pool(RedisSettings.from_dsn(self.redis_url or redis_url))
        try:
            yield pool
        finally:
            await pool.aclose()


def worker_settings(
    *,
    redis_url: str,
    client: Callable[[RateLimiterProtocol], AltcraftClient],
    rate_limit: float,
    account: str = "default",
    max_in_flight: int | None = None,
    max_jobs: int = 20,
    slice_s: float = 240.0,
    send_lease: float = 120.0,
    defer_s: float = 1.0,
    job_margin: float = 30.0,
) -> type:
    """A ``WorkerSettings`` class for ``arq worker``: ``client(limiter)`` builds each worker's
    AltcraftClient around the account's shared :class:`RedisRateLimiter` (``rate_limit``
    requests/s for every worker together); arq's ``job_timeout`` is ``slice_s`` plus the send
    lease and ``job_margin``, so a slice always ends before arq gives the job up. A dead
    worker's batches run again ``job_timeout`` + 10 s after it took them (arq's in-progress
    key), so the three bound the recovery time."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        limiter = RedisRateLimiter(ctx["redis"], rate=rate_limit, account=account)
        ctx["altcraft_limiter"] = limiter
        ctx["altcraft_client"] = client(limiter)
        ctx["altcraft_fleet"] = {
            "account": account,
            "max_in_flight": max_in_flight,
            "slice_s": slice_s,
            "send_lease": send_lease,
            "defer_s": defer_s,
        }

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await ctx["altcraft_client"].aclose()

    job_timeout = slice_s + send_lease + job_margin
    return type(
        "WorkerSettings",
        (),
        {
            "functions": [func(refresh_batch, name=JOB_NAME, max_tries=1_000_000)],
            "redis_settings": RedisSettings.from_dsn(redis_url),
            "on_startup": on_startup,
            "on_shutdown": on_shutdown,
            "max_jobs": max_jobs,
            "job_timeout": job_timeout,
        },
    )
