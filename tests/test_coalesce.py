"""Coalesced starts: in one client, a refresh of a pair already being refreshed joins that task.

Real client, real FakeAltcraft over loopback; the fake's own counters (``tasks_started``, the
calls per endpoint) say how many tasks and polls there were.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from helpers import small_platform

from altcraft_async import (
    AltcraftClient,
    Backoff,
    BadRequestError,
    Feedback,
    FeedbackReceiver,
    InvalidRequestError,
    PollPolicy,
    RequestEvent,
    RetryPolicy,
    SegmentRef,
    Task,
    TaskFailedError,
    TaskTimeoutError,
)
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

pytestmark = pytest.mark.anyio

SEG = {"segment_id": 7, "resource_id": 24, "database_id": 1}
SEG_REFRESH = "segments/refresh_counters"
STATUS = "tasks/status"
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.005, max_interval=0.02), timeout=30.0)
FAST_RETRY = RetryPolicy(attempts=2, backoff=Backoff(initial=0.001, max_interval=0.005))


@asynccontextmanager
async def scene(
    plan: TaskPlan | None = None, **client_options: Any
) -> AsyncIterator[tuple[FakeAltcraft, AltcraftClient]]:
    client_options.setdefault("poll", FAST_POLL)
    client_options.setdefault("retry", FAST_RETRY)
    async with (
        FakeAltcraft(small_platform(), task_plan=plan or TaskPlan.after_polls(3)) as fake,
        AltcraftClient(fake.url, token=fake.token, **client_options) as client,
    ):
        yield fake, client


async def refresh_concurrently(client: AltcraftClient, n: int, **options: Any) -> list[Any]:
    results: list[Any] = []

    async def one() -> None:
        results.append(await client.segments.refresh_and_wait(**SEG, **options))

    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(one)
    return results


async def test_200_concurrent_refreshes_of_one_pair_start_one_task() -> None:
    async with scene() as (fake, client):
        results = await refresh_concurrently(client, 200)
        assert fake.stats.tasks_started == 1 and fake.calls(SEG_REFRESH) == 1
        assert len(results) == 200 and all(result == results[0] for result in results)
        expected = fake.platform.segment_counters(7, 24)
        email = results[0][0].channel("email").status
        assert email.subscribed_sendable == expected["email"]["subscribed_sendable"]
        shared_polls = fake.calls(STATUS)
        fake.reset()
        await client.segments.refresh_and_wait(**SEG)  # the pair was released: a new task
        assert fake.stats.tasks_started == 2
        # single-flight: the 200 waits on the one task polled as much as one wait alone
        assert shared_polls == fake.calls(STATUS)
        fake.reset()
        await refresh_concurrently(client, 200, coalesce=False)
        assert fake.calls(SEG_REFRESH) == 200
        assert fake.calls(STATUS) >= 200 * shared_polls  # each task polled on its own


async def test_a_client_that_does_not_coalesce_starts_a_task_per_refresh() -> None:
    async with scene(coalesce=False) as (fake, client):
        await refresh_concurrently(client, 20)
        assert fake.stats.tasks_started == 20
        await refresh_concurrently(client, 20, coalesce=True)  # the call's option wins
        assert fake.stats.tasks_started == 21


async def test_refresh_counters_handles_of_coalesced_starts_share_the_task_id() -> None:
    async with scene() as (fake, client):
        handles: list[Task] = []

        async def start() -> None:
            handles.append(await client.segments.refresh_counters(**SEG))

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(start)
        assert fake.calls(SEG_REFRESH) == 1  # the starters awaited the one start in flight
        assert len({id(handle) for handle in handles}) == 10
        assert {handle.task_id for handle in handles} == set(fake.tasks)
        later = await client.segments.refresh_counters(**SEG)  # the task still runs: joined
        assert later.task_id == handles[0].task_id and fake.stats.tasks_started == 1


async def test_other_pairs_and_other_kinds_start_their_own_tasks() -> None:
    async with scene() as (fake, client):
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: client.segments.refresh_and_wait(**SEG))
            group.start_soon(
                lambda: client.segments.refresh_and_wait(
                    segment_id=8, resource_id=24, database_id=1
                )
            )
            group.start_soon(
                lambda: client.databases.refresh_and_wait(database_id=1, resource_id=24)
            )
            group.start_soon(
                lambda: client.resources.refresh_and_wait(resource_id=24, database_id=1)
            )
        assert fake.stats.tasks_started == 4


async def test_a_finished_task_releases_the_pair() -> None:
    async with scene() as (fake, client):
        first = await client.segments.refresh_and_wait(**SEG)
        second = await client.segments.refresh_and_wait(**SEG)
        assert fake.stats.tasks_started == 2  # a refresh after the end is a new refresh
        assert first[0].updated <= second[0].updated


async def test_a_task_seen_ended_by_a_status_read_releases_the_pair() -> None:
    async with scene(plan=TaskPlan.immediate()) as (fake, client):
        task = await client.segments.refresh_counters(**SEG)
        assert (await client.tasks.status(task.task_id)).succeeded
        again = await client.segments.refresh_counters(**SEG)
        assert again.task_id != task.task_id and fake.stats.tasks_started == 2


async def test_a_failed_task_fails_every_joiner_and_releases_the_pair() -> None:
    async with scene() as (fake, client):
        fake.plan_tasks(TaskPlan.fails(status="error"), count=1)
        outcomes: list[BaseException] = []

        async def one() -> None:
            try:
                await client.segments.refresh_and_wait(**SEG)
            except TaskFailedError as error:
                outcomes.append(error)

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(one)
        assert len(outcomes) == 5 and fake.stats.tasks_started == 1
        assert await client.segments.refresh_and_wait(**SEG)
        assert fake.stats.tasks_started == 2


async def test_a_timeout_releases_nothing_while_the_task_is_held() -> None:
    async with scene(plan=TaskPlan.never()) as (fake, client):
        held = await client.segments.refresh_counters(**SEG)
        with pytest.raises(TaskTimeoutError):
            await client.segments.refresh_and_wait(**SEG, timeout=0.05)
        joined = await client.segments.refresh_counters(**SEG)
        assert joined.task_id == held.task_id and fake.stats.tasks_started == 1


async def test_a_task_nobody_holds_is_not_joined() -> None:
    # its result could be arbitrarily old: a handle dropped unawaited releases the pair
    async with scene(plan=TaskPlan.never()) as (fake, client):
        dropped = await client.segments.refresh_counters(**SEG)
        first_id = dropped.task_id
        del dropped
        gc.collect()
        fresh = await client.segments.refresh_counters(**SEG)
        assert fresh.task_id != first_id and fake.stats.tasks_started == 2


async def test_a_start_refused_with_an_answer_fails_its_joiners_and_releases_the_pair() -> None:
    async with scene() as (fake, client):
        fake.faults.next(SEG_REFRESH, Fault.api_error(400, "no such segment"))
        errors: list[BaseException] = []

        async def start() -> None:
            try:
                await client.segments.refresh_counters(**SEG)
            except BadRequestError as error:
                errors.append(error)

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(start)
        assert len(errors) == 5 and fake.calls(SEG_REFRESH) == 1
        assert await client.segments.refresh_counters(**SEG)  # released: a new start
        assert fake.calls(SEG_REFRESH) == 2


async def test_a_start_cancelled_in_flight_is_started_again_by_its_joiner() -> None:
    sent = anyio.Event()

    def on_request(event: RequestEvent) -> None:
        if event.endpoint == "segments.refresh_counters":
            sent.set()

    async with scene(event_hooks={"request": [on_request]}) as (fake, client):
        fake.faults.next(SEG_REFRESH, Fault.delay(0.5))
        joined: list[Task] = []

        async def join() -> None:
            joined.append(await client.segments.refresh_counters(**SEG))

        async with anyio.create_task_group() as group:
            with anyio.CancelScope() as leader:
                group.start_soon(join_after_the_start_is_sent, sent, join, leader)
                await client.segments.refresh_counters(**SEG)
        assert leader.cancelled_caught
        # the joiner led a start of its own (the leader's may not have reached the fake)
        assert len(joined) == 1 and joined[0].task_id in fake.tasks


async def join_after_the_start_is_sent(sent: anyio.Event, join: Any, leader: Any) -> None:
    await sent.wait()
    async with anyio.create_task_group() as group:
        group.start_soon(join)
        await anyio.lowlevel.checkpoint()  # the joiner now awaits the leader's start
        leader.cancel()


async def test_a_plain_feedback_webhook_always_starts_its_own_task() -> None:
    async with scene() as (fake, client):
        feedback = Feedback(url="http://127.0.0.1:9/hook")
        a = await client.resources.refresh_counters(resource_id=24, database_id=1)
        b = await client.resources.refresh_counters(
            resource_id=24, database_id=1, feedback=feedback
        )
        assert a.task_id != b.task_id and fake.stats.tasks_started == 2


async def test_a_receiver_start_may_join_and_then_polls() -> None:
    async with scene() as (fake, client), FeedbackReceiver() as receiver:
        held = await client.resources.refresh_counters(resource_id=24, database_id=1)
        snapshots = await client.resources.refresh_and_wait(
            resource_id=24, database_id=1, feedback=receiver
        )
        assert snapshots and fake.stats.tasks_started == 1
        assert fake.tasks[held.task_id].feedback_url is None  # nobody asked for a push


async def test_refresh_many_of_repeated_refs_shares_one_task() -> None:
    async with scene() as (fake, client):
        ref = SegmentRef(**SEG)
        async with client.segments.refresh_many([ref] * 30, concurrency=10) as outcomes:
            results = [outcome async for outcome in outcomes]
        assert all(outcome.error is None for outcome in results) and len(results) == 30
        assert fake.stats.tasks_started <= 3  # a task per wave of joiners at most
        assert fake.stats.tasks_started < 30


async def test_coalesce_must_be_a_bool() -> None:
    async with scene() as (fake, client):
        with pytest.raises(InvalidRequestError, match="coalesce"):
            await client.segments.refresh_counters(**SEG, coalesce="yes")  # type: ignore[arg-type]
        assert fake.stats.requests == 0
    with pytest.raises(InvalidRequestError, match="coalesce"):
        AltcraftClient("http://127.0.0.1:1", token="t", coalesce=1)  # type: ignore[arg-type]


# --- how a failed start reaches the calls that joined it (through the transport seam) --------

SEAM_URL = "https://altcraft.example"
SEG_ARGS = {"segment_id": 7, "resource_id": 24}


async def test_a_start_that_got_no_answer_fails_its_joiners_together_not_one_by_one() -> None:
    from altcraft_async import Backoff, HTTPRequest, HTTPResponse, RetryPolicy, TransportError
    from altcraft_async.testing import MockTransport

    release = anyio.Event()
    sent = 0

    async def handler(request: HTTPRequest) -> HTTPResponse:
        nonlocal sent
        sent += 1
        await release.wait()
        raise TransportError("cannot connect", endpoint=request.endpoint, sent=False)

    retry = RetryPolicy(attempts=2, backoff=Backoff(initial=0.001, max_interval=0.001))
    mock = MockTransport(handler)
    async with AltcraftClient(SEAM_URL, token="t", transport=mock, retry=retry) as client:
        errors: list[BaseException] = []

        async def refresh() -> None:
            try:
                await client.segments.refresh_counters(**SEG_ARGS)
            except TransportError as error:
                errors.append(error)

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(refresh)
            await anyio.wait_all_tasks_blocked()
            release.set()
    # the leader's two tries, and no start of their own for the 19 that joined it
    assert sent == 2 and len(errors) == 20
    assert len({id(error) for error in errors}) == 20  # each caller its own copy
    assert {str(error) for error in errors} == {str(errors[0])}
    joined = [error for error in errors if error.__cause__ is not None]
    assert len(joined) == 19 and all(isinstance(e.__cause__, TransportError) for e in joined)


async def test_a_joiner_whose_own_policy_would_retry_the_failure_starts_again() -> None:
    from altcraft_async import APIError, Backoff, HTTPRequest, HTTPResponse, RetryPolicy
    from altcraft_async.testing import MockTransport

    first = anyio.Event()
    answers = 0

    async def handler(request: HTTPRequest) -> HTTPResponse:
        nonlocal answers
        answers += 1
        if answers == 1:
            await first.wait()
            return MockTransport.json_reply(status=429, error=429, error_text="slow down")
        return MockTransport.json_reply({"task_id": "t-2"})

    fast = RetryPolicy(backoff=Backoff(initial=0.001, max_interval=0.001))
    mock = MockTransport(handler)
    async with AltcraftClient(SEAM_URL, token="t", transport=mock, retry=fast) as client:
        results: dict[str, Any] = {}

        async def leader() -> None:
            try:
                await client.segments.refresh_counters(**SEG_ARGS, retry=RetryPolicy(attempts=1))
            except APIError as error:
                results["leader"] = error.code

        async def joiner() -> None:
            results["joiner"] = (await client.segments.refresh_counters(**SEG_ARGS)).task_id

        async with anyio.create_task_group() as group:
            group.start_soon(leader)
            await anyio.wait_all_tasks_blocked()
            group.start_soon(joiner)
            await anyio.wait_all_tasks_blocked()
            first.set()
    # the leader's one try got 429; the joiner's policy (4 tries) retries a 429, even a start's
    assert results == {"leader": 429, "joiner": "t-2"} and answers == 2
