"""AltcraftClient: configuration, lifecycle, the namespaces, single-flight polls and fan-out.

A call is built and driven by the client's :class:`SendPath` over its :class:`AsyncTransport`
(an :class:`AiohttpTransport` made from the aiohttp options unless one is given).
"""

from __future__ import annotations

import contextlib
import copy
import os
import ssl
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload
from urllib.parse import urlsplit

import aiohttp
from attrs import evolve

from ._awaiter import PollRegistry, Task, TaskSource
from ._codec import Format
from ._errors import ClientClosedError, InvalidRequestError, RequestTimeoutError
from ._events import EventHookMap, EventHooks
from ._fanout import FanOut
from ._kinds import COUNTERS, ResultT, TaskKind, WaitResultT
from ._poll import PollPolicy
from ._ratelimit import RateLimiter, RateLimiterProtocol
from ._retry import RetryPolicy
from ._sansio import Auth, EndpointSpec
from ._secret import Secret
from ._send import SendPath
from ._transport import DEFAULT_MAX_RESPONSE_SIZE, AiohttpTransport, AsyncTransport
from ._version import __version__
from .api._base import read
from .api._coalesce import StartCoalescer
from .api._request import check_path, check_plain, request_spec
from .api._specs import status_spec
from .api.admin import AdminAPI
from .api.databases import DatabasesAPI
from .api.relations import RelationsAPI
from .api.resources import ResourcesAPI
from .api.segments import SegmentsAPI
from .api.tasks import TasksAPI
from .models import TaskStatus
from .models._checks import check_number

if TYPE_CHECKING:
    from ._feedback import PushWaiter

__all__ = ["ADMIN_TOKEN_ENV", "TOKEN_ENV", "URL_ENV", "AltcraftClient"]

#: The environment variables read for the arguments that are omitted (or None).
URL_ENV = "ALTCRAFT_URL"
TOKEN_ENV = "ALTCRAFT_TOKEN"
ADMIN_TOKEN_ENV = "ALTCRAFT_ADMIN_TOKEN"

RefT = TypeVar("RefT")
T = TypeVar("T")


class AltcraftClient:
    """An asyncio client of the Altcraft Platform API.

    Use it as ``async with AltcraftClient(url, token=...) as client`` (or call
    :meth:`aclose`). One client holds one connection pool; share it across your app, and
    :meth:`with_options` gives views of it with other per-call defaults.

    - ``base_url``, ``token``, ``admin_token``: when omitted (or None), read from the
      environment variables ``ALTCRAFT_URL``, ``ALTCRAFT_TOKEN`` and ``ALTCRAFT_ADMIN_TOKEN``
      (an empty one counts as unset); an argument always wins over the environment.

    - ``format``: ``"json"`` or ``"xml"`` (XML both ways: request bodies and replies).
    - ``timeout``: seconds per HTTP request (each call can override it).
    - ``retry``: the :class:`RetryPolicy` of every call; ``poll``: the default
      :class:`PollPolicy` of task waits.
    - ``max_connections``: open requests at once; ``rate_limit``: requests per second over
      all calls of this client (None: off), ``adaptive_rate_limit`` halves it on HTTP 429;
      ``rate_limiter``: a limiter of your own instead (any :class:`RateLimiterProtocol`, a
      limiter shared by several processes say).
    - ``auth``: ``"body"`` sends the token in the request body as documented, ``"bearer"`` in
      an ``Authorization`` header.
    - ``session``: a caller-owned ``aiohttp.ClientSession`` (never closed by the client).
    - ``headers``: sent with every request; a ``User-Agent`` among them replaces the
      client's own, ``altcraft-async/<version>``.
    - ``trust_env``: send through the proxies of ``HTTP_PROXY`` / ``HTTPS_PROXY`` (but not to
      the hosts of ``NO_PROXY``), as aiohttp does; off by default.
    - ``trace_configs``: aiohttp trace configs (e.g. OpenTelemetry's instrumentation).
    - ``event_hooks``: ``{"request": [...], "response": [...]}``, callables (sync or async)
      given a :class:`RequestEvent` before each try and a :class:`ResponseEvent` after it;
      neither holds the token.
    - ``coalesce``: a refresh of something this client is already refreshing joins that
      task instead of starting another (``False``: every refresh starts its own; each call
      can say ``coalesce=``).
    - ``transport``: any :class:`AsyncTransport` to send the requests with (``testing``'s
      ``MockTransport``, an :class:`AiohttpTransport` of your own, ...); the client closes it
      when it closes. The aiohttp options (``session``, ``ssl``, ``trace_configs``,
      ``headers``, ``max_response_size``, ``trust_env``) then belong to that transport, not
      here.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
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
        transport: AsyncTransport | None = None,
        rate_limiter: RateLimiterProtocol | None = None,
        trust_env: bool = False,
        coalesce: bool = True,
    ) -> None:
        # The tokens become Secrets first of all and their plain names go: from here on no
        # local of this frame shows them, if an error tracker renders a traceback through it.
        # An omitted one comes from the environment, straight into its Secret.
        secret = _secret_or_env(token, TOKEN_ENV)
        admin_secret = _secret_or_env(admin_token, ADMIN_TOKEN_ENV)
        token_name = "token" if token is not None else TOKEN_ENV
        admin_name = "admin_token" if admin_token is not None else ADMIN_TOKEN_ENV
        del token, admin_token
        if base_url is None:
            base_url = _url_from_env()
            _check_base_url(base_url, URL_ENV)
        else:
            _check_base_url(base_url)
        if secret is None:
            raise InvalidRequestError(f"token is missing: pass token=... or set {TOKEN_ENV}")
        _check_token(token_name, secret)
        if admin_secret is not None:
            _check_token(admin_name, admin_secret)
        if format not in ("json", "xml"):
            raise InvalidRequestError(f"format must be 'json' or 'xml', got {format!r}")
        if auth not in ("body", "bearer"):
            raise InvalidRequestError(f"auth must be 'body' or 'bearer', got {auth!r}")
        if not isinstance(trust_env, bool):
            raise InvalidRequestError(f"trust_env must be a bool, got {type(trust_env).__name__}")
        check_number("timeout", timeout, above=0.0)
        check_number("max_connections", max_connections, at_least=1, integer=True)
        check_number("rate_limit", rate_limit, above=0.0, optional=True)
        _check_options(retry, poll, max_response_size, headers, ssl, trace_configs)
        _check_transport(
            transport,
            session=session is not None,
            ssl=ssl is not True,
            trace_configs=bool(trace_configs),
            headers=bool(headers),
            max_response_size=max_response_size != DEFAULT_MAX_RESPONSE_SIZE,
            trust_env=trust_env,
        )
        _check_rate_limiter(rate_limiter, rate_limit, adaptive_rate_limit)
        if not isinstance(coalesce, bool):
            raise InvalidRequestError(f"coalesce must be a bool, got {coalesce!r}")
        hooks = EventHooks.from_mapping(event_hooks)
        self.base_url: str = base_url.rstrip("/")
        self.format: Format = format
        self.default_poll_policy: PollPolicy = poll or PollPolicy()
        #: The per-request defaults of this client's calls (a view's own: see with_options)
        self._timeout = float(timeout)
        self._retry = retry or RetryPolicy()
        #: Whether it owns the pool: a with_options view does not (its parent does)
        self._is_view = False
        self._owner: AltcraftClient | None = None  # a view's: the client that owns the pool
        bearer = auth == "bearer"
        #: How each token goes on the wire, made once: the send path only picks one.
        self._auth = Auth(secret, format, bearer=bearer)
        self._admin_auth = (
            None if admin_secret is None else Auth(admin_secret, format, bearer=bearer)
        )
        if rate_limiter is None and rate_limit:
            rate_limiter = RateLimiter(rate_limit, adaptive=adaptive_rate_limit)
        if transport is None:
            transport = AiohttpTransport(
                session=session,
                ssl=ssl,
                trace_configs=trace_configs or (),
                max_connections=max_connections,
                max_response_size=max_response_size,
                headers=headers,
                secrets=(secret, admin_secret),
                trust_env=trust_env,
            )
        self._transport = transport
        self._send = SendPath(
            transport,
            base_url=self.base_url,
            fmt=format,
            max_connections=max_connections,
            rate_limiter=rate_limiter,
            hooks=hooks,
            secrets=(secret, admin_secret),
            # an AiohttpTransport's own User-Agent wins: requests carry it from the start
            headers={"User-Agent": _agent_of(transport) or _user_agent(headers)},
        )
        self._polls = PollRegistry(polls_at_once=max_connections)
        #: Refreshes join a running one of the same thing (api._coalesce) unless told not to.
        self.coalesce = coalesce
        self._starts: StartCoalescer[Task[Any, Any]] = StartCoalescer()
        self._fanouts: weakref.WeakSet[FanOut[Any, Any]] = weakref.WeakSet()
        self._bind_namespaces()

    def _bind_namespaces(self) -> None:
        """The API areas, each calling through this client (a view binds its own)."""
        self.segments: SegmentsAPI = SegmentsAPI(self)
        self.resources: ResourcesAPI = ResourcesAPI(self)
        self.tasks: TasksAPI = TasksAPI(self)
        self.admin: AdminAPI = AdminAPI(self)
        self.relations: RelationsAPI = RelationsAPI(self)
        self.databases: DatabasesAPI = DatabasesAPI(self)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
    ) -> AltcraftClient:
        """A view of this client whose calls default to other options::

            quick = client.with_options(timeout=5, retry=RetryPolicy(attempts=1))
            await quick.segments.get_counters(segment_id=7, resource_id=24)

        ``timeout`` (seconds per HTTP request), ``retry`` (:class:`RetryPolicy`) and ``poll``
        (the :class:`PollPolicy` of task waits) replace this client's; an omitted one is kept.
        A call's own arguments still win. Everything else is shared: the connection pool and
        its ``max_connections``, the rate limiter, the hooks, the tokens, the shared task
        polls. Making a view costs no connection, so make one per call if you like.

        This client owns the pool: closing it closes every view, and closing a view (or
        leaving its ``async with``) leaves the pool open. A view keeps this client alive, so a
        pool nobody closed is still reported (a ResourceWarning) when both are dropped.
        """
        check_number("timeout", timeout, above=0.0, optional=True)
        _check_policies(retry, poll)
        view = copy.copy(self)  # shares every part: the pool, the send path, the polls...
        view._is_view = True
        view._owner = self  # alive while a view is: it warns if nobody closes the pool
        view._timeout = self._timeout if timeout is None else float(timeout)
        view._retry = retry or self._retry
        view.default_poll_policy = poll or self.default_poll_policy
        view._bind_namespaces()
        return view

    def __repr__(self) -> str:
        # safe on a client whose constructor raised half way (a traceback rendered with its
        # locals shows this self too)
        send = getattr(self, "_send", None)
        if send is None:
            return "<AltcraftClient (not constructed)>"
        state = "closed" if send.closed else "open"
        if getattr(self, "_is_view", False):
            state += " view"
        parts = urlsplit(self.base_url)
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no userinfo
        return f"<AltcraftClient {shown} format={self.format} {state}>"

    async def __aenter__(self) -> AltcraftClient:
        self._send.check_usable()
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
        connection pool; safe to call twice. On a :meth:`with_options` view it does nothing:
        the client it came from owns the pool."""
        if self._is_view:
            return
        send, transport = self._send, self._transport
        if send.bound_elsewhere() and (_may_hold_sockets(transport) or self._polls.task_ids()):
            # its waits and sockets belong to that loop, which may run in another thread
            raise ClientClosedError(
                "the client is bound to another event loop; close it from that loop"
            )
        if send.loop_ended:  # nothing of that loop can be woken or awaited any more
            send.close()
            await transport.aclose()
            return
        self._polls.close_all()
        self._starts.clear()  # a refresh after the close joins nothing: it fails as closed
        try:
            for fanout in list(self._fanouts):
                with contextlib.suppress(Exception):  # a crashed fan-out told its consumer
                    await fanout.abort(
                        ClientClosedError("the client was closed during refresh_many")
                    )
        finally:
            send.close()  # queued calls, rate-limit waits and retry pauses end now
            await transport.aclose()  # and the calls in flight

    @property
    def closed(self) -> bool:
        return self._send.closed

    @property
    def rate_limiter(self) -> RateLimiterProtocol | None:
        return self._send.rate_limiter

    def connections_in_use(self) -> int:
        """Connections held by requests right now (0 when the client is idle): the aiohttp
        pool's, or the requests in flight with another transport."""
        transport = self._transport
        if isinstance(transport, AiohttpTransport):
            return transport.connections_in_use()
        return self._send.requests_in_flight

    def polling_tasks(self) -> frozenset[str]:
        """The ids of the tasks this client is waiting on right now (empty when no ``wait``,
        ``watch`` or ``refresh_and_wait`` is running): for health checks and shutdown logs."""
        return self._polls.task_ids()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        transport = getattr(self, "_transport", None)
        if getattr(self, "_is_view", False):
            return  # its parent owns the transport, and warns for it
        if isinstance(transport, AiohttpTransport) and transport.session_open:
            _warn(
                f"Unclosed AltcraftClient {self.base_url}: use 'async with' or await aclose()",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    @overload
    async def request(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        response: None = None,
        admin: bool = False,
        starts_task: bool = False,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any: ...

    @overload
    async def request(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        response: type[T],
        admin: bool = False,
        starts_task: bool = False,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> T: ...

    async def request(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        response: Any = None,
        admin: bool = False,
        starts_task: bool = False,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """``POST {base_url}/api/v1.1/{path}`` for any endpoint the SDK does not model.

        The call goes the way of the modelled ones: the token (``admin=True``: the admin
        token) in the body or as a bearer header, the client's format, rate limit, event
        hooks, retries and typed errors (an envelope error is an :class:`APIError`
        subclass). ``params`` is plain data (None, bool, int, float, str, lists and mappings
        of them; None values are left out) and never holds ``token`` or ``format``. Returns
        the envelope's ``data`` as plain data, or as ``response`` (a model class,
        ``list[Model]``...) read by the same tolerant reader as the modelled replies.

        It is retried as a read. ``starts_task=True`` marks a call that starts a background
        task (or has any other effect): it is then retried only when the request provably
        never reached the server, as the refreshes are (``retry.retry_starts`` to opt out).
        ``timeout``, ``request_timeout`` and ``retry`` as in every method. ``path`` and
        ``params`` are checked before anything is sent (:class:`InvalidRequestError`).
        """
        path = check_path(path)
        args = check_plain(params)
        for name, flag in (("admin", admin), ("starts_task", starts_task)):
            if not isinstance(flag, bool):
                raise InvalidRequestError(f"{name} must be a bool, got {flag!r}")
        spec = request_spec(
            path,
            args,
            response=Any if response is None else response,
            admin=admin,
            starts_task=starts_task,
        )
        return await read(
            self, spec, args, timeout=timeout, request_timeout=request_timeout, retry=retry
        )

    # -- what the namespaces and the awaiter use (api._base.Caller, _awaiter.TaskSource) --

    def _call(
        self,
        spec: EndpointSpec,
        args: Mapping[str, Any],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """One endpoint call, to be awaited. ``deadline`` (``time.monotonic()`` seconds) bounds
        every try and retry of it: the start of a refresh-and-wait spends the wait's own time.

        A plain function returning the send path's coroutine (one coroutine layer less on
        every call): a bad argument raises here, where every caller awaits the call at once."""
        send = self._send
        if timeout is None:
            timeout = self._timeout  # a view's own (with_options), not the send path's
        else:
            check_number("timeout", timeout, above=0.0)
        retry = retry or self._retry
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeoutError(
                    f"{spec.name}: no time left before the deadline", endpoint=spec.name, sent=False
                )
            timeout = min(timeout, left)
            retry = evolve(retry, deadline=min(retry.deadline or left, left))
        auth = self._admin_auth if spec.admin else self._auth
        if auth is None:
            raise InvalidRequestError(f"{spec.name} needs admin_token=... on the client")
        return send.call(spec, args, auth, timeout, retry)

    async def _fetch_status(
        self,
        task_id: str,
        kind: TaskKind[ResultT, Any] = COUNTERS,  # type: ignore[assignment]
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> TaskStatus[ResultT]:
        """One ``tasks/status`` request, its result decoded as ``kind``'s; ``retry`` and
        ``timeout`` (per try) default to the client's. A status that says the task ended
        releases its start: a later refresh of the same thing starts afresh."""
        status: TaskStatus[ResultT] = await self._call(
            status_spec(kind.result_type), {"task_id": task_id}, retry=retry, timeout=timeout
        )
        self._starts.saw(task_id, status)
        return status

    def _new_task(
        self,
        task_id: str,
        kind: TaskKind[ResultT, WaitResultT],
        *,
        endpoint: str | None = None,
        created: datetime | None = None,
        push: PushWaiter | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float | None = None,
    ) -> Task[ResultT, WaitResultT]:
        """A handle on ``task_id``; its status requests use ``retry`` and ``request_timeout``
        (per try) when given, the client's otherwise."""
        source: TaskSource = self
        if retry is not None or request_timeout is not None:
            source = _PollingWith(self, retry, request_timeout)
        return Task(
            source, self._polls, task_id, kind=kind, endpoint=endpoint, created=created, push=push
        )

    def _fan_out(
        self,
        refs: Iterable[RefT],
        run_one: Callable[[RefT], Awaitable[T]],
        *,
        concurrency: int,
        fail_fast: bool,
    ) -> FanOut[RefT, T]:
        return FanOut(
            refs,
            run_one,
            concurrency=concurrency,
            fail_fast=fail_fast,
            on_start=self._fanouts.add,
            starting_at_once=self._polls.polls_at_once,
        )


def _secret_or_env(value: str | None, env: str) -> Secret | None:
    """The token given, else the one in the environment variable ``env`` (None: neither).
    The environment's value goes straight into its Secret, through no local."""
    if value is not None:
        return Secret(value)
    if os.environ.get(env):
        return Secret(os.environ[env])
    return None


def _url_from_env() -> str:
    url = os.environ.get(URL_ENV)
    if not url:
        raise InvalidRequestError(f"base_url is missing: pass it or set {URL_ENV}")
    return url


def _agent_of(transport: AsyncTransport) -> str | None:
    """The User-Agent an :class:`AiohttpTransport` was given in its headers, if any."""
    return transport.user_agent if isinstance(transport, AiohttpTransport) else None


def _user_agent(headers: Mapping[str, str] | None) -> str:
    """The caller's User-Agent if ``headers`` has one, else ``altcraft-async/<version>``."""
    for key, value in (headers or {}).items():
        if key.lower() == "user-agent":
            return value
    return f"altcraft-async/{__version__}"


class _PollingWith:
    """The client as a task's :class:`TaskSource`, its status requests made with one call's
    retry policy and per-try timeout (a wait's polls are shared with the other waits on its
    task: each poll is made with the options of the wait that leads it)."""

    __slots__ = ("_client", "_retry", "_timeout", "default_poll_policy")

    def __init__(
        self, client: AltcraftClient, retry: RetryPolicy | None, timeout: float | None
    ) -> None:
        self._client = client
        self._retry = retry
        self._timeout = timeout
        self.default_poll_policy = client.default_poll_policy

    async def _fetch_status(
        self, task_id: str, kind: TaskKind[ResultT, Any]
    ) -> TaskStatus[ResultT]:
        return await self._client._fetch_status(
            task_id, kind, retry=self._retry, timeout=self._timeout
        )


def _check_base_url(base_url: object, name: str = "base_url") -> None:
    """An http(s) URL with a host and a valid port, and no credentials (they would show in
    events and messages; send them with ``headers=``). Messages never quote the URL; they
    name it ``name`` (the environment variable it came from, say)."""
    if not isinstance(base_url, str):
        raise InvalidRequestError(f"{name} must be a str, got {type(base_url).__name__}")
    example = "such as https://example.altcraft.com"
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise InvalidRequestError(f"{name} is not a valid URL ({example})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(f"{name} must be an http(s) URL with a host ({example})")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequestError(
            f"{name} must not hold credentials (user:password@); send them with headers="
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
    _check_policies(retry, poll)
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


def _check_policies(retry: object, poll: object) -> None:
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise InvalidRequestError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
    if poll is not None and not isinstance(poll, PollPolicy):
        raise InvalidRequestError(f"poll must be a PollPolicy, got {type(poll).__name__}")


def _check_transport(transport: object, **aiohttp_options: bool) -> None:
    """``transport`` is an AsyncTransport, and no option of the aiohttp transport was given
    with it (they would be silently ignored). ``aiohttp_options``: which ones were given."""
    if transport is None:
        return
    if not isinstance(transport, AsyncTransport):
        raise InvalidRequestError(
            "transport must be an AsyncTransport (async send(request, *, timeout) and "
            f"aclose()), got {type(transport).__name__}"
        )
    given = [name for name, was_given in aiohttp_options.items() if was_given]
    if given:
        raise InvalidRequestError(
            f"transport= cannot be combined with {', '.join(given)}: they configure the "
            "aiohttp transport; give them to AiohttpTransport(...) instead"
        )


def _check_rate_limiter(limiter: object, rate_limit: float | None, adaptive: bool) -> None:
    """``rate_limiter`` has the limiter protocol and is not given with the options that make
    the built-in one."""
    if limiter is None:
        return
    if rate_limit is not None or adaptive:
        raise InvalidRequestError(
            "rate_limiter= replaces rate_limit= and adaptive_rate_limit=: give one or the other"
        )
    if not isinstance(limiter, RateLimiterProtocol):
        raise InvalidRequestError(
            "rate_limiter must have async acquire(sleep), on_rate_limited(paced_at) and "
            f"on_success(), got {type(limiter).__name__}"
        )


def _may_hold_sockets(transport: AsyncTransport) -> bool:
    """Whether closing ``transport`` may touch its loop's sockets (an unknown one may)."""
    return not isinstance(transport, AiohttpTransport) or transport.session_open


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
