"""The only module that touches aiohttp: send a prepared request, retry, rate-limit, map errors.

Every aiohttp and OS exception is mapped to ours in :meth:`Transport._exchange`, so callers
see only the tree of ``_errors`` (and whatever their own ``event_hooks`` raise). The aiohttp
session is created lazily inside the running loop (a client can be built outside one) and is
bound to that loop from then on.

Waiting that the client itself imposes (a free connection, a rate-limit slot, the pause before
a retry) happens here, in :class:`_Waits`, outside the per-try timeout and cut short by
``aclose``. Whether a failed try may have reached the server is told by aiohttp's
``on_request_headers_sent`` trace, which fires before the first byte of a request is written.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio

from ._codec import Format
from ._errors import (
    AltcraftError,
    APIError,
    ClientClosedError,
    DecodeError,
    HTTPStatusError,
    RequestTimeoutError,
    TransportError,
)
from ._events import EventHooks, RequestEvent, ResponseEvent, emit
from ._retry import RetryPolicy, http_status_of
from ._sansio import EndpointSpec, PreparedRequest, decode_reply
from ._scrub import Scrubber
from ._secret import Secret

__all__ = ["RateLimiter", "Transport"]

logger = logging.getLogger("altcraft_async")

#: Largest reply body read by default (the biggest documented replies are a few KB).
DEFAULT_MAX_RESPONSE_SIZE = 8 * 1024 * 1024


class RateLimiter:
    """Requests per second shared by every call of a client (polls included).

    Each request takes the next free slot on a schedule spaced ``1/rate`` apart. In adaptive
    mode a 429 halves the rate (down to ``min_rate``) and each success wins back a little.
    """

    def __init__(self, rate: float, *, adaptive: bool = False, min_rate: float = 0.5) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.max_rate = rate
        self.rate = rate
        self.adaptive = adaptive
        self.min_rate = min(min_rate, rate)
        self._next_slot = 0.0
        self._last_cut = 0.0  # when the rate was last halved
        #: Slots given back while later ones were still taken: their end -> their start.
        self._freed: dict[float, float] = {}

    async def acquire(self, sleep: Callable[[float], Awaitable[object]] = anyio.sleep) -> float:
        """Wait for the next slot; returns when the request asked for it (its pacing time).

        ``sleep`` waits for the slot: the client passes one that closing the client cuts short.
        """
        now = time.monotonic()
        if self._freed:  # forget slots that are past by now
            self._freed = {end: start for end, start in self._freed.items() if end > now}
        slot = max(now, self._next_slot)
        self._next_slot = after = slot + 1.0 / self.rate
        if slot > now:
            try:
                await sleep(slot - now)
            except BaseException:
                self._give_back(slot, after)
                raise
        return now

    def _give_back(self, slot: float, after: float) -> None:
        """Return a slot whose waiter was cancelled. Only the end of the schedule can shrink
        (moving others' slots could break the rate), so a slot in the middle is remembered and
        returned too once every slot after it has been given back."""
        if self._next_slot != after:
            self._freed[after] = slot
            return
        while slot in self._freed:
            slot = self._freed.pop(slot)
        self._next_slot = slot

    def on_rate_limited(self, paced_at: float) -> None:
        """A request paced at ``paced_at`` (what :meth:`acquire` returned) got HTTP 429. Only
        requests paced after the last cut count: a burst of 429s answering requests paced at
        the old rate says the same thing once, not once per request."""
        if self.adaptive and paced_at >= self._last_cut:
            self.rate = max(self.min_rate, self.rate / 2)
            self._last_cut = time.monotonic()

    def on_success(self) -> None:
        if self.adaptive and self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate * 1.05)


class _Waits:
    """The waits a client imposes on its own calls: a free connection (at most
    ``max_connections`` requests at once), a rate-limit slot and the pause before a retry.

    Queueing for a connection happens here rather than in aiohttp's pool, so the per-try
    timeout (aiohttp's, started by ``session.post``) is never spent waiting behind the client's
    other calls, and a call timed out in the queue is known never to have left. :meth:`close`
    ends every wait at once with ClientClosedError (a waiter's future gets False).
    """

    def __init__(self, connections: int) -> None:
        self._free = connections
        self._queue: deque[asyncio.Future[bool]] = deque()  # True: a connection handed over
        self._sleeping: set[asyncio.Future[bool]] = set()  # True: slept its full length
        self.closed = False

    async def connection(self, endpoint: str) -> None:
        """Take one of the connections; give it back with :meth:`release`."""
        if self.closed:
            raise _closed(endpoint)
        if self._free and not self._queue:
            self._free -= 1
            return
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        try:
            granted = await waiter
        except BaseException:
            # cancelled just after being handed a connection: pass it on (a cancelled waiter
            # still in the queue is skipped by release)
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()
            raise
        if not granted:
            raise _closed(endpoint)

    def release(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self._free += 1

    async def sleep(self, delay: float, *, endpoint: str) -> None:
        """Sleep ``delay`` seconds, or raise ClientClosedError as soon as the client closes."""
        if self.closed:
            raise _closed(endpoint)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(max(delay, 0.0), _wake, waiter)
        self._sleeping.add(waiter)
        try:
            slept = await waiter
        finally:
            timer.cancel()
            self._sleeping.discard(waiter)
        if not slept:
            raise _closed(endpoint)

    def close(self) -> None:
        self.closed = True
        waiters = [*self._queue, *self._sleeping]
        self._queue.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(False)


def _wake(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


def _closed(endpoint: str, *, sent: bool = False) -> ClientClosedError:
    if sent:  # a start cut off by close may still have created its task
        return ClientClosedError(f"{endpoint}: the client was closed while the request was sent")
    return ClientClosedError(f"{endpoint}: the client was closed")


class _Try:
    """How far one HTTP try got, to tell whether a failed one may have reached the server.

    ``posting``: ``session.post`` was called (all that can be known of a caller's session).
    ``writing``: aiohttp's ``on_request_headers_sent`` fired, which it does *before* writing
    the first byte of the request; a try without it provably never wrote anything.
    """

    __slots__ = ("posting", "writing")

    def __init__(self) -> None:
        self.posting = False
        self.writing = False

    def may_have_sent(self, traced: bool) -> bool:
        return self.writing if traced else self.posting


#: The try in progress in this task; read by the trace hook aiohttp awaits in the same task.
_CURRENT_TRY: ContextVar[_Try | None] = ContextVar("altcraft_async_try", default=None)


async def _on_request_headers_sent(session: Any, context: Any, params: Any) -> None:
    current = _CURRENT_TRY.get()
    if current is not None:
        current.writing = True


def _sending_trace() -> aiohttp.TraceConfig:
    """The trace config of the client's own session (first, so that it is never late)."""
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_on_request_headers_sent)
    return config


class _Reply:
    """What one try got: the reply's status, headers and body, or the ``failure`` (ours) of a
    try without a usable one. Its repr shows neither headers nor body: a reply may echo the
    token, and error trackers show the locals of every frame by their repr."""

    __slots__ = ("body", "failure", "headers", "status")

    def __init__(
        self,
        status: int | None,
        headers: Mapping[str, str],
        body: bytes,
        failure: AltcraftError | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.failure = failure

    def __repr__(self) -> str:
        if self.failure is not None:
            return f"<reply: {type(self.failure).__name__}>"
        return f"<reply: HTTP {self.status}, {len(self.body)} bytes>"


class Transport:
    """Sends requests for one client: session lifecycle, timeouts, retries, rate limit."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retry: RetryPolicy,
        max_connections: int,
        session: aiohttp.ClientSession | None = None,
        ssl_context: ssl.SSLContext | bool = True,
        rate_limiter: RateLimiter | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        headers: Mapping[str, str] | None = None,
        hooks: EventHooks | None = None,
        secrets: Sequence[Secret | None] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry
        self.max_connections = max_connections
        self.rate_limiter = rate_limiter
        self.max_response_size = max_response_size
        self._ssl = ssl_context
        self._trace_configs = list(trace_configs)
        self._headers = dict(headers or {})
        self._hooks = hooks or EventHooks()
        #: Blanks the tokens out of a failed reply that echoes one (errors quote replies).
        self._scrub = Scrubber(secrets)
        self._session = session
        self._owns_session = session is None
        #: Only the client's own session carries the trace that tells when a try was written.
        self._traced = self._owns_session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._waits = _Waits(max_connections)
        self._random = random.Random()
        # ClientTimeout is frozen: reuse the last one while the per-try timeout is the same.
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def loop_ended(self) -> bool:
        """Whether the event loop this transport was bound to has been closed."""
        return self._loop is not None and self._loop.is_closed()

    def bound_elsewhere(self) -> bool:
        """Whether it is bound to another event loop that is still open."""
        loop = self._loop
        return loop is not None and not loop.is_closed() and loop is not asyncio.get_running_loop()

    @property
    def session_open(self) -> bool:
        """Whether this transport holds an open session it must close."""
        return self._owns_session and self._session is not None and not self._session.closed

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("the client is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise ClientClosedError(
                "the client is bound to another event loop; create one client per loop"
            )
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[_sending_trace(), *self._trace_configs],
                # None, not {}: default headers make aiohttp merge header dicts on every request
                headers=self._headers or None,
            )
        return self._session

    def check_usable(self) -> None:
        """Raise ClientClosedError now if the client cannot send from this loop."""
        self._session_for_loop()

    async def aclose(self) -> None:
        if self.session_open and self.bound_elsewhere():
            # Closing it here would touch another loop's transports (and lose the session).
            raise ClientClosedError(
                "the client is bound to another event loop; close it from that loop"
            )
        self._closed = True
        ended = self.loop_ended  # nothing of an ended loop can be woken or awaited any more
        if not ended:
            if self.bound_elsewhere():  # a caller's session, closed from another thread
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._waits.close)
            else:
                self._waits.close()  # queued calls and retry sleeps end now
        session, self._session = self._session, None
        if session is None or not self._owns_session or session.closed:
            return
        if not ended:
            await session.close()
            return
        # The loop that used the session has ended (``asyncio.run`` returned), and its sockets
        # with it: close the session without touching that loop (aiohttp's connector skips
        # the transports of a closed loop).
        connector = session.connector
        session.detach()
        if connector is not None:
            await connector.close()

    def connections_in_use(self) -> int:
        """Connections currently acquired by requests (0 when idle): for tests and benchmarks."""
        session = self._session
        if session is None or session.connector is None:
            return 0
        acquired = getattr(session.connector, "_acquired", ())
        return len(acquired)

    async def call(
        self,
        spec: EndpointSpec,
        request: PreparedRequest,
        fmt: Format,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send ``request`` (retrying as the policy allows) and decode the reply."""
        policy = retry or self.retry
        per_try = timeout if timeout is not None else self.timeout
        started = time.monotonic()
        attempt = 0
        while True:
            # per try: the client may have been closed while the last one was in flight
            session = self._session_for_loop()
            progress = _Try()
            try:
                if policy.deadline is None:
                    return await self._send_once(
                        session, spec, request, fmt, per_try, attempt, progress
                    )
                left = policy.deadline - (time.monotonic() - started)
                within = min(per_try, max(left, 0.001))
                sending = self._send_once(session, spec, request, fmt, within, attempt, progress)
                return await _by_deadline(sending, left, spec.name, progress, self._traced)
            except AltcraftError as error:
                attempt += 1
                if attempt >= policy.attempts or not policy.should_retry(
                    error, starts_task=spec.starts_task
                ):
                    raise
                delay = policy.delay(attempt - 1, error, self._random.random(), datetime.now(UTC))
                if delay is None:
                    raise
                if policy.deadline is not None:
                    left = policy.deadline - (time.monotonic() - started)
                    if delay >= left:
                        raise
                logger.debug(
                    "%s retry %d in %.3fs after %s", spec.name, attempt, delay, type(error).__name__
                )
            # outside the except block: a ClientClosedError does not carry the error as context
            await self._waits.sleep(delay, endpoint=spec.name)

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        spec: EndpointSpec,
        request: PreparedRequest,
        fmt: Format,
        timeout: float,
        attempt: int,
        progress: _Try,
    ) -> Any:
        """One try: a rate-limit slot, a connection, the hooks, the exchange, the decoding."""
        paced_at = 0.0
        waits = self._waits
        if self.rate_limiter is not None:
            paced_at = await self.rate_limiter.acquire(
                functools.partial(waits.sleep, endpoint=spec.name)
            )
        url = self.base_url + request.path
        hooks = self._hooks
        await waits.connection(spec.name)
        try:
            if hooks.request:
                await emit(hooks.request, RequestEvent(spec.name, url, attempt + 1))
            started = time.monotonic()
            reply = await self._exchange(session, spec, request, url, timeout, progress)
        finally:
            waits.release()
        elapsed = time.monotonic() - started
        status, failure = reply.status, reply.failure
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "POST %s status=%s attempt=%d elapsed=%.3fs%s",
                spec.path,
                status,
                attempt + 1,
                elapsed,
                "" if failure is None else f" error={type(failure).__name__}",
            )
        if hooks.response:
            event = ResponseEvent(
                spec.name, url, attempt + 1, elapsed, status, reply.headers, failure
            )
            await emit(hooks.response, event)
        if failure is not None:
            # raised outside the except block: the aiohttp exception (whose request info may
            # hold an Authorization header) is not kept as __context__
            raise failure
        assert status is not None  # a try that did not fail has read its reply
        limiter = self.rate_limiter
        try:
            result = self._decode(spec, status, reply, fmt)
        except (HTTPStatusError, APIError) as error:
            if limiter is not None and http_status_of(error) == 429:
                limiter.on_rate_limited(paced_at)
            raise
        if limiter is not None:
            limiter.on_success()
        return result

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        spec: EndpointSpec,
        request: PreparedRequest,
        url: str,
        timeout: float,
        progress: _Try,
    ) -> _Reply:
        """The HTTP request itself: the reply, or the failure as ours.

        The per-try timeout starts here, once the call holds a connection slot. The body goes
        as a payload object, so that the frames of aiohttp that hold it (``data``) show no
        bytes, token included, in a traceback rendered with its locals.
        """
        client_timeout = self._client_timeout
        if client_timeout.total != timeout:
            client_timeout = self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        status: int | None = None
        headers: Mapping[str, str] = {}
        reset = _CURRENT_TRY.set(progress)
        try:
            progress.posting = True
            async with session.post(
                url,
                data=aiohttp.BytesPayload(request.body),
                headers=request.headers,
                timeout=client_timeout,
                # a redirect would re-send the body, token included, to wherever it points
                allow_redirects=False,
            ) as response:
                status = response.status
                headers = response.headers
                return _Reply(status, headers, await self._read_body(response, spec))
        except AltcraftError as error:  # the reply is over max_response_size
            # raised again by _send_once without these frames (their locals hold the reply)
            return _Reply(status, headers, b"", error.with_traceback(None))
        except Exception as exc:
            # closed under this try: aiohttp saw its connection go, or says so with a bare
            # RuntimeError (a caller's session closed by its owner)
            sent = progress.may_have_sent(self._traced)
            if self._closed or (session.closed and isinstance(exc, RuntimeError)):
                return _Reply(status, headers, b"", _closed(spec.name, sent=sent))
            failure = _transport_error(exc, spec.name, timeout, sent, self._scrub.text)
            if failure is None:
                raise
            return _Reply(status, headers, b"", failure)
        finally:
            _CURRENT_TRY.reset(reset)

    def _decode(self, spec: EndpointSpec, status: int, reply: _Reply, fmt: Format) -> Any:
        """:func:`decode_reply`, but an error about a reply that holds a secret (a proxy or
        server echoing the request) is made again from the reply with every form of every
        secret blanked out, since errors quote replies. Good replies are decoded as they came
        (a short token must not damage them).

        The error raised then comes from the blanked reply, and no local of this frame or of
        the callers' holds the reply's bytes or headers (a traceback rendered with its locals
        would show them): only the :class:`_Reply`, whose repr shows neither."""
        scrub = self._scrub
        try:
            return decode_reply(spec, status, reply.headers, reply.body, fmt)
        except AltcraftError as error:
            if not scrub:
                raise
            clean_body, clean_headers = scrub.data(reply.body), scrub.headers(reply.headers)
            if clean_body == reply.body and clean_headers is reply.headers:
                scrub.error(error)
                raise
        # outside the except block: the first error is not kept as __context__ either
        try:
            decode_reply(spec, status, clean_headers, clean_body, fmt)
        except AltcraftError as error:
            scrub.error(error)
            raise
        # only the blanking made it readable: no value can be trusted
        raise DecodeError("the reply echoes a credential", endpoint=spec.name, transient=False)

    async def _read_body(self, response: aiohttp.ClientResponse, spec: EndpointSpec) -> bytes:
        """The whole body, or a DecodeError past ``max_response_size`` (not transient: the
        same request would get the same reply, so retrying it would only repeat the read)."""
        limit = self.max_response_size
        length = response.content_length
        if length is not None and length > limit:
            raise DecodeError(
                f"reply of {length} bytes exceeds {limit}", endpoint=spec.name, transient=False
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
                    f"reply exceeds {limit} bytes", endpoint=spec.name, transient=False
                )
            chunks.append(chunk)
        return b"".join(chunks)


async def _by_deadline(
    sending: Coroutine[Any, Any, Any], left: float, endpoint: str, progress: _Try, traced: bool
) -> Any:
    """Await one try within the ``left`` seconds of the retry deadline, the wait for a
    rate-limit slot or a connection and the hooks included."""
    try:
        async with asyncio.timeout(max(left, 0.0)) as deadline:
            return await sending
    except TimeoutError:
        if not deadline.expired():  # the try's own timeout, or a hook's: not the deadline
            raise
    raise RequestTimeoutError(
        f"{endpoint}: no reply within the retry deadline",
        endpoint=endpoint,
        sent=progress.may_have_sent(traced),
    )


#: Longest part of an aiohttp or OS error message kept in ours (some quote the reply).
_DETAIL_LIMIT = 200


def _transport_error(
    exc: Exception, endpoint: str, timeout: float, sent: bool, scrub: Callable[[str], str]
) -> TransportError | None:
    """The one place where aiohttp and OS exceptions become ours (None: not one of them).

    ``sent``: whether the try may have written its request; an error of the connect phase
    says no whatever the trace says.
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
