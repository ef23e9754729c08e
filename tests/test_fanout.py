"""Fan-out (``refresh_many``) against FakeAltcraft over loopback: a thousand refreshes with a few
failures, completion order, the concurrency bound as the fake measures it, fail_fast, and
cleanup after an early break, a cancellation or the client's ``aclose()``.

No sleep waits for a condition: progress is observed through events set from the consumer or
from a wrapper around the client's status request, and "nothing runs any more" is checked
with a *quiet window* (one unrelated request the fake holds long enough for a live poller to
have polled several times) plus the fake's counters.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import pytest
from helpers import sdk_tasks

from altcraft_async import (
    AltcraftClient,
    Backoff,
    ClientClosedError,
    CountersSnapshot,
    EventHookMap,
    Failed,
    FanOut,
    InvalidRequestError,
    Outcome,
    PollPolicy,
    RequestEvent,
    ResourceRef,
    ResponseEvent,
    RetryPolicy,
    SegmentRef,
    Succeeded,
    TariffLimitError,
    TaskFailedError,
    TaskTimeoutError,
)
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

pytestmark = pytest.mark.anyio

FAST = PollPolicy(
    backoff=Backoff(initial=0.01, factor=1.5, max_interval=0.03, jitter=0.0),
    timeout=20.0,
    min_interval=0.005,
)
#: Every poll exactly 10 ms apart: the number of polls decides who finishes first.
STEADY = PollPolicy(
    backoff=Backoff(initial=0.01, factor=1.0, max_interval=0.01, jitter=0.0),
    timeout=10.0,
    progress_aware=False,
    min_interval=0.0,
)
STATUS = "tasks/status"
START = "segments/refresh_counters"


@asynccontextmanager
async def env(
    *,
    segments: int = 100,
    resources: int = 10,
    poll: PollPolicy = FAST,
    hooks: EventHookMap | None = None,
    **options: Any,
) -> AsyncIterator[tuple[FakeAltcraft, AltcraftClient]]:
    """A seeded fake with ``segments`` x ``resources`` refs and a client with fast polls
    (and the event ``hooks`` given)."""
    retry = RetryPolicy(attempts=2, backoff=Backoff(initial=0.005, max_interval=0.01))
    fake = FakeAltcraft.seeded(profiles=1000, segments=segments, resources=resources, **options)
    async with (
        fake,
        AltcraftClient(
            fake.url, token=fake.token, poll=poll, retry=retry, event_hooks=hooks
        ) as client,
    ):
        yield fake, client


def segment_refs(fake: FakeAltcraft) -> list[SegmentRef]:
    return [SegmentRef(*triple) for triple in fake.platform.segment_refs()]


def counters(snapshot: CountersSnapshot) -> dict[str, dict[str, int]]:
    return {
        item.channel: {k: v for k, v in attrs.asdict(item.status).items() if v is not None}
        for item in snapshot.channels
    }


async def quiet_window(fake: FakeAltcraft, client: AltcraftClient, seconds: float = 0.1) -> None:
    """One unrelated round trip that the fake holds for ``seconds`` (3-10 poll intervals)."""
    if seconds:
        fake.faults.next("segments/get_counters", Fault.delay(seconds))
    ref = segment_refs(fake)[0]
    await client.segments.get_counters(
        segment_id=ref.segment_id, resource_id=ref.resource_id, database_id=ref.database_id
    )


async def assert_everything_stopped(fake: FakeAltcraft, client: AltcraftClient) -> None:
    """No task left, no connection held, no start or poll arriving during a quiet window."""
    assert not sdk_tasks()
    assert client.connections_in_use() == 0
    assert client.polling_tasks() == frozenset()
    # a plain round trip first: a request cancelled after it was written lands before it ends
    await quiet_window(fake, client, 0)
    before = dict(fake.stats.by_endpoint)
    await quiet_window(fake, client)
    after = fake.stats.by_endpoint
    assert after.get(START) == before.get(START)
    assert after.get(STATUS) == before.get(STATUS)


# --- a thousand refreshes ------------------------------------------------------------------------


async def test_a_thousand_refreshes_with_a_few_failures() -> None:
    concurrency = 50
    async with env(task_plan=TaskPlan.after_polls(1)) as (fake, client):
        refs = segment_refs(fake)
        assert len(refs) == 1000 and len(set(refs)) == 1000
        failing = {refs[5].segment_id, refs[500].segment_id, refs[995].segment_id}
        for segment_id in failing:
            fake.plan_tasks(TaskPlan.fails(after_polls=1), segment_id=segment_id)

        outcomes: list[Outcome[SegmentRef]] = []
        async with client.segments.refresh_many(refs, concurrency=concurrency) as results:
            assert isinstance(results, FanOut)
            async for outcome in results:
                outcomes.append(outcome)

        assert Counter(o.ref for o in outcomes) == Counter(refs)  # each ref exactly once
        failed = [o for o in outcomes if not o.ok]
        assert {o.ref.segment_id for o in failed} == failing
        assert len(failed) == 10 * len(failing)  # every resource of the failing segments
        for outcome in failed:
            assert isinstance(outcome.error, TaskFailedError)
            assert outcome.error.status == "failed" and outcome.result is None
        expected: dict[tuple[int, int], dict[str, dict[str, int]]] = {}
        for outcome in outcomes:
            if outcome.ok:
                assert outcome.error is None and outcome.result is not None
                (snap,) = outcome.result
                key = (outcome.ref.segment_id, outcome.ref.resource_id)
                expected[key] = fake.platform.segment_counters(*key)
                assert snap.resource_id == outcome.ref.resource_id
                assert counters(snap) == expected[key]

        stats = fake.stats
        assert stats.tasks_started == 1000
        assert stats.by_endpoint[STATUS] == 2000  # after_polls(1): two polls per task
        # never more than the bound; well above 1, so they did overlap (how far depends on
        # the machine's load: a busy 2-core CI runner saw 21 of 50)
        assert concurrency // 5 <= stats.max_tasks_in_flight <= concurrency
        assert stats.tasks_in_flight == 0
        # completion order: the fake served the terminal statuses in (nearly) this order
        served: dict[tuple[int | None, int], float] = {}
        for record in fake.tasks.values():
            assert record.final_served_at is not None
            served[(record.segment_id, record.resource_id)] = record.final_served_at
        times = [served[(o.ref.segment_id, o.ref.resource_id)] for o in outcomes]
        out_of_order = sum(later < earlier for earlier, later in itertools.pairwise(times))
        assert out_of_order <= 10  # 0 in practice; replies on two sockets may swap
        await assert_everything_stopped(fake, client)


async def test_outcomes_come_in_completion_order() -> None:
    """Four refreshes needing 31, 21, 11 and 1 polls (10 ms apart) finish in reverse order:
    each 100 ms after the next, a gap no loop's lateness closes (a late loop delays all four)."""
    async with env(segments=4, resources=1, poll=STEADY) as (fake, client):
        refs = segment_refs(fake)
        for ref, polls in zip(refs, (30, 20, 10, 0), strict=True):
            fake.plan_tasks(TaskPlan.after_polls(polls), segment_id=ref.segment_id)
        async with client.segments.refresh_many(refs, concurrency=4) as results:
            order = [outcome.ref async for outcome in results]
        assert order == refs[::-1]
        served = sorted(fake.tasks.values(), key=lambda record: record.final_served_at or 0.0)
        assert [record.segment_id for record in served] == [ref.segment_id for ref in order]


@pytest.mark.parametrize("concurrency", [1, 7])
async def test_the_concurrency_bound_holds_as_the_fake_measures_it(concurrency: int) -> None:
    async with env(segments=3, resources=4, task_plan=TaskPlan.after_polls(1)) as (fake, client):
        refs = segment_refs(fake)
        outcomes = [o async for o in client.segments.refresh_many(refs, concurrency=concurrency)]
        assert len(outcomes) == 12 and all(o.ok for o in outcomes)
        # a refresh is in flight at the server from its start to its final status served
        assert fake.stats.max_tasks_in_flight == concurrency


async def test_repeated_refs_each_start_their_own_task() -> None:
    """Without coalescing (tests/test_coalesce.py has the default, one shared task)."""
    async with env(segments=2, resources=1, task_plan=TaskPlan.after_polls(1)) as (fake, client):
        ref = segment_refs(fake)[1]
        outcomes = [
            o
            async for o in client.segments.refresh_many([ref] * 30, concurrency=10, coalesce=False)
        ]
        assert [o.ref for o in outcomes] == [ref] * 30
        expected = fake.platform.segment_counters(ref.segment_id, ref.resource_id)
        assert all(o.result is not None and counters(o.result[0]) == expected for o in outcomes)
        assert fake.stats.tasks_started == 30 and len(fake.tasks) == 30


async def test_resources_refresh_many() -> None:
    async with env(segments=1, resources=5, task_plan=TaskPlan.after_polls(1)) as (fake, client):
        refs = [ResourceRef(*pair) for pair in fake.platform.resource_refs()] * 20
        bad = refs[2].resource_id
        fake.plan_tasks(TaskPlan.fails(status="error"), kind="resource", resource_id=bad)
        outcomes = [o async for o in client.resources.refresh_many(refs, concurrency=25)]
        assert len(outcomes) == 100
        for outcome in outcomes:
            if outcome.ref.resource_id == bad:
                assert isinstance(outcome.error, TaskFailedError)
                assert outcome.error.status == "error"
            else:
                assert outcome.result is not None
                (snap,) = outcome.result
                assert counters(snap) == fake.platform.resource_counters(
                    outcome.ref.resource_id, outcome.ref.database_id
                )
        assert sum(not o.ok for o in outcomes) == 20
        assert fake.stats.max_tasks_in_flight <= 25
        await assert_everything_stopped(fake, client)


async def test_a_wait_error_and_a_start_error_become_outcomes() -> None:
    """A timeout on one ref and a refused start on another: the rest still complete.

    The never-ending ref runs out of polls (``max_attempts``: a TaskTimeoutError at its third
    poll), not out of time: the healthy ref has its whole 10 s to start and be polled once.
    """
    async with env(segments=3, resources=1, task_plan=TaskPlan.immediate()) as (fake, client):
        refs = segment_refs(fake)
        fake.plan_tasks(TaskPlan.never(), segment_id=refs[0].segment_id)
        fake.faults.script(START, Fault.api_error(402, "tariff limit"), calls=[2])
        three_polls = attrs.evolve(FAST, max_attempts=3)
        results = client.segments.refresh_many(refs, concurrency=3, timeout=10, policy=three_polls)
        outcomes = {o.ref: o async for o in results}
        timed_out = outcomes[refs[0]].error
        assert isinstance(timed_out, TaskTimeoutError)
        assert len(fake.tasks[timed_out.task_id].polls) == 3
        assert sum(isinstance(o.error, TariffLimitError) for o in outcomes.values()) == 1
        assert sum(o.ok for o in outcomes.values()) == 1
        await assert_everything_stopped(fake, client)


async def test_an_outcome_is_a_succeeded_or_a_failed() -> None:
    """The two kinds of outcome, as a consumer tells them apart and as they show in logs."""
    async with env(segments=2, resources=1, task_plan=TaskPlan.after_polls(1)) as (fake, client):
        good, bad = segment_refs(fake)
        fake.plan_tasks(TaskPlan.fails(status="failed"), segment_id=bad.segment_id)
        outcomes = {o.ref: o async for o in client.segments.refresh_many([good, bad])}
        match outcomes[good]:
            case Succeeded(ref=ref, result=[snapshot]):
                assert ref == good and outcomes[good].error is None and outcomes[good].ok
                assert counters(snapshot) == fake.platform.segment_counters(
                    good.segment_id, good.resource_id
                )
            case other:
                pytest.fail(f"not a success: {other!r}")
        failed = outcomes[bad]
        assert isinstance(failed, Failed) and isinstance(failed.error, TaskFailedError)
        assert failed.result is None and failed.ok is False
        assert repr(failed) == f"Failed(ref={bad!r}, error={failed.error!r})"
        assert Failed(bad, failed.error) == failed != Succeeded(bad, None)


# --- fail_fast -----------------------------------------------------------------------------------


async def test_fail_fast_cancels_the_rest() -> None:
    async with env(task_plan=TaskPlan.after_polls(2)) as (fake, client):
        refs = segment_refs(fake)
        first = refs[0]
        fake.plan_tasks(
            TaskPlan.fails(after_polls=0),
            segment_id=first.segment_id,
            resource_id=first.resource_id,
        )
        outcomes: list[Outcome[SegmentRef]] = []
        async with client.segments.refresh_many(refs, concurrency=10, fail_fast=True) as results:
            async for outcome in results:
                outcomes.append(outcome)
        errors = [o for o in outcomes if not o.ok]
        assert [o.ref for o in errors] == [first]
        assert isinstance(errors[0].error, TaskFailedError)
        assert len(outcomes) < 50
        assert fake.stats.tasks_started < 50  # far fewer than the 1000 refs
        await assert_everything_stopped(fake, client)
        assert fake.stats.tasks_started < 50


async def test_without_fail_fast_one_failure_never_stops_the_rest() -> None:
    async with env(segments=5, resources=2, task_plan=TaskPlan.after_polls(1)) as (fake, client):
        refs = segment_refs(fake)
        fake.plan_tasks(TaskPlan.fails(), segment_id=refs[0].segment_id)
        outcomes = [o async for o in client.segments.refresh_many(refs, concurrency=2)]
        assert len(outcomes) == 10 and sum(not o.ok for o in outcomes) == 2


# --- early exit, cancellation, aclose -------------------------------------------------------------


async def test_breaking_out_early_cancels_everything() -> None:
    async with env(task_plan=TaskPlan.after_polls(3)) as (fake, client):
        refs = segment_refs(fake)
        async with client.segments.refresh_many(refs, concurrency=20) as results:
            async for outcome in results:
                assert outcome.ok
                break
        assert fake.stats.tasks_started < 100
        await assert_everything_stopped(fake, client)
        # the client still works, for single calls and for another fan-out
        fake.plan_tasks(TaskPlan.immediate())
        again = [o async for o in client.segments.refresh_many(refs[:5], concurrency=5)]
        assert len(again) == 5 and all(o.ok for o in again)


async def test_aclose_after_a_bare_async_for() -> None:
    async with env(task_plan=TaskPlan.after_polls(3)) as (fake, client):
        results = client.segments.refresh_many(segment_refs(fake), concurrency=20)
        async for _ in results:
            break
        await results.aclose()
        await results.aclose()  # idempotent
        await assert_everything_stopped(fake, client)


async def test_an_abandoned_iterator_is_cancelled_when_collected() -> None:
    async with env(task_plan=TaskPlan.after_polls(3)) as (fake, client):
        results = client.segments.refresh_many(segment_refs(fake), concurrency=20)
        async for _ in results:
            break
        engine = results._engine
        assert engine is not None and not engine.done()
        del results  # nothing but the user held it: collecting it cancels the engine
        gc.collect()
        await asyncio.wait({engine})
        assert engine.cancelled()
        assert fake.stats.tasks_started < 100
        await assert_everything_stopped(fake, client)


class Pulled:
    """An iterator over ``refs`` that counts how many the fan-out has pulled."""

    def __init__(self, refs: list[SegmentRef]) -> None:
        self._refs = iter(refs)
        self.count = 0

    def __iter__(self) -> Iterator[SegmentRef]:
        return self

    def __next__(self) -> SegmentRef:
        ref = next(self._refs)
        self.count += 1
        return ref


async def test_lazy_refs_are_pulled_only_as_capacity_frees() -> None:
    async with env(task_plan=TaskPlan.after_polls(1)) as (fake, client):
        lazy = Pulled(segment_refs(fake))
        async with client.segments.refresh_many(lazy, concurrency=5) as results:
            async for _ in results:
                break
        assert lazy.count <= 10
        await assert_everything_stopped(fake, client)


async def test_cancelling_the_consumer_stops_the_fan_out() -> None:
    polled = anyio.Event()
    polls = 0

    def on_response(event: ResponseEvent) -> None:
        nonlocal polls
        polls += event.endpoint == "tasks.status"
        if polls >= 30:
            polled.set()

    async with env(task_plan=TaskPlan.never(), hooks={"response": [on_response]}) as (
        fake,
        client,
    ):
        refs = segment_refs(fake)

        engine_done_at_exit: list[bool] = []

        async def consume(scope: anyio.CancelScope) -> None:
            with scope:
                async with client.segments.refresh_many(refs, concurrency=10) as results:
                    async for _ in results:
                        raise AssertionError("a never-ending task finished")
            # leaving the block, although it was cancelled, waited for the engine to stop
            engine = results._engine
            engine_done_at_exit.append(engine is not None and engine.done())

        scope = anyio.CancelScope()
        async with anyio.create_task_group() as group:
            group.start_soon(consume, scope)
            await polled.wait()
            scope.cancel()
        assert scope.cancelled_caught
        assert engine_done_at_exit == [True]
        assert fake.stats.tasks_started == 10
        await assert_everything_stopped(fake, client)


async def test_asyncio_cancel_of_the_consumer_stops_the_fan_out() -> None:
    started = asyncio.Event()

    def on_request(event: RequestEvent) -> None:
        if event.endpoint == "tasks.status":
            started.set()

    async with env(task_plan=TaskPlan.never(), hooks={"request": [on_request]}) as (
        fake,
        client,
    ):
        refs = segment_refs(fake)

        engine_done_at_exit: list[bool] = []

        async def consume() -> None:
            results = client.segments.refresh_many(refs, concurrency=10)
            try:
                async with results:
                    async for _ in results:
                        pass
            finally:
                engine = results._engine
                engine_done_at_exit.append(engine is not None and engine.done())

        consumer = asyncio.get_running_loop().create_task(consume())
        await started.wait()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert engine_done_at_exit == [True]
        await assert_everything_stopped(fake, client)
        assert fake.stats.tasks_started <= 10


async def test_client_aclose_stops_a_running_fan_out() -> None:
    async with env(task_plan=TaskPlan.after_polls(3)) as (fake, client):
        refs = segment_refs(fake)
        first = anyio.Event()
        seen: list[Outcome[SegmentRef]] = []
        ended: list[BaseException | None] = []

        async def consume() -> None:
            try:
                async for outcome in client.segments.refresh_many(refs, concurrency=20):
                    seen.append(outcome)
                    first.set()
            except ClientClosedError as error:
                ended.append(error)
                return
            ended.append(None)

        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await first.wait()
            await client.aclose()
        # the consumer learns why its loop stopped instead of taking it for a normal end
        assert len(ended) == 1 and isinstance(ended[0], ClientClosedError)
        assert 1 <= len(seen) < 1000
        assert client.closed and client.connections_in_use() == 0
        assert not sdk_tasks()
        started = fake.stats.tasks_started
        async with AltcraftClient(fake.url, token=fake.token) as other:
            await quiet_window(fake, other)
            polls = fake.calls(STATUS)
            await quiet_window(fake, other)
        assert fake.calls(STATUS) == polls
        assert fake.stats.tasks_started == started < 1000
        with pytest.raises(ClientClosedError):
            await client.segments.get_counters(segment_id=1, resource_id=1)


async def test_closing_the_client_as_the_fan_out_starts_leaves_no_stream_open() -> None:
    """client.aclose() in the same loop turn as the first step: the engine is cancelled before
    it ever ran, and its stream must still be closed (else a ResourceWarning, an error here)."""
    async with env(task_plan=TaskPlan.after_polls(1)) as (fake, client):
        refs = segment_refs(fake)[:4]
        ended: list[str] = []  # not the error: its traceback would keep the FanOut alive

        async def consume() -> None:
            try:
                async for _ in client.segments.refresh_many(refs, concurrency=2):
                    pass
            except ClientClosedError as error:
                ended.append(str(error))

        loop = asyncio.get_running_loop()
        consumer = loop.create_task(consume())  # its first step starts the engine...
        closing = loop.create_task(client.aclose())  # ...and this runs right after it
        await closing
        await consumer
        assert ended == ["the client was closed during refresh_many"]
        del consumer, closing
        gc.collect()  # an unclosed stream would warn (an error in this suite) when collected
        assert not sdk_tasks()


# --- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [0, -1, True, 2.5, "10", None])
async def test_invalid_concurrency_is_refused_before_anything_is_sent(concurrency: Any) -> None:
    async with env(segments=1, resources=1) as (fake, client):
        with pytest.raises(InvalidRequestError):
            client.segments.refresh_many(segment_refs(fake), concurrency=concurrency)
        with pytest.raises(InvalidRequestError):
            client.resources.refresh_many([ResourceRef(1, 1)], concurrency=concurrency)
        assert fake.stats.requests == 0


async def test_no_refs_no_outcomes() -> None:
    async with env(segments=1, resources=1) as (fake, client):
        assert [o async for o in client.segments.refresh_many([])] == []
        async with client.resources.refresh_many([]) as results:
            assert [o async for o in results] == []
        assert fake.stats.requests == 0
        assert not sdk_tasks()


async def test_an_unused_fan_out_sends_nothing() -> None:
    async with env(segments=1, resources=1) as (fake, client):
        async with client.segments.refresh_many(segment_refs(fake)):
            pass
        assert fake.stats.requests == 0 and not sdk_tasks()


# --- review fixes: a closed fan-out stays closed; a crashed one reports its error once ------


async def test_a_fan_out_closed_before_iterating_starts_nothing() -> None:
    async with env(segments=2, resources=1) as (fake, client):
        results = client.segments.refresh_many(segment_refs(fake))
        await results.aclose()
        assert [outcome async for outcome in results] == []
        assert fake.calls(START) == 0


async def test_a_crashing_refs_iterable_reaches_the_consumer_and_the_client_still_closes() -> None:
    class Boom(Exception):
        pass

    async with env(segments=2, resources=1, task_plan=TaskPlan.immediate()) as (fake, client):

        def refs() -> Iterator[SegmentRef]:
            yield from segment_refs(fake)[:1]
            raise Boom("bad input file")

        with pytest.raises(Boom):  # the error itself, not an ExceptionGroup around it
            async with client.segments.refresh_many(refs()) as results:
                async for _ in results:
                    pass
        await client.aclose()
        assert client.closed and client.connections_in_use() == 0


async def test_a_crashing_run_one_stops_the_fan_out_and_reaches_the_consumer_as_itself() -> None:
    """A bug in the per-ref function (not an AltcraftError, so not a Failed outcome) cancels
    the refreshes in flight, pulls no other ref and is raised to the consumer, once."""

    class Boom(Exception):
        pass

    async with env(task_plan=TaskPlan.never()) as (fake, client):
        lazy = Pulled(segment_refs(fake))
        started = 0

        async def run_one(ref: SegmentRef) -> Any:
            nonlocal started
            started += 1
            if started == 3:
                raise Boom("a bug")
            task = await client.segments.refresh_counters(
                segment_id=ref.segment_id, resource_id=ref.resource_id
            )
            return await task.wait()

        with pytest.raises(Boom):
            async with client._fan_out(lazy, run_one, concurrency=5, fail_fast=False) as out:
                async for _ in out:
                    raise AssertionError("a never-ending task finished")
        assert 3 <= started <= lazy.count <= 5
        await assert_everything_stopped(fake, client)


async def test_refreshes_still_starting_are_bounded_by_the_pool_not_the_waits() -> None:
    """At most max_connections refreshes of a fan-out are in their start at once (the rest
    are not launched yet, so their start requests never queue ahead of due polls), while
    waits, which cost no connection while parked, run up to ``concurrency``."""
    retry = RetryPolicy(attempts=2, backoff=Backoff(initial=0.005, max_interval=0.01))
    fake = FakeAltcraft.seeded(profiles=100, segments=30, resources=1)
    fake.plan_tasks(TaskPlan.after_polls(2))
    starting = waiting = most_starting = most_waiting = 0
    async with (
        fake,
        AltcraftClient(
            fake.url, token=fake.token, poll=FAST, retry=retry, max_connections=3
        ) as client,
    ):

        async def run_one(ref: SegmentRef) -> Any:
            nonlocal starting, waiting, most_starting, most_waiting
            starting += 1
            most_starting = max(most_starting, starting)
            try:
                task = await client.segments.refresh_counters(
                    segment_id=ref.segment_id,
                    resource_id=ref.resource_id,
                    database_id=ref.database_id,
                )
            finally:
                starting -= 1
            waiting += 1
            most_waiting = max(most_waiting, waiting)
            try:
                return await task.wait()
            finally:
                waiting -= 1

        refs = segment_refs(fake)
        async with client._fan_out(refs, run_one, concurrency=30, fail_fast=False) as out:
            outcomes = [outcome async for outcome in out]
    assert len(outcomes) == 30 and all(outcome.ok for outcome in outcomes)
    assert most_starting <= 3 < most_waiting
