"""The task awaiter against FakeAltcraft over loopback: statuses, deadlines, the poll schedule,
on_progress, watch(), single-flight waits, resume tokens, poll errors and cancellation.

Nothing here sleeps to wait for a condition. Timing is observed through the fake's records
(``TaskRecord.polls``, ``done_at``, ``final_served_at``), through the client's public
``event_hooks`` (:class:`PollLog`: they run in the polling waiter's own task, since the awaiter
has no background task), or through a *quiet window*: one unrelated request the fake holds for
a fixed time, during which a poller that was still alive would have polled several times.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import attrs
import pytest
from helpers import LoopLag, sdk_tasks

from altcraft_async import (
    AltcraftClient,
    AuthenticationError,
    Backoff,
    ClientClosedError,
    CountersSnapshot,
    DecodeError,
    EventHookMap,
    HTTPStatusError,
    InvalidRequestError,
    PermissionDeniedError,
    PollPolicy,
    RequestEvent,
    RequestTimeoutError,
    ResponseEvent,
    RetryPolicy,
    SegmentRef,
    Task,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
)
from altcraft_async._awaiter import _serial, parse_resume_token
from altcraft_async.models import SUCCESS_STATUSES
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan, TaskRecord

pytestmark = pytest.mark.anyio

#: Fast polls: every 10-30 ms, no jitter, so a lone waiter's schedule is reproducible.
FAST = PollPolicy(
    backoff=Backoff(initial=0.01, factor=1.5, max_interval=0.03, jitter=0.0),
    timeout=10.0,
    min_interval=0.005,
)
#: Fast retries inside one poll (two tries, a few ms apart).
FAST_RETRY = RetryPolicy(attempts=2, backoff=Backoff(initial=0.005, max_interval=0.01, jitter=1.0))
STATUS = "tasks/status"
STATUS_ENDPOINT = "tasks.status"
#: (status, progress) of a finished and of a pending task, as any dialect of the fake says them:
#: ``success`` is the legacy spelling, and progress may be absent while a task is pending.
SUCCEEDED = {(status, 100) for status in SUCCESS_STATUSES}
PENDING = {("pending", 0), ("pending", None)}
REFRESH = "segments/refresh_counters"
REFRESH_ENDPOINT = "segments.refresh_counters"


class PollLog:
    """What the client's public event hooks see of its status polls: the asyncio task that
    sent each, in order (a poll's retries are not counted again).

    ``before(n)`` runs as poll ``n`` (1-based) is about to be sent, ``after(n)`` once its reply
    was read; both run in the polling waiter's own task. Set them before the polls start.
    """

    def __init__(self) -> None:
        self.callers: list[asyncio.Task[Any] | None] = []
        self.before: Callable[[int], None] | None = None
        self.after: Callable[[int], None] | None = None

    def hooks(self) -> EventHookMap:
        return {"request": [self._on_request], "response": [self._on_response]}

    def _on_request(self, event: RequestEvent) -> None:
        if event.endpoint == STATUS_ENDPOINT and event.attempt == 1:
            self.callers.append(asyncio.current_task())
            if self.before is not None:
                self.before(len(self.callers))

    def _on_response(self, event: ResponseEvent) -> None:
        if event.endpoint == STATUS_ENDPOINT and event.attempt == 1 and self.after is not None:
            self.after(len(self.callers))


@asynccontextmanager
async def env(
    *, poll: PollPolicy = FAST, polls: PollLog | None = None, **fake_options: Any
) -> AsyncIterator[tuple[FakeAltcraft, AltcraftClient]]:
    """A small seeded fake (4 segments x 2 resources) and a client with fast polls, whose
    status polls ``polls`` logs if given."""
    fake = FakeAltcraft.seeded(profiles=300, segments=4, resources=2, **fake_options)
    hooks = None if polls is None else polls.hooks()
    async with (
        fake,
        AltcraftClient(
            fake.url, token=fake.token, poll=poll, retry=FAST_RETRY, event_hooks=hooks
        ) as client,
    ):
        yield fake, client


def ref_of(fake: FakeAltcraft, index: int = 0) -> dict[str, Any]:
    segment_id, resource_id, database_id = fake.platform.segment_refs()[index]
    return {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id}


def counters(snapshot: CountersSnapshot) -> dict[str, dict[str, int]]:
    """A result snapshot in the shape of ``Platform.segment_counters``."""
    return {
        item.channel: {k: v for k, v in attrs.asdict(item.status).items() if v is not None}
        for item in snapshot.channels
    }


def assert_segment_result(
    fake: FakeAltcraft, result: list[CountersSnapshot], ref: dict[str, Any]
) -> None:
    assert isinstance(result, list) and len(result) == 1
    snap = result[0]
    assert isinstance(snap, CountersSnapshot)
    assert snap.resource_id == ref["resource_id"]
    assert snap.list_id == ref["database_id"]
    assert snap.updated is not None and snap.updated.tzinfo is not None
    expected = fake.platform.segment_counters(ref["segment_id"], ref["resource_id"])
    assert expected and counters(snap) == expected


def record_of(fake: FakeAltcraft, task: Task) -> TaskRecord:
    return fake.tasks[task.task_id]


async def quiet_window(fake: FakeAltcraft, client: AltcraftClient, seconds: float = 0.1) -> None:
    """One unrelated round trip that the fake holds for ``seconds`` (3-10 FAST poll intervals)."""
    fake.faults.next("segments/get_counters", Fault.delay(seconds))
    ref = ref_of(fake)
    await client.segments.get_counters(**ref)


# --- statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize("terminal", ["completed", "success"])
async def test_success_statuses_return_the_refreshed_counters(terminal: str) -> None:
    async with env(task_plan=TaskPlan.after_polls(2).with_terminal(terminal)) as (fake, client):
        ref = ref_of(fake, 3)
        task = await client.segments.refresh_counters(**ref)
        assert isinstance(task.task_id, str) and task.task_id in fake.tasks
        result = await task.wait()
        assert_segment_result(fake, result, ref)
        record = record_of(fake, task)
        assert record.status == terminal
        assert len(record.polls) == 3  # two running answers, then the terminal one
        assert fake.calls(STATUS) == 3
        assert client.polling_tasks() == frozenset()


async def test_refresh_and_wait_and_resource_tasks() -> None:
    async with env(task_plan=TaskPlan.after_polls(1)) as (fake, client):
        ref = ref_of(fake, 1)
        assert_segment_result(fake, await client.segments.refresh_and_wait(**ref), ref)
        resource_id, database_id = fake.platform.resource_refs()[1]
        task = await client.resources.refresh_counters(
            resource_id=resource_id, database_id=database_id
        )
        assert task.kind == "resource" and task.endpoint == "resources.refresh_counters"
        (snap,) = await task.wait()
        assert counters(snap) == fake.platform.resource_counters(resource_id, database_id)
        assert snap.resource_id == resource_id and snap.list_id == database_id
        (again,) = await client.resources.refresh_and_wait(
            resource_id=resource_id, database_id=database_id
        )
        assert counters(again) == counters(snap)


@pytest.mark.parametrize("status", ["failed", "error", "cancelled", "canceled", "FAILED"])
async def test_failure_statuses_raise_task_failed_error(status: str) -> None:
    async with env(task_plan=TaskPlan.fails(after_polls=2, status=status)) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        with pytest.raises(TaskFailedError) as caught:
            await task.wait()
        error = caught.value
        record = record_of(fake, task)
        assert error.task_id == task.task_id
        assert error.status == status.lower()  # compared and reported case-folded
        assert error.progress == record.progress and 0 < record.progress < 100
        assert isinstance(error.raw, TaskStatus)
        assert error.raw.status == status.lower() and error.raw.failed and error.raw.result == ()
        assert task.task_id in str(error) and status.lower() in str(error)
        assert len(record.polls) == 3  # stopped at the failure: no poll after it
        assert client.polling_tasks() == frozenset()


async def test_custom_running_statuses_keep_polling() -> None:
    plan = TaskPlan.after_polls(4).with_running("pending", "in_progress", "queued")
    async with env(task_plan=plan) as (fake, client):
        seen: list[str] = []
        ref = ref_of(fake)
        task = await client.segments.refresh_counters(**ref)
        result = await task.wait(on_progress=lambda status: seen.append(status.status))
        assert_segment_result(fake, result, ref)
        assert seen[0] == "pending" and seen[-1] in SUCCESS_STATUSES
        assert {"in_progress", "queued"} <= set(seen)
        assert len(record_of(fake, task).polls) == 5


# --- deadlines -----------------------------------------------------------------------------------


async def test_deadline_raises_task_timeout_error_with_a_resume_token() -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:  # a TaskTimeoutError is a TimeoutError
            await task.wait(timeout=1.0)
        elapsed = time.monotonic() - started
        error = caught.value
        assert isinstance(error, TaskTimeoutError)
        assert 1.0 <= elapsed < 5  # not before the deadline; not much after it, not unbounded
        assert error.task_id == task.task_id and error.timeout == 1.0
        assert error.last_status in ("pending", "processing")
        token = parse_resume_token(error.resume_token)
        assert token["task_id"] == task.task_id and token["endpoint"] == REFRESH_ENDPOINT
        record = record_of(fake, task)
        assert len(record.polls) >= 4 and not record.done  # it kept polling until the deadline
        assert client.polling_tasks() == frozenset()


#: A schedule whose second poll (at 5.5 s) lies far past a 4 s deadline: 0.5 s, then 5 s later.
SPARSE = PollPolicy(
    backoff=Backoff(initial=0.5, factor=10.0, max_interval=60.0, jitter=0.0),
    progress_aware=False,
)
#: A wait's limit under SPARSE: its last look lands 0.4 s before it (a tenth of the wait), room
#: for a poll's round trip even on a loop running a few hundred milliseconds late.
SPARSE_LIMIT = 4.0


@pytest.mark.one_dialect
async def test_a_wait_looks_once_more_just_before_its_deadline() -> None:
    # done at 2.0 s: the schedule alone would poll at 0.5 s and 5.5 s and time out at 4 s
    async with env(task_plan=TaskPlan.after_seconds(2.0)) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        record = record_of(fake, task)
        started = time.monotonic() - (fake.clock.now() - record.created_at)
        (snapshot,) = await task.wait(timeout=SPARSE_LIMIT, policy=SPARSE)
        assert snapshot.channels
        first, last = (at - record.created_at for at in record.polls)
        assert first < 2.0 <= last  # the second poll is the last look, after the task finished
        waited = time.monotonic() - started
        # in the final 10 % of the wait (3.6 s on; a timer is never early), before 5.5 s
        assert SPARSE_LIMIT - 0.4 - 0.1 <= waited <= SPARSE_LIMIT + 1.0


@pytest.mark.one_dialect
async def test_the_last_look_is_one_poll_not_a_flurry() -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        with pytest.raises(TaskTimeoutError):
            await task.wait(timeout=SPARSE_LIMIT, policy=SPARSE)
        assert len(record_of(fake, task).polls) == 2  # at 0.5 s and in the last 0.4 s


async def test_the_policy_timeout_applies_when_wait_gets_none() -> None:
    policy = attrs.evolve(FAST, timeout=0.1)
    async with env(task_plan=TaskPlan.never(), poll=policy) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        with pytest.raises(TaskTimeoutError) as caught:
            await task.wait()
        assert caught.value.timeout == 0.1


async def test_max_attempts_bounds_the_polls() -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        with pytest.raises(TaskTimeoutError) as caught:
            await task.wait(timeout=None, policy=attrs.evolve(FAST, max_attempts=3))
        assert len(record_of(fake, task).polls) == 3
        assert caught.value.timeout is None
        assert parse_resume_token(caught.value.resume_token)["task_id"] == task.task_id


@pytest.mark.parametrize("timeout", [0, -1, "soon", float("nan")])
async def test_invalid_timeouts_are_refused_before_polling(timeout: Any) -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        with pytest.raises(InvalidRequestError):
            await task.wait(timeout=timeout)
        assert fake.calls(STATUS) == 0 and client.polling_tasks() == frozenset()


# --- the poll schedule ---------------------------------------------------------------------------


@pytest.mark.one_dialect
async def test_progress_aware_polls_land_just_after_completion() -> None:
    """A 10 s task (sped up 5x): progress-aware polling needs few polls and notices quickly.

    Both waits run at once on two tasks, with the same backoff; only ``progress_aware`` differs.
    The fake's clock is manual and follows the client's: as each poll is sent it is moved to
    ``scale`` times the real seconds since both tasks were started. So a poll reads the
    progress of the moment it was sent, however late the loop serves it, and never more than
    the client's own clock has seen go by (the estimate errs late, never early).
    """
    scale = 5.0  # virtual seconds per real second
    backoff = Backoff(initial=1.0 / scale, factor=2.0, max_interval=15.0, jitter=0.0)
    aware = PollPolicy(backoff=backoff, timeout=10.0)
    blind = PollPolicy(backoff=backoff, timeout=10.0, progress_aware=False)
    duration = 10.0  # virtual seconds; 2 s of real time
    log, lag = PollLog(), LoopLag()
    plan = TaskPlan.after_seconds(duration)
    async with env(task_plan=plan, clock="manual", polls=log) as (fake, client):
        ref_a, ref_b = ref_of(fake, 0), ref_of(fake, 1)
        task_a = await client.segments.refresh_counters(**ref_a)
        task_b = await client.segments.refresh_counters(**ref_b)
        started = time.monotonic()  # both tasks began at the fake's 0, a moment before this

        def follow(number: int) -> None:
            fake.advance(max(0.0, scale * (time.monotonic() - started) - fake.clock.now()))

        log.before = follow
        results: dict[str, list[CountersSnapshot]] = {}

        async def wait(name: str, task: Task, policy: PollPolicy) -> None:
            results[name] = await task.wait(policy=policy)

        async with anyio.create_task_group() as probe:
            probe.start_soon(lag.measure)
            async with anyio.create_task_group() as group:
                group.start_soon(wait, "aware", task_a, aware)
                group.start_soon(wait, "blind", task_b, blind)
            probe.cancel_scope.cancel()
        assert_segment_result(fake, results["aware"], ref_a)
        assert_segment_result(fake, results["blind"], ref_b)

        smart, dumb = record_of(fake, task_a), record_of(fake, task_b)
        latency: dict[str, float] = {}
        for name, record in (("smart", smart), ("dumb", dumb)):
            done_at, seen_at = record.done_at, record.final_served_at
            assert done_at is not None and seen_at is not None
            assert done_at == pytest.approx(record.created_at + duration)
            assert record.polls[-1] == seen_at >= done_at
            assert all(at < done_at for at in record.polls[:-1])  # the last poll is the first after
            latency[name] = seen_at - done_at
        assert len(smart.polls) <= 3
        # a late loop sends the last poll late: the real lateness seen, in virtual seconds
        assert latency["smart"] < 0.25 * duration + scale * lag.worst
        # plain doubling polls at 1, 3, 7, 15 virtual seconds: more polls, later notice (5 s
        # late, which a loop 0.5 s late, 2.5 virtual seconds, does not make up)
        assert len(dumb.polls) > len(smart.polls)
        assert latency["dumb"] > latency["smart"]


async def test_the_first_poll_never_waits_longer_than_max_interval() -> None:
    policy = PollPolicy(backoff=Backoff(initial=5.0, max_interval=0.02), timeout=10.0)
    async with env(task_plan=TaskPlan.immediate()) as (fake, client):
        started = time.monotonic()
        await client.segments.refresh_and_wait(**ref_of(fake), policy=policy)
        assert time.monotonic() - started < 2.5  # not the 5 s of an uncapped first poll


# --- on_progress ---------------------------------------------------------------------------------


async def test_on_progress_is_called_serially_even_when_the_callback_does_io() -> None:
    """The async callback makes a slow request (50 ms, > the poll interval) each time."""
    async with env(task_plan=TaskPlan.after_polls(4)) as (fake, client):
        ref = ref_of(fake)
        fake.faults.script("segments/get_counters", Fault.delay(0.05))
        active = 0
        overlaps = 0
        seen: list[tuple[str, float | None]] = []

        async def on_progress(status: TaskStatus) -> None:
            nonlocal active, overlaps
            active += 1
            overlaps += active > 1
            seen.append((status.status, status.progress))
            await client.segments.get_counters(**ref)
            active -= 1

        task = await client.segments.refresh_counters(**ref)
        assert_segment_result(fake, await task.wait(on_progress=on_progress), ref)
        assert overlaps == 0 and active == 0
        assert len(seen) == 5 and seen[-1] in SUCCEEDED
        assert fake.calls("segments/get_counters") == len(seen)  # each call ran to its end


async def test_on_progress_is_called_once_per_change() -> None:
    """The server repeats each status (its clock stands still); the callback sees each once."""
    polls = PollLog()
    plan = TaskPlan.after_seconds(100)
    async with env(task_plan=plan, clock="manual", polls=polls) as (fake, client):
        answers: list[tuple[str, float]] = []  # what each poll was told, as the fake says it

        def after(number: int) -> None:
            record = record_of(fake, task)
            answers.append((record.status, record.progress))
            if number % 3 == 0:
                fake.advance(25)  # progress moves only every third poll

        polls.after = after
        calls: list[tuple[str, float]] = []
        task = await client.segments.refresh_counters(**ref_of(fake))
        # in the fake's words: any dialect's spelling of success, a missing progress as 0
        await task.wait(
            on_progress=lambda status: calls.append(
                ("completed" if status.succeeded else status.status, status.progress or 0)
            )
        )
        distinct = [key for i, key in enumerate(answers) if i == 0 or key != answers[i - 1]]
        assert len(answers) >= 10 and len(distinct) < len(answers)
        assert calls == distinct
        assert calls[0] == ("pending", 0) and calls[-1] == ("completed", 100)
        assert len(calls) == len(set(calls))


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_progress_runs_once_at_completion_when_the_first_poll_says_done(
    kind: str,
) -> None:
    async with env(task_plan=TaskPlan.immediate()) as (fake, client):
        calls: list[TaskStatus] = []

        def sync_callback(status: TaskStatus) -> None:
            calls.append(status)

        async def async_callback(status: TaskStatus) -> None:
            await anyio.lowlevel.checkpoint()
            calls.append(status)

        callback = sync_callback if kind == "sync" else async_callback
        ref = ref_of(fake)
        task = await client.segments.refresh_counters(**ref)
        result = await task.wait(on_progress=callback)
        assert len(calls) == 1 and fake.calls(STATUS) == 1
        assert calls[0].succeeded and calls[0].progress == 100
        assert list(calls[0].result) == result
        assert_segment_result(fake, result, ref)


async def test_on_progress_through_refresh_and_wait_and_wait_counters() -> None:
    async with env(task_plan=TaskPlan.after_polls(2)) as (fake, client):
        seen: list[str] = []
        await client.segments.refresh_and_wait(
            **ref_of(fake), on_progress=lambda status: seen.append(status.status)
        )
        assert seen[-1] in SUCCESS_STATUSES and len(seen) == 3
        task = await client.segments.refresh_counters(**ref_of(fake, 1))
        later: list[str] = []
        result = await client.tasks.wait_counters(
            task.task_id, on_progress=lambda status: later.append(status.status)
        )
        assert_segment_result(fake, result, ref_of(fake, 1))
        assert later[-1] in SUCCESS_STATUSES and len(later) == 3


async def test_an_error_in_on_progress_stops_the_wait() -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))

        def broken(status: TaskStatus) -> None:
            raise KeyError("bug in the callback")

        with pytest.raises(KeyError):
            await task.wait(on_progress=broken)
        polls = fake.calls(STATUS)
        assert polls == 1 and client.polling_tasks() == frozenset()
        await quiet_window(fake, client)
        assert fake.calls(STATUS) == polls


# --- watch ---------------------------------------------------------------------------------------


async def test_watch_yields_each_change_and_ends_after_success() -> None:
    async with env(task_plan=TaskPlan.after_polls(3)) as (fake, client):
        ref = ref_of(fake)
        task = await client.segments.refresh_counters(**ref)
        statuses = [status async for status in task.watch()]
        keys = [(status.status, status.progress) for status in statuses]
        assert len(keys) == len(set(keys)) == 4
        assert statuses[0].status == "pending" and not statuses[0].done
        assert all(not status.done for status in statuses[:-1])
        assert statuses[-1].succeeded
        assert_segment_result(fake, list(statuses[-1].result), ref)
        progresses = [status.progress or 0 for status in statuses]
        assert progresses == sorted(progresses)
        assert fake.calls(STATUS) == 4 and client.polling_tasks() == frozenset()


async def test_watch_raises_on_failure() -> None:
    async with env(task_plan=TaskPlan.fails(after_polls=2, status="error")) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        seen: list[str] = []
        with pytest.raises(TaskFailedError) as caught:
            async for status in task.watch():
                seen.append(status.status)
        assert caught.value.status == "error"
        assert len(seen) == 2 and "error" not in seen
        assert client.polling_tasks() == frozenset()


# --- single-flight -------------------------------------------------------------------------------


async def test_ten_waiters_share_one_poll_stream() -> None:
    async with env(task_plan=TaskPlan.after_polls(3)) as (fake, client):
        # what one waiter alone costs
        alone = await client.segments.refresh_counters(**ref_of(fake, 1))
        await alone.wait()
        single = len(record_of(fake, alone).polls)
        assert single == 4

        ref = ref_of(fake)
        task = await client.segments.refresh_counters(**ref)
        handles = [task] + [client.tasks.task(task.task_id) for _ in range(9)]
        results: list[list[CountersSnapshot]] = []
        progress_calls = [0] * 10

        async def waiter(index: int) -> None:
            def count(status: TaskStatus) -> None:
                progress_calls[index] += 1

            results.append(await handles[index].wait(on_progress=count))

        async with anyio.create_task_group() as group:
            for index in range(10):
                group.start_soon(waiter, index)
        assert len(results) == 10 and all(result == results[0] for result in results)
        assert_segment_result(fake, results[0], ref)
        assert len(record_of(fake, task).polls) == single
        assert all(calls >= 1 for calls in progress_calls)
        assert client.polling_tasks() == frozenset()


async def test_cancelling_a_follower_and_the_leader_does_not_disturb_the_others() -> None:
    log = PollLog()
    async with env(task_plan=TaskPlan.after_polls(4), polls=log) as (fake, client):
        ref = ref_of(fake)
        task = await client.segments.refresh_counters(**ref)
        scopes: dict[asyncio.Task[Any] | None, anyio.CancelScope] = {}
        results: list[list[CountersSnapshot]] = []
        cancelled: list[asyncio.Task[Any] | None] = []
        leaders: list[asyncio.Task[Any] | None] = []

        def after(number: int) -> None:
            if number == 1:  # a waiter that is not polling: a follower
                follower = next(key for key in scopes if key is not callers[0])
                scopes[follower].cancel()

        def before(number: int) -> None:
            if number == 2:  # the leader, about to send its second poll
                leaders.append(asyncio.current_task())
                scopes[asyncio.current_task()].cancel()

        log.after, log.before, callers = after, before, log.callers

        async def waiter() -> None:
            with anyio.CancelScope() as scope:
                scopes[asyncio.current_task()] = scope
                results.append(await client.tasks.task(task.task_id).wait())
                return
            cancelled.append(asyncio.current_task())

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(waiter)
        assert len(cancelled) == 2 and leaders[0] in cancelled
        assert len(results) == 8 and all(result == results[0] for result in results)
        assert_segment_result(fake, results[0], ref)
        polls = len(record_of(fake, task).polls)
        # one stream: the server finishes after its 4th poll whether or not the aborted poll
        # reached it, so the 5th poll it sees is the first to find the task done
        assert polls == 5
        assert callers[1] is leaders[0] and callers[2] not in cancelled  # someone took over
        assert client.polling_tasks() == frozenset()


async def test_a_leader_whose_deadline_passes_hands_over() -> None:
    async with env(task_plan=TaskPlan.after_polls(10)) as (fake, client):
        ref = ref_of(fake)
        task = await client.segments.refresh_counters(**ref)
        outcome: dict[str, Any] = {}

        async def short() -> None:
            try:
                await task.wait(timeout=0.05)
            except TaskTimeoutError as error:
                outcome["short"] = error

        async def long() -> None:
            outcome["long"] = await client.tasks.task(task.task_id).wait(timeout=5)

        async with anyio.create_task_group() as group:
            group.start_soon(short)  # starts first: it leads
            group.start_soon(long)
        assert isinstance(outcome["short"], TaskTimeoutError)
        assert_segment_result(fake, outcome["long"], ref)
        assert len(record_of(fake, task).polls) == 11  # one stream across the hand-over


async def test_a_fatal_poll_error_reaches_every_waiter_once() -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        fake.faults.script(STATUS, Fault.api_error(403, "forbidden"))
        errors: list[BaseException] = []

        async def waiter() -> None:
            try:
                await client.tasks.task(task.task_id).wait()
            except PermissionDeniedError as error:
                errors.append(error)

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(waiter)
        assert len(errors) == 5 and fake.calls(STATUS) == 1
        assert client.polling_tasks() == frozenset()


async def test_when_every_waiter_leaves_nothing_polls_for_nobody() -> None:
    log = PollLog()
    async with env(task_plan=TaskPlan.never(), polls=log) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        group_scope: list[anyio.CancelScope] = []
        polling: list[frozenset[str]] = []

        def after(number: int) -> None:
            polling.append(client.polling_tasks())
            if number == 3:
                group_scope[0].cancel()

        log.after = after
        async with anyio.create_task_group() as group:
            group_scope.append(group.cancel_scope)
            for _ in range(10):
                group.start_soon(client.tasks.task(task.task_id).wait)
        assert group.cancel_scope.cancel_called
        assert polling == [frozenset({task.task_id})] * 3  # while they waited
        assert client.polling_tasks() == frozenset()
        polls = fake.calls(STATUS)
        assert polls == 3
        await quiet_window(fake, client)
        assert fake.calls(STATUS) == polls
        assert client.connections_in_use() == 0 and not sdk_tasks()
        assert not record_of(fake, task).done  # the server task was left alone


# --- resume tokens -------------------------------------------------------------------------------


async def test_resume_token_round_trip_in_a_second_client() -> None:
    async with env(task_plan=TaskPlan.after_polls(2)) as (fake, first):
        ref = ref_of(fake, 2)
        task = await first.segments.refresh_counters(**ref)
        token = task.resume_token()
        await first.aclose()

        data = json.loads(token)
        assert set(data) == {"v", "task_id", "endpoint", "kind", "created"}
        assert data["v"] == 1 and data["task_id"] == task.task_id
        assert data["endpoint"] == REFRESH_ENDPOINT and data["kind"] == "segment"
        assert datetime.fromisoformat(data["created"]) == task.created
        assert fake.token not in token and "token" not in token.replace("task_id", "")
        assert "secret" not in token

        async with AltcraftClient(fake.url, token=fake.token, poll=FAST) as second:
            resumed = second.tasks.resume(token)
            assert resumed.task_id == task.task_id
            assert (resumed.endpoint, resumed.kind) == (REFRESH_ENDPOINT, "segment")
            assert resumed.created == task.created
            assert resumed.resume_token() == token
            assert_segment_result(fake, await resumed.wait(), ref)
        assert len(record_of(fake, task).polls) == 3


async def test_resume_after_a_timeout_on_a_manual_clock() -> None:
    async with env(task_plan=TaskPlan.after_seconds(60), clock="manual") as (fake, first):
        ref = ref_of(fake, 1)
        task = await first.segments.refresh_counters(**ref)
        with pytest.raises(TaskTimeoutError) as caught:
            await task.wait(timeout=0.1)
        await first.aclose()
        fake.advance(60)
        async with AltcraftClient(fake.url, token=fake.token, poll=FAST) as second:
            result = await second.tasks.resume(caught.value.resume_token).wait()
        assert_segment_result(fake, result, ref)
        record = record_of(fake, task)
        assert record.notice_latency == 0  # done at 60 virtual s, seen on the first poll after


async def test_resuming_an_old_task_polls_at_once() -> None:
    """The token's creation time carries over: a task created long ago is polled right away."""
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        data = json.loads(task.resume_token())
        data["created"] = "2020-01-01T00:00:00+00:00"
        slow = PollPolicy(backoff=Backoff(initial=10.0, max_interval=10.0), max_attempts=1)
        old = client.tasks.resume(json.dumps(data))
        assert old.created == datetime(2020, 1, 1, tzinfo=UTC)
        with pytest.raises(TaskTimeoutError):
            await old.wait(policy=slow, timeout=1.0)
        assert fake.calls(STATUS) == 1  # without waiting the 10 s initial delay


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not json",
        "[]",
        "{}",
        '{"v": 2, "task_id": "x", "created": "2024-01-01T00:00:00+00:00"}',
        '{"v": 1, "created": "2024-01-01T00:00:00+00:00"}',
        '{"v": 1, "task_id": "", "created": "2024-01-01T00:00:00+00:00"}',
        '{"v": 1, "task_id": 17, "created": "2024-01-01T00:00:00+00:00"}',
        '{"v": 1, "task_id": "x"}',
        '{"v": 1, "task_id": "x", "created": "yesterday"}',
        '{"v": 1, "task_id": "x", "created": "2024-01-01T00:00:00"}',
        '{"v": 1, "task_id": "x", "created": "2024-01-01T00:00:00+00:00", "endpoint": [1]}',
        '{"v": 1, "task_id": "x", "created": "2024-01-01T00:00:00+00:00", "kind": {}}',
        None,
        "[" * 100_000 + "]" * 100_000,  # hostile nesting: a RecursionError in json
        "[" * 2_000 + "]" * 2_000,  # short enough to parse, too deep for json
        '{"v": 1, "task_id": "' + "x" * 5000 + '", "created": "2024-01-01T00:00:00+00:00"}',
    ],
)
async def test_invalid_resume_tokens_raise_invalid_request_error(token: Any) -> None:
    async with env() as (fake, client):
        with pytest.raises(InvalidRequestError):
            client.tasks.resume(token)
        with pytest.raises(ValueError):
            parse_resume_token(token)
        assert fake.stats.requests == 0


async def test_wait_counters_and_task_handles_by_id() -> None:
    async with env(task_plan=TaskPlan.after_polls(1)) as (fake, client):
        ref = ref_of(fake)
        task = await client.segments.refresh_counters(**ref)
        assert_segment_result(fake, await client.tasks.wait_counters(task.task_id), ref)
        status = await client.tasks.status(task.task_id)
        assert status.succeeded and status.progress == 100
        assert await client.tasks.task(task.task_id).status() == status
        for bad in ("", "  "):
            with pytest.raises(InvalidRequestError):
                await client.tasks.wait_counters(bad)


# --- poll errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [Fault.http(503), Fault.http(502), Fault.drop(), Fault.malformed(), Fault.truncated()],
    ids=["503", "502", "drop", "malformed", "truncated"],
)
async def test_retryable_poll_errors_do_not_end_the_wait(fault: Fault) -> None:
    async with env(task_plan=TaskPlan.after_polls(2)) as (fake, client):
        ref = ref_of(fake)
        task = await client.segments.refresh_counters(**ref)
        fake.faults.next(STATUS, fault, times=5)  # more than one poll's retries in a row
        assert_segment_result(fake, await task.wait(), ref)
        faulted = [r for r in fake.requests if r.path == STATUS and r.fault is not None]
        assert len(faulted) == 5
        assert fake.requests[-1].path == STATUS and fake.requests[-1].fault is None


async def test_persistent_retryable_errors_end_at_the_deadline() -> None:
    async with env(task_plan=TaskPlan.immediate()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        fake.faults.script(STATUS, Fault.http(503))
        with pytest.raises(TaskTimeoutError) as caught:
            await task.wait(timeout=1.0)
        assert caught.value.last_status is None
        assert fake.calls(STATUS) >= 3


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (Fault.api_error(401, "invalid token"), AuthenticationError),
        (Fault.api_error(403, "forbidden"), PermissionDeniedError),
        (Fault.http(404), HTTPStatusError),
        (Fault.http(400), HTTPStatusError),
    ],
    ids=["401", "403", "http404", "http400"],
)
async def test_a_non_retryable_poll_error_ends_the_wait(
    fault: Fault, error_type: type[Exception]
) -> None:
    async with env(task_plan=TaskPlan.after_polls(3)) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        fake.faults.next(STATUS, fault)
        started = time.monotonic()
        with pytest.raises(error_type):
            await task.wait(timeout=5)
        assert time.monotonic() - started < 2.5  # not at the 5 s deadline
        assert fake.calls(STATUS) == 1 and client.polling_tasks() == frozenset()


# --- cancellation --------------------------------------------------------------------------------


async def assert_stopped(
    fake: FakeAltcraft, client: AltcraftClient, task: Task, callers: list[Any]
) -> None:
    """Nothing polls any more, nothing else was sent, nothing is left running or connected.

    ``callers`` (from :class:`PollLog`) counts the polls the client sent; the one that was
    cancelled mid-request may still reach the fake a moment later, but no other may.
    """
    started = len(callers)
    assert client.polling_tasks() == frozenset()
    assert client.connections_in_use() == 0
    assert not sdk_tasks()
    await quiet_window(fake, client)
    assert len(callers) == started
    assert started - 1 <= fake.calls(STATUS) <= started
    assert {r.path for r in fake.requests} == {REFRESH, STATUS, "segments/get_counters"}
    record = record_of(fake, task)
    assert not record.done and record.final_served_at is None  # server task untouched


async def test_move_on_after_stops_polling_at_once() -> None:
    log = PollLog()
    async with env(task_plan=TaskPlan.never(), polls=log) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        scopes: list[anyio.CancelScope] = []

        def after(number: int) -> None:
            if number == 3:  # the scope's deadline comes in: it is due now
                scopes[0].deadline = anyio.current_time()

        log.after, callers = after, log.callers
        with anyio.move_on_after(60) as scope:
            scopes.append(scope)
            await task.wait()
        assert scope.cancelled_caught
        assert len(callers) >= 3
        await assert_stopped(fake, client, task, callers)


async def test_a_cancel_scope_cancelled_mid_request_stops_polling() -> None:
    log = PollLog()
    async with env(task_plan=TaskPlan.never(), polls=log) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        scopes: list[anyio.CancelScope] = []

        def before(number: int) -> None:
            if number == 3:
                scopes[0].cancel()  # the third poll is cancelled while it is being sent

        log.before, callers = before, log.callers
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await task.wait()
        assert scope.cancelled_caught
        assert len(callers) == 3
        await assert_stopped(fake, client, task, callers)
        assert (await task.status()).status in ("pending", "processing")


async def test_asyncio_task_cancel_stops_polling() -> None:
    log = PollLog()
    async with env(task_plan=TaskPlan.never(), polls=log) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        polled = asyncio.Event()
        log.after = lambda number: polled.set() if number == 2 else None
        callers = log.callers
        waiting = asyncio.get_running_loop().create_task(task.wait())
        with anyio.fail_after(10):  # a wait that never polls twice fails here, not hangs
            await polled.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert waiting.cancelled()
        await assert_stopped(fake, client, task, callers)


async def test_cancelling_a_wait_on_a_closed_client_is_clean() -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await task.wait(timeout=1)
        assert client.polling_tasks() == frozenset() and fake.calls(STATUS) == 0


# --- review fixes: a status reply that never fits ends the wait; the timeout keeps its cause --


async def test_a_well_formed_status_reply_of_the_wrong_shape_ends_the_wait_at_once() -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        wrong = b'{"data": {"status": 5}, "error": 0, "error_text": "ok"}'
        fake.faults.script(STATUS, Fault.malformed(body=wrong))
        with anyio.fail_after(5), pytest.raises(DecodeError) as caught:
            await task.wait()
        assert not caught.value.transient
        assert fake.calls(STATUS) == 1  # not repeated until the deadline


async def test_a_timeout_after_failing_polls_keeps_the_last_poll_error_as_cause() -> None:
    async with env(task_plan=TaskPlan.never()) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        fake.faults.script(STATUS, Fault.http(503))
        with pytest.raises(TaskTimeoutError) as caught:
            await task.wait(timeout=1.0)
        assert isinstance(caught.value.__cause__, HTTPStatusError)
        assert caught.value.__cause__.status == 503


async def test_a_waiter_with_a_faster_policy_is_not_held_back_by_a_slow_leader() -> None:
    slow = PollPolicy(backoff=Backoff(initial=30, factor=1, max_interval=30, jitter=0))
    async with env(task_plan=TaskPlan.after_polls(2)) as (fake, client):
        task = await client.segments.refresh_counters(**ref_of(fake))
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: task.wait(policy=slow))  # leads, next poll in 30 s
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(5):
                snapshots = await task.wait(policy=FAST)  # polls on its own schedule
            group.cancel_scope.cancel()
        assert snapshots
        assert fake.calls(STATUS) == 3  # after_polls(2): the third poll sees the end


# --- closing the client under waits ---------------------------------------------------------


async def wait_and_close_when(
    ready: anyio.Event, task: Task, client: AltcraftClient
) -> list[ClientClosedError]:
    """Wait on ``task`` in the background and close ``client`` once ``ready`` is set (within
    3 s in all); returns the ClientClosedError the wait ended with, if it did."""
    errors: list[ClientClosedError] = []

    async def wait() -> None:
        try:
            await task.wait()
        except ClientClosedError as error:
            errors.append(error)

    with anyio.fail_after(3):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await ready.wait()
            await client.aclose()
    return errors


async def test_closing_the_client_wakes_a_wait_parked_until_its_next_poll():
    """The wait ends with ClientClosedError at once, not when its next poll (10 s away) is due."""
    slow = PollPolicy(
        backoff=Backoff(initial=0.01, factor=1000.0, max_interval=30.0, jitter=0.0),
        progress_aware=False,
        timeout=60.0,
    )
    polled = anyio.Event()
    hooks = {"response": [lambda event: polled.set()]}
    fake = FakeAltcraft.seeded(profiles=300, segments=4, resources=2, task_plan=TaskPlan.never())
    async with fake:
        client = AltcraftClient(fake.url, token=fake.token, poll=slow, event_hooks=hooks)
        task = await client.segments.refresh_counters(**ref_of(fake))
        polled = anyio.Event()  # the start's reply set the first one
        # once the first poll is answered, the wait parks for ~10 s
        errors = await wait_and_close_when(polled, task, client)
        assert len(errors) == 1 and task.task_id in str(errors[0])
        assert fake.calls(STATUS) == 1
        assert client.polling_tasks() == frozenset()


async def test_closing_the_client_during_a_poll_ends_the_wait_with_client_closed_error():
    """A poll in flight when the client closes (and its retry) ends as ClientClosedError, not
    as aiohttp's bare RuntimeError('Session is closed')."""
    sent = anyio.Event()

    def on_request(event: Any) -> None:
        if event.endpoint == "tasks.status":
            sent.set()

    fake = FakeAltcraft.seeded(profiles=300, segments=4, resources=2, task_plan=TaskPlan.never())
    async with fake:
        client = AltcraftClient(
            fake.url, token=fake.token, poll=FAST, event_hooks={"request": [on_request]}
        )
        task = await client.segments.refresh_counters(**ref_of(fake))
        fake.faults.script(STATUS, Fault.delay(5.0))  # every poll hangs until the close
        errors = await wait_and_close_when(sent, task, client)
        assert len(errors) == 1
        assert client.connections_in_use() == 0


async def test_on_progress_hears_the_final_status_once_even_if_two_racers_bring_it():
    """With push, the webhook and the poller may both deliver the final status."""
    seen: list[TaskStatus] = []
    report = _serial(seen.append)
    running = TaskStatus("processing", 50.0)
    done = TaskStatus("completed", 100.0)
    for status in (running, done, done, running):
        await report(status)
    assert seen == [running, done]
    failed_seen: list[TaskStatus] = []
    report = _serial(failed_seen.append)
    failed = TaskStatus("failed", 10.0)
    for status in (failed, done):
        await report(status)
    assert failed_seen == [failed]


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.delay(30.0), RequestTimeoutError),
        # a Retry-After past the deadline is not waited for: the 429 itself is the answer
        (Fault.rate_limited(retry_after=10.0), HTTPStatusError),
    ],
    ids=["start-stalls", "start-told-to-retry-later"],
)
async def test_the_wait_deadline_covers_the_start_request(fault: Fault, error: type) -> None:
    async with env(task_plan=TaskPlan.immediate()) as (fake, client):
        fake.faults.next(REFRESH, fault, times=5)
        with anyio.fail_after(5), pytest.raises(error) as caught:  # not 30 s, not 10 s
            await client.segments.refresh_and_wait(**ref_of(fake), timeout=0.3)
        assert caught.value.endpoint == REFRESH_ENDPOINT
        assert not fake.tasks  # nothing was started


async def test_refresh_many_outcomes_end_at_the_wait_deadline_start_included() -> None:
    async with env(task_plan=TaskPlan.immediate()) as (fake, client):
        fake.faults.next(REFRESH, Fault.delay(30.0), times=2)
        refs = [SegmentRef(**ref_of(fake, index)) for index in range(2)]
        with anyio.fail_after(5):
            async with client.segments.refresh_many(refs, timeout=0.3) as outcomes:
                errors = [outcome.error async for outcome in outcomes]
        assert [type(error) for error in errors] == [RequestTimeoutError] * 2


@pytest.mark.parametrize("timeout", [0, -1, "soon", float("nan"), True])
async def test_refresh_and_wait_refuses_a_bad_timeout_before_starting(timeout: Any) -> None:
    async with env(task_plan=TaskPlan.immediate()) as (fake, client):
        with pytest.raises(InvalidRequestError, match="timeout"):
            await client.segments.refresh_and_wait(**ref_of(fake), timeout=timeout)
        with pytest.raises(InvalidRequestError, match="timeout"):
            await client.resources.refresh_and_wait(resource_id=1, database_id=1, timeout=timeout)
        assert fake.requests == []
