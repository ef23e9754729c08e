"""The feedback receiver's defences against whoever can reach its port.

The receiver's port is open to anyone who can reach it, so the standalone server bounds what a
client can hold: aiohttp's server has no deadline for reading a request's headers, and a client
sending them a byte at a time (slowloris) would keep its connection, and a file descriptor,
forever. Each connection must deliver its headers within ``read_timeout``, then its body within
``read_timeout`` again; at most ``max_connections`` are open at once (more are closed at
accept); every answer closes its connection. Mounted into your own application, the body
deadline still holds (the handler's), and your server's own limits stand for the rest.

Rejected calls are logged as a short escaped excerpt, at most ``burst`` a minute, so a flood of
forged calls cannot flood the logs either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import cast

from aiohttp import web

__all__ = [
    "REASON_LIMIT",
    "Answer",
    "Connections",
    "GuardedSite",
    "RejectionLog",
    "as_is",
    "closing",
    "excerpt",
]

logger = logging.getLogger("altcraft_async.feedback")

#: Longest part of a rejection reason (which may quote the caller's body) logged or answered.
REASON_LIMIT = 200

#: What the handler does to its answer: :func:`closing`, or leave it :func:`as_is`.
Answer = Callable[[web.Response], web.Response]


def as_is(response: web.Response) -> web.Response:
    return response


def closing(response: web.Response) -> web.Response:
    """The answer closes its connection (no keep-alive, no lingering over an unread body)."""
    response.force_close()
    return response


def excerpt(text: str) -> str:
    """At most :data:`REASON_LIMIT` characters, escaped: no line breaks, control or non-ASCII
    characters from the caller reach a log line as they came."""
    shown = ascii(text[:REASON_LIMIT])[1:-1]
    return shown if len(text) <= REASON_LIMIT else f"{shown}... ({len(text)} characters)"


class RejectionLog:
    """Logs rejected calls at WARNING, at most ``burst`` per ``interval`` seconds; the calls
    past that are counted and told in one line when the interval ends (or the receiver
    stops), so a flood of forged calls cannot flood the logs."""

    def __init__(self, burst: int, interval: float) -> None:
        self.burst = burst
        self.interval = interval
        self._since = time.monotonic()
        self._logged = 0
        self._unlogged = 0

    def warn(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._since >= self.interval:
            self.flush()
            self._since, self._logged = now, 0
        if self._logged < self.burst:
            self._logged += 1
            logger.warning("feedback receiver: %s", reason)
        else:
            self._unlogged += 1

    def flush(self) -> None:
        if self._unlogged:
            logger.warning(
                "feedback receiver: %d more calls rejected (not logged one by one)",
                self._unlogged,
            )
            self._unlogged = 0


class Connections:
    """The standalone server's connections, bounded in number and in time (see the module
    docstring for why: aiohttp's server never times out a request's headers)."""

    def __init__(self, limit: int, read_timeout: float) -> None:
        self.limit = limit
        self.read_timeout = read_timeout
        self._open: dict[object, _Guarded] = {}  # by transport

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, guarded: _Guarded, transport: asyncio.Transport) -> bool:
        if len(self._open) >= self.limit:
            return False
        self._open[transport] = guarded
        return True

    def forget(self, transport: asyncio.Transport) -> None:
        self._open.pop(transport, None)

    def headers_read(self, transport: asyncio.BaseTransport | None) -> Answer:
        """A call's headers were read: its connection gets a fresh deadline for the body and
        the answer, and the answer closes it. A call of another server is left alone."""
        guarded = self._open.get(transport) if transport is not None else None
        if guarded is None:
            return as_is
        # the handler answers 408 when the body is late; this is the backstop behind it
        guarded.deadline(2 * self.read_timeout)
        return closing

    def close_all(self) -> None:
        for guarded in list(self._open.values()):
            guarded.abort()
        self._open.clear()


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's own protocol inside, behind a deadline and the limit."""

    def __init__(self, connections: Connections, make_inner: Callable[[], asyncio.Protocol]):
        self._connections = connections
        self._make_inner = make_inner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a TCP server's
        if not self._connections.admit(self, self._transport):
            self.abort()  # over the limit: no handler, no file descriptor kept
            return
        self.deadline(self._connections.read_timeout)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def deadline(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self.abort)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._connections.forget(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """A TCP site (like ``web.TCPSite``) whose connections go through :class:`_Guarded`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, connections: Connections
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._connections = connections

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        make_inner = self._runner.server
        assert make_inner is not None
        connections = self._connections
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Guarded(connections, make_inner), self._host, self._port
        )
