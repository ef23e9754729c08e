"""Shared pieces of the fleet tests: child processes and rates measured from recorded times."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio
from anyio.abc import Process, SocketAttribute, SocketStream
from helpers import LoopLag as LoopLag  # re-exported: the fleet tests measure with it

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

CHILD = Path(__file__).with_name("fleet_child.py")
#: How long a child may take to start or to finish (a bound, never reached when all is well).
CHILD_DEADLINE = 60.0


@asynccontextmanager
async def child(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Process]:
    """A fleet_child.py process (``env`` added to ours), killed by its PID and reaped when the
    block ends."""
    environment = {**os.environ, **(env or {})}
    process = await anyio.open_process([sys.executable, str(CHILD), *args], env=environment)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        with anyio.fail_after(CHILD_DEADLINE):
            await process.wait()
        await process.aclose()


async def read_line(process: Process) -> str:
    """The child's next stdout line (bounded by CHILD_DEADLINE)."""
    assert process.stdout is not None
    line = b""
    with anyio.fail_after(CHILD_DEADLINE):
        while not line.endswith(b"\n"):
            chunk = await process.stdout.receive(1)
            line += chunk
    return line.decode().strip()


async def expect(process: Process, text: str) -> None:
    line = await read_line(process)
    assert line == text, f"child said {line!r}, expected {text!r}"


async def go(process: Process) -> None:
    assert process.stdin is not None
    await process.stdin.send(b"go\n")


async def subscribe(pubsub: PubSub, *channels: str) -> None:
    """Subscribe ``pubsub`` to ``channels`` and wait until Redis confirmed each one:
    ``subscribe()`` returns once SUBSCRIBE is sent, and what is published before Redis took it
    in goes to nobody. Redis confirms a SUBSCRIBE's channels before any message of theirs."""
    await pubsub.subscribe(*channels)
    with anyio.fail_after(CHILD_DEADLINE):
        for _ in channels:
            message = None
            while message is None:
                message = await pubsub.get_message(timeout=CHILD_DEADLINE)
            assert message["type"] == "subscribe", message


def peak(times: Sequence[float], window: float) -> int:
    """The most of ``times`` that fall in any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@asynccontextmanager
async def measuring() -> AsyncIterator[LoopLag]:
    """A :class:`LoopLag` probing this loop while the block runs."""
    lag = LoopLag()
    async with anyio.create_task_group() as group:
        group.start_soon(lag.measure)
        try:
            yield lag
        finally:
            group.cancel_scope.cancel()


class HeldReplies:
    """A TCP proxy in front of the test's redis-server (a ``unix://`` URL) that can hold Redis'
    replies: once a request carrying ``marker`` went through, it waits for ``release`` before
    passing any reply on. Redis has run the request; its client does not know yet, which is
    the moment a test wants to cut that client off.

    With ``hold="requests"`` it holds the marked request itself (and what follows it on its
    connection) until ``release``: its client has sent it, Redis has not taken it in yet."""

    def __init__(
        self, redis_url: str, marker: bytes, hold: Literal["replies", "requests"] = "replies"
    ) -> None:
        self.path = redis_url.removeprefix("unix://")
        self.marker = marker
        self.hold = hold
        self.sent = anyio.Event()  # the marked request reached Redis (or, held, the proxy)
        self.release = anyio.Event()
        self.url = ""

    async def _serve(self, client: SocketStream) -> None:
        async with (
            client,
            await anyio.connect_unix(self.path) as upstream,
            anyio.create_task_group() as group,
        ):

            async def requests() -> None:
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    async for data in client:
                        if self.marker in data and self.hold == "requests":
                            self.sent.set()
                            await self.release.wait()
                        await upstream.send(data)
                        if self.marker in data:
                            self.sent.set()
                group.cancel_scope.cancel()

            async def replies() -> None:
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    async for data in upstream:
                        if self.sent.is_set():
                            await self.release.wait()
                        await client.send(data)
                group.cancel_scope.cancel()

            group.start_soon(requests)
            group.start_soon(replies)


@asynccontextmanager
async def held_replies(
    redis_url: str, marker: bytes, hold: Literal["replies", "requests"] = "replies"
) -> AsyncIterator[HeldReplies]:
    """A :class:`HeldReplies` proxy serving on a free loopback port while the block runs."""
    proxy = HeldReplies(redis_url, marker, hold)
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        proxy.url = f"redis://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, proxy._serve)
            try:
                yield proxy
            finally:
                proxy.release.set()
                group.cancel_scope.cancel()
