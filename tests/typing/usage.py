"""Ordinary user code, checked by mypy --strict and pyright (``.ci/check_typing.py``).

Never run and never collected by pytest: it is here to be type-checked. Each ``assert_type`` pins
what both checkers must infer without help, so a change that loses a type (an ``Any`` leaking
out of a public signature, an ``Outcome`` that no longer narrows) fails CI.
"""

# pyright: strict

from __future__ import annotations

from datetime import datetime
from typing import assert_type

from aiohttp import web
from attrs import frozen

from altcraft_async import (
    AltcraftClient,
    AltcraftError,
    APIError,
    ChannelCounters,
    CountersSnapshot,
    Failed,
    FanOut,
    FeedbackReceiver,
    Outcome,
    PollPolicy,
    ResourceRef,
    RetryPolicy,
    SegmentRef,
    Succeeded,
    Task,
    TaskFailedError,
    TaskKind,
    TaskStatus,
    TaskTimeoutError,
    TransportError,
    from_builtins,
    to_builtins,
)
from altcraft_async.testing import FakeAltcraft


async def counters(client: AltcraftClient) -> None:
    channels = await client.segments.get_counters(segment_id=7, resource_id=24, database_id=1)
    assert_type(channels, list[ChannelCounters])
    sendable = {c.channel: c.status.subscribed_sendable for c in channels}
    assert_type(sendable, dict[str, int | None])

    snapshots = await client.segments.refresh_and_wait(
        segment_id=7, resource_id=24, database_id=1, timeout=600
    )
    assert_type(snapshots, list[CountersSnapshot])
    email = snapshots[0].channel("email")
    if email is not None:
        assert_type(email, ChannelCounters)
    assert_type(snapshots[0].updated, datetime | None)

    by_resource = await client.resources.refresh_and_wait(resource_id=24, database_id=1)
    assert_type(by_resource, list[CountersSnapshot])


async def tasks(client: AltcraftClient, other: AltcraftClient) -> None:
    task = await client.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
    assert_type(task.task_id, str)
    status = await task.status()
    assert_type(status.succeeded, bool)
    assert_type(status.progress, float | None)
    assert_type(await task.wait(timeout=600, policy=PollPolicy()), list[CountersSnapshot])
    async for change in task.watch():
        assert_type(change.status, str)
    token = task.resume_token()
    assert_type(token, str)
    resumed = other.tasks.resume(token)
    assert_type(await resumed.wait(), list[CountersSnapshot])
    assert_type(await other.tasks.wait_counters(task.task_id), list[CountersSnapshot])


async def fan_out(client: AltcraftClient, refs: list[SegmentRef]) -> int:
    """The README's loop: ``outcome.error is None`` narrows ``outcome.result``."""
    sendable = 0
    async with client.segments.refresh_many(refs, concurrency=100) as outcomes:
        assert_type(outcomes, FanOut[SegmentRef])
        async for outcome in outcomes:
            assert_type(outcome.ref, SegmentRef)
            if outcome.error is None:
                assert_type(outcome.result, list[CountersSnapshot])
                sendable += outcome.result[0].channels[0].status.subscribed_sendable or 0
            else:
                assert_type(outcome.error, AltcraftError)
                assert_type(outcome.result, None)
    return sendable


def outcome_checks(outcome: Outcome[ResourceRef]) -> list[CountersSnapshot]:
    """Every way of telling a success from a failure narrows, in both checkers."""
    if isinstance(outcome, Succeeded):
        assert_type(outcome, Succeeded[ResourceRef, list[CountersSnapshot]])
    match outcome:
        case Succeeded(result=result):
            assert_type(result, list[CountersSnapshot])
        case Failed(error=error):
            assert_type(error, AltcraftError)
    if outcome.ok is True:  # pyright narrows on `is True`; mypy also on a bare `if outcome.ok`
        assert_type(outcome.result, list[CountersSnapshot])
    if outcome.result is not None:
        assert_type(outcome.result, list[CountersSnapshot])
    if outcome.error is not None:
        raise outcome.error
    return outcome.result


def ok_counts(outcomes: list[Outcome[SegmentRef]]) -> tuple[int, int]:
    failed = [o for o in outcomes if not o.ok]
    return len(outcomes) - len(failed), len(failed)


async def errors(client: AltcraftClient) -> list[ChannelCounters] | None:
    try:
        return await client.segments.get_counters(
            segment_id=7, resource_id=24, retry=RetryPolicy(attempts=2)
        )
    except TaskTimeoutError as error:
        assert_type(error.resume_token, str)
    except TaskFailedError as error:
        assert_type(error.task_id, str)
    except APIError as error:
        assert_type(error.code, int)
    except TransportError as error:
        assert_type(error.sent, bool)
    except AltcraftError:
        pass
    return None


# -- a task kind of your own: its result type flows to Task.status and Task.wait ------------


@frozen
class Export:
    """What a (hypothetical) export task's status holds as its result."""

    rows: int
    url: str


def export_url(result: Export) -> str:
    return result.url


EXPORT = TaskKind("export", result_type=Export, deliver=export_url)
assert_type(EXPORT, TaskKind[Export, str])


async def export(task: Task[Export, str]) -> str:
    status = await task.status()
    assert_type(status, TaskStatus[Export])
    assert_type(status.result, Export)
    async for change in task.watch():
        assert_type(change, TaskStatus[Export])
    return await task.wait()


def bare_task(task: Task) -> None:
    """``Task`` alone is a counters refresh's."""
    assert_type(task, Task[tuple[CountersSnapshot, ...], list[CountersSnapshot]])


# -- push, plain data, tests ------------------------------------------------------------------


async def push(client: AltcraftClient, app: web.Application) -> None:
    async with FeedbackReceiver("0.0.0.0", 8081, public_url="https://me.example.com") as receiver:
        assert_type(receiver, FeedbackReceiver)
        snapshots = await client.resources.refresh_and_wait(
            resource_id=24, database_id=1, feedback=receiver
        )
        assert_type(snapshots, list[CountersSnapshot])
    FeedbackReceiver(public_url="https://me.example.com").add_routes(app)


def plain_data(snapshots: list[CountersSnapshot]) -> list[CountersSnapshot]:
    plain = to_builtins(snapshots)
    back = from_builtins(list[CountersSnapshot], plain)
    assert_type(back, list[CountersSnapshot])
    return back


async def with_fake() -> None:
    async with FakeAltcraft.seeded(profiles=1_000) as fake:
        assert_type(fake.url, str)
        async with AltcraftClient(fake.url, token=fake.token) as client:
            assert_type(client, AltcraftClient)
            await counters(client)
