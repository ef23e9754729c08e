"""The chaos proxy: each fault kind alone, scripted, as a real client sees it through the proxy
in front of a FakeAltcraft, checked against what the fake recorded; the proxy's own framing,
validation and lifecycle.

The client's contract under each fault (README, "Reliable"): a read is retried and ends with
the right value; a task start whose request may have reached the server is not retried, so it
ends with a typed error and the fake holds at most one task for it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import pytest
from helpers import prints_in_a_subprocess

from altcraft_async import (
    AltcraftClient,
    Backoff,
    ChannelCounters,
    PollPolicy,
    RequestTimeoutError,
    RetryPolicy,
    SegmentRef,
    TransportError,
)
from altcraft_async.testing import (
    ChaosKind,
    ChaosMix,
    ChaosProxy,
    ChaosStats,
    FakeAltcraft,
    Fault,
    TaskPlan,
)

pytestmark = pytest.mark.anyio

SEED = 20261122
FAST_RETRY = RetryPolicy(attempts=4, backoff=Backoff(initial=0.01, max_interval=0.05, jitter=1.0))
ONE_TRY = RetryPolicy(attempts=1)
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.02, factor=1.5, max_interval=0.2), timeout=10)
READ = "segments/get_counters"
START = "segments/refresh_counters"


@asynccontextmanager
async def through_proxy(
    *,
    script: Iterable[ChaosKind] = (),
    mix: ChaosMix | None = None,
    seed: int = SEED,
    **fake_options: Any,
) -> AsyncIterator[tuple[FakeAltcraft, ChaosProxy]]:
    """A seeded fake with a proxy in front; afterwards nothing of either may be left running.

    The fake speaks the plain dialect unless told otherwise (whatever $ALTCRAFT_FAKE_DIALECT
    says): the keep-alive and connection counts below assume it."""
    before = asyncio.all_tasks()
    fake_options.setdefault("dialect", "plain")
    fake = FakeAltcraft.seeded(profiles=300, segments=3, seed=SEED, **fake_options)
    async with fake, ChaosProxy.from_url(fake.url, mix=mix, seed=seed, script=script) as proxy:
        with anyio.fail_after(20):
            yield fake, proxy
    assert proxy.errors == []
    assert proxy.stats.open_connections == 0
    assert asyncio.all_tasks() - before == set()


@asynccontextmanager
async def client_of(
    fake: FakeAltcraft, proxy: ChaosProxy, **options: Any
) -> AsyncIterator[AltcraftClient]:
    """A client talking to the fake through the proxy; closed, it leaves no proxy connection."""
    options.setdefault("retry", FAST_RETRY)
    async with AltcraftClient(proxy.url, token=fake.token, **options) as client:
        yield client
        assert client.connections_in_use() == 0
    await proxy.wait_idle()


def first_ref(fake: FakeAltcraft) -> SegmentRef:
    return SegmentRef(*fake.platform.segment_refs()[0])


def ids(ref: SegmentRef) -> dict[str, Any]:
    assert ref.database_id is not None
    return {
        "segment_id": ref.segment_id,
        "resource_id": ref.resource_id,
        "database_id": ref.database_id,
    }


def sendable(channels: Sequence[ChannelCounters]) -> dict[str, int | None]:
    return {item.channel: item.status.subscribed_sendable for item in channels}


def expected_sendable(fake: FakeAltcraft, ref: SegmentRef) -> dict[str, int | None]:
    counters = fake.platform.segment_counters(ref.segment_id, ref.resource_id)
    return {channel: counts["subscribed_sendable"] for channel, counts in counters.items()}


def fault_count(stats: ChaosStats, kind: ChaosKind) -> int:
    return stats.faults[kind]


# --- each fault kind alone, seen by a real client -------------------------------------------------


async def test_pass_through_decides_per_request_on_one_keep_alive_connection() -> None:
    async with through_proxy(script=["pass", "dribble", "pass", "dribble"]) as (fake, proxy):
        ref = first_ref(fake)
        async with client_of(fake, proxy) as client:
            for _ in range(4):
                channels = await client.segments.get_counters(**ids(ref))
                assert sendable(channels) == expected_sendable(fake, ref)
        stats = proxy.stats
        assert stats.connections == 1  # four requests, one connection: decided per request
        assert stats.requests == 4 == fake.calls(READ)
        assert [record.kind for record in proxy.records] == ["pass", "dribble", "pass", "dribble"]


async def test_a_read_reset_before_the_answer_is_retried() -> None:
    async with through_proxy(script=["reset_before"]) as (fake, proxy):
        ref = first_ref(fake)
        async with client_of(fake, proxy) as client:
            channels = await client.segments.get_counters(**ids(ref))
        assert sendable(channels) == expected_sendable(fake, ref)
        assert fault_count(proxy.stats, "reset_before") == 1
        assert proxy.stats.requests == 2
        assert fake.calls(READ) == 1  # the reset request never reached the server


async def test_a_start_reset_before_the_answer_is_a_transport_error_and_no_task() -> None:
    """The client cannot tell this reset from one after processing: it must not retry."""
    async with through_proxy(script=["reset_before"]) as (fake, proxy):
        async with client_of(fake, proxy) as client:
            with pytest.raises(TransportError) as caught:
                await client.segments.refresh_counters(**ids(first_ref(fake)))
        assert caught.value.sent and not isinstance(caught.value, RequestTimeoutError)
        assert proxy.stats.requests == 1  # not retried
        assert fake.calls(START) == 0 and len(fake.tasks) == 0


async def test_a_read_reset_after_the_answer_is_retried() -> None:
    async with through_proxy(script=["reset_after"]) as (fake, proxy):
        ref = first_ref(fake)
        async with client_of(fake, proxy) as client:
            channels = await client.segments.get_counters(**ids(ref))
        assert sendable(channels) == expected_sendable(fake, ref)
        assert fault_count(proxy.stats, "reset_after") == 1
        assert fake.calls(READ) == 2  # served twice: the first reply was never delivered


async def test_a_start_reset_after_the_answer_is_not_retried() -> None:
    """The task was created upstream; a retry would create a second one."""
    async with through_proxy() as (fake, proxy):
        proxy.next("reset_after", path=START)
        async with client_of(fake, proxy) as client:
            with pytest.raises(TransportError) as caught:
                await client.segments.refresh_counters(**ids(first_ref(fake)))
        assert caught.value.sent and not isinstance(caught.value, RequestTimeoutError)
        assert "reset" in str(caught.value).lower()
        assert proxy.stats.requests == 1
        assert fake.calls(START) == 1
        assert len(fake.tasks) == 1  # processed exactly once; the client never learnt its id


async def test_retry_starts_trades_the_error_for_a_duplicate_task() -> None:
    """The documented opt-in: with retry_starts=True the same fault costs a second task."""
    async with through_proxy() as (fake, proxy):
        proxy.next("reset_after", path=START)
        async with client_of(fake, proxy) as client:
            task = await client.segments.refresh_counters(
                **ids(first_ref(fake)),
                retry=RetryPolicy(attempts=2, backoff=FAST_RETRY.backoff, retry_starts=True),
            )
        assert task.task_id in fake.tasks
        assert len(fake.tasks) == 2


@pytest.mark.parametrize("kind", ["truncate", "close_after_headers"])
async def test_a_cut_reply_to_a_read_is_retried(kind: ChaosKind) -> None:
    async with through_proxy(script=[kind]) as (fake, proxy):
        ref = first_ref(fake)
        async with client_of(fake, proxy) as client:
            channels = await client.segments.get_counters(**ids(ref))
        assert sendable(channels) == expected_sendable(fake, ref)
        assert fault_count(proxy.stats, kind) == 1
        assert fake.calls(READ) == 2


@pytest.mark.parametrize("kind", ["truncate", "close_after_headers"])
async def test_a_cut_reply_without_retries_is_a_transport_error(kind: ChaosKind) -> None:
    async with through_proxy(script=[kind]) as (fake, proxy):
        async with client_of(fake, proxy, retry=ONE_TRY) as client:
            with pytest.raises(TransportError) as caught:
                await client.segments.get_counters(**ids(first_ref(fake)))
        assert caught.value.sent
        assert fake.calls(READ) == 1


@pytest.mark.parametrize("kind", ["truncate", "close_after_headers"])
async def test_a_start_with_a_cut_reply_is_not_retried(kind: ChaosKind) -> None:
    async with through_proxy() as (fake, proxy):
        proxy.next(kind, path=START)
        async with client_of(fake, proxy) as client:
            with pytest.raises(TransportError):
                await client.segments.refresh_counters(**ids(first_ref(fake)))
        assert fake.calls(START) == 1
        assert len(fake.tasks) == 1


async def test_a_stall_without_end_is_a_request_timeout_within_the_timeout() -> None:
    async with through_proxy(script=["stall"]) as (fake, proxy):
        async with client_of(fake, proxy, retry=ONE_TRY, timeout=0.3) as client:
            started = time.monotonic()
            with pytest.raises(RequestTimeoutError):
                await client.segments.get_counters(**ids(first_ref(fake)))
            elapsed = time.monotonic() - started
        assert 0.29 <= elapsed < 1.3
        assert fake.calls(READ) == 1  # answered upstream, held by the proxy
        assert proxy.stats.client_gone == 1  # the proxy saw the client give up


async def test_a_stalled_read_is_retried() -> None:
    async with through_proxy(script=["stall"]) as (fake, proxy):
        ref = first_ref(fake)
        async with client_of(fake, proxy, timeout=0.3) as client:
            channels = await client.segments.get_counters(**ids(ref))
        assert sendable(channels) == expected_sendable(fake, ref)
        assert fake.calls(READ) == 2


async def test_a_stalled_start_times_out_and_is_not_retried() -> None:
    async with through_proxy() as (fake, proxy):
        proxy.next("stall", path=START)
        async with client_of(fake, proxy, timeout=0.3) as client:
            with pytest.raises(RequestTimeoutError) as caught:
                await client.segments.refresh_counters(**ids(first_ref(fake)))
        assert caught.value.sent
        assert fake.calls(START) == 1 and len(fake.tasks) == 1


async def test_a_short_stall_is_only_latency() -> None:
    async with through_proxy(script=["stall"], mix=ChaosMix(stall_seconds=0.2)) as (fake, proxy):
        ref = first_ref(fake)
        async with client_of(fake, proxy, timeout=5) as client:
            started = time.monotonic()
            channels = await client.segments.get_counters(**ids(ref))
            assert time.monotonic() - started >= 0.19
        assert sendable(channels) == expected_sendable(fake, ref)
        assert fake.calls(READ) == 1 and proxy.stats.client_gone == 0


async def test_stopping_the_proxy_cuts_a_stall_at_once() -> None:
    async with through_proxy(script=["stall"]) as (fake, proxy):
        outcome: list[BaseException] = []
        async with client_of(fake, proxy, retry=ONE_TRY, timeout=60) as client:

            async def read() -> None:
                try:
                    await client.segments.get_counters(**ids(first_ref(fake)))
                except TransportError as error:
                    outcome.append(error)

            with anyio.fail_after(2):  # far below the request timeout
                async with anyio.create_task_group() as group:
                    group.start_soon(read)
                    await proxy.wait_requests(1)
                    await proxy.stop()
        assert len(outcome) == 1 and not isinstance(outcome[0], RequestTimeoutError)
        assert proxy.stats.open_connections == 0


async def test_a_dribbled_reply_reads_right() -> None:
    mix = ChaosMix(dribble=1.0, dribble_bytes=(1, 3), dribble_delay=(0.0, 0.001))
    async with through_proxy(mix=mix, task_plan=TaskPlan.after_polls(2)) as (fake, proxy):
        ref = first_ref(fake)
        async with client_of(fake, proxy, poll=FAST_POLL) as client:
            channels = await client.segments.get_counters(**ids(ref))
            snapshots = await client.segments.refresh_and_wait(**ids(ref))
        assert sendable(channels) == expected_sendable(fake, ref)
        assert sendable(snapshots[0].channels) == expected_sendable(fake, ref)
        assert len(fake.tasks) == 1
        assert fault_count(proxy.stats, "dribble") == proxy.stats.requests == len(fake.requests)


async def test_chunked_gzip_and_connection_close_replies_are_framed() -> None:
    """The fake's nginx-like dialect (chunked, gzip, Connection: close) through every kind."""
    kinds: list[ChaosKind] = ["pass", "dribble", "truncate", "close_after_headers", "reset_after"]
    async with through_proxy(script=kinds, dialect="proxy") as (fake, proxy):
        ref = first_ref(fake)
        async with client_of(fake, proxy) as client:
            for _ in range(3):  # pass; dribble; then truncate, close, reset, pass (retries)
                channels = await client.segments.get_counters(**ids(ref))
                assert sendable(channels) == expected_sendable(fake, ref)
        stats = proxy.stats
        assert stats.bad_messages == 0 and stats.requests == 6
        assert stats.connections == 6  # Connection: close: one connection per request
        assert fake.calls(READ) == 6  # every reply, even the reset one, came from the fake


async def test_the_fakes_own_faults_pass_through() -> None:
    async with through_proxy() as (fake, proxy):
        fake.faults.next(READ, Fault.drop())
        fake.faults.next(READ, Fault.truncated())
        ref = first_ref(fake)
        async with client_of(fake, proxy) as client:
            channels = await client.segments.get_counters(**ids(ref))
        assert sendable(channels) == expected_sendable(fake, ref)
        assert proxy.stats.upstream_cut == 2
        assert fake.calls(READ) == 3


async def test_a_seeded_mix_is_repeatable_and_paths_limit_it() -> None:
    mix = ChaosMix(reset_before=0.3, dribble=0.3, paths={START})
    kinds: list[list[ChaosKind]] = []
    for _ in range(2):
        async with through_proxy(mix=mix, seed=7) as (fake, proxy):
            ref = first_ref(fake)
            async with client_of(fake, proxy, retry=ONE_TRY) as client:
                for _ in range(3):
                    await client.segments.get_counters(**ids(ref))  # never drawn: not in paths
                for _ in range(12):
                    with suppress(TransportError):
                        await client.segments.refresh_counters(**ids(ref))
            kinds.append([record.kind for record in proxy.records])
    assert kinds[0] == kinds[1]
    assert kinds[0][:3] == ["pass"] * 3
    assert {"reset_before", "dribble"} <= set(kinds[0][3:])


# --- the proxy itself: resets, framing, validation ------------------------------------------------

RAW_REQUEST = (
    b"POST /api/v1.1/segments/get_counters HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
)


@pytest.mark.parametrize("kind", ["reset_before", "reset_after"])
async def test_a_reset_is_a_tcp_reset_not_an_eof(kind: ChaosKind) -> None:
    async with through_proxy(script=[kind]) as (fake, proxy):
        reader, writer = await asyncio.open_connection(*_address(proxy))
        try:
            writer.write(RAW_REQUEST)
            with pytest.raises(ConnectionResetError):
                await reader.read()
        finally:
            writer.close()
        assert fake.calls(READ) == (0 if kind == "reset_before" else 1)
        await proxy.wait_idle()


@asynccontextmanager
async def raw_upstream(reply: bytes) -> AsyncIterator[tuple[str, int]]:
    """A bare TCP server that answers every request head with ``reply`` bytes."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                await reader.readexactly(2)  # RAW_REQUEST's body
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


async def _exchange_raw(proxy: ChaosProxy, requests: int) -> bytes:
    reader, writer = await asyncio.open_connection(*_address(proxy))
    try:
        writer.write(RAW_REQUEST * requests)
        return await reader.read()
    finally:
        writer.close()


def _address(proxy: ChaosProxy) -> tuple[str, int]:
    host, port = proxy.url.removeprefix("http://").split(":")
    return host, int(port)


async def test_chunked_replies_with_extensions_and_trailers_pass_byte_for_byte() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye"
    with anyio.fail_after(10):
        async with raw_upstream(reply) as (host, port), ChaosProxy(host, port) as proxy:
            # two requests on one connection: the second reply starts where the first ended
            reader, writer = await asyncio.open_connection(*_address(proxy))
            try:
                writer.write(RAW_REQUEST * 2)
                assert await reader.readexactly(2 * len(reply)) == reply * 2
            finally:
                writer.close()
            await proxy.wait_idle()
        async with raw_upstream(closing) as (host, port), ChaosProxy(host, port) as proxy:
            assert await _exchange_raw(proxy, 1) == closing  # then the proxy closes: EOF
            await proxy.wait_idle()
            assert proxy.stats.bad_messages == 0 and proxy.errors == []


async def test_a_reply_without_a_length_is_read_to_its_end() -> None:
    reply = b"HTTP/1.1 200 OK\r\n\r\nall of this"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    with anyio.fail_after(10):
        async with server, ChaosProxy(*server.sockets[0].getsockname()[:2]) as proxy:
            assert await _exchange_raw(proxy, 1) == reply
            await proxy.wait_idle()
            assert proxy.errors == [] and proxy.stats.upstream_cut == 0


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    ],
)
async def test_replies_outside_the_grammar_close_the_connection(reply: bytes) -> None:
    with anyio.fail_after(10):
        async with raw_upstream(reply) as (host, port), ChaosProxy(host, port) as proxy:
            assert await _exchange_raw(proxy, 1) == b""
            await proxy.wait_idle()
            assert proxy.stats.bad_messages == 1 and proxy.errors == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NONSENSE\r\n\r\n",
        b"POST / HTTP/3\r\n\r\n",
        b"POST / HTTP/1.1\r\nNo-Colon\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    ],
)
async def test_requests_outside_the_grammar_close_the_connection(request_bytes: bytes) -> None:
    async with through_proxy() as (fake, proxy):
        reader, writer = await asyncio.open_connection(*_address(proxy))
        try:
            writer.write(request_bytes)
            assert await reader.read() == b""
        finally:
            writer.close()
        await proxy.wait_idle()
        assert proxy.stats.bad_messages == 1 and len(fake.requests) == 0


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"reset_before": 1.5}, ValueError, "reset_before must be a probability in [0, 1]"),
        ({"truncate": -0.1}, ValueError, "truncate must be a probability"),
        ({"stall": float("nan")}, ValueError, "stall must be a probability"),
        ({"dribble": True}, TypeError, "dribble must be a number"),
        ({"reset_after": 0.6, "stall": 0.6}, ValueError, "add up to 1.2, more than 1"),
        ({"stall_seconds": -1}, ValueError, "stall_seconds must be finite and >= 0"),
        ({"stall_seconds": float("inf")}, ValueError, "stall_seconds must be finite"),
        ({"dribble_bytes": (0, 4)}, ValueError, "dribble_bytes values must be finite and >= 1"),
        ({"dribble_bytes": (4, 2)}, ValueError, "dribble_bytes must be (low, high) with low"),
        ({"dribble_bytes": (1.5, 2)}, TypeError, "dribble_bytes must hold ints"),
        ({"dribble_delay": 0.1}, TypeError, "dribble_delay must be a (low, high) pair"),
    ],
)
def test_mix_validation(options: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ChaosMix(**options)


def test_mix_helpers_and_proxy_arguments() -> None:
    mix = ChaosMix.resets(0.03, paths="segments/refresh_counters")
    assert mix.reset_before == mix.reset_after == 0.015
    assert mix.paths == frozenset({"segments/refresh_counters"})
    assert sum(mix.probabilities().values()) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="probability"):
        ChaosMix.resets(2)
    proxy = ChaosProxy("127.0.0.1", 1)
    with pytest.raises(ValueError, match="unknown chaos kind 'explode'"):
        proxy.next("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times must be a positive int"):
        proxy.next("stall", times=0)
    with pytest.raises(TypeError, match="mix must be a ChaosMix"):
        ChaosProxy("127.0.0.1", 1, mix={"stall": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected http://host:port"):
        ChaosProxy.from_url("https://example.com")
    with pytest.raises(RuntimeError, match="not running"):
        _ = proxy.url


STOP_RACE = """
import asyncio
from altcraft_async.testing import ChaosProxy

async def main():
    proxy = ChaosProxy.from_url("http://127.0.0.1:9")
    await proxy.start()
    async def serve():
        return None
    task = asyncio.get_running_loop().create_task(serve())
    await asyncio.sleep(0)  # ended; the callback that unregisters it not yet run
    proxy._handlers.add(task)
    task.add_done_callback(proxy._handler_done)
    await proxy.stop()
    print("stopped")

asyncio.run(main())
"""


def test_stop_does_not_spin_on_a_handler_that_just_ended() -> None:
    # gather() of ended tasks returns without yielding on 3.12+: stop() waited for a done
    # callback the loop never got to run, at full CPU
    prints_in_a_subprocess(STOP_RACE, "stopped")
