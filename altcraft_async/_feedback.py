"""Push instead of poll: receive the feedback webhook of ``resources/refresh_counters``.

``resources/refresh_counters`` takes ``feedback: {type, url}`` and the platform POSTs the
statistics to that URL when the refresh is done. A :class:`FeedbackReceiver` hands out one
callback URL per refresh (``{public_url}{path}/[{secret}/]{nonce}``), so an incoming call is
matched to its waiting task by the URL alone, whatever the payload looks like; the payload's
``task_id`` is the fallback. The waiter races the webhook against a slowed-down poller: the
first final answer wins and the other stops at once.

Payload assumption (undocumented by Altcraft): a JSON object shaped like the ``data`` of
``tasks/status`` (``status``, ``progress``, ``result``; ``task_id`` optional), or a bare JSON
list of result items (then the task is taken as completed).

Answers: 200 for an accepted payload, and also for a duplicate or late one (ignored, so an
at-least-once sender stops retrying); 400 for a malformed body; 403 for a wrong or missing
shared secret; 404 for an unknown callback; 408 for a body not received within
``read_timeout``. Every rejection is logged, as a short escaped excerpt and at most
``LOGGED_REJECTIONS`` times a minute (the rest are counted in one line); none raises.

The port is open to anyone who can reach it, so the standalone server bounds what a client can
hold: aiohttp's server has no deadline for reading a request's headers, and a client sending
them a byte at a time (slowloris) would keep its connection, and a file descriptor, forever.
Each connection must deliver its headers within ``read_timeout``, then its body within
``read_timeout`` again; at most ``max_connections`` are open at once (more are closed at
accept); every answer closes its connection. Mounted into your own application, the body
deadline still holds, and your server's own limits stand for the rest.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

import anyio
import orjson
from aiohttp import web

from ._codec import structure, without_bom
from ._errors import DecodeError, InvalidRequestError
from .models import CountersSnapshot, Feedback, TaskStatus
from .models._checks import check_number

__all__ = ["FeedbackReceiver", "PushWaiter"]

logger = logging.getLogger("altcraft_async.feedback")

#: Largest webhook body accepted (the biggest result lists are a few KB).
MAX_PAYLOAD = 1024 * 1024
#: How many finished callbacks are remembered, so late duplicates are ignored, not 404.
REMEMBERED = 10_000
#: Rejected calls logged one by one per minute; the rest of the minute is one summary line.
LOGGED_REJECTIONS = 10
#: Longest part of a rejection reason (which may quote the caller's body) logged or answered.
REASON_LIMIT = 200
#: A secret goes in the callback path as one segment, so it is made of URL-safe characters
#: that no client or proxy escapes or splits (``/``, ``?``, ``#``, ``%``, spaces would).
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


class PushWaiter:
    """One reserved callback: an event set when its final status arrives by push."""

    def __init__(self, receiver: FeedbackReceiver, nonce: str, feedback: Feedback) -> None:
        self.receiver = receiver
        self.nonce = nonce
        self.feedback = feedback
        self.task_id: str | None = None
        self.status: TaskStatus | None = None
        self._arrived = anyio.Event()

    def deliver(self, status: TaskStatus) -> bool:
        """Take the first final status; later ones are ignored (returns False)."""
        if self.status is not None:
            return False
        self.status = status
        self._arrived.set()
        return True

    async def wait(self) -> TaskStatus:
        await self._arrived.wait()
        assert self.status is not None
        return self.status

    def release(self) -> None:
        """Forget this callback (the wait is over); a later call to it is ignored."""
        self.receiver._release(self)


class FeedbackReceiver:
    """Receives refresh-done webhooks and resolves the matching waits.

    Standalone: ``async with FeedbackReceiver(host, port, public_url=...) as receiver`` serves
    on its own port. Inside your aiohttp application: ``receiver.add_routes(app)`` and give
    ``public_url`` (how the platform reaches your app). Pass the receiver as ``feedback=`` to
    ``client.resources.refresh_and_wait`` / ``refresh_counters``.

    ``secret`` (random by default) goes in every callback path and forged calls without it
    are refused; it must be one path segment of URL-safe characters (letters, digits and
    ``-._~``), else the platform's calls would not match it and push would silently never
    win. ``safety_poll_interval`` is how often the poller still checks while waiting for the
    push. ``read_timeout`` bounds reading a call's headers and again its body;
    ``max_connections`` bounds the connections open at once (standalone server).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        public_url: str | None = None,
        path: str = "/altcraft-feedback",
        secret: str | None = "",
        safety_poll_interval: float = 30.0,
        read_timeout: float = 10.0,
        max_connections: int = 256,
    ) -> None:
        if not path.startswith("/") or path.endswith("/"):
            raise InvalidRequestError(f"path must start and not end with '/', got {path!r}")
        if safety_poll_interval <= 0:
            raise InvalidRequestError("safety_poll_interval must be positive")
        _check_secret(secret)
        check_number("read_timeout", read_timeout, above=0.0)
        check_number("max_connections", max_connections, at_least=1, integer=True)
        self.host = host
        self.port = port
        self.path = path
        self.safety_poll_interval = safety_poll_interval
        self.read_timeout = float(read_timeout)
        self._public_url = public_url.rstrip("/") if public_url else None
        self._secret = secrets.token_urlsafe(16) if secret == "" else secret
        self._waiters: dict[str, PushWaiter] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._runner: web.AppRunner | None = None
        self._connections = _Connections(max_connections, self.read_timeout)
        self._rejections = _RejectionLog(LOGGED_REJECTIONS, 60.0)
        self.received = 0
        self.rejected = 0

    def __repr__(self) -> str:
        return f"<FeedbackReceiver {self._public_url or 'not started'}{self.path} (secret hidden)>"

    # -- serving ---------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Mount the receiver's handler into an existing aiohttp application."""
        app.router.add_post(self.path, self.handle)  # a bare path: matched by task_id
        app.router.add_post(self.path + "/{tail:.*}", self.handle)

    @property
    def open_connections(self) -> int:
        """Connections of the standalone server open right now."""
        return len(self._connections)

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_PAYLOAD)
        self.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await _GuardedSite(runner, self.host, self.port, self._connections).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self._public_url is None:
            host, port = runner.addresses[0][:2]
            self._public_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                await runner.cleanup()
            finally:
                self._connections.close_all()  # any that aiohttp did not know of yet
        self._rejections.flush()

    async def __aenter__(self) -> FeedbackReceiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- matching --------------------------------------------------------------------------

    def reserve(self) -> PushWaiter:
        """A fresh callback URL (as a :class:`Feedback`) and the waiter it resolves."""
        if self._public_url is None:
            raise InvalidRequestError("the receiver has no public_url: start it or give one")
        nonce = secrets.token_urlsafe(12)
        parts = [self._public_url + self.path]
        if self._secret:
            parts.append(self._secret)
        parts.append(nonce)
        waiter = PushWaiter(self, nonce, Feedback(url="/".join(parts)))
        self._waiters[nonce] = waiter
        return waiter

    def _release(self, waiter: PushWaiter) -> None:
        if self._waiters.pop(waiter.nonce, None) is not None:
            self._finished[waiter.nonce] = None
            while len(self._finished) > REMEMBERED:
                self._finished.popitem(last=False)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: match the call to a waiter and resolve it."""
        # the headers are in: the standalone server now gives the body its own deadline
        answer = self._connections.headers_read(request.transport)
        tail = request.match_info.get("tail", "").strip("/").split("/")
        if self._secret:
            if not hmac.compare_digest(tail[0].encode(), self._secret.encode()):
                return self._reject(answer, 403, "forged feedback call (wrong or missing secret)")
            tail = tail[1:]
        if len(tail) > 1:
            return self._reject(answer, 404, "feedback call to an unknown path")
        nonce = tail[0] if tail else ""
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await request.read()
        except TimeoutError:
            return self._reject(_closing, 408, "feedback body not received in time")
        except ConnectionError:  # the caller went away (or was cut off) mid-body
            return _closing(web.Response(status=400))
        try:
            status, task_id = _decode_payload(body)
        except (DecodeError, ValueError) as exc:
            return self._reject(answer, 400, f"malformed feedback payload: {exc}")
        # the callback path names the waiter; a bare path falls back to the payload's task_id
        waiter = self._waiters.get(nonce) if nonce else self._by_task_id(task_id)
        if waiter is None:
            if nonce in self._finished:
                logger.debug("late feedback call ignored")
                return answer(web.Response(status=200, text="ignored: already finished"))
            return self._reject(answer, 404, "feedback call for no waiting task")
        if task_id is not None and waiter.task_id is not None and task_id != waiter.task_id:
            return self._reject(answer, 400, "feedback task_id does not match its callback")
        if not waiter.deliver(status):
            logger.debug("duplicate feedback call ignored for task %s", waiter.task_id)
            return answer(web.Response(status=200, text="ignored: duplicate"))
        self.received += 1
        logger.debug("feedback received for task %s: %s", waiter.task_id, status.status)
        return answer(web.Response(status=200, text="ok"))

    def _by_task_id(self, task_id: str | None) -> PushWaiter | None:
        if task_id is None:
            return None
        return next((w for w in self._waiters.values() if w.task_id == task_id), None)

    def _reject(self, answer: _Answer, status: int, reason: str) -> web.Response:
        self.rejected += 1
        shown = _excerpt(reason)
        self._rejections.warn(shown)
        return answer(web.Response(status=status, text=shown))


#: What the handler does to its answer: :func:`_closing`, or leave it as it is.
_Answer = Callable[[web.Response], web.Response]


def _as_is(response: web.Response) -> web.Response:
    return response


def _closing(response: web.Response) -> web.Response:
    """The answer closes its connection (no keep-alive, no lingering over an unread body)."""
    response.force_close()
    return response


def _check_secret(secret: object) -> None:
    """None (no secret), "" (a random one) or one URL path segment; never quoted back."""
    if secret is None or secret == "":
        return
    if not isinstance(secret, str) or not _SEGMENT.fullmatch(secret) or not secret.strip("."):
        raise InvalidRequestError(
            "secret must be one URL path segment: letters, digits and - . _ ~ "
            "(not only dots); a '/', '?', '#', '%' or space would change the callback URL "
            "and every push would be refused"
        )


def _excerpt(text: str) -> str:
    """At most :data:`REASON_LIMIT` characters, escaped: no line breaks, control or non-ASCII
    characters from the caller reach a log line as they came."""
    shown = ascii(text[:REASON_LIMIT])[1:-1]
    return shown if len(text) <= REASON_LIMIT else f"{shown}... ({len(text)} characters)"


class _RejectionLog:
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


class _Connections:
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

    def headers_read(self, transport: asyncio.BaseTransport | None) -> _Answer:
        """A call's headers were read: its connection gets a fresh deadline for the body and
        the answer, and the answer closes it. A call of another server is left alone."""
        guarded = self._open.get(transport) if transport is not None else None
        if guarded is None:
            return _as_is
        # the handler answers 408 when the body is late; this is the backstop behind it
        guarded.deadline(2 * self.read_timeout)
        return _closing

    def close_all(self) -> None:
        for guarded in list(self._open.values()):
            guarded.abort()
        self._open.clear()


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's own protocol inside, behind a deadline and the limit."""

    def __init__(self, connections: _Connections, make_inner: Callable[[], asyncio.Protocol]):
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


class _GuardedSite(web.BaseSite):
    """A TCP site (like ``web.TCPSite``) whose connections go through :class:`_Guarded`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, connections: _Connections
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


def _decode_payload(body: bytes) -> tuple[TaskStatus, str | None]:
    """A webhook body as a final TaskStatus plus the task id it names (if any)."""
    if len(body) > MAX_PAYLOAD:
        raise ValueError("payload too large")
    try:
        data: Any = orjson.loads(without_bom(body))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if isinstance(data, list):
        result: list[CountersSnapshot] = structure(
            data, list[CountersSnapshot], "json", endpoint="feedback"
        )
        return TaskStatus(status="completed", progress=100.0, result=tuple(result)), None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object or list")
    task_id = data.get("task_id") or None  # null, missing and "" all mean "not named"
    if task_id is not None and not isinstance(task_id, str):
        raise ValueError("task_id must be a string")
    status: TaskStatus = structure(data, TaskStatus, "json", endpoint="feedback")
    if not status.done:
        raise ValueError(f"status {status.status!r} is not final")
    return status, task_id
