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

The port is open to anyone who can reach it: the standalone server's connections are bounded in
number and in time, and rejections logged sparingly, by ``_feedback_guard``.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from collections import OrderedDict
from types import TracebackType
from typing import Any

import anyio
import orjson
from aiohttp import web

from ._codec import structure, without_bom
from ._errors import DecodeError, InvalidRequestError
from ._feedback_guard import Answer, Connections, GuardedSite, RejectionLog, closing, excerpt
from ._kinds import COUNTERS, TaskKind
from .models import Feedback, TaskStatus
from .models._checks import check_number
from .models.tasks import CountersResult

__all__ = ["FeedbackReceiver", "PushWaiter", "reserve_push"]

logger = logging.getLogger("altcraft_async.feedback")

#: Largest webhook body accepted (the biggest result lists are a few KB).
MAX_PAYLOAD = 1024 * 1024
#: How many finished callbacks are remembered, so late duplicates are ignored, not 404.
REMEMBERED = 10_000
#: Rejected calls logged one by one per minute; the rest of the minute is one summary line.
LOGGED_REJECTIONS = 10
#: A secret goes in the callback path as one segment, so it is made of URL-safe characters
#: that no client or proxy escapes or splits (``/``, ``?``, ``#``, ``%``, spaces would).
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


class PushWaiter:
    """One reserved callback: an event set when its final status arrives by push."""

    def __init__(
        self,
        receiver: FeedbackReceiver,
        nonce: str,
        feedback: Feedback,
        result_type: Any = CountersResult,
    ) -> None:
        self.receiver = receiver
        self.nonce = nonce
        self.feedback = feedback
        self.result_type = result_type  # the task kind's: what a pushed result is read as
        self.task_id: str | None = None
        self.status: TaskStatus[Any] | None = None
        self._arrived = anyio.Event()

    def deliver(self, status: TaskStatus[Any]) -> bool:
        """Take the first final status; later ones are ignored (returns False)."""
        if self.status is not None:
            return False
        self.status = status
        self._arrived.set()
        return True

    async def wait(self) -> TaskStatus[Any]:
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

    #: Callbacks that resolved a wait (a subclass may count more); callbacks refused.
    received: int
    rejected: int

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
        self.read_timeout: float = float(read_timeout)
        self._public_url = public_url.rstrip("/") if public_url else None
        self._secret = secrets.token_urlsafe(16) if secret == "" else secret
        self._waiters: dict[str, PushWaiter] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._runner: web.AppRunner | None = None
        self._connections = Connections(max_connections, self.read_timeout)
        self._rejections = RejectionLog(LOGGED_REJECTIONS, 60.0)
        self.received: int = 0
        self.rejected: int = 0

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
            await GuardedSite(runner, self.host, self.port, self._connections).start()
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

    def reserve(self, kind: TaskKind[Any, Any] = COUNTERS) -> PushWaiter:
        """A fresh callback URL (as a :class:`Feedback`) and the waiter it resolves, for a
        task of ``kind`` (its pushed result is read as the kind's result type)."""
        if self._public_url is None:
            raise InvalidRequestError("the receiver has no public_url: start it or give one")
        nonce = secrets.token_urlsafe(12)
        parts = [self._public_url + self.path]
        if self._secret:
            parts.append(self._secret)
        parts.append(nonce)
        waiter = PushWaiter(self, nonce, Feedback(url="/".join(parts)), kind.result_type)
        self._waiters[nonce] = waiter
        return waiter

    def _release(self, waiter: PushWaiter) -> None:
        if self._waiters.pop(waiter.nonce, None) is not None:
            self._finished[waiter.nonce] = None
            while len(self._finished) > REMEMBERED:
                self._finished.popitem(last=False)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: match the call to a waiter and resolve it."""
        checked = self._authorised_path(request)
        if isinstance(checked, web.Response):
            return checked
        answer, tail = checked
        if len(tail) > 1:
            return self._reject(answer, 404, "feedback call to an unknown path")
        nonce = tail[0] if tail else ""
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            data, task_id = _read_payload(body)
        except ValueError as exc:
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
        try:  # read as the waiting task's kind says its result is
            status = _final_status(data, waiter.result_type)
        except (DecodeError, ValueError) as exc:
            return self._reject(answer, 400, f"malformed feedback payload: {exc}")
        if not waiter.deliver(status):
            logger.debug("duplicate feedback call ignored for task %s", waiter.task_id)
            return answer(web.Response(status=200, text="ignored: duplicate"))
        logger.debug("feedback received for task %s: %s", waiter.task_id, status.status)
        return self._accepted(answer)

    # The steps every receiver's handler takes, in order (the fleet's receiver shares them).

    def _authorised_path(self, request: web.Request) -> tuple[Answer, list[str]] | web.Response:
        """How to answer the call, and its path after the secret; or a 403 for a wrong secret
        (compared in constant time)."""
        # the headers are in: the standalone server now gives the body its own deadline
        answer = self._connections.headers_read(request.transport)
        tail = request.match_info.get("tail", "").strip("/").split("/")
        if self._secret:
            if not hmac.compare_digest(tail[0].encode(), self._secret.encode()):
                return self._reject(answer, 403, "forged feedback call (wrong or missing secret)")
            tail = tail[1:]
        return answer, tail

    async def _body(self, request: web.Request) -> bytes | web.Response:
        """The call's body, read within ``read_timeout``; or the answer to a caller too slow
        (408) or gone (400)."""
        try:
            async with asyncio.timeout(self.read_timeout):
                return await request.read()
        except TimeoutError:
            return self._reject(closing, 408, "feedback body not received in time")
        except ConnectionError:  # the caller went away (or was cut off) mid-body
            return closing(web.Response(status=400))

    def _accepted(self, answer: Answer) -> web.Response:
        self.received += 1
        return answer(web.Response(status=200, text="ok"))

    def _by_task_id(self, task_id: str | None) -> PushWaiter | None:
        if task_id is None:
            return None
        return next((w for w in self._waiters.values() if w.task_id == task_id), None)

    def _reject(self, answer: Answer, status: int, reason: str) -> web.Response:
        self.rejected += 1
        shown = excerpt(reason)
        self._rejections.warn(shown)
        return answer(web.Response(status=status, text=shown))


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


def _read_payload(body: bytes) -> tuple[Any, str | None]:
    """A webhook body as plain data plus the task id it names (if any)."""
    if len(body) > MAX_PAYLOAD:
        raise ValueError("payload too large")
    try:
        data: Any = orjson.loads(without_bom(body))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if isinstance(data, list):
        return data, None
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object or list")
    task_id = data.get("task_id") or None  # null, missing and "" all mean "not named"
    if task_id is not None and not isinstance(task_id, str):
        raise ValueError("task_id must be a string")
    return data, task_id


def _final_status(data: Any, result_type: Any) -> TaskStatus[Any]:
    """A payload as a final status whose result is ``result_type``: a list is the result
    itself (what the platform posts for a resource), an object a status like a poll's."""
    if isinstance(data, list):
        result = structure(data, result_type, "json", endpoint="feedback")
        return TaskStatus(status="completed", progress=100.0, result=result)
    status: TaskStatus[Any] = structure(data, TaskStatus[result_type], "json", endpoint="feedback")
    if not status.done:
        raise ValueError(f"status {status.status!r} is not final")
    return status


def reserve_push(receiver: object, kind: TaskKind[Any, Any]) -> PushWaiter:
    """The push waiter of one task start given ``feedback=receiver``."""
    if not isinstance(receiver, FeedbackReceiver):
        raise InvalidRequestError(
            f"feedback must be a Feedback or a FeedbackReceiver, got {type(receiver).__name__}"
        )
    return receiver.reserve(kind)
