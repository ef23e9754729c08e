"""Chaos and cancellation: under random faults every call ends exactly right or with a typed
error, nothing hangs, no task is started twice, and nothing leaks.

CI runs a few hundred calls; set ``ALTCRAFT_CHAOS_CALLS=2000`` (and optionally
``ALTCRAFT_CHAOS_SEED``) to run the full-size suite by hand. Each run prints its tally.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from typing import Any

import anyio
import pytest
from attrs import asdict

from altcraft_async import (
    AltcraftClient,
    AltcraftError,
    Backoff,
    ChannelCounters,
    CountersSnapshot,
    PollPolicy,
    RetryPolicy,
    SegmentRef,
)
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

pytestmark = pytest.mark.anyio

CALLS = int(os.environ.get("ALTCRAFT_CHAOS_CALLS", "300"))
SEED = int(os.environ.get("ALTCRAFT_CHAOS_SEED", "20261122"))
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.02, factor=1.5, max_interval=0.2), timeout=30)
FAST_RETRY = RetryPolicy(attempts=5, backoff=Backoff(initial=0.01, max_interval=0.1, jitter=1.0))


def assert_client_idle(client: AltcraftClient) -> None:
    assert client.connections_in_use() == 0
    assert client._polls == {}  # no shared poll state kept for nobody


def assert_no_tasks_left(before: set[asyncio.Task[Any]]) -> None:
    """Checked once the fake (whose server tasks share this loop) has stopped."""
    assert asyncio.all_tasks() - before == set()


def sendable(channels: list[ChannelCounters]) -> dict[str, int | None]:
    return {item.channel: item.status.subscribed_sendable for item in channels}


def full(snapshots: list[CountersSnapshot]) -> dict[str, dict[str, Any]]:
    return {
        item.channel: {
            name: value for name, value in asdict(item.status).items() if value is not None
        }
        for snapshot in snapshots
        for item in snapshot.channels
    }


@pytest.mark.parametrize("wire_format", ["json", "xml"])
async def test_chaos(wire_format: str) -> None:
    before = asyncio.all_tasks()
    segments = max(1, -(-CALLS // 3))
    fake = FakeAltcraft.seeded(
        profiles=2_000,
        segments=segments,
        seed=SEED,
        task_plan=lambda rng: TaskPlan.after_seconds(rng.uniform(0.02, 0.3)),
    )
    fake.faults.chaos(
        seed=SEED,
        http_5xx=0.05,
        drop=0.03,
        rate_limited=0.02,
        malformed=0.01,
        latency=(0.0, 0.05),
    )
    tally: Counter[str] = Counter()
    async with fake:
        refs = [SegmentRef(s, r, d) for s, r, d in fake.platform.segment_refs()][:CALLS]
        expected = {
            ref: fake.platform.segment_counters(ref.segment_id, ref.resource_id) for ref in refs
        }
        async with AltcraftClient(
            fake.url, token=fake.token, format=wire_format, retry=FAST_RETRY, poll=FAST_POLL
        ) as client:

            async def refresh(ref: SegmentRef) -> None:
                try:
                    snapshots = await client.segments.refresh_and_wait(
                        segment_id=ref.segment_id,
                        resource_id=ref.resource_id,
                        database_id=ref.database_id,
                    )
                except AltcraftError as error:
                    tally[f"refresh {type(error).__name__}"] += 1
                else:
                    assert full(snapshots) == expected[ref]
                    tally["refresh ok"] += 1

            async def read(ref: SegmentRef) -> None:
                try:
                    channels = await client.segments.get_counters(
                        segment_id=ref.segment_id,
                        resource_id=ref.resource_id,
                        database_id=ref.database_id,
                    )
                except AltcraftError as error:
                    tally[f"read {type(error).__name__}"] += 1
                else:
                    want = expected[ref]
                    assert sendable(channels) == {
                        channel: counts["subscribed_sendable"] for channel, counts in want.items()
                    }
                    tally["read ok"] += 1

            with anyio.fail_after(120):  # the global deadline: nothing may hang
                async with anyio.create_task_group() as group:
                    for ref in refs:
                        group.start_soon(refresh, ref)
                        group.start_soon(read, ref)
            assert_client_idle(client)

        starts = [r for r in fake.requests if r.path == "segments/refresh_counters"]
        created = [r.task_id for r in starts if r.task_id is not None]
        # a start is never retried once it may have been processed: no ref got two tasks
        per_ref = Counter((t.segment_id, t.resource_id) for t in fake.tasks.values())
        assert max(per_ref.values(), default=1) == 1
        assert len(created) == len(set(created)) == len(fake.tasks)
    assert_no_tasks_left(before)
    assert sum(tally.values()) == 2 * len(refs)
    faults = Counter(r.fault for r in fake.requests if r.fault)
    print(f"\nchaos {wire_format} seed={SEED} calls={2 * len(refs)}: {dict(sorted(tally.items()))}")
    print(f"  faults injected over {len(fake.requests)} requests: {dict(faults)}")
    assert tally["refresh ok"] > len(refs) * 0.8
    assert tally["read ok"] > len(refs) * 0.9


async def test_cancellation_at_random_points() -> None:
    """500 waits and requests cancelled at random moments leave nothing behind."""
    before = asyncio.all_tasks()
    rng = random.Random(SEED)
    fake = FakeAltcraft.seeded(
        profiles=1_000,
        segments=20,
        seed=SEED,
        task_plan=lambda r: TaskPlan.after_seconds(r.uniform(0.01, 0.2)),
    )
    fake.faults.chaos(seed=SEED, http_5xx=0.1, drop=0.05, latency=(0.0, 0.03))
    outcomes: Counter[str] = Counter()
    async with fake:
        refs = [SegmentRef(s, r, d) for s, r, d in fake.platform.segment_refs()]
        async with AltcraftClient(
            fake.url, token=fake.token, retry=FAST_RETRY, poll=FAST_POLL
        ) as client:
            shared = await client.segments.refresh_counters(
                segment_id=refs[0].segment_id,
                resource_id=refs[0].resource_id,
                database_id=refs[0].database_id,
                retry=RetryPolicy(retry_starts=True, backoff=FAST_RETRY.backoff),
            )

            async def operation(kind: int, ref: SegmentRef) -> None:
                ids = {
                    "segment_id": ref.segment_id,
                    "resource_id": ref.resource_id,
                    "database_id": ref.database_id,
                }
                if kind == 0:
                    await client.segments.get_counters(**ids)
                elif kind == 1:
                    await client.segments.refresh_and_wait(**ids)
                elif kind == 2:
                    await shared.wait()  # many waiters on one task: single-flight hand-over
                else:
                    await client.tasks.status(shared.task_id)

            async def with_scope(kind: int, ref: SegmentRef, delay: float) -> None:
                with anyio.move_on_after(delay) as scope:
                    try:
                        await operation(kind, ref)
                    except AltcraftError as error:
                        outcomes[type(error).__name__] += 1
                        return
                outcomes["cancelled (scope)" if scope.cancelled_caught else "finished"] += 1

            async def with_task_cancel(kind: int, ref: SegmentRef, delay: float) -> None:
                task = asyncio.ensure_future(operation(kind, ref))
                handle = asyncio.get_running_loop().call_later(delay, task.cancel)
                try:
                    await task
                    outcomes["finished"] += 1
                except asyncio.CancelledError:
                    outcomes["cancelled (task)"] += 1
                except AltcraftError as error:
                    outcomes[type(error).__name__] += 1
                finally:
                    handle.cancel()

            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    for _ in range(500):
                        runner = rng.choice((with_scope, with_task_cancel))
                        group.start_soon(
                            runner, rng.randrange(4), rng.choice(refs), rng.uniform(0, 0.3)
                        )
            assert_client_idle(client)
            # and the client still works afterwards
            fake.faults.clear()
            channels = await client.segments.get_counters(
                segment_id=refs[0].segment_id,
                resource_id=refs[0].resource_id,
                database_id=refs[0].database_id,
            )
            assert channels
            assert_client_idle(client)
    assert_no_tasks_left(before)
    print(f"\ncancellation seed={SEED}: {dict(sorted(outcomes.items()))}")
    assert outcomes["cancelled (scope)"] > 0 and outcomes["cancelled (task)"] > 0
    assert sum(outcomes.values()) == 500


async def test_a_start_with_a_lost_reply_is_not_repeated() -> None:
    """The reply of a start is lost after the task was created: the fake has one task."""
    async with FakeAltcraft.seeded(profiles=200, segments=2) as fake:
        fake.faults.next("segments/refresh_counters", Fault.drop(after_processing=True))
        async with AltcraftClient(fake.url, token=fake.token, retry=FAST_RETRY) as client:
            with pytest.raises(AltcraftError):
                await client.segments.refresh_counters(segment_id=1, resource_id=1, database_id=1)
        assert fake.calls("segments/refresh_counters") == 1
        assert len(fake.tasks) == 1
