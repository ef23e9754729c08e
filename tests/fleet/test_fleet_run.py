"""The run API against a real redis-server and the fake: a run started or re-attached by id,
its progress and results read by any process, one pair awaited by a process that did not start
it (pub/sub, under a deadline), and a start whose reply was lost reported ``unknown`` at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import pytest
import redis.asyncio as aioredis

from altcraft_async import (
    AltcraftClient,
    APIError,
    DecodeError,
    HTTPStatusError,
    InvalidRequestError,
    RequestEvent,
    RequestTimeoutError,
    SegmentRef,
    TaskTimeoutError,
    TransportError,
)
from altcraft_async.fleet import (
    Fleet,
    RedisRateLimiter,
    StartLedger,
    pair_id,
    ref_of,
    run_pair,
    start_verdict,
)
from altcraft_async.fleet._keys import pair_key
from altcraft_async.testing import FakeAltcraft, Fault, ManualClock, TaskPlan, seeded_platform

from .fleet_helpers import child, expect, go, held_replies, subscribe
from .test_fleet_ledger import as_counters, counters_of, starts_of

pytestmark = pytest.mark.anyio

START = "segments/refresh_counters"

#: How an engine cuts a job off: an anyio cancel scope, or asyncio's ``Task.cancel``, which is
#: how arq ends one (its job timeout through ``asyncio.wait_for``, a SIGTERM, an abort) and
#: which anyio's shield does not hold against.
CUTS = ["scope", "task"]


async def cut_off(
    job: Callable[[], Awaitable[object]],
    cue: Callable[[], Awaitable[object]],
    how: str,
    then: Callable[[], object] = lambda: None,
) -> None:
    """Run ``job``, cut it off ``how`` once ``cue`` returned, call ``then``, and wait (bounded)
    for the job to end: it must end by that cancellation."""
    with anyio.fail_after(30):
        if how == "scope":
            async with anyio.create_task_group() as group:
                group.start_soon(job)
                await cue()
                group.cancel_scope.cancel()
                then()
            assert group.cancel_scope.cancelled_caught
            return
        task = asyncio.ensure_future(job())
        try:
            await cue()
        finally:
            task.cancel()
            then()
            await asyncio.wait({task})
        assert task.cancelled()


def test_what_a_failed_start_means() -> None:
    verdicts = {
        TransportError("refused", sent=False): "released",
        TransportError("reset", sent=True): "unknown",
        RequestTimeoutError("slow", sent=True): "unknown",
        HTTPStatusError("busy", status=429): "released",
        HTTPStatusError("gateway", status=502): "unknown",
        HTTPStatusError("not found", status=404): "failed",
        APIError(400, "bad segment"): "failed",
        DecodeError("garbled"): "unknown",
    }
    assert {error: start_verdict(error) for error in verdicts} == verdicts


def test_pair_names_read_back() -> None:
    for ref in (SegmentRef(7, 24, 1), SegmentRef(7, 24, None)):
        assert ref_of(pair_id(ref)) == ref
    with pytest.raises(InvalidRequestError):
        ref_of("resource.1.2.3")


async def test_a_start_whose_reply_is_lost_is_unknown_at_once(redis_url: str) -> None:
    ref = SegmentRef(1, 1, 1)
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        fake.faults.next(START, Fault.http(502, after_processing=True))
        ledger = StartLedger(redis, account="acme", run="r1")  # a long send lease
        outcome = await run_pair(client, ledger, ref, "a")
        assert outcome.state == "unknown" and "502" in outcome.detail
        assert starts_of(fake, 1) == 1  # the platform did create the task
        state = await ledger.pair(pair_id(ref))
        assert state.state == "unknown" and "may have gone out" in state.detail
        assert await ledger.unknown() == [pair_id(ref)]
        assert await ledger.in_flight() == 0
        assert (await run_pair(client, ledger, ref, "b")).state == "unknown"
        assert starts_of(fake, 1) == 1  # never started again


async def test_a_pair_whose_rate_slot_does_not_come_in_the_slice_is_left_unclaimed(
    redis_url: str,
) -> None:
    """A batch of thousands of pairs queues behind one account's rate: the slice bounds the
    wait for a slot too (else the engine's job timeout kills the batch and the run stalls),
    and a pair given up before its claim is free for the next try, with nothing sent."""
    ref = SegmentRef(1, 1, 1)
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
    ):
        limiter = RedisRateLimiter(redis, rate=0.01, account="acme")  # next slot: 100 s away
        async with AltcraftClient(fake.url, token=fake.token, rate_limiter=limiter) as client:
            async with limiter.slot():  # the one slot there is
                pass
            ledger = StartLedger(redis, account="acme", run="r1")
            with anyio.fail_after(30):  # the unbounded queue this guards against: a hang
                outcome = await run_pair(client, ledger, ref, "a", timeout=0.3, limiter=limiter)
        assert outcome.state == "released" and "no rate slot" in outcome.detail
        assert await ledger.pair(pair_id(ref)) == await ledger.pair(pair_id(SegmentRef(2, 1, 1)))
        assert await ledger.startable(pair_id(ref))
        assert fake.requests == []


async def test_a_run_is_started_once_and_attached_by_id(redis_url: str) -> None:
    refs = [SegmentRef(segment, 1, 1) for segment in (1, 2, 3)]
    async with Fleet(redis_url, account="acme") as fleet:
        run = await fleet.start("r1", refs)
        again = await fleet.start("r1", refs)  # re-attach: the same run
        assert await again.pairs() == await run.pairs() == refs
        with pytest.raises(InvalidRequestError, match="other pairs"):
            await fleet.start("r1", refs[:2])
        for bad in ([], [refs[0], refs[0]]):
            with pytest.raises(InvalidRequestError):
                await fleet.start("r2", bad)
        with pytest.raises(InvalidRequestError, match="no run"):
            await fleet.run("never").progress()
        progress = await fleet.run("r1").progress()
        assert (progress.total, progress.finished, progress.complete) == (3, 0, False)
        assert "redis" not in repr(fleet) and "unix" not in repr(fleet)


async def test_progress_and_results_of_a_run_worked_elsewhere(redis_url: str) -> None:
    platform = seeded_platform(profiles=50, segments=4, resources=1)
    refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
    async with (
        FakeAltcraft(platform, task_plan=TaskPlan.after_polls(1)) as fake,
        Fleet(redis_url, account="acme") as fleet,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        run = await fleet.start("r1", refs)
        ledger = StartLedger(fleet.redis, account="acme", run="r1")
        fake.faults.next(START, Fault.http(503, after_processing=True))  # the first: unknown
        async with anyio.create_task_group() as group:
            for ref in refs:
                group.start_soon(run_pair, client, ledger, ref, "worker")
        reports = [progress async for progress in run.watch(every=0.01, timeout=10)]
        assert len(reports) == 1 and reports[0].complete
        final = reports[0]
        assert (final.total, final.done, final.failed, final.unknown) == (4, 3, 0, 1)
        assert final.in_flight == 0
        outcomes = [outcome async for outcome in run.results()]
        assert [outcome.ref for outcome in outcomes] == refs
        unknown = [outcome.ref for outcome in await run.unknown()]
        assert len(unknown) == 1 and starts_of(fake, unknown[0].segment_id) == 1
        for outcome in outcomes:
            if outcome.state == "done":
                assert as_counters(outcome.result) == counters_of(fake, outcome.ref.segment_id)
                assert outcome.task_id in fake.tasks
        assert {task.segment_id for task in fake.tasks.values()} == set(platform.segments)
        assert len(fake.tasks) == 4  # each pair started once


async def test_another_process_awaits_a_pair_it_did_not_start(redis_url: str) -> None:
    ref = SegmentRef(2, 1, 1)
    async with (
        FakeAltcraft(
            seeded_platform(profiles=50, segments=2, resources=1),
            task_plan=TaskPlan.after_seconds(0.3),
        ) as fake,
        Fleet(redis_url, account="acme") as fleet,
    ):
        run = await fleet.start("r1", [ref])
        assert await run.pair(ref) is None
        with pytest.raises(TaskTimeoutError):
            await run.wait_pair(ref, timeout=0.05)  # nobody started it
        async with child("pair", redis_url, fake.url, fake.token, "r1", "2") as worker:
            await expect(worker, "ready")
            async with anyio.create_task_group() as group:
                waited = []

                async def wait() -> None:
                    waited.append(await run.wait_pair(ref, timeout=30))

                group.start_soon(wait)
                await go(worker)
            await expect(worker, "done")
        (outcome,) = waited
        assert outcome.state == "done" and starts_of(fake, 2) == 1
        assert as_counters(outcome.result) == counters_of(fake, 2)
        # a pair already final answers at once
        assert (await run.wait_pair(ref, timeout=1)).result == outcome.result


async def test_a_pair_that_finishes_before_redis_takes_the_subscription_is_heard(
    redis_url: str,
) -> None:
    """``subscribe()`` returns once SUBSCRIBE is sent, not once Redis has it: here Redis takes
    the waiter's SUBSCRIBE only after the pair finished and was published. The waiter reads
    the pair once Redis confirmed its subscription, so it finds it done instead of waiting for
    a message that went to nobody."""
    ref = SegmentRef(1, 1, 1)
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        Fleet(redis_url, account="acme") as fleet,
        held_replies(redis_url, marker=b"SUBSCRIBE", hold="requests") as proxy,
        Fleet(proxy.url, account="acme") as elsewhere,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        await fleet.start("r1", [ref])
        async with anyio.create_task_group() as group:  # two connections open in its pool,
            for _ in range(2):  # the waiter's subscription's and its read's: one trip each
                group.start_soon(elsewhere.redis.ping)
        ledger = StartLedger(fleet.redis, account="acme", run="r1")
        waited = []

        async def wait() -> None:
            waited.append(await elsewhere.run("r1").wait_pair(ref, timeout=30))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(wait)
                await proxy.sent.wait()  # the waiter sent its SUBSCRIBE; Redis has not got it
                assert (await run_pair(client, ledger, ref, "worker")).state == "done"
                proxy.release.set()
        (outcome,) = waited
        assert outcome.state == "done" and as_counters(outcome.result) == counters_of(fake, 1)


@pytest.mark.parametrize("how", CUTS)
async def test_a_start_on_the_wire_when_its_job_is_cut_off_is_seen_through_to_its_token(
    redis_url: str, how: str
) -> None:
    """The engine cuts a job off (arq: a SIGTERM, its job timeout) while the job's start is on
    the wire: the start is seen through to its reply and its token stored, then the
    cancellation goes on. The pair is ``started`` (the next try resumes it), not ``sending``,
    which would turn ``unknown`` once the lease ran out though the task exists."""
    ref = SegmentRef(1, 1, 1)
    on_the_wire = anyio.Event()

    def sent(event: RequestEvent) -> None:
        if event.endpoint == "segments.refresh_counters":
            on_the_wire.set()

    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
    ):
        limiter = RedisRateLimiter(redis, rate=100, account="acme")
        ledger = StartLedger(redis, account="acme", run="r1")
        async with AltcraftClient(
            fake.url, token=fake.token, rate_limiter=limiter, event_hooks={"request": [sent]}
        ) as client:
            fake.faults.next(START, Fault.delay(1.0))  # its reply is a second away
            job = partial(run_pair, client, ledger, ref, "job", limiter=limiter)
            await cut_off(job, on_the_wire.wait, how)
            state = await ledger.pair(pair_id(ref))
            assert (state.state, state.owner, state.fence) == ("started", "job", 1)
            assert state.token  # the resume token, stored before the job ended
            assert fake.calls(START) == 1
            outcome = await run_pair(client, ledger, ref, "job", limiter=limiter)  # its next try
        assert outcome.state == "done" and as_counters(outcome.result) == counters_of(fake, 1)
        assert starts_of(fake, 1) == 1  # resumed, never started again


async def test_a_start_whose_slot_went_stale_in_a_late_claim_is_released_not_unknown(
    redis_url: str,
) -> None:
    """The benchmark's unknowns with no crash: the claim came back after the slot taken
    ahead went stale, and the start queued for a fresh slot inside its ``sending`` window,
    where the engine's job timeout cut it. The fresh slot is now bounded: when it does not
    come within the bound, nothing was sent and the claim is given back."""
    ref = SegmentRef(1, 1, 1)
    clock = ManualClock()
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
    ):
        # 1 request/s: the slot taken ahead is due now, a fresh one a second after it
        limiter = RedisRateLimiter(redis, rate=1.0, account="acme", clock=clock.now)
        ledger = StartLedger(redis, account="acme", run="r1")
        async with AltcraftClient(fake.url, token=fake.token, rate_limiter=limiter) as client:
            async with limiter.slot(bound=0.5) as slot:
                clock.advance(1.0)  # the claim's reply came back a second late
                with anyio.fail_after(30):  # what this guards against: a wait with no end
                    outcome = await run_pair(client, ledger, ref, "late")
            assert outcome.state == "released" and "went stale" in outcome.detail
            assert not slot.passed and fake.requests == []
        state = await ledger.pair(pair_id(ref))
        assert state.state is None and state.fence == 1  # claimed once, given back
        assert await ledger.startable(pair_id(ref)) and await ledger.in_flight() == 0
        assert await ledger.unknown() == []
        async with AltcraftClient(fake.url, token=fake.token) as client:
            again = await run_pair(client, ledger, ref, "next try")
        assert again.state == "done" and as_counters(again.result) == counters_of(fake, 1)
        assert starts_of(fake, 1) == 1


@pytest.mark.parametrize("how", CUTS)
async def test_a_start_cancelled_before_it_left_gives_its_claim_back(
    redis_url: str, how: str
) -> None:
    """The engine cancels a job (its timeout, a shutdown) while a start waits inside its
    ``sending`` window for its slot: the limiter knows no request of it went towards the
    transport, so the claim is given back instead of turning ``unknown``."""
    ref = SegmentRef(1, 1, 1)
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
    ):
        limiter = RedisRateLimiter(redis, rate=0.5, account="acme")  # a slot every 2 s
        ledger = StartLedger(redis, account="acme", run="r1")
        key = pair_key("acme", "r1", pair_id(ref))
        await redis.config_set("notify-keyspace-events", "Kh")
        pubsub = redis.pubsub()
        await subscribe(pubsub, f"__keyspace@0__:{key}")  # confirmed: no write goes unheard
        try:
            async with AltcraftClient(fake.url, token=fake.token, rate_limiter=limiter) as client:
                async with limiter.slot():  # the slot due now: the start's is 2 s away
                    pass
                limiter.lead = 60.0  # claims were seen to take long: hand the slot out now

                async def claimed() -> None:  # the claim's write: the start is waiting
                    message = None
                    while message is None:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=30
                        )

                job = partial(run_pair, client, ledger, ref, "job", limiter=limiter)
                await cut_off(job, claimed, how)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await redis.config_set("notify-keyspace-events", "")
        assert fake.requests == []
        state = await ledger.pair(pair_id(ref))
        assert state.state is None and state.fence == 1  # claimed once, given back
        assert await ledger.startable(pair_id(ref)) and await ledger.in_flight() == 0
        async with AltcraftClient(fake.url, token=fake.token) as client:
            assert (await run_pair(client, ledger, ref, "next try")).state == "done"
        assert starts_of(fake, 1) == 1


@pytest.mark.parametrize("how", CUTS)
async def test_a_start_cancelled_while_its_claim_is_answered_gives_the_claim_back(
    redis_url: str, how: str
) -> None:
    """The engine cancels a job while Redis answers the pair's claim: Redis has claimed the
    pair, the worker has not heard. The claim's round trip is seen through, so the worker learns
    its fence, gives the claim back and is cancelled: the pair is startable, not ``sending``
    (which would turn ``unknown`` when the lease ran out, though nothing was sent)."""
    ref, warm = SegmentRef(1, 1, 1), SegmentRef(2, 1, 1)
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        held_replies(redis_url, marker=b"cut-in-claim") as proxy,
        aioredis.Redis.from_url(proxy.url) as redis,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        ledger = StartLedger(redis, account="acme", run="r1")
        # Redis learns the ledger's scripts first (a claim cut at NOSCRIPT would claim nothing)
        assert (await run_pair(client, ledger, warm, "warm")).state == "done"
        job = partial(run_pair, client, ledger, ref, "cut-in-claim")
        # cut off once Redis has run the claim, its answer held until then
        await cut_off(job, proxy.sent.wait, how, then=proxy.release.set)
        assert fake.calls(START) == 1  # only the warm-up's start left
        state = await ledger.pair(pair_id(ref))
        assert state.state is None and state.fence == 1  # claimed once, given back
        assert await ledger.startable(pair_id(ref)) and await ledger.in_flight() == 0
        assert (await run_pair(client, ledger, ref, "next try")).state == "done"
        assert starts_of(fake, 1) == 1
