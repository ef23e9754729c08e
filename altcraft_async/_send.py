"""The send path of one client: from an endpoint call to its decoded reply, a step per concern.

:meth:`SendPath.call` turns a call into an :class:`HTTPRequest` (the sans-I/O layer's
``encode_request``) and sends it under the retry policy (:func:`retry_target`), each try
being::

    rate-limit slot -> connection slot -> request hooks -> transport.send -> response hooks
    -> decode (secrets blanked from errors) -> limiter feedback (429, success)

The sans-I/O layer is entered from here only, both ways. Waiting that the client itself imposes
(a connection slot, a rate-limit slot, the pause before a retry) happens in :class:`Waits`,
outside the per-try timeout, and closing the client cuts every such wait short.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

from ._codec import Format
from ._errors import (
    AltcraftError,
    APIError,
    ClientClosedError,
    DecodeError,
    HTTPStatusError,
    TransportError,
)
from ._events import EventHooks, RequestEvent, ResponseEvent, emit
from ._ratelimit import RateLimiterProtocol
from ._retry import RetryPolicy, Try, http_status_of, retry_pause, retry_target
from ._sansio import Auth, EndpointSpec, decode_reply
from ._scrub import Scrubber
from ._secret import Secret
from ._transport import (
    AsyncTransport,
    HTTPRequest,
    HTTPResponse,
    LoopBinding,
    SendProgress,
    closed_error,
)

__all__ = ["SendPath", "Waits"]

logger = logging.getLogger("altcraft_async")
_new = object.__new__


class Waits:
    """The waits a client imposes on its own calls: a free connection (at most
    ``max_connections`` requests at once) and closable sleeps (a rate-limit slot, the pause
    before a retry).

    Queueing for a connection happens here rather than in the transport's pool, so the per-try
    timeout is never spent waiting behind the client's other calls, and a call timed out in
    the queue is known never to have left. :meth:`close` ends every wait at once with
    ClientClosedError (a waiter's future gets False).
    """

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self._free = connections
        self._queue: deque[asyncio.Future[bool]] = deque()  # True: a connection handed over
        self._sleeping: set[asyncio.Future[bool]] = set()  # True: slept its full length
        self.closed = False

    def take(self, endpoint: str) -> bool:
        """Take a free connection now if there is one (True); False: :meth:`queue` for one.
        Either way, give it back with :meth:`release`."""
        if self.closed:
            raise closed_error(endpoint)
        if self._free and not self._queue:
            self._free -= 1
            return True
        return False

    async def queue(self, endpoint: str) -> None:
        """Wait in line for a connection (after :meth:`take` found none free)."""
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
            raise closed_error(endpoint)

    @property
    def in_use(self) -> int:
        return self.connections - self._free

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
            raise closed_error(endpoint)
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
            raise closed_error(endpoint)

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


class SendPath:
    """Builds, sends, retries and decodes the calls of one client over one transport.

    Bound to one event loop from its first call (its waits are that loop's futures).
    """

    def __init__(
        self,
        transport: AsyncTransport,
        *,
        base_url: str,
        fmt: Format,
        max_connections: int,
        rate_limiter: RateLimiterProtocol | None = None,
        hooks: EventHooks | None = None,
        secrets: Sequence[Secret | None] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.transport = transport
        #: Headers every request carries (the User-Agent); the endpoint's own go over them.
        self.headers = dict(headers or {})
        #: Those and an Auth's, merged once per Auth (a client has one or two; never mutated)
        self._headers_by_auth: dict[Auth, Mapping[str, str]] = {}
        self.base_url = base_url.rstrip("/")
        self.format: Format = fmt
        self.rate_limiter = rate_limiter
        self.closed = False
        self._hooks = hooks or EventHooks()
        self._scrub = Scrubber(secrets)
        self._waits = Waits(max_connections)
        self._binding = LoopBinding()
        self._random = random.Random()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def loop_ended(self) -> bool:
        """Whether the event loop it was bound to has been closed."""
        return self._binding.ended

    def bound_elsewhere(self) -> bool:
        """Whether it is bound to another event loop that is still open."""
        return self._binding.elsewhere()

    @property
    def requests_in_flight(self) -> int:
        """Tries holding one of the client's connection slots right now."""
        return self._waits.in_use

    def check_usable(self) -> None:
        """Raise ClientClosedError now if the client cannot send from this loop."""
        if self.closed:
            raise ClientClosedError("the client is closed")
        self._binding.bind()

    def close(self) -> None:
        """End every queued call, rate-limit wait and retry pause now; the calls in flight
        end when the transport closes. Safe from another thread, and after the loop ended."""
        self.closed = True
        binding = self._binding
        if binding.ended:  # nothing of an ended loop can be woken or awaited any more
            return
        if binding.elsewhere():  # closed from another thread
            assert binding.loop is not None
            binding.loop.call_soon_threadsafe(self._waits.close)
        else:
            self._waits.close()

    # -- the path ------------------------------------------------------------------------

    def call(
        self,
        spec: EndpointSpec,
        args: Mapping[str, Any],
        auth: Auth,
        timeout: float,
        retry: RetryPolicy,
    ) -> Coroutine[Any, Any, Any]:
        """Build the request of one call (InvalidRequestError for bad arguments, nothing
        sent) and return the awaitable that sends it, retrying as ``retry`` allows, and
        decodes the reply (a plain function returning that coroutine: one coroutine layer
        less on every call). ``timeout``: seconds per try.

        Each call gets a short random id, shown with the task id of ``args`` (a status
        poll's) in the DEBUG line of every try and retry of it: the lines of one call can be
        told apart from those of the calls running beside it."""
        headers = self._headers_by_auth.get(auth)
        if headers is None:  # once per token: every request with it shares the merged dict
            headers = self._headers_by_auth[auth] = {**self.headers, **auth.headers}
        # HTTPRequest(url, headers=, body=, endpoint=) without the call of its __init__
        request = _new(HTTPRequest)
        request.method = "POST"
        request.url = self.base_url + spec.url_path
        request.headers = headers
        request.endpoint = spec.name
        request.body = b""  # whole before the body comes: a traceback shows this frame's locals
        request.body = spec.encode_body(args, auth)  # the sans-I/O layer's encode_request
        if retry.deadline is None:  # the usual call: its tries retry themselves, no _Call made
            return _tries(self, spec, request, timeout, args, retry)
        call = _Call(self, spec, request, timeout, args)
        return retry_target(
            call.attempt,
            retry,
            starts_task=spec.starts_task,
            sleep=call.sleep,
            endpoint=spec.name,
            rand=self._random.random,
            on_retry=call.on_retry,
        )

    def _decode(self, spec: EndpointSpec, response: HTTPResponse) -> Any:
        """:func:`decode_reply`, but an error about a reply that holds a secret (a proxy or
        server echoing the request) is made again from the reply with every form of every
        secret blanked out, since errors quote replies. Good replies are decoded as they came
        (a short token must not damage them).

        The error raised then comes from the blanked reply, and no local of this frame or of
        the callers' holds the reply's bytes or headers (a traceback rendered with its locals
        would show them): only the :class:`HTTPResponse`, whose repr shows neither."""
        scrub, fmt = self._scrub, self.format
        try:
            return decode_reply(spec, response.status, response.headers, response.body, fmt)
        except AltcraftError as error:
            if not scrub:
                raise
            clean_body, clean_headers = scrub.data(response.body), scrub.headers(response.headers)
            if clean_body == response.body and clean_headers is response.headers:
                scrub.error(error)
                raise
        # outside the except block: the first error is not kept as __context__ either
        try:
            decode_reply(spec, response.status, clean_headers, clean_body, fmt)
        except AltcraftError as error:
            scrub.error(error)
            raise
        # only the blanking made it readable: no value can be trusted
        raise DecodeError("the reply echoes a credential", endpoint=spec.name, transient=False)


class _Call:
    """One call under way: the send path, the endpoint, the request, the seconds per try and
    the call's arguments. What :func:`retry_target` runs each try of, pauses with and logs
    retries by (a call with a deadline), or what :func:`_tries` makes when it first shows,
    reports, paces or pauses a call (the usual call makes none). Its DEBUG label (a random
    id and the task id of a status poll) is made when a line first shows it, the same for
    every try of the call."""

    __slots__ = ("_label", "args", "path", "per_try", "request", "spec")

    path: SendPath
    spec: EndpointSpec
    request: HTTPRequest
    per_try: float
    args: Mapping[str, Any] | None
    _label: str | None

    def __init__(
        self,
        path: SendPath,
        spec: EndpointSpec,
        request: HTTPRequest,
        per_try: float,
        args: Mapping[str, Any] | None,
    ) -> None:
        self.path, self.spec, self.request, self.per_try, self.args = (
            path,
            spec,
            request,
            per_try,
            args,
        )
        self._label = None

    @property
    def label(self) -> str:
        if self._label is None:
            task = _task_context(self.args)
            self._label = f"call={self.path._random.getrandbits(32):08x}{task}"
        return self._label

    def sleep(self, delay: float) -> Coroutine[Any, Any, None]:
        """The pause before a retry (cut short when the client closes)."""
        return self.path._waits.sleep(delay, endpoint=self.spec.name)

    def on_retry(self, tries: int, delay: float, error: AltcraftError) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s retry %d in %.3fs after %s %s",
                self.spec.name,
                tries,
                delay,
                type(error).__name__,
                self.label,
            )

    def attempt(self, attempt: Try) -> Coroutine[Any, Any, Any]:
        """One try, as :func:`retry_target` runs it (a call with a deadline): :func:`_tries`
        ending at its first failure."""
        return _tries(
            self.path, self.spec, self.request, self.per_try, self.args, None, attempt, self
        )

    async def _report(
        self,
        number: int,
        started: float,
        response: HTTPResponse | None,
        progress: SendProgress,
        failure: AltcraftError | None,
        debug: bool,
    ) -> None:
        """How a try ended: its DEBUG line, and the response hooks' event."""
        spec, hooks = self.spec, self.path._hooks
        elapsed = time.monotonic() - started
        status = progress.status if response is None else response.status
        if debug:
            logger.debug(
                "POST %s status=%s attempt=%d elapsed=%.3fs %s%s",
                spec.path,
                status,
                number + 1,
                elapsed,
                self.label,
                "" if failure is None else f" error={type(failure).__name__}",
            )
        if hooks.response:
            headers = progress.headers if response is None else response.headers
            event = ResponseEvent(
                spec.name, self.request.url, number + 1, elapsed, status, headers, failure
            )
            await emit(hooks.response, event)


async def _tries(
    path: SendPath,
    spec: EndpointSpec,
    request: HTTPRequest,
    per_try: float,
    args: Mapping[str, Any] | None,
    retry: RetryPolicy | None,
    attempt: Try | None = None,
    call: _Call | None = None,
) -> Any:
    """The tries of one call until one succeeds, each a rate-limit slot, a connection, the
    hooks, the exchange, the decoding. Given ``retry`` (a call without a deadline), it retries
    itself, as :func:`retry_target` would (:func:`retry_pause`): the call is one coroutine
    layer less. Without, it is the one ``attempt`` of retry_target's (``call``'s).

    A function of the call's fields rather than a method of :class:`_Call`: the usual call
    makes no such object; one is made (once, keeping its DEBUG label) only when a try is
    shown or reported, the rate limiter waits, or a retry pauses."""
    waits, hooks, limiter = path._waits, path._hooks, path.rate_limiter
    number, left = (0, None) if attempt is None else (attempt.number, attempt.left)
    while True:
        try:
            # the client may have been closed while the last try was in flight; a first
            # call binds the loop (check_usable, skipped when neither can be the case)
            if path.closed or path._binding.loop is not asyncio.get_running_loop():
                path.check_usable()
            timeout = per_try if left is None else min(per_try, max(left, 0.001))
            paced_at = 0.0
            if limiter is not None:
                call = call or _Call(path, spec, request, per_try, args)
                paced_at = await limiter.acquire(call.sleep)
            if waits.closed or not waits._free or waits._queue:  # what take tells, inline
                if not waits.take(spec.name):
                    await waits.queue(spec.name)
            else:
                waits._free -= 1
            response: HTTPResponse | None = None
            failure: AltcraftError | None = None
            request.progress = progress = SendProgress()
            debug = logger.isEnabledFor(logging.DEBUG)
            timed = debug or hooks.response  # the try is shown, or reported
            try:
                if hooks.request:
                    event = RequestEvent(spec.name, request.url, number + 1)
                    await emit(hooks.request, event)
                started = time.monotonic() if timed else 0.0
                try:
                    response = await path.transport.send(request, timeout=timeout)
                except AltcraftError as error:
                    # a caller's transport may quote anything; raised again below, after
                    # the response hooks saw it, without the frames under this one (their
                    # locals may hold the transport's)
                    failure = _without_secrets(path._scrub, error).with_traceback(None)
                finally:
                    if attempt is not None:  # for a deadline that cuts the try short
                        attempt.sent = progress.sent is not False
            finally:
                if waits._queue:
                    waits.release()
                else:  # nobody waits: what release does, inline
                    waits._free += 1
            if timed:
                call = call or _Call(path, spec, request, per_try, args)
                await call._report(number, started, response, progress, failure, debug)
            if failure is not None:
                raise failure
            assert response is not None
            if limiter is None:  # the usual reply, decoded without _decode's frame
                try:
                    return decode_reply(
                        spec, response.status, response.headers, response.body, path.format
                    )
                except AltcraftError:
                    pass  # _decode raises it again, from the reply with secrets blanked
            try:
                result = path._decode(spec, response)
            except (HTTPStatusError, APIError) as error:
                if limiter is not None and http_status_of(error) == 429:
                    limiter.on_rate_limited(paced_at)
                raise
            if limiter is not None:
                limiter.on_success()
            return result
        except AltcraftError as error:
            if retry is None:
                raise
            number += 1
            delay = retry_pause(retry, number, error, spec.starts_task, path._random.random)
            if delay is None:
                raise
            call = call or _Call(path, spec, request, per_try, args)
            call.on_retry(number, delay, error)
        # outside the except block: an error of the sleep does not carry the try's as context
        await call.sleep(delay)


def _task_context(args: Mapping[str, Any] | None) -> str:
    """What the DEBUG lines of a call show besides its id: the task id of a status poll
    (printable and short, or quoted: it may come from the caller)."""
    task_id = None if args is None else args.get("task_id")
    if not isinstance(task_id, str):
        return ""
    shown = task_id if task_id.isprintable() and len(task_id) <= 64 else repr(task_id[:64])
    return f" task={shown}"


def _without_secrets(scrub: Scrubber, error: AltcraftError) -> AltcraftError:
    """``error``, a TransportError's message blanked of the secrets in place."""
    if isinstance(error, TransportError) and scrub:
        error.args = tuple(scrub.text(arg) if isinstance(arg, str) else arg for arg in error.args)
    return error
