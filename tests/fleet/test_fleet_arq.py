"""The arq adapter: a real arq worker (in this process) runs a run's batches against the fake
and the real redis-server; waits end in slices and the job re-schedules itself."""

from __future__ import annotations

import asyncio
import signal
import warnings
from collections import Counter

import anyio
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis, create_pool
from arq.constants import default_queue_name
from arq.worker import Worker

from altcraft_async import (
    AltcraftClient,
    Backoff,
    EventHookMap,
    PollPolicy,
    RequestEvent,
    SegmentRef,
)
from altcraft_async.fleet import Fleet, RunProgress, StartLedger, pair_id
from altcraft_async.fleet.arq import ArqEngine, enqueue_run, worker_settings
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan, seeded_platform

pytestmark = pytest.mark.anyio

FAST_POLL = PollPolicy(backoff=Backoff(initial=0.05, max_interval=0.1, jitter=0.0))


def _settings(
    redis_url: str, fake: FakeAltcraft, event_hooks: EventHookMap | None = None, **options: float
) -> type:
    """``worker_settings`` for a worker of the test's fake (fast polls, 200 requests/s)."""
    return worker_settings(
        redis_url=redis_url,
        client=lambda limiter: AltcraftClient(
            fake.url,
            token=fake.token,
            rate_limiter=limiter,
            poll=FAST_POLL,
            event_hooks=event_hooks,
        ),
        rate_limit=200,
        account="acme",
        defer_s=0.05,
        **options,
    )


def _cut_settings(redis_url: str, fake: FakeAltcraft) -> type:
    """Settings whose slices outlast the tasks, so a worker's short job_timeout cuts a batch."""
    return _settings(redis_url, fake, slice_s=10.0, send_lease=1.0)


async def test_a_run_on_an_arq_worker_starts_each_pair_once_and_finishes(redis_url: str) -> None:
    platform = seeded_platform(profiles=50, segments=12, resources=1)
    async with FakeAltcraft(platform, task_plan=TaskPlan.after_seconds(0.6)) as fake:
        settings = _settings(
            redis_url,
            fake,
            slice_s=0.2,  # shorter than a task: every batch re-schedules itself at least once
        )
        refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
        pool = await create_pool(settings.redis_settings)
        try:
            assert await enqueue_run(pool, "r1", refs, batch_size=5) == 3
            assert await enqueue_run(pool, "r1", refs, batch_size=5) == 3  # nothing added
            worker = await _burst(settings, pool)  # its close runs on_shutdown: the client closes
            assert (worker.jobs_complete, worker.jobs_failed) == (3, 0)
            assert worker.jobs_retried >= 3
        finally:
            await pool.aclose()
        starts = [task.segment_id for task in fake.tasks.values()]
        assert sorted(starts) == sorted(platform.segments)  # each pair started exactly once
        async with aioredis.Redis.from_url(redis_url) as redis:
            counts = await StartLedger(redis, account="acme", run="r1").counts()
        assert counts == {"started": 12, "done": 12, "failed": 0, "unknown": 0, "restarted": 0}


def _worker(
    settings: type, pool: ArqRedis, *, burst: bool = False, job_timeout: float | None = None
) -> Worker:
    """An arq worker of ``settings`` on ``pool`` in this process, without signal handlers (the
    test stops it); ``job_timeout`` (default: the settings') is the one arq cuts jobs at."""
    return Worker(
        functions=settings.functions,  # type: ignore[attr-defined]
        redis_pool=pool,
        on_startup=settings.on_startup,  # type: ignore[attr-defined]
        on_shutdown=settings.on_shutdown,  # type: ignore[attr-defined]
        burst=burst,
        poll_delay=0.05,
        handle_signals=False,
        job_timeout=settings.job_timeout if job_timeout is None else job_timeout,  # type: ignore[attr-defined]
    )


async def _burst(settings: type, pool: ArqRedis, job_timeout: float | None = None) -> Worker:
    """Run an arq worker on ``pool`` until its queue is empty; the worker (closed)."""
    worker = _worker(settings, pool, burst=True, job_timeout=job_timeout)
    with anyio.fail_after(60):
        await worker.main()
    with warnings.catch_warnings():  # arq 0.28 calls redis-py's deprecated close()
        warnings.simplefilter("ignore", DeprecationWarning)
        await worker.close()
    return worker


async def _stop(worker: Worker, serving: asyncio.Future[None]) -> None:
    """Stop a worker serving as its own task: no new jobs, the jobs it runs finish, then close.

    The run can be complete while arq still records the last job's result; ``Worker.close``
    cancels such a job mid-write and then raises its CancelledError into the caller, before
    ``on_shutdown`` closes the worker's client."""
    serving.cancel()  # as arq's signal handler does: the poll loop ends, no new job starts
    await asyncio.wait({serving}, timeout=10)
    assert serving.done()
    if not serving.cancelled():
        serving.result()  # the worker's own error, if it ended with one
    if worker.tasks:
        await asyncio.wait(set(worker.tasks.values()), timeout=10)
    with warnings.catch_warnings():  # arq 0.28 calls redis-py's deprecated close()
        warnings.simplefilter("ignore", DeprecationWarning)
        await worker.close()


async def test_enqueueing_again_revives_a_batch_arq_gave_up_on(redis_url: str) -> None:
    # arq fails a job that overruns its job_timeout and never runs it again, and it refuses
    # to enqueue a job id whose result it keeps: without the revival the run stalls.
    platform = seeded_platform(profiles=50, segments=4, resources=1)
    async with FakeAltcraft(platform, task_plan=TaskPlan.after_seconds(2.0)) as fake:
        settings = _cut_settings(redis_url, fake)
        refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
        pool = await create_pool(settings.redis_settings)
        try:
            assert await enqueue_run(pool, "r1", refs, batch_size=4) == 1
            cut = await _burst(settings, pool, job_timeout=0.5)
            assert (cut.jobs_complete, cut.jobs_failed) == (0, 1)
            assert await enqueue_run(pool, "r1", refs, batch_size=4) == 1  # revived
            worker = await _burst(settings, pool)
            assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
        finally:
            await pool.aclose()
        starts = Counter(task.segment_id for task in fake.tasks.values())
        assert max(starts.values()) == 1  # never a pair started twice
        async with aioredis.Redis.from_url(redis_url) as redis:
            counts = await StartLedger(redis, account="acme", run="r1").counts()
        # every pair done: a start the cut job was sending was seen through to its token
        # (arq cuts a job with Task.cancel), a claim it was making was given back
        assert (counts["done"], counts["unknown"]) == (len(refs), 0)


async def test_the_supervisor_revives_a_batch_given_up_and_a_batch_lost(redis_url: str) -> None:
    """arq is at-least-once, not forever: a job past its job_timeout is failed for good, and
    a job whose queue entry is lost is never run. FleetRun.supervise revives both (and
    nothing else) until the run is complete, with no pair started twice."""
    platform = seeded_platform(profiles=50, segments=4, resources=1)
    async with (
        FakeAltcraft(platform, task_plan=TaskPlan.after_seconds(1.0)) as fake,
        Fleet(redis_url, account="acme") as fleet,
    ):
        settings = _cut_settings(redis_url, fake)
        refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
        engine = ArqEngine()
        run = await fleet.start("r1", refs, engine=engine, batch_size=2)  # r1.0 and r1.1
        pool = await create_pool(settings.redis_settings)
        try:
            await pool.zrem(default_queue_name, "r1.1")  # r1.1's queue entry is lost
            cut = await _burst(settings, pool, job_timeout=0.5)  # r1.0 is given up
            assert (cut.jobs_complete, cut.jobs_failed) == (0, 1)
            worker = _worker(settings, pool)
            seen: list[RunProgress] = []
            # the worker as its own task, stopped the way arq's signal handler stops it (a
            # cancel of its task): no cancel scope of the test's task is involved
            serving = asyncio.ensure_future(worker.main())
            try:
                supervision = await run.supervise(
                    engine, every=0.2, check_every=0.1, timeout=60, on_progress=seen.append
                )
            finally:
                await _stop(worker, serving)
        finally:
            await pool.aclose()
        assert supervision.revived == 2  # the given-up batch and the lost one, once each
        assert supervision.progress.complete and seen[-1] == supervision.progress
        starts = Counter(task.segment_id for task in fake.tasks.values())
        assert max(starts.values()) == 1  # never a pair started twice
        final = supervision.progress
        assert (final.done, final.unknown) == (len(refs), 0)  # the cut job's sends seen through


async def test_a_worker_stopped_while_a_start_is_on_the_wire_leaves_the_pair_started(
    redis_url: str,
) -> None:
    """arq stops a worker on SIGTERM by cancelling its jobs (``Worker.handle_sig``, with
    asyncio's ``Task.cancel``). A start on the wire then is seen through to its token before
    the job ends, so the pair is ``started`` and the job's next run resumes it: a graceful
    restart of the workers leaves nothing ``unknown`` and starts nothing twice."""
    platform = seeded_platform(profiles=50, segments=1, resources=1)
    on_the_wire = anyio.Event()

    def sent(event: RequestEvent) -> None:
        if event.endpoint == "segments.refresh_counters":
            on_the_wire.set()

    async with FakeAltcraft(platform, task_plan=TaskPlan.after_seconds(0.3)) as fake:
        settings = _settings(redis_url, fake, event_hooks={"request": [sent]})
        refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
        fake.faults.next("segments/refresh_counters", Fault.delay(1.0))  # a second on the wire
        pool = await create_pool(settings.redis_settings)  # type: ignore[attr-defined]
        try:
            assert await enqueue_run(pool, "r1", refs, batch_size=1) == 1
            worker = _worker(settings, pool)
            serving = asyncio.ensure_future(worker.main())
            try:
                with anyio.fail_after(30):
                    await on_the_wire.wait()
                worker.handle_sig(signal.SIGTERM)  # what arq's SIGTERM handler does
            finally:
                await _stop(worker, serving)
            assert worker.jobs_retried == 1  # arq: cancelled, will be run again
            async with aioredis.Redis.from_url(redis_url) as redis:
                state = await StartLedger(redis, account="acme", run="r1").pair(pair_id(refs[0]))
            assert state.state == "started" and state.token  # its token stored before the end
            again = await _burst(settings, pool)
            assert (again.jobs_complete, again.jobs_failed) == (1, 0)
        finally:
            await pool.aclose()
        assert len(fake.tasks) == 1  # resumed, never started again
        async with aioredis.Redis.from_url(redis_url) as redis:
            counts = await StartLedger(redis, account="acme", run="r1").counts()
        assert (counts["done"], counts["unknown"]) == (1, 0)
