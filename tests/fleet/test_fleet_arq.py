"""The arq adapter: a real arq worker (in this process) runs a run's batches against the fake
and the real redis-server; waits end in slices and the job re-schedules itself."""

from __future__ import annotations

import warnings

import anyio
import pytest
import redis.asyncio as aioredis
from arq.connections import create_pool
from arq.worker import Worker

from altcraft_async import AltcraftClient, Backoff, PollPolicy, SegmentRef
from altcraft_async.fleet import StartLedger
from altcraft_async.fleet.arq import enqueue_run, worker_settings
from altcraft_async.testing import FakeAltcraft, TaskPlan, seeded_platform

pytestmark = pytest.mark.anyio

FAST_POLL = PollPolicy(backoff=Backoff(initial=0.05, max_interval=0.1, jitter=0.0))


async def test_a_run_on_an_arq_worker_starts_each_pair_once_and_finishes(redis_url: str) -> None:
    platform = seeded_platform(profiles=50, segments=12, resources=1)
    async with FakeAltcraft(platform, task_plan=TaskPlan.after_seconds(0.6)) as fake:
        settings = worker_settings(
            redis_url=redis_url,
            client=lambda limiter: AltcraftClient(
                fake.url, token=fake.token, rate_limiter=limiter, poll=FAST_POLL
            ),
            rate_limit=200,
            account="acme",
            slice_s=0.2,  # shorter than a task: every batch re-schedules itself at least once
            defer_s=0.05,
        )
        refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
        pool = await create_pool(settings.redis_settings)
        try:
            assert await enqueue_run(pool, "r1", refs, batch_size=5) == 3
            assert await enqueue_run(pool, "r1", refs, batch_size=5) == 3  # nothing added
            worker = Worker(
                functions=settings.functions,
                redis_pool=pool,
                on_startup=settings.on_startup,
                on_shutdown=settings.on_shutdown,
                burst=True,
                poll_delay=0.05,
                handle_signals=False,
                job_timeout=settings.job_timeout,
            )
            with anyio.fail_after(60):
                await worker.main()
            with warnings.catch_warnings():  # arq 0.28 calls redis-py's deprecated close()
                warnings.simplefilter("ignore", DeprecationWarning)
                await worker.close()  # runs on_shutdown: the worker's client closes
            assert (worker.jobs_complete, worker.jobs_failed) == (3, 0)
            assert worker.jobs_retried >= 3
        finally:
            await pool.aclose()
        starts = [task.segment_id for task in fake.tasks.values()]
        assert sorted(starts) == sorted(platform.segments)  # each pair started exactly once
        async with aioredis.Redis.from_url(redis_url) as redis:
            counts = await StartLedger(redis, account="acme", run="r1").counts()
        assert counts == {"started": 12, "done": 12, "failed": 0, "unknown": 0, "restarted": 0}
