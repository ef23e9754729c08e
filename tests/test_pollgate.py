"""The client's poll gate: at most ``max_connections`` status polls of its waits go at once;
the others stand in line before building a request, and a close ends them all."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from altcraft_async import AltcraftClient, Backoff, ClientClosedError, PollPolicy
from altcraft_async._awaiter import PollGate
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

pytestmark = pytest.mark.anyio

STATUS = "tasks/status"
#: Every wait polls 10 ms after its task was created, then not for a long while.
ONCE = PollPolicy(
    backoff=Backoff(initial=0.01, factor=1000.0, max_interval=30.0, jitter=0.0),
    progress_aware=False,
    timeout=60.0,
)


async def test_the_gate_lets_through_in_order_and_skips_a_cancelled_place():
    gate = PollGate(1)
    assert gate.take()
    assert not gate.take()
    passed: list[str] = []

    async def line_up(name: str) -> None:
        await gate.queue()
        passed.append(name)

    first = asyncio.ensure_future(line_up("first"))
    gone = asyncio.ensure_future(line_up("gone"))
    last = asyncio.ensure_future(line_up("last"))
    await asyncio.sleep(0)  # all three stand in line
    gone.cancel()
    gate.leave()  # to "first"
    await first
    gate.leave()  # "gone" was cancelled: to "last"
    await last
    assert passed == ["first", "last"]
    gate.leave()
    assert gate.take()  # the place came back


async def test_a_place_handed_to_a_cancelled_poll_passes_on():
    gate = PollGate(1)
    assert gate.take()
    cancelled = asyncio.ensure_future(gate.queue())
    after = asyncio.ensure_future(gate.queue())
    await asyncio.sleep(0)
    gate.leave()  # handed to ``cancelled``...
    cancelled.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await after  # the place went on to the next in line
    gate.leave()
    assert gate.take()


async def test_polls_due_together_go_max_connections_at_a_time_and_a_close_ends_the_line():
    """Five waits due at once with one connection: one poll is sent, the others wait in the
    gate without a request; closing the client ends every wait with ClientClosedError."""
    sent = anyio.Event()
    requests: list[str] = []

    def on_request(event: Any) -> None:
        if event.endpoint == "tasks.status":
            requests.append(event.endpoint)
            sent.set()

    fake = FakeAltcraft.seeded(profiles=300, segments=4, resources=2, task_plan=TaskPlan.never())
    async with fake:
        client = AltcraftClient(
            fake.url,
            token=fake.token,
            poll=ONCE,
            max_connections=1,
            event_hooks={"request": [on_request]},
        )
        refs = fake.platform.segment_refs()[:5]
        tasks = [
            await client.segments.refresh_counters(
                segment_id=s, resource_id=r, database_id=d, coalesce=False
            )
            for s, r, d in refs
        ]
        fake.faults.script(STATUS, Fault.delay(5.0))  # the one poll sent hangs until the close
        errors: list[BaseException] = []

        async def wait(task: Any) -> None:
            try:
                await task.wait()
            except ClientClosedError as error:
                errors.append(error)

        with anyio.fail_after(3):
            async with anyio.create_task_group() as group:
                for task in tasks:
                    group.start_soon(wait, task)
                await sent.wait()
                for _ in range(5):
                    await anyio.sleep(0)  # the other four reach the gate
                assert requests == ["tasks.status"]
                await client.aclose()
        assert len(errors) == 5
        assert requests == ["tasks.status"]  # the polls in line were never sent
        assert client.connections_in_use() == 0
