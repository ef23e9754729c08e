"""AltcraftClient: configuration, lifecycle, the namespaces, single-flight polls and fan-out."""

from __future__ import annotations

import contextlib
import ssl
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp
from attrs import evolve

from ._awaiter import PollRegistry, Task
from ._codec import Format
from ._errors import ClientClosedError, InvalidRequestError, RequestTimeoutError
from ._events import EventHookMap, EventHooks
from ._fanout import FanOut
from ._poll import PollPolicy
from ._retry import RetryPolicy
from ._sansio import Auth, EndpointSpec, build_request
from ._secret import Secret
from ._transport import DEFAULT_MAX_RESPONSE_SIZE, RateLimiter, Transport
from .api._specs import TASKS_STATUS
from .api.admin import AdminAPI
from .api.relations import RelationsAPI
from .api.resources import ResourcesAPI
from .api.segments import SegmentsAPI
from .api.tasks import TasksAPI
from .models import CountersSnapshot, TaskStatus
from .models._checks import check_number

if TYPE_CHECKING:
    from ._feedback import PushWaiter

__all__ = ["AltcraftClient"]

RefT = TypeVar("RefT")


class AltcraftClient:
    """An asyncio client of the Altcraft Platform API.

    Use it as ``async with AltcraftClient(url, token=...) as client`` (or call
    :meth:`aclose`). One client holds one connection pool; share it across your app.

    - ``format``: ``"json"`` or ``"xml"`` (XML both ways: request bodies and replies).
    - ``timeout``: seconds per HTTP request (each call can override it).
    - ``retry``: the :class:`RetryPolicy` of every call; ``poll``: the default
      :class:`PollPolicy` of task waits.
    - ``max_connections``: open requests at once; ``rate_limit``: requests per second over
      all calls of this client (None: off), ``adaptive_rate_limit`` halves it on HTTP 429.
    - ``auth``: ``"body"`` sends the token in the request body as documented, ``"bearer"`` in
      an ``Authorization`` header.
    - ``session``: a caller-owned ``aiohttp.ClientSession`` (never closed by the client).
    - ``trace_configs``: aiohttp trace configs (e.g. OpenTelemetry's instrumentation).
    - ``event_hooks``: ``{"request": [...], "response": [...]}``, callables (sync or async)
      given a :class:`RequestEvent` before each try and a :class:`ResponseEvent` after it;
      neither holds the token.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        admin_token: str | None = None,
        format: Format = "json",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        max_connections: int = 100,
        rate_limit: float | None = None,
        adaptive_rate_limit: bool = False,
        auth: Literal["body", "bearer"] = "body",
        session: aiohttp.ClientSession | None = None,
        ssl: ssl.SSLContext | bool = True,
        trace_configs: Sequence[aiohttp.TraceConfig] | None = (),
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        headers: Mapping[str, str] | None = None,
        event_hooks: EventHookMap | None = None,
    ) -> None:
        # The tokens become Secrets first of all and their plain names go: from here on no
        # local of this frame shows them, if an error tracker renders a traceback through it.
        secret = Secret(token)
        admin_secret = None if admin_token is None else Secret(admin_token)
        del token, admin_token
        _check_base_url(base_url)
        _check_token("token", secret)
        if admin_secret is not None:
            _check_token("admin_token", admin_secret)
        if format not in ("json", "xml"):
            raise InvalidRequestError(f"format must be 'json' or 'xml', got {format!r}")
        if auth not in ("body", "bearer"):
            raise InvalidRequestError(f"auth must be 'body' or 'bearer', got {auth!r}")
        check_number("timeout", timeout, above=0.0)
        check_number("max_connections", max_connections, at_least=1, integer=True)
        check_number("rate_limit", rate_limit, above=0.0, optional=True)
        _check_options(retry, poll, max_response_size, headers, ssl, trace_configs)
        hooks = EventHooks.from_mapping(event_hooks)
        self.base_url = base_url.rstrip("/")
        self.format: Format = format
        self.default_poll_policy = poll or PollPolicy()
        bearer = auth == "bearer"
        #: How each token goes on the wire, made once: the send path only picks one.
        self._auth = Auth(secret, format, bearer=bearer)
        self._admin_auth = (
            None if admin_secret is None else Auth(admin_secret, format, bearer=bearer)
        )
        limiter = RateLimiter(rate_limit, adaptive=adaptive_rate_limit) if rate_limit else None
        self._transport = Transport(
            self.base_url,
            timeout=float(timeout),
            retry=retry or RetryPolicy(),
            max_connections=max_connections,
            session=session,
            ssl_context=ssl,
            rate_limiter=limiter,
            trace_configs=trace_configs or (),
            max_response_size=max_response_size,
            headers=headers,
            hooks=hooks,
            secrets=(secret, admin_secret),
        )
        self._polls = PollRegistry()
        self._fanouts: weakref.WeakSet[FanOut[Any]] = weakref.WeakSet()
        self.segments = SegmentsAPI(self)
        self.resources = ResourcesAPI(self)
        self.tasks = TasksAPI(self)
        self.admin = AdminAPI(self)
        self.relations = RelationsAPI(self)

    def __repr__(self) -> str:
        # safe on a client whose constructor raised half way (a traceback rendered with its
        # locals shows this self too)
        transport = getattr(self, "_transport", None)
        if transport is None:
            return "<AltcraftClient (not constructed)>"
        state = "closed" if transport.closed else "open"
        parts = urlsplit(self.base_url)
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no userinfo
        return f"<AltcraftClient {shown} format={self.format} {state}>"

    async def __aenter__(self) -> AltcraftClient:
        self._transport.check_usable()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop fan-outs still running, end task waits with ClientClosedError and close the
        connection pool; safe to call twice."""
        transport = self._transport
        if transport.bound_elsewhere() and (transport.session_open or self._polls.task_ids()):
            # its waits and sockets belong to that loop, which may run in another thread
            raise ClientClosedError(
                "the client is bound to another event loop; close it from that loop"
            )
        if transport.loop_ended:  # nothing of that loop can be woken or awaited any more
            await transport.aclose()
            return
        self._polls.close_all()
        try:
            for fanout in list(self._fanouts):
                with contextlib.suppress(Exception):  # a crashed fan-out told its consumer
                    await fanout.abort(
                        ClientClosedError("the client was closed during refresh_many")
                    )
        finally:
            await transport.aclose()

    @property
    def closed(self) -> bool:
        return self._transport.closed

    @property
    def rate_limiter(self) -> RateLimiter | None:
        return self._transport.rate_limiter

    def connections_in_use(self) -> int:
        """Connections held by requests right now (0 when the client is idle)."""
        return self._transport.connections_in_use()

    def polling_tasks(self) -> frozenset[str]:
        """The ids of the tasks this client is waiting on right now (empty when no ``wait``,
        ``watch`` or ``refresh_and_wait`` is running): for health checks and shutdown logs."""
        return self._polls.task_ids()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None and transport.session_open:
            _warn(
                f"Unclosed AltcraftClient {self.base_url}: use 'async with' or await aclose()",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    # -- what the namespaces and the awaiter use (api._base.Caller, _awaiter.TaskSource) --

    async def call(
        self,
        spec: EndpointSpec,
        args: Mapping[str, Any],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> Any:
        """One endpoint call. ``deadline`` (``time.monotonic()`` seconds) bounds every try and
        retry of it: the start of a refresh-and-wait spends the wait's own time."""
        check_number("timeout", timeout, above=0.0, optional=True)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeoutError(
                    f"{spec.name}: no time left before the deadline", endpoint=spec.name, sent=False
                )
            timeout = min(timeout or self._transport.timeout, left)
            retry = retry or self._transport.retry
            retry = evolve(retry, deadline=min(retry.deadline or left, left))
        auth = self._admin_auth if spec.admin else self._auth
        if auth is None:
            raise InvalidRequestError(f"{spec.name} needs admin_token=... on the client")
        request = build_request(spec, args, token=auth, fmt=self.format)
        return await self._transport.call(spec, request, self.format, timeout=timeout, retry=retry)

    async def fetch_status(self, task_id: str) -> TaskStatus:
        status: TaskStatus = await self.call(TASKS_STATUS, {"task_id": task_id})
        return status

    def new_task(
        self,
        task_id: str,
        endpoint: str,
        kind: str,
        *,
        created: datetime | None = None,
        push: PushWaiter | None = None,
    ) -> Task:
        return Task(
            self, self._polls, task_id, endpoint=endpoint, kind=kind, created=created, push=push
        )

    def fan_out(
        self,
        refs: Iterable[RefT],
        run_one: Callable[[RefT], Awaitable[list[CountersSnapshot]]],
        *,
        concurrency: int,
        fail_fast: bool,
    ) -> FanOut[RefT]:
        return FanOut(
            refs,
            run_one,
            concurrency=concurrency,
            fail_fast=fail_fast,
            on_start=self._fanouts.add,
        )


def _check_base_url(base_url: object) -> None:
    """An http(s) URL with a host and a valid port, and no credentials (they would show in
    events and messages; send them with ``headers=``). Messages never quote the URL."""
    if not isinstance(base_url, str):
        raise InvalidRequestError(f"base_url must be a str, got {type(base_url).__name__}")
    example = "such as https://example.altcraft.com"
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise InvalidRequestError(f"base_url is not a valid URL ({example})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(f"base_url must be an http(s) URL with a host ({example})")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequestError(
            "base_url must not hold credentials (user:password@); send them with headers="
        )


def _check_options(
    retry: object,
    poll: object,
    max_response_size: object,
    headers: object,
    ssl_option: object,
    trace_configs: object,
) -> None:
    """The remaining constructor options, checked now rather than failing at the first call."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise InvalidRequestError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
    if poll is not None and not isinstance(poll, PollPolicy):
        raise InvalidRequestError(f"poll must be a PollPolicy, got {type(poll).__name__}")
    if (
        isinstance(max_response_size, bool)
        or not isinstance(max_response_size, int)
        or max_response_size < 1
    ):
        raise InvalidRequestError("max_response_size must be a positive int (bytes)")
    if headers is not None:
        if not isinstance(headers, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            raise InvalidRequestError("headers must map str to str")
        if any("\r" in f"{k}{v}" or "\n" in f"{k}{v}" for k, v in headers.items()):
            raise InvalidRequestError("headers must not contain line breaks")
    if not isinstance(ssl_option, bool | ssl.SSLContext | aiohttp.Fingerprint):
        raise InvalidRequestError("ssl must be True, False, an ssl.SSLContext or a Fingerprint")
    if trace_configs is not None and (
        not isinstance(trace_configs, Sequence)
        or not all(isinstance(config, aiohttp.TraceConfig) for config in trace_configs)
    ):
        raise InvalidRequestError("trace_configs must be a sequence of aiohttp.TraceConfig")


def _check_token(name: str, token: Secret) -> None:
    """A token is a non-empty str that fits in a header: no line breaks (which would inject
    headers with ``auth="bearer"``) and no lone surrogates. Messages never quote it, and no
    local of this frame holds it: it is revealed inside expressions only."""
    if not isinstance(token.reveal(), str) or not token.reveal():
        raise InvalidRequestError(f"{name} must be a non-empty str")
    if "\r" in token.reveal() or "\n" in token.reveal():
        raise InvalidRequestError(f"{name} must not contain line breaks")
    try:
        token.reveal().encode("utf-8")
        encodable = True
    except UnicodeEncodeError:  # its .object is the token: raised outside, not as context
        encodable = False
    if not encodable:
        raise InvalidRequestError(f"{name} is not valid Unicode text (a lone surrogate)")
