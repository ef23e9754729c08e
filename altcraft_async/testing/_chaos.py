"""``ChaosProxy``: a TCP proxy that breaks the byte stream the way networks and proxies do.

Why a proxy of our own: :class:`FakeAltcraft`'s faults (:mod:`._faults`) are made by the same
aiohttp.web server that answers, so they are HTTP-shaped: a status, a body, a closed transport.
A client also meets failures below HTTP: a TCP reset before or after the server processed the
request, a reply cut in the middle, a connection closed right after the headers, a reply held
back by a stuck middlebox, bytes arriving a few at a time. Those need something that owns the
socket between client and server, works on bytes and knows nothing of Altcraft.

How: the proxy accepts a connection, opens one upstream connection for it (mirroring keep-alive),
and then moves *one request and one reply at a time*: it reads a whole request from the client,
decides that request's fate, forwards it, reads the whole reply, and delivers it (or not) as the
fate says. Store-and-forward per message is what makes a decision per request possible on a
keep-alive connection, and it needs only a small, strict HTTP/1.1 framing parser (start line,
headers, ``Content-Length`` or ``chunked`` body; a reply without either is read to EOF).
Anything outside that grammar closes the connection and is counted, never guessed at.

Fates (:data:`ChaosKind`), drawn per request from a :class:`ChaosMix` with ``random.Random(seed)``
or taken from a script:

- ``pass``: the reply as it came.
- ``reset_before``: the request is *not* forwarded; the client gets a TCP reset (RST, via
  ``SO_LINGER`` 0) once its request is read. The server never saw it.
- ``reset_after``: the request is forwarded and answered upstream (it was processed), then the
  client gets a reset instead of the reply.
- ``truncate``: the head and part of the body, then a clean close (FIN).
- ``close_after_headers``: the head only, then a clean close.
- ``stall``: the reply is held ``stall_seconds`` (``None``: until the client gives up or the proxy
  stops), then delivered.
- ``dribble``: the reply in chunks of a few bytes with small delays between them.

Whatever the upstream does itself (closes early, cuts its own reply, resets) is passed on as it
came: a reply the upstream cut short is forwarded as far as it got and the client connection is
closed (an upstream reset becomes a reset), so the fake's own faults compose with the proxy's.

Requests are decided in arrival order, so a sequential client sees the same fates for the same
seed; concurrent clients see the same mix but not necessarily on the same requests.
:meth:`ChaosProxy.stop` cancels every connection (stalls and dribbles included) and leaves no
pending task of its own behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import struct
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self, get_args
from urllib.parse import urlsplit

from attrs import define, field, frozen

__all__ = ["ChaosKind", "ChaosMix", "ChaosProxy", "ChaosRecord", "ChaosStats"]

ChaosKind = Literal[
    "pass", "reset_before", "reset_after", "truncate", "close_after_headers", "stall", "dribble"
]
#: Every fault kind, in the order a :class:`ChaosMix` draws them.
FAULT_KINDS: tuple[ChaosKind, ...] = get_args(ChaosKind)[1:]

# Bounds of the framing parser: far above anything the SDK or the fake sends.
_HEAD_LIMIT = 64 * 1024
_BODY_LIMIT = 64 * 1024 * 1024
_CRLF = b"\r\n"


# --- the mix ------------------------------------------------------------------------------------


def _probability(_: Any, attribute: Any, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"ChaosMix.{attribute.name} must be a number, got {value!r}")
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"ChaosMix.{attribute.name} must be a probability in [0, 1], got {value}")


def _seconds(_: Any, attribute: Any, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"ChaosMix.{attribute.name} must be a number or None, got {value!r}")
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"ChaosMix.{attribute.name} must be finite and >= 0, got {value}")


def _span(kind: type[int] | type[float], low: float) -> Any:
    def check(_: Any, attribute: Any, value: tuple[Any, Any]) -> None:
        name = f"ChaosMix.{attribute.name}"
        if not isinstance(value, tuple) or len(value) != 2:
            raise TypeError(f"{name} must be a (low, high) pair, got {value!r}")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (kind, int)):
                raise TypeError(f"{name} must hold {kind.__name__}s, got {value!r}")
            if not (math.isfinite(item) and item >= low):
                raise ValueError(f"{name} values must be finite and >= {low}, got {value!r}")
        if value[0] > value[1]:
            raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")

    return check


def _paths(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset((value,))
    return frozenset(value)


@frozen
class ChaosMix:
    """Per-request probabilities of each fault (the rest pass), and the faults' parameters.

    - ``stall_seconds``: how long a stalled reply is held; ``None`` holds it until the client
      gives up (its timeout) or the proxy stops.
    - ``dribble_bytes``: (fewest, most) bytes per dribbled write.
    - ``dribble_delay``: (shortest, longest) pause in seconds between dribbled writes.
    - ``paths``: only requests to these paths draw a fault (``None``: every request); a path
      matches the request target or its tail, e.g. ``"segments/refresh_counters"``.

    The probabilities must add up to at most 1. ``ChaosMix.resets(0.03)`` splits a reset rate
    evenly between ``reset_before`` and ``reset_after``.
    """

    reset_before: float = field(default=0.0, validator=_probability)
    reset_after: float = field(default=0.0, validator=_probability)
    truncate: float = field(default=0.0, validator=_probability)
    close_after_headers: float = field(default=0.0, validator=_probability)
    stall: float = field(default=0.0, validator=_probability)
    dribble: float = field(default=0.0, validator=_probability)
    stall_seconds: float | None = field(default=None, validator=_seconds)
    dribble_bytes: tuple[int, int] = field(default=(1, 8), validator=_span(int, 1))
    dribble_delay: tuple[float, float] = field(default=(0.0, 0.002), validator=_span(float, 0.0))
    paths: frozenset[str] | None = field(default=None, converter=_paths)

    def __attrs_post_init__(self) -> None:
        total = sum(self.probabilities().values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"ChaosMix probabilities add up to {total:g}, more than 1")

    @classmethod
    def resets(cls, rate: float, **options: Any) -> ChaosMix:
        """``rate`` of requests reset, half before the server saw them, half after it answered."""
        _probability(None, _Named("resets rate"), rate)
        return cls(reset_before=rate / 2, reset_after=rate / 2, **options)

    def probabilities(self) -> dict[ChaosKind, float]:
        """Each fault kind's probability (``pass`` left out)."""
        return {kind: getattr(self, kind) for kind in FAULT_KINDS}


@frozen
class _Named:
    name: str


# --- what the proxy did -------------------------------------------------------------------------


@frozen
class ChaosRecord:
    """One request seen by the proxy: its connection, request line target and fate."""

    seq: int
    connection: int
    method: str
    target: str
    kind: ChaosKind


@frozen
class ChaosStats:
    """A snapshot of the proxy's counters.

    - ``faults``: requests per fate, ``pass`` included (every kind is present, 0 if unused).
    - ``upstream_cut``: replies the upstream itself withheld or cut short (passed on as they
      came: the fake's own ``drop`` and ``truncated`` faults land here).
    - ``client_gone``: clients that left before their stalled or dribbled reply was delivered.
    - ``bad_messages``: requests or replies the strict framing parser refused (connection
      closed).
    """

    connections: int
    open_connections: int
    requests: int
    faults: Mapping[ChaosKind, int]
    upstream_cut: int
    client_gone: int
    bad_messages: int


# --- HTTP/1.1 framing ---------------------------------------------------------------------------


class _FramingError(Exception):
    """A message outside the small HTTP/1.1 grammar the proxy understands."""


@define
class _Message:
    """One request or reply as raw bytes: ``head`` (start line to the blank line) and ``body``
    (framing kept: chunk sizes stay in it). ``complete`` is False when the peer closed early;
    ``close`` when the connection must not carry another message."""

    head: bytes
    body: bytes = b""
    complete: bool = True
    close: bool = False
    method: str = ""
    target: str = ""

    @property
    def raw(self) -> bytes:
        return self.head + self.body


def _parse_head(head: bytes, *, request: bool) -> tuple[list[str], dict[str, list[str]]]:
    """The start line's parts and the headers (lower-cased names -> values), strictly."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte
        raise _FramingError("undecodable head") from exc
    lines = text[: -len("\r\n\r\n")].split("\r\n")
    start = lines[0].split(" ", 2)
    if request:
        if len(start) != 3 or not start[0].isalpha() or not start[1]:
            raise _FramingError(f"bad request line {lines[0][:80]!r}")
        version = start[2]
    else:
        if len(start) < 2 or not (start[1].isdigit() and len(start[1]) == 3):
            raise _FramingError(f"bad status line {lines[0][:80]!r}")
        version = start[0]
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _FramingError(f"unsupported version {version[:20]!r}")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or " " in name or "\t" in name:
            raise _FramingError(f"bad header line {line[:80]!r}")
        headers.setdefault(name.lower(), []).append(value.strip())
    return start, headers


def _wants_close(version: str, headers: Mapping[str, list[str]]) -> bool:
    tokens = {
        token.strip().lower()
        for value in headers.get("connection", ())
        for token in value.split(",")
    }
    return "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)


async def _read_message(
    reader: asyncio.StreamReader, *, request: bool, method: str = "POST"
) -> _Message | None:
    """Read one whole message; None at a clean EOF before its first byte."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        return _Message(exc.partial, complete=False, close=True)
    except asyncio.LimitOverrunError as exc:
        raise _FramingError("head too long") from exc
    if len(head) > _HEAD_LIMIT:
        raise _FramingError("head too long")
    start, headers = _parse_head(head, request=request)
    version = start[2] if request else start[0]
    message = _Message(head, close=_wants_close(version, headers))
    if request:
        message.method, message.target = start[0], start[1]
        if "expect" in headers:  # 100-continue would need an interim reply: not in the grammar
            raise _FramingError("Expect is not supported")
    lengths = headers.get("content-length", [])
    encodings = headers.get("transfer-encoding", [])
    if lengths and encodings:
        raise _FramingError("both Content-Length and Transfer-Encoding")
    if len(lengths) > 1:
        raise _FramingError("several Content-Length headers")
    if not request:
        status = int(start[1])
        if 100 <= status < 200:
            raise _FramingError(f"interim reply {status} not supported")
        if status in (204, 304) or method == "HEAD":
            return message
    try:
        if encodings:
            if [value.lower() for value in encodings] != ["chunked"]:
                raise _FramingError(f"unsupported Transfer-Encoding {encodings!r}")
            await _read_chunked(reader, message)
        elif lengths:
            if not lengths[0].isdigit() or int(lengths[0]) > _BODY_LIMIT:
                raise _FramingError(f"bad Content-Length {lengths[0][:20]!r}")
            try:
                message.body = await reader.readexactly(int(lengths[0]))
            except asyncio.IncompleteReadError as exc:
                message.body = exc.partial
                raise
        elif not request:  # a reply without a length ends with the connection
            message.close = True
            await _read_to_eof(reader, message)
    except asyncio.IncompleteReadError:
        message.complete = False
        message.close = True
    return message


async def _read_to_eof(reader: asyncio.StreamReader, message: _Message) -> None:
    parts: list[bytes] = []
    size = 0
    while chunk := await reader.read(65536):
        size += len(chunk)
        if size > _BODY_LIMIT:
            raise _FramingError("reply without a length is too long")
        parts.append(chunk)
    message.body = b"".join(parts)


async def _read_chunked(reader: asyncio.StreamReader, message: _Message) -> None:
    """Read a chunked body into ``message.body``, raw (sizes, extensions and trailers kept)."""
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            line = await reader.readuntil(_CRLF)
            parts.append(line)
            size_text = line[:-2].split(b";", 1)[0].strip()
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise _FramingError(f"bad chunk size {line[:20]!r}")
            size = int(size_text, 16)
            total += size
            if total > _BODY_LIMIT:
                raise _FramingError("chunked body too long")
            if size == 0:
                while True:  # trailers, then the blank line
                    trailer = await reader.readuntil(_CRLF)
                    parts.append(trailer)
                    if trailer == _CRLF:
                        return
            chunk = await reader.readexactly(size + 2)
            parts.append(chunk)
            if not chunk.endswith(_CRLF):
                raise _FramingError("chunk not followed by CRLF")
    except asyncio.IncompleteReadError as exc:
        parts.append(exc.partial)
        raise
    except asyncio.LimitOverrunError as exc:
        raise _FramingError("chunk line too long") from exc
    finally:
        message.body = b"".join(parts)


# --- socket helpers -----------------------------------------------------------------------------


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset: SO_LINGER 0 makes close() send RST instead of FIN, so the peer
    reads ConnectionResetError rather than a clean end of stream."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None and not writer.transport.is_closing():
        writer.transport.close()


def _abort(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.transport.abort()


class _ClientGone(Exception):
    """The client closed or reset its connection before its reply was delivered."""


class _UpstreamReset(Exception):
    """The upstream reset the connection: passed on to the client as a reset."""


# --- the proxy ----------------------------------------------------------------------------------


@define
class _Fate:
    kind: ChaosKind
    rand: float = 0.0  # where a truncation cuts, drawn with the fate


class ChaosProxy:
    """A TCP proxy between a client and ``(upstream_host, upstream_port)`` injecting faults.

    ``async with ChaosProxy(fake_host, fake_port, mix=ChaosMix(...), seed=1) as proxy:`` then
    point the client at ``proxy.url``. ``script`` gives the fates of the first requests in
    arrival order (then the mix decides); :meth:`next` queues fates for one path. ``stats``
    and ``records`` tell what was done.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        mix: ChaosMix | None = None,
        seed: int = 0,
        script: Iterable[ChaosKind] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream: tuple[str, int] = (upstream_host, upstream_port)
        self.mix: ChaosMix = mix if mix is not None else ChaosMix()
        if not isinstance(self.mix, ChaosMix):
            raise TypeError(f"mix must be a ChaosMix, got {type(mix).__name__}")
        self._rng = random.Random(seed)
        self._queued: dict[str | None, deque[ChaosKind]] = {None: deque()}
        for kind in script:
            self.next(kind)
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._url: str | None = None
        self._stopping = False
        self._handlers: set[asyncio.Task[None]] = set()
        self._idle: asyncio.Event | None = None
        self._counts: Counter[str] = Counter()
        self._faults: Counter[ChaosKind] = Counter()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.records: list[ChaosRecord] = []
        #: Unexpected exceptions of connection handlers (a bug in the proxy): tests assert [].
        self.errors: list[BaseException] = []

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ChaosProxy:
        """A proxy in front of ``http://host:port`` (e.g. ``fake.url``); options as above."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://host:port, got {url!r}")
        return cls(parts.hostname, parts.port, **options)

    def __repr__(self) -> str:
        return f"ChaosProxy({self._url or 'stopped'} -> {self.upstream[0]}:{self.upstream[1]})"

    # --- configuration --------------------------------------------------------------------

    def next(self, kind: ChaosKind, *, path: str | None = None, times: int = 1) -> None:
        """Apply ``kind`` to the next ``times`` requests (to ``path`` only, when given).

        Queued fates come before the mix: a path's queue first, then the any-path queue.
        """
        if kind not in get_args(ChaosKind):
            raise ValueError(f"unknown chaos kind {kind!r}; expected one of {get_args(ChaosKind)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a positive int, got {times!r}")
        self._queued.setdefault(path, deque()).extend([kind] * times)

    def clear(self) -> None:
        """Drop queued fates and stop drawing faults (every later request passes)."""
        self._queued = {None: deque()}
        self.mix = ChaosMix()

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` (a free port by default) on the running loop."""
        if self._server is not None:
            raise RuntimeError("ChaosProxy is already running")
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        # A plain function as the callback: the handler task is created and registered in
        # connection_made itself, so stop() cannot miss a connection accepted just before.
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, limit=_HEAD_LIMIT
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop listening, cut every connection (stalls and dribbles too), await the handlers."""
        server, self._server, self._url = self._server, None, None
        self._stopping = True
        if server is not None:
            server.close()
        while self._handlers:
            handlers = list(self._handlers)
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            # an ended handler leaves _handlers by its done callback, which may not have run
            # yet: gather() of ended tasks returns without yielding to the loop (3.12+), so
            # waiting for the callback here would spin forever
            for task in handlers:
                self._forget(task)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_requests(self, count: int) -> None:
        """Wait until ``count`` requests in all have been read and given their fate (tests use
        it to act while a fault is in play, e.g. stop the proxy during a stall)."""
        if self._counts["requests"] >= count:
            return
        future = asyncio.get_running_loop().create_future()
        entry = (count, future)
        self._waiters.append(entry)
        try:
            await future
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def wait_idle(self) -> None:
        """Wait until no client connection is open (e.g. after the client was closed)."""
        if self._idle is not None:
            await self._idle.wait()

    # --- state ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: give this to the client instead of the upstream's URL."""
        if self._url is None:
            raise RuntimeError("ChaosProxy is not running; use 'async with' or start()")
        return self._url

    @property
    def open_connections(self) -> int:
        return len(self._handlers)

    @property
    def stats(self) -> ChaosStats:
        counts = self._counts
        return ChaosStats(
            connections=counts["connections"],
            open_connections=len(self._handlers),
            requests=counts["requests"],
            faults=MappingProxyType({kind: self._faults[kind] for kind in get_args(ChaosKind)}),
            upstream_cut=counts["upstream_cut"],
            client_gone=counts["client_gone"],
            bad_messages=counts["bad_messages"],
        )

    # --- serving --------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.transport.abort()
            return
        self._counts["connections"] += 1
        task = asyncio.get_running_loop().create_task(
            self._serve(self._counts["connections"], reader, writer)
        )
        self._handlers.add(task)
        assert self._idle is not None
        self._idle.clear()
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._forget(task)

    def _forget(self, task: asyncio.Task[None]) -> None:
        """Unregister an ended handler, keeping its crash (once: stop() may come first)."""
        if task not in self._handlers:
            return
        self._handlers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]
        if not self._handlers and self._idle is not None:
            self._idle.set()

    def _decide(self, target: str) -> _Fate:
        """The fate of the next request: a queued one, else a draw from the mix."""
        for path, queue in self._queued.items():
            if path is not None and queue and _matches(target, path):
                return _Fate(queue.popleft(), self._rng.random())
        if self._queued[None]:
            return _Fate(self._queued[None].popleft(), self._rng.random())
        mix = self.mix
        if mix.paths is not None and not any(_matches(target, path) for path in mix.paths):
            return _Fate("pass")
        draw = self._rng.random()
        for kind, probability in mix.probabilities().items():
            if draw < probability:
                return _Fate(kind, self._rng.random())
            draw -= probability
        return _Fate("pass")

    async def _serve(
        self, connection: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        graceful = False  # closed with FIN (True) or aborted (False) at the end
        try:
            while True:
                try:
                    request = await _read_message(reader, request=True)
                except OSError:
                    return
                except _FramingError:
                    self._counts["bad_messages"] += 1
                    graceful = True
                    return
                if request is None or not request.complete:
                    graceful = True  # the client is done (or gave up while sending)
                    return
                fate = self._decide(request.target)
                self._note(connection, request, fate.kind)
                if fate.kind == "reset_before":
                    _reset(writer)
                    return
                try:
                    if upstream is not None and upstream[0].at_eof():
                        # the upstream closed this idle connection (its keep-alive timeout):
                        # nothing was sent on it, so open another, as a real proxy would
                        _abort(upstream[1])
                        upstream = None
                    if upstream is None:
                        upstream = await self._connect()
                    reply = None if upstream is None else await self._exchange(upstream, request)
                except _UpstreamReset:
                    _reset(writer)
                    return
                except _FramingError:
                    self._counts["bad_messages"] += 1
                    graceful = True
                    return
                if reply is None or not reply.complete:
                    # the upstream withheld or cut its own reply: pass on what came, then FIN
                    self._counts["upstream_cut"] += 1
                    if reply is not None:
                        writer.write(reply.raw)
                    graceful = True
                    return
                try:
                    keep = await self._deliver(fate, reply, reader, writer)
                except (_ClientGone, OSError):
                    self._counts["client_gone"] += 1
                    return
                if not keep:
                    return
                if request.close or reply.close:
                    graceful = True
                    return
        finally:
            if upstream is not None:
                _abort(upstream[1])
            if graceful:
                _close(writer)
            else:
                _abort(writer)  # a no-op after a reset

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A new upstream connection, or None when the upstream refuses it (passed on to the
        client as a connection closed without a reply)."""
        try:
            return await asyncio.open_connection(*self.upstream, limit=_HEAD_LIMIT)
        except OSError:
            return None

    def _note(self, connection: int, request: _Message, kind: ChaosKind) -> None:
        self._counts["requests"] += 1
        self._faults[kind] += 1
        self.records.append(
            ChaosRecord(len(self.records) + 1, connection, request.method, request.target, kind)
        )
        if self._waiters:
            done = self._counts["requests"]
            for count, future in self._waiters:
                if count <= done and not future.done():
                    future.set_result(None)

    async def _exchange(
        self, upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: _Message
    ) -> _Message | None:
        up_reader, up_writer = upstream
        try:
            up_writer.write(request.raw)
            await up_writer.drain()
            return await _read_message(up_reader, request=False, method=request.method)
        except ConnectionResetError as exc:
            raise _UpstreamReset from exc
        except OSError:  # a broken pipe...: as if the upstream had closed
            return None

    async def _deliver(
        self,
        fate: _Fate,
        reply: _Message,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Deliver ``reply`` as ``fate`` says; False when the connection is to end."""
        kind = fate.kind
        if kind == "reset_after":
            _reset(writer)
            return False
        if kind in ("truncate", "close_after_headers"):
            cut = len(reply.head)
            if kind == "truncate" and len(reply.body) > 1:
                cut += 1 + int(fate.rand * (len(reply.body) - 1))  # 1 .. len(body)-1 bytes
            writer.write(reply.raw[:cut])
            await writer.drain()
            _close(writer)
            return False
        if kind == "stall":
            await self._hold(reader, self.mix.stall_seconds)
        if kind == "dribble":
            await self._dribble(reply.raw, writer)
            return True
        writer.write(reply.raw)
        await writer.drain()
        return True

    async def _hold(self, reader: asyncio.StreamReader, seconds: float | None) -> None:
        """Wait ``seconds`` (None: for ever) while watching the client: it may give up."""
        try:
            async with asyncio.timeout(seconds):
                await reader.read(1)  # the client sends nothing while it waits for a reply
        except TimeoutError:
            return
        raise _ClientGone  # EOF, or bytes it should not send before its reply (pipelining)

    async def _dribble(self, raw: bytes, writer: asyncio.StreamWriter) -> None:
        low, high = self.mix.dribble_bytes
        pause_low, pause_high = self.mix.dribble_delay
        rng = self._rng
        sent = 0
        while sent < len(raw):
            if writer.transport.is_closing():
                raise _ClientGone
            size = rng.randint(low, high)
            writer.write(raw[sent : sent + size])
            await writer.drain()
            sent += size
            await asyncio.sleep(rng.uniform(pause_low, pause_high))


def _matches(target: str, path: str) -> bool:
    """Whether a request target (``/api/v1.1/segments/get_counters?x``) is ``path``'s."""
    target = target.split("?", 1)[0]
    path = path.lstrip("/")
    return target.lstrip("/") == path or target.endswith("/" + path)
