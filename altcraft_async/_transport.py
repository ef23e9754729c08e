"""The transport seam: send one HTTP request, get its reply; and the aiohttp implementation.

:class:`AsyncTransport` is the shape of httpx's: ``send(request, *, timeout) -> response`` and
``aclose()``. A transport knows nothing of endpoints, formats, retries or decoding: it moves
bytes, and when it gets no reply it raises one of our :class:`TransportError` (its ``sent``
tells whether the request may have reached the server). :class:`AiohttpTransport` is the only
user of ``aiohttp.ClientSession`` in the SDK; ``testing.MockTransport`` answers from a function.

How far a try got is recorded in the :class:`SendProgress` that the caller puts on the
request (``HTTPRequest.progress``) before ``send``: a transport that can tell marks whether the
request was written (:class:`AiohttpTransport` through the body it hands aiohttp, which marks
it when aiohttp starts writing it) and the status of a reply whose body it could not read, so
that a try cut short from outside (a deadline) still says whether it was sent.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

import aiohttp
from aiohttp.hdrs import CONTENT_ENCODING, CONTENT_LENGTH

from ._errors import (
    AltcraftError,
    ClientClosedError,
    DecodeError,
    InvalidRequestError,
    RequestTimeoutError,
    TransportError,
)
from ._scrub import Scrubber
from ._secret import Secret

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "AiohttpTransport",
    "AsyncTransport",
    "HTTPRequest",
    "HTTPResponse",
    "LoopBinding",
    "SendProgress",
    "closed_error",
]

#: Largest reply body read by default (the biggest documented replies are a few KB).
DEFAULT_MAX_RESPONSE_SIZE = 8 * 1024 * 1024


class SendProgress:
    """How far one send got, for whoever cuts it short.

    ``sent``: True once the request may have reached the server, False while it provably has
    not, None when the transport does not tell (then it must be assumed sent). ``status`` and
    ``headers``: of a reply whose status line arrived but whose body could not be read.
    """

    # Class-level defaults and no __init__: made on every try, as cheaply as an object can be.
    sent: bool | None = None
    status: int | None = None
    headers: Mapping[str, str] = MappingProxyType({})

    @property
    def may_have_sent(self) -> bool:
        return self.sent is not False


class HTTPRequest:
    """One request as it goes on the wire. ``headers`` and ``body`` may hold the token, so the
    repr shows neither (error trackers render every frame's locals by their repr).
    ``endpoint`` is a label for messages (``segments.get_counters``), nothing more.
    ``progress``: where a transport that can tell records how far the send got (a client's
    send path puts a fresh one there before each try; None: nobody asks)."""

    __slots__ = ("body", "endpoint", "headers", "method", "progress", "url")

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        endpoint: str = "",
        method: Literal["POST"] = "POST",
    ) -> None:
        self.method: str = method
        self.url: str = url
        self.headers: Mapping[str, str] = headers
        self.body: bytes = body
        self.endpoint: str = endpoint
        self.progress: SendProgress | None = None

    def __repr__(self) -> str:
        return f"<HTTPRequest {self.method} {self.url} ({len(self.body)} bytes, hidden)>"


class HTTPResponse:
    """A reply: its ``status``, ``headers`` and whole ``body``. The repr shows neither headers
    nor body: a reply may echo the token."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status: int = status
        self.headers: Mapping[str, str] = headers
        self.body: bytes = body

    def __repr__(self) -> str:
        return f"<HTTPResponse {self.status}, {len(self.body)} bytes>"


_new = object.__new__


@runtime_checkable
class AsyncTransport(Protocol):
    """What the client needs to send requests (``AltcraftClient(transport=...)``).

    ``send`` returns the reply within ``timeout`` seconds, or raises a :class:`TransportError`
    (a :class:`RequestTimeoutError` for the timeout) whose ``sent`` says whether the request
    may have reached the server, or a :class:`DecodeError` for a reply it refuses to read
    (too large). ``aclose`` releases what it holds; the client calls it when it closes.
    """

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse: ...

    async def aclose(self) -> None: ...


def closed_error(endpoint: str, *, sent: bool = False) -> ClientClosedError:
    """The error of a call that the client's closing cut short."""
    if sent:  # a start cut off by close may still have created its task
        return ClientClosedError(f"{endpoint}: the client was closed while the request was sent")
    return ClientClosedError(f"{endpoint}: the client was closed")


class LoopBinding:
    """The one event loop something is bound to, from its first use on."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        """Bind to the running loop, or raise ClientClosedError if bound to another one."""
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        elif loop is not self.loop:
            raise ClientClosedError(
                "the client is bound to another event loop; create one client per loop"
            )

    @property
    def ended(self) -> bool:
        """Whether the bound loop is closed (``asyncio.run`` has returned)."""
        return self.loop is not None and self.loop.is_closed()

    def elsewhere(self) -> bool:
        """Bound to a live loop other than the running one (another thread's, say)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return False
        try:
            return loop is not asyncio.get_running_loop()
        except RuntimeError:  # no running loop here
            return True


class _MarkedBody(aiohttp.BytesPayload):
    """A request body that marks its send (``progress``) as possibly sent when aiohttp starts
    writing it. aiohttp keeps the request line and headers in its buffer until the body goes
    (or writes them just before it, in versions that do not buffer them): before this mark,
    no server can have acted on the request.

    This takes the place of an ``on_request_headers_sent`` trace: any trace config makes
    aiohttp build its tracing objects for every request (~80 k instructions a call). As a
    payload object the body also keeps its bytes (token included) out of the locals of
    aiohttp's frames, which a traceback may render.
    """

    progress: SendProgress

    def __init__(self, value: bytes, progress: SendProgress) -> None:
        if _BLANK_BODY is None:  # an aiohttp whose payloads hold other fields: its own way
            aiohttp.BytesPayload.__init__(self, value)
        else:  # BytesPayload's __init__ (~9 k instructions a call: keyword arguments, checks)
            vars(self).update(_BLANK_BODY)
            self._headers = _BLANK_BODY["_headers"].copy()
            self._value = value
            self._size = len(value)
        self.progress = progress

    def write(self, writer: Any) -> Coroutine[Any, Any, None]:
        self.progress.sent = True
        return aiohttp.BytesPayload.write(self, writer)

    def write_with_length(
        self, writer: Any, content_length: int | None
    ) -> Coroutine[Any, Any, None]:
        self.progress.sent = True
        return aiohttp.BytesPayload.write_with_length(self, writer, content_length)


def _blank_body() -> dict[str, Any] | None:
    """The fields aiohttp gives an empty bytes payload, which :class:`_MarkedBody` copies; None
    when they are not the five it knows (its value and size the only ones a body changes)."""
    fields = dict(vars(aiohttp.BytesPayload(b"")))
    known = {"_encoding", "_filename", "_headers", "_value", "_size"}
    return fields if fields.keys() == known and fields["_size"] == 0 else None


_BLANK_BODY = _blank_body()


class AiohttpTransport:
    """Sends requests with aiohttp: the session, its loop, the per-try timeout, the body limit
    and the mapping of every aiohttp and OS exception to ours (:func:`_transport_error`).

    The session is created lazily inside the running loop (a client can be built outside
    one) and is bound to that loop from then on. ``session``: a caller-owned one, used as it
    is and never closed (whether its requests were written can then not be told).
    ``max_connections`` bounds its pool; ``headers`` go with every request (a ``User-Agent``
    among them replaces the client's); ``secrets`` are blanked out of error messages that quote
    the network. ``trust_env``: go through the proxies of ``HTTP_PROXY`` / ``HTTPS_PROXY``
    (except for the hosts of ``NO_PROXY``) and use ``~/.netrc``, as aiohttp does with it; off by
    default, so that the environment never reroutes the token. Redirects are never followed:
    one would re-send the body, token included, to wherever it points.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        ssl: ssl.SSLContext | bool | aiohttp.Fingerprint = True,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        max_connections: int = 100,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[Secret | None] = (),
        trust_env: bool = False,
    ) -> None:
        if session is not None and trust_env:
            raise InvalidRequestError(
                "trust_env= configures a session of the transport's own; give yours "
                "aiohttp.ClientSession(trust_env=True) instead"
            )
        self.max_connections = max_connections
        self.trust_env = trust_env
        self.max_response_size = max_response_size
        self._ssl = ssl
        self._trace_configs = list(trace_configs)
        self._headers = dict(headers or {})
        #: A User-Agent of the caller's, put over the one a request carries (the client's)
        self.user_agent: str | None = next(
            (value for key, value in self._headers.items() if key.lower() == "user-agent"), None
        )
        self._session = session
        self._owns_session = session is None
        #: Whether a try's writing is marked (only on a session of our own: _MarkedBody)
        self._marked = session is None
        self._binding = LoopBinding()
        self._closed = False
        self._scrub = Scrubber(secrets)
        self._client_timeout = aiohttp.ClientTimeout()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<AiohttpTransport {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def session_open(self) -> bool:
        """Whether this transport holds an open session it must close."""
        return self._owns_session and self._session is not None and not self._session.closed

    def bound_elsewhere(self) -> bool:
        """Whether its session belongs to a live loop other than the running one."""
        return self._binding.elsewhere()

    def connections_in_use(self) -> int:
        """Connections currently acquired by requests (0 when idle): for tests and benchmarks."""
        session = self._session
        if session is None or session.connector is None:
            return 0
        acquired = getattr(session.connector, "_acquired", ())
        return len(acquired)

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("the client is closed")
        self._binding.bind()
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=self._trace_configs or None,
                # None, not {}: default headers make aiohttp merge header dicts on every request
                headers=self._headers or None,
                trust_env=self.trust_env,
            )
        return self._session

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        """One HTTP exchange: the reply, or our error for the failure.

        The body goes as a payload object (:class:`_MarkedBody`), so that the frames of aiohttp
        that hold it (``data``) show no bytes, token included, in a traceback rendered with its
        locals.
        Our error is raised outside the ``except`` block: the aiohttp exception (whose request
        info may hold an ``Authorization`` header) is not kept as its context.
        """
        session = self._session
        # a session is None once closed; the usual call skips the checks of the slow path
        if session is None or self._binding.loop is not asyncio.get_running_loop():
            session = self._session_for_loop()
        progress = request.progress
        if progress is None:  # called directly, not through a client's send path
            progress = SendProgress()
        data: aiohttp.BytesPayload
        if self._marked:
            data = _MarkedBody(request.body, progress)
            progress.sent = False
        else:  # posting is all that can be known: it may have been sent from here on
            data = aiohttp.BytesPayload(request.body)
            progress.sent = True
        client_timeout = self._client_timeout
        if client_timeout.total != timeout:
            client_timeout = self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        endpoint = request.endpoint
        headers = request.headers
        agent = self.user_agent
        # a client's send path puts it in the headers it shares (one dict per token): then
        # nothing is merged per call
        if agent is not None and headers.get("User-Agent") != agent:
            headers = {**headers, "User-Agent": agent}
        try:
            # awaited, not entered: ``async with`` adds four coroutines a call (the context
            # managers' of the request and of the response) for what release() does
            response = await session.post(
                request.url,
                data=data,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=False,
            )
            try:
                status, reply_headers = progress.status, progress.headers = (
                    response.status,
                    response.headers,
                )
                # the usual reply, read whole: what _read_body does first, inline (the
                # length, which aiohttp's parser checked, read as its content_length does)
                length = reply_headers.get(CONTENT_LENGTH)
                if (
                    length is not None
                    and int(length) <= self.max_response_size
                    and CONTENT_ENCODING not in reply_headers
                ):
                    body = await response.read()
                else:
                    body = await self._read_body(response, endpoint)
            finally:
                response.release()  # the connection back to the pool, or closed if unread
            # HTTPResponse(status, reply_headers, body) without the call of its __init__
            reply = _new(HTTPResponse)
            reply.status, reply.headers, reply.body = status, reply_headers, body
            return reply
        except DecodeError as error:  # the reply is over max_response_size
            failure: AltcraftError = error.with_traceback(None)
        except Exception as exc:
            sent = progress.may_have_sent
            # closed under this try: aiohttp saw its connection go, or says so with a bare
            # RuntimeError (a caller's session closed by its owner)
            if self._closed or (session.closed and isinstance(exc, RuntimeError)):
                failure = closed_error(endpoint, sent=sent)
            else:
                mapped = _transport_error(exc, endpoint, timeout, sent, self._scrub.text)
                if mapped is None:
                    raise
                failure = mapped
        raise failure

    async def _read_body(self, response: aiohttp.ClientResponse, endpoint: str) -> bytes:
        """The whole body, or a DecodeError past ``max_response_size`` (not transient: the
        same request would get the same reply, so retrying it would only repeat the read)."""
        limit = self.max_response_size
        length = response.content_length
        if length is not None and length > limit:
            raise DecodeError(
                f"reply of {length} bytes exceeds {limit}", endpoint=endpoint, transient=False
            )
        if length is not None and "Content-Encoding" not in response.headers:
            return await response.read()
        # No length, or a compressed reply (its length says nothing of the inflated size, and a
        # gzip bomb would inflate past the limit): count the bytes as they come.
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise DecodeError(
                    f"reply exceeds {limit} bytes", endpoint=endpoint, transient=False
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the session if it is ours (a caller's is left open); safe to call twice.

        A send in flight then ends with ClientClosedError. A session whose loop has ended
        (``asyncio.run`` returned, and its sockets with it) is closed without touching that
        loop; one bound to another live loop is not closed from here (its transports belong
        to that loop): ClientClosedError.
        """
        if self.session_open and self.bound_elsewhere():
            raise ClientClosedError(
                "the client is bound to another event loop; close it from that loop"
            )
        self._closed = True
        session, self._session = self._session, None
        if session is None or not self._owns_session or session.closed:
            return
        if not self._binding.ended:
            await session.close()
            return
        # aiohttp's connector skips the transports of a closed loop
        connector = session.connector
        session.detach()
        if connector is not None:
            await connector.close()


#: Longest part of an aiohttp or OS error message kept in ours (some quote the reply).
_DETAIL_LIMIT = 200


def _transport_error(
    exc: Exception, endpoint: str, timeout: float, sent: bool, scrub: Callable[[str], str]
) -> TransportError | None:
    """The one place where aiohttp and OS exceptions become ours (None: not one of them).

    ``sent``: whether the try may have written its request; an error of the connect phase
    says no whatever the request class marked.
    """
    if isinstance(exc, aiohttp.ClientSSLError):  # certificate or handshake: no retry fixes it
        return TransportError(
            f"{endpoint}: TLS error: {_detail(exc, scrub)}",
            endpoint=endpoint,
            sent=False,
            transient=False,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(
            f"{endpoint}: cannot connect: {exc.os_error}", endpoint=endpoint, sent=False
        )
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        connecting = isinstance(exc, getattr(aiohttp, "ConnectionTimeoutError", ()))
        return RequestTimeoutError(
            f"{endpoint}: no reply within {timeout:.3g}s",
            endpoint=endpoint,
            sent=sent and not connecting,
        )
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransportError(
            f"{endpoint}: {type(exc).__name__}: {_detail(exc, scrub)}", endpoint=endpoint, sent=sent
        )
    return None


def _detail(exc: Exception, scrub: Callable[[str], str]) -> str:
    """An exception's message, short and without secrets (aiohttp quotes bad reply lines)."""
    text = scrub(str(exc))
    return text if len(text) <= _DETAIL_LIMIT else text[:_DETAIL_LIMIT] + "..."
