"""AltcraftClient lifecycle: creation outside a loop, closing, event-loop binding, leaks.

pytest runs with warnings as errors, so a leaked aiohttp session, connector or socket (whose
``__del__`` warns) fails the test that leaked it: every test here closes what it opened.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import anyio
import pytest

from altcraft_async import (
    AiohttpTransport,
    AltcraftClient,
    Backoff,
    ClientClosedError,
    Match,
    PollPolicy,
)
from altcraft_async.testing import FakeAltcraft, Platform, TaskPlan

TOKEN = "user-SECRET-lifecycle"
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.001, max_interval=0.01), timeout=5.0)


def platform() -> Platform:
    """Database 1, resource 24 (email), two subscribed profiles in static segment 7."""
    plat = Platform()
    plat.add_database(1)
    plat.add_resource(24, database_ids=1, channels=("email",))
    ids = [
        plat.add_profile(1, email=f"p{n}@example.com", subscriptions={(24, "email"): "subscribed"})
        for n in range(2)
    ]
    plat.add_static_segment(1, ids, segment_id=7)
    return plat


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeAltcraft]:
    async with FakeAltcraft(platform(), token=TOKEN) as server:
        yield server


async def subscribed_sendable(client: AltcraftClient) -> int | None:
    (email,) = await client.segments.get_counters(segment_id=7, resource_id=24)
    return email.status.subscribed_sendable


# --- creation outside a running loop --------------------------------------------------------


def run_with_asyncio(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(main())


def run_with_anyio(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return anyio.run(main)


def refresh_once(
    fake: FakeAltcraft, client: AltcraftClient
) -> Callable[[], Coroutine[Any, Any, int | None]]:
    async def main() -> int | None:
        async with fake, client:
            count = await subscribed_sendable(client)
            task = await client.segments.refresh_counters(segment_id=7, resource_id=24)
            (snapshot,) = await task.wait(timeout=5, policy=FAST_POLL)
            assert snapshot.channel("email") is not None
            return count

    return main


@pytest.mark.parametrize("runner", [run_with_asyncio, run_with_anyio], ids=["asyncio", "anyio"])
def test_client_created_outside_a_running_loop(runner):
    # the client needs its URL before any loop runs, so the port is picked first; another
    # process (CI runs two suites at once) may take it before the fake binds it: pick again
    for _ in range(5):
        port = free_port()
        fake = FakeAltcraft(platform(), token=TOKEN, port=port)
        client = AltcraftClient(f"http://127.0.0.1:{port}", token=TOKEN)
        assert not client.closed and "open" in repr(client)
        try:
            count = runner(refresh_once(fake, client))
        except OSError as error:  # only the fake's bind raises this one
            if error.errno != errno.EADDRINUSE:
                raise
        else:
            break
    assert count == 2
    assert client.closed and len(fake.tasks) == 1


def test_unused_client_needs_no_closing():
    client = AltcraftClient("http://127.0.0.1:9", token=TOKEN)
    del client
    gc.collect()  # no "Unclosed AltcraftClient": it never opened a session (warnings are errors)


# --- closing --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_use_after_aclose_raises_client_closed(fake):
    client = AltcraftClient(fake.url, token=TOKEN, poll=FAST_POLL)
    fake.plan_tasks(TaskPlan.never())
    async with client:
        assert await subscribed_sendable(client) == 2
        task = await client.segments.refresh_counters(segment_id=7, resource_id=24)
    assert client.closed and "closed" in repr(client)
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: client.segments.get_counters(segment_id=7, resource_id=24),
        lambda: client.segments.refresh_counters(segment_id=7, resource_id=24),
        lambda: client.tasks.status(task.task_id),
        lambda: task.status(),
        lambda: task.wait(timeout=5),
        lambda: client.relations.get_counter(relation_id=1, match=Match.email("a@b.c")),
    ]
    with anyio.fail_after(2):
        for call in calls:
            with pytest.raises(ClientClosedError):
                await call()
        with pytest.raises(ClientClosedError):
            async with client:
                pass
    assert len(fake.requests) == 2  # nothing was sent after the close


@pytest.mark.anyio
async def test_closing_twice_is_fine(fake):
    client = AltcraftClient(fake.url, token=TOKEN)
    await client.aclose()  # before any request: no session yet
    await client.aclose()
    assert client.closed
    other = AltcraftClient(fake.url, token=TOKEN)
    async with other:
        await subscribed_sendable(other)
    await other.aclose()
    await other.aclose()
    assert other.closed and other.connections_in_use() == 0


# --- event loops ----------------------------------------------------------------------------


def test_a_second_event_loop_gets_client_closed_not_a_hang():
    home = asyncio.new_event_loop()
    fake = FakeAltcraft(platform(), token=TOKEN)
    try:
        home.run_until_complete(fake.start())
        client = AltcraftClient(fake.url, token=TOKEN)
        assert home.run_until_complete(subscribed_sendable(client)) == 2

        async def elsewhere() -> None:
            with anyio.fail_after(2):
                with pytest.raises(ClientClosedError, match="another event loop"):
                    await subscribed_sendable(client)
                with pytest.raises(ClientClosedError, match="another event loop"):
                    async with client:
                        pass
                # Closing from the wrong loop would touch the home loop's sockets: refused,
                # and the client stays closable from its own loop.
                with pytest.raises(ClientClosedError, match="another event loop"):
                    await client.aclose()

        asyncio.run(elsewhere())
        assert not client.closed
        # Still fine at home.
        assert home.run_until_complete(subscribed_sendable(client)) == 2
        home.run_until_complete(client.aclose())
        assert client.closed
        assert len(fake.requests) == 2
    finally:
        home.run_until_complete(fake.stop())
        home.close()


def test_a_client_whose_loop_has_ended_can_still_be_closed():
    """``asyncio.run(use(client))`` then ``asyncio.run(client.aclose())``: the first loop is
    gone with its sockets, so closing from the new one must not raise or leave a session
    that warns when collected (warnings are errors in this suite)."""
    fake = FakeAltcraft(platform(), token=TOKEN)

    async def use() -> AltcraftClient:
        await fake.start()
        client = AltcraftClient(fake.url, token=TOKEN)
        assert await subscribed_sendable(client) == 2
        await fake.stop()
        return client

    client = asyncio.run(use())
    assert not client.closed
    asyncio.run(client.aclose())
    assert client.closed
    del client
    gc.collect()


# --- leaks ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unclosed_client_warns_when_collected(fake):
    transport = AiohttpTransport()  # kept alive so that only the client is collected
    client = AltcraftClient(fake.url, token=TOKEN, transport=transport)
    await subscribed_sendable(client)
    assert transport.session_open
    with pytest.warns(ResourceWarning, match="Unclosed AltcraftClient"):
        del client
        gc.collect()
    await transport.aclose()  # what the client should have done; no aiohttp warning follows
    assert not transport.session_open


@pytest.mark.anyio
async def test_a_thousand_clients_leave_no_open_connection(fake):
    before = open_fds()
    for _ in range(1000):
        async with AltcraftClient(fake.url, token=TOKEN) as client:
            await subscribed_sendable(client)
            assert client.connections_in_use() == 0
        assert client.closed
    assert fake.stats.requests == 1000
    # Each client had its own TCP connection; a leak would keep ~2,000 sockets open.
    assert open_fds() <= before + 4
    gc.collect()  # no unclosed session, connector or socket warning (warnings are errors)
