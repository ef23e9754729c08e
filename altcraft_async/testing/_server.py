"""``FakeAltcraft``: the stateful fake platform served over real HTTP by ``aiohttp.web``.

One route, ``POST /api/v1.1/{path}``, serves the endpoints of :mod:`._endpoints`. Each request
goes through the same steps, in this order, so that faults compose predictably:

1. record it and give it its call number; ask the fault schedule for a decision;
2. wait the decision's delay (real time), read and parse the body (for the recording);
3. a fault that strikes *before processing* replies now: no state changes, no task is created;
4. check the token, validate, act (maybe create a task) and build the envelope;
5. a fault that strikes *after processing* damages the reply; otherwise it is sent.

Envelope errors go out with HTTP 200 (as the platform does) unless ``error_http_status=True``.
Every envelope reply, and every feedback payload, is rendered in the fake's :class:`Dialect`
(the documentation's way unless told otherwise): its data and bytes by the dialect, its HTTP
options (gzip, chunked, ``Connection: close``, content type, dated ``Retry-After``) here.
The server binds to the caller's running loop; :meth:`FakeAltcraft.stop` cancels task timers and
webhook deliveries and closes everything, leaving no pending asyncio task behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import web

from ._clock import Clock, ManualClock, RealClock
from ._dialects import Dialect
from ._endpoints import ENDPOINTS, TASK_KINDS, ApiError, Context, Endpoint, serve
from ._faults import Fault, Faults
from ._platform import Platform
from ._recording import Recorder, RequestRecord, Stats, TokenKind
from ._seed import seeded_platform
from ._tasks import PlanSource, TaskBook, TaskKind, TaskPlan, TaskRecord
from ._webhooks import WebhookDelivery, WebhookRecord, WebhookSender
from ._wire import Format, WireError, read_request, reply_format

__all__ = ["API_PREFIX", "FakeAltcraft"]

API_PREFIX = "/api/v1.1/"
_OK_TEXT = "Successful operation"


class FakeAltcraft:
    """A fake Altcraft platform on a real local HTTP port.

    ``async with FakeAltcraft() as fake:`` starts it on ``127.0.0.1`` and a free port;
    ``fake.url`` is the base URL to give a client (it appends ``/api/v1.1/...`` itself).
    """

    def __init__(
        self,
        platform: Platform | None = None,
        *,
        token: str = "test-token",
        tokens: Iterable[str] = (),
        admin_token: str | None = "admin-token",
        task_plan: PlanSource | None = None,
        clock: Clock | Literal["real", "manual"] = "real",
        time_scale: float = 1.0,
        error_http_status: bool = False,
        webhook_delivery: WebhookDelivery = "once",
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout: float = 0.25,
        dialect: Dialect | str | None = None,
    ) -> None:
        """Configure the fake; nothing runs until :meth:`start`.

        ``tokens`` are extra accepted user tokens. ``task_plan`` is the default plan, or a
        callable drawing one per task from the fake's ``Random(seed)`` (default: immediate).
        ``clock`` is ``"real"`` (sped up by ``time_scale``), ``"manual"`` (advance it with
        ``fake.clock.advance``) or any :class:`Clock`. ``seed`` drives task ids and progress
        noise. ``shutdown_timeout`` bounds how long :meth:`stop` waits for requests in progress.
        ``dialect`` is a :class:`Dialect` or preset names (``"go,proxy"``); when None,
        ``$ALTCRAFT_FAKE_DIALECT`` names it (``plain``, the documentation's way, when unset).
        """
        self.platform: Platform = platform if platform is not None else Platform()
        self.clock: Clock = (
            RealClock(time_scale)
            if clock == "real"
            else ManualClock()
            if clock == "manual"
            else clock
        )
        self.faults: Faults = Faults()
        self.error_http_status = error_http_status
        self.dialect: Dialect = (
            Dialect.from_env()
            if dialect is None
            else Dialect.named(dialect)
            if isinstance(dialect, str)
            else dialect
        )
        self._token = token
        self._user_tokens = frozenset((token, *tokens))
        self._admin_token = admin_token
        self._host = host
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._recorder = Recorder()
        self._webhooks = WebhookSender(self.clock.now, webhook_delivery)
        self._tasks = TaskBook(
            self.clock,
            task_plan if task_plan is not None else TaskPlan.immediate(),
            seed=seed,
            on_done=self._task_done,
        )
        self._context = Context(self.platform, self._tasks, self.clock)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @classmethod
    def seeded(
        cls,
        *,
        profiles: int = 10_000,
        segments: int = 50,
        resources: int = 3,
        databases: int = 1,
        relations: int = 2,
        senders: int = 3,
        seed: int = 1,
        **server_options: Any,
    ) -> FakeAltcraft:
        """A fake over :func:`seeded_platform` data; ``seed`` also seeds task ids and noise."""
        platform = seeded_platform(
            profiles=profiles,
            segments=segments,
            resources=resources,
            databases=databases,
            relations=relations,
            senders=senders,
            seed=seed,
        )
        return cls(platform, seed=seed, **server_options)

    def __repr__(self) -> str:
        state = self._url or "stopped"
        return (
            f"FakeAltcraft({state}, requests={len(self._recorder.requests)}, "
            f"tasks={len(self._tasks.tasks)}, {self.platform!r})"
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve on the running event loop."""
        if self._runner is not None:
            raise RuntimeError("FakeAltcraft is already running")
        app = web.Application()
        app.router.add_post(API_PREFIX + "{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=self._shutdown_timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
            await self._webhooks.open()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Stop serving; cancel task timers and webhook deliveries; close every connection."""
        runner, self._runner, self._url = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
        self._tasks.cancel_timers()
        await self._webhooks.close()

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

    # --- public state -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the base URL of the running fake."""
        if self._url is None:
            raise RuntimeError("FakeAltcraft is not running; use 'async with' or start()")
        return self._url

    @property
    def token(self) -> str:
        """The main user token (kept out of every repr and record)."""
        return self._token

    @property
    def admin_token(self) -> str | None:
        return self._admin_token

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request since the last :meth:`reset`, in arrival order."""
        return self._recorder.requests

    def calls(self, path: str) -> int:
        """How many requests ``path`` received since the last :meth:`reset`."""
        return self._recorder.calls[path]

    @property
    def tasks(self) -> Mapping[str, TaskRecord]:
        """Every task created (never cleared by :meth:`reset`: they can still be polled)."""
        return self._tasks.tasks

    @property
    def webhooks(self) -> list[WebhookRecord]:
        return self._webhooks.records

    @property
    def webhook_delivery(self) -> WebhookDelivery:
        return self._webhooks.delivery

    @webhook_delivery.setter
    def webhook_delivery(self, mode: WebhookDelivery) -> None:
        self._webhooks.delivery = mode

    @property
    def stats(self) -> Stats:
        recorder = self._recorder
        return Stats(
            requests=len(recorder.requests),
            by_endpoint=dict(recorder.calls),
            concurrent=recorder.concurrent,
            max_concurrent=recorder.max_concurrent,
            tasks_started=len(self._tasks.tasks),
            tasks_in_flight=self._tasks.in_flight,
            max_tasks_in_flight=self._tasks.max_in_flight,
            webhooks_sent=len(self._webhooks.records),
        )

    def plan_tasks(
        self,
        plan: TaskPlan,
        *,
        kind: TaskKind | None = None,
        segment_id: int | None = None,
        resource_id: int | None = None,
        count: int | None = None,
    ) -> None:
        """Use ``plan`` for the next ``count`` matching task starts (every one when None).

        ``kind`` is a task kind (``segment``, ``resource``, ``database``); None matches any.
        """
        if kind is not None and kind not in TASK_KINDS:
            raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(TASK_KINDS)}")
        self._tasks.plan_tasks(
            plan, kind=kind, segment_id=segment_id, resource_id=resource_id, count=count
        )

    def advance(self, seconds: float) -> None:
        """Advance a manual clock (timers due by then fire now)."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs FakeAltcraft(clock='manual')")
        self.clock.advance(seconds)

    async def wait_webhooks(self) -> None:
        """Wait until every scheduled webhook delivery has finished."""
        await self._webhooks.wait_idle()

    def reset(self) -> None:
        """Forget recorded requests, webhook records and peaks; call numbers restart at 1.

        The platform, the tasks and the fault schedule are kept.
        """
        self._recorder.reset()
        self._tasks.reset_stats()
        self._webhooks.records.clear()

    # --- serving ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        record = self._recorder.open(self.clock.now(), path, request.content_type)
        try:
            return await self._serve(request, path, record)
        finally:
            self._recorder.close()

    async def _serve(
        self, request: web.Request, path: str, record: RequestRecord
    ) -> web.StreamResponse:
        endpoint = ENDPOINTS.get(path)
        if endpoint is None:
            hint = " (this endpoint has a trailing slash)" if f"{path}/" in ENDPOINTS else ""
            return self._reply(request, record, "json", None, 404, f"unknown method {path!r}{hint}")
        decision = self.faults.decide(path, record.call)
        record.fault = decision.label
        if decision.delay > 0:
            await asyncio.sleep(decision.delay)
        try:
            body = await request.read()
        except ConnectionError:  # the client gave up (cancelled) while sending: nobody to answer
            record.fault = record.fault or "client disconnected"
            return web.Response(status=499)
        fmt: Format = "json"
        try:
            params = read_request(body, request.content_type)
            token, record.token_source = self._token_of(params, request)
            record.token = self._token_kind(token)
            record.params = {key: value for key, value in params.items() if key != "token"}
            fmt = record.format = reply_format(params)
        except WireError as exc:
            return self._reply(request, record, fmt, None, 400, str(exc))
        fault = decision.fault
        if fault is not None and not fault.after_processing:
            return await self._fault(request, record, fault, fmt, b"")
        try:
            self._authorize(record.token, endpoint)
            data = serve(endpoint, self._context, params)
        except ApiError as exc:
            return self._reply(request, record, fmt, None, exc.code, exc.text)
        if endpoint.starts_task:
            record.task_id = data["task_id"]
        response = self._reply(request, record, fmt, data, 0, _OK_TEXT)
        if fault is not None:
            assert isinstance(response, web.Response) and isinstance(response.body, bytes)
            return await self._fault(request, record, fault, fmt, response.body)
        return response

    def _token_of(
        self, params: Mapping[str, Any], request: web.Request
    ) -> tuple[str | None, Literal["body", "header"] | None]:
        token = params.get("token")
        if isinstance(token, str) and token:
            return token, "body"
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip(), "header"
        return None, None

    def _token_kind(self, token: str | None) -> TokenKind:
        if token is None:
            return "missing"
        if token in self._user_tokens:
            return "user"
        return "admin" if token == self._admin_token else "invalid"

    @staticmethod
    def _authorize(kind: TokenKind, endpoint: Endpoint) -> None:
        if kind == "missing":
            raise ApiError(401, "token required")
        if kind == "invalid":
            raise ApiError(401, "invalid token")
        if endpoint.admin and kind == "user":
            raise ApiError(403, "forbidden: this method needs an admin token")
        if not endpoint.admin and kind == "admin":
            raise ApiError(403, "forbidden: an admin token cannot call the user API")

    def _reply(
        self,
        request: web.Request,
        record: RequestRecord,
        fmt: Format,
        data: Any,
        error: int,
        error_text: str,
    ) -> web.Response:
        """An envelope reply; an unknown path is a real HTTP 404 whatever the option says."""
        status = 200
        if error and (self.error_http_status or error == 404):
            status = error if 400 <= error <= 599 else 400
        record.http_status, record.error, record.error_text = status, error, error_text
        dialect = self.dialect
        response = web.Response(
            status=status,
            body=dialect.reply_body(data, error, error_text, fmt),
            headers=self._content_type(fmt),
        )
        if dialect.gzip and "gzip" in request.headers.get("Accept-Encoding", "").lower():
            response.enable_compression(web.ContentCoding.gzip)
        if dialect.chunked:
            response.enable_chunked_encoding()
        if dialect.connection_close:
            response.force_close()
        return response

    async def _fault(
        self, request: web.Request, record: RequestRecord, fault: Fault, fmt: Format, body: bytes
    ) -> web.StreamResponse:
        """Send (or withhold) the reply ``fault`` describes; ``body`` is the real reply."""
        record.error = record.error_text = None
        record.http_status = fault.status
        if fault.kind == "drop":
            record.http_status = None
            _close(request)
            return web.Response()  # never written: the transport is gone
        if fault.kind == "truncated":
            full = body or self.dialect.reply_body(None, 0, _OK_TEXT, fmt)
            response = web.StreamResponse(status=200, headers=self._content_type(fmt))
            response.content_length = len(full)
            await response.prepare(request)
            await response.write(full[: len(full) // 2])
            _close(request)
            return response
        if fault.kind == "api_error":
            return self._reply(request, record, fmt, None, fault.code, fault.error_text)
        if fault.kind == "malformed":
            return web.Response(status=200, body=fault.body, headers=self._content_type(fmt))
        headers = {}
        if fault.kind == "rate_limited" and fault.retry_after is not None:
            # real time: the client reads a date against its own clock, not the fake's
            headers["Retry-After"] = self.dialect.retry_after(fault.retry_after, datetime.now(UTC))
        return web.Response(
            status=fault.status, body=fault.body, headers=headers, content_type="text/plain"
        )

    def _task_done(self, record: TaskRecord) -> None:
        """Compute a successful task's result, then fire its feedback webhook if it has one."""
        if record.plan.succeeds:
            at = self.clock.wall(record.done_at or record.created_at)
            snapshot = TASK_KINDS[record.kind].complete(self.platform, record, at)
            record.result = [snapshot.task_wire()]
        if record.feedback_url is not None:
            payload = self.dialect.webhook(record.view(), record.task_id)
            self._webhooks.send(record.task_id, record.feedback_url, payload)

    def _content_type(self, fmt: Format) -> dict[str, str]:
        return {"Content-Type": self.dialect.content_type(fmt)}


def _close(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()
