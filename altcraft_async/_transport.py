"""The only module that touches aiohttp: send a prepared request, retry, rate-limit, map errors.

Every aiohttp and OS exception is mapped to ours in :func:`_send_once`, so callers see only
the tree of ``_errors`` (and whatever their own ``event_hooks`` raise). The aiohttp session
is created lazily inside the running loop (a client can be built outside one) and is bound
to that loop from then on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import orjson

from ._codec import Format, escape_xml
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

    async def acquire(self) -> float:
        """Wait for the next slot; returns when the request asked for it (its pacing time)."""
        now = time.monotonic()
        if self._freed:  # forget slots that are past by now
            self._freed = {end: start for end, start in self._freed.items() if end > now}
        slot = max(now, self._next_slot)
        self._next_slot = after = slot + 1.0 / self.rate
        if slot > now:
            try:
                await anyio.sleep(slot - now)
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
        secrets: Sequence[str] = (),
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
        #: The tokens as they appear in request bodies, blanked out of a failed reply that
        #: echoes one, since errors quote the start of the reply.
        self._secret_forms = _secret_forms(secrets)
        self._session = session
        self._owns_session = session is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._closing: asyncio.Event | None = None  # set by aclose; made by a retry's sleep
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
                trace_configs=self._trace_configs or None,
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
        if self._closing is not None and not ended:
            self._closing.set()  # calls sleeping before a retry stop now
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
            try:
                if policy.deadline is None:
                    return await self._send_once(session, spec, request, fmt, per_try, attempt)
                left = policy.deadline - (time.monotonic() - started)
                within = min(per_try, max(left, 0.001))
                sending = self._send_once(session, spec, request, fmt, within, attempt)
                return await _by_deadline(sending, left, spec.name)
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
                await self._sleep_unless_closed(delay)

    async def _sleep_unless_closed(self, delay: float) -> None:
        """Sleep before a retry, cut short by :meth:`aclose` (the next try then raises
        ClientClosedError instead of waiting out a long ``Retry-After``)."""
        if self._closing is None:
            self._closing = asyncio.Event()
        try:
            async with asyncio.timeout(delay):
                await self._closing.wait()
        except TimeoutError:
            pass

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        spec: EndpointSpec,
        request: PreparedRequest,
        fmt: Format,
        timeout: float,
        attempt: int,
    ) -> Any:
        paced_at = 0.0
        if self.rate_limiter is not None:
            paced_at = await self.rate_limiter.acquire()
        url = self.base_url + request.path
        hooks = self._hooks
        if hooks.request:
            await emit(hooks.request, RequestEvent(spec.name, url, attempt + 1))
        started = time.monotonic()
        client_timeout = self._client_timeout
        if client_timeout.total != timeout:
            client_timeout = self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        status: int | None = None
        headers: Mapping[str, str] = {}
        body = b""
        failure: AltcraftError | None = None
        try:
            async with session.post(
                url,
                data=request.body,
                headers=request.headers,
                timeout=client_timeout,
                # a redirect would re-send the body, token included, to wherever it points
                allow_redirects=False,
            ) as response:
                status = response.status
                headers = response.headers
                body = await self._read_body(response, spec)
        except AltcraftError as error:  # the reply is over max_response_size
            failure = error
        except Exception as exc:
            failure = _transport_error(exc, spec.name, timeout)
            if failure is None:
                if not (session.closed and isinstance(exc, RuntimeError)):
                    raise
                # closed under this try (its rate-limit slot or hooks awaited meanwhile):
                # aiohttp says so with a bare RuntimeError
                failure = ClientClosedError(f"{spec.name}: the client was closed")
        elapsed = time.monotonic() - started
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
            event = ResponseEvent(spec.name, url, attempt + 1, elapsed, status, headers, failure)
            await emit(hooks.response, event)
        if failure is not None:
            # raised outside the except block: the aiohttp exception (whose request info may
            # hold an Authorization header) is not kept as __context__
            raise failure
        assert status is not None  # a try that did not fail has read its reply
        limiter = self.rate_limiter
        try:
            result = self._decode(spec, status, headers, body, fmt)
        except (HTTPStatusError, APIError) as error:
            if limiter is not None and http_status_of(error) == 429:
                limiter.on_rate_limited(paced_at)
            raise
        if limiter is not None:
            limiter.on_success()
        return result

    def _decode(
        self, spec: EndpointSpec, status: int, headers: Mapping[str, str], body: bytes, fmt: Format
    ) -> Any:
        """:func:`decode_reply`, but an error about a reply that holds a token (a proxy or
        server echoing the request) is made again from the reply with the token blanked out,
        since errors quote the start of the reply. Good replies are decoded as they came."""
        try:
            return decode_reply(spec, status, headers, body, fmt)
        except AltcraftError:
            scrubbed = body
            for form in self._secret_forms:
                scrubbed = scrubbed.replace(form, b"***")
            if scrubbed == body:
                raise
        # outside the except block: the first error is not kept as __context__ either
        return decode_reply(spec, status, headers, scrubbed, fmt)

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


async def _by_deadline(sending: Coroutine[Any, Any, Any], left: float, endpoint: str) -> Any:
    """Await one try within the ``left`` seconds of the retry deadline, the wait for a
    rate-limit slot and the hooks included."""
    try:
        async with asyncio.timeout(max(left, 0.0)) as deadline:
            return await sending
    except TimeoutError:
        if not deadline.expired():  # the try's own timeout, or a hook's: not the deadline
            raise
    raise RequestTimeoutError(f"{endpoint}: no reply within the retry deadline", endpoint=endpoint)


def _secret_forms(secrets: Sequence[str]) -> tuple[bytes, ...]:
    """Each secret as raw UTF-8 and as encoded in a JSON or XML request body."""
    forms: set[bytes] = set()
    for secret in secrets:
        if secret:
            forms.add(secret.encode())
            forms.add(orjson.dumps(secret)[1:-1])
            forms.add(escape_xml(secret).encode())
    return tuple(sorted(forms, key=len, reverse=True))


def _transport_error(exc: Exception, endpoint: str, timeout: float) -> TransportError | None:
    """The one place where aiohttp and OS exceptions become ours (None: not one of them)."""
    if isinstance(exc, aiohttp.ClientSSLError):  # certificate or handshake: no retry fixes it
        return TransportError(
            f"{endpoint}: TLS error: {exc}", endpoint=endpoint, sent=False, transient=False
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransportError(
            f"{endpoint}: cannot connect: {exc.os_error}", endpoint=endpoint, sent=False
        )
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return RequestTimeoutError(f"{endpoint}: no reply within {timeout:.3g}s", endpoint=endpoint)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransportError(f"{endpoint}: {type(exc).__name__}: {exc}", endpoint=endpoint)
    return None
