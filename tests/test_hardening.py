"""Hardening (issue 18): what an adversary broke, each through the public API on real sockets.

Every test drives a real client or receiver against ``FakeAltcraft`` over loopback, or against
a small raw server written here (a TLS port that never answers, a reply with a hostile header,
an echoing proxy); attackers are raw sockets. Each test failed before its fix.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import time
import traceback
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web
from helpers import small_platform
from hypothesis import example, given, settings
from hypothesis import strategies as st

import altcraft_async
from altcraft_async import (
    AltcraftClient,
    AltcraftError,
    AuthenticationError,
    Backoff,
    BadRequestError,
    ClientClosedError,
    DecodeError,
    FeedbackReceiver,
    HTTPStatusError,
    InvalidRequestError,
    PermissionDeniedError,
    PollPolicy,
    RequestEvent,
    RequestTimeoutError,
    ResponseEvent,
    RetryPolicy,
    SegmentRef,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

pytestmark = pytest.mark.anyio

# Tokens with every character JSON, XML, URLs and Python escape differently; SECRET in each.
TOKEN = "u/SECRET-\"&<\u00e9\u20ac>'\\"
ADMIN = "adm/SECRET-%#\U0001f600"
MARKER = "SECRET"

FAST = Backoff(initial=0.001, max_interval=0.005)
NO_RETRY = RetryPolicy(attempts=1)
SEG_GET = "segments/get_counters"
SEG_REFRESH = "segments/refresh_counters"
SEG = {"segment_id": 7, "resource_id": 24}


@asynccontextmanager
async def serve(**options: Any) -> AsyncIterator[FakeAltcraft]:
    async with FakeAltcraft(
        small_platform(), token=TOKEN, admin_token=ADMIN, shutdown_timeout=0.05, **options
    ) as fake:
        yield fake


def client_of(url: str, **options: Any) -> AltcraftClient:
    options.setdefault("token", TOKEN)
    options.setdefault("admin_token", ADMIN)
    options.setdefault("retry", RetryPolicy(backoff=FAST))
    return AltcraftClient(url, **options)


@asynccontextmanager
async def web_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """A small aiohttp server answering every POST with ``handler``; yields its base URL."""
    app = web.Application()
    app.router.add_post("/{path:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.05)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class RawServer:
    """A TCP server running ``serve(reader, writer)`` per connection; counts connections and
    closes every one it accepted when the test is done.

    The handler task is made and registered as the connection is made (a plain function as
    the callback), so the end of the block cannot miss a connection accepted just before it.
    The loop takes in a connection some steps after the kernel accepted it: a client can have
    connected, written and given up first, so a test waits for the count (:meth:`accepted`)."""

    def __init__(self, serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]):
        self._serve = serve
        self.connections = 0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._changed.set()
        self._writers.append(writer)
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def accepted(self, count: int) -> int:
        """Wait (bounded) until at least ``count`` connections were taken in; how many were."""
        with anyio.fail_after(10):
            while self.connections < count:
                self._changed.clear()
                await self._changed.wait()
        return self.connections

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()


async def until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read and ignore everything, never answer (a TLS port that never shakes hands, or a
    server that takes a request and never replies)."""
    while await reader.read(65536):
        pass


# --- item 1: a call queued in the client's own pool is not "sent" ----------------------------


async def test_calls_queued_for_a_connection_keep_their_whole_timeout() -> None:
    """Before: with one connection and a 0.15 s server, 4 of 6 refreshes ended as
    RequestTimeoutError(sent=True) after 0.4 s, though they never left the client.

    Here the server takes 0.25 s and each call may take 0.9 s once it has its connection
    (0.65 s to spare on a late loop). Counted from the start, as before, the 4th to 6th calls
    would end at 1.0, 1.25 and 1.5 s, past 0.9 s: the old bug still fails this test."""
    queued: list[object] = []

    async def on_queued(session: Any, context: Any, params: Any) -> None:
        queued.append(params)

    trace = aiohttp.TraceConfig()
    trace.on_connection_queued_start.append(on_queued)
    tasks: list[Any] = []
    async with serve() as fake:
        fake.faults.script(SEG_REFRESH, Fault.delay(0.25))
        options = {"max_connections": 1, "timeout": 0.9, "retry": NO_RETRY, "coalesce": False}
        async with client_of(fake.url, trace_configs=[trace], **options) as client:

            async def start() -> None:
                tasks.append(await client.segments.refresh_counters(**SEG))

            async with anyio.create_task_group() as group:
                for _ in range(6):
                    group.start_soon(start)
        assert len(tasks) == 6 and len(fake.tasks) == 6
    assert queued == []  # nothing ever waited in aiohttp's pool, under its timer


@pytest.mark.parametrize(
    ("scheme", "sent", "connections"),
    [
        # TLS handshake never answered: the request was never written, so a start is retried
        ("https", False, 3),
        # the request was written and never answered: it may have been processed
        ("http", True, 1),
    ],
)
async def test_a_start_that_never_wrote_its_request_says_so_and_is_retried(
    scheme: str, sent: bool, connections: int
) -> None:
    """Before: both cases were RequestTimeoutError(sent=True), the start tried once."""
    policy = RetryPolicy(attempts=3, backoff=FAST)
    async with RawServer(until_closed) as server:
        url = f"{scheme}://127.0.0.1:{server.port}"
        async with client_of(url, ssl=False, timeout=0.1, retry=policy) as client:
            with anyio.fail_after(5), pytest.raises(RequestTimeoutError) as info:
                await client.segments.refresh_counters(**SEG)
        assert info.value.sent is sent
        assert await server.accepted(connections) == connections


async def test_a_retry_deadline_spent_waiting_for_a_connection_is_not_sent() -> None:
    """Before: the deadline error of a call still queued said sent=True."""
    in_flight = anyio.Event()

    def on_request(event: RequestEvent) -> None:
        if event.endpoint == "segments.get_counters":
            in_flight.set()

    async with serve() as fake:
        fake.faults.script(SEG_GET, Fault.delay(0.5))
        options = {"max_connections": 1, "event_hooks": {"request": [on_request]}}
        async with client_of(fake.url, **options) as client, anyio.create_task_group() as group:
            group.start_soon(lambda: client.segments.get_counters(**SEG, retry=NO_RETRY))
            await in_flight.wait()
            with pytest.raises(RequestTimeoutError) as info:
                await client.segments.refresh_counters(**SEG, retry=RetryPolicy(deadline=0.1))
        assert info.value.sent is False
        assert fake.calls(SEG_REFRESH) == 0


# --- item 2: header values from the network end in a typed error or are ignored --------------

ABSURD_RETRY_AFTER = [
    "Mon, 01 Jan 99999999999999999999 00:00:00 GMT",  # raised OverflowError
    "Mon, -6210762351 Jan 0 0:0:0 GMT",  # raised OverflowError
    "Tue, 99 Foo 2026 99:99:99 GMT",
    "\u00e9\u00e9\u00e9",
]


@pytest.mark.parametrize("retry_after", ABSURD_RETRY_AFTER)
async def test_an_unreadable_retry_after_is_ignored_and_the_call_retried(retry_after: str) -> None:
    """Before: the first two escaped as a raw OverflowError."""
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=429, headers={"Retry-After": retry_after}, text="slow")
        return web.json_response({"error": 0, "error_text": "", "data": []})

    async with web_server(handler) as url, client_of(url) as client:
        with anyio.fail_after(5):
            assert await client.segments.get_counters(**SEG) == []
    assert calls == 2


@pytest.mark.parametrize("retry_after", ["Fri, 31 Dec 9999 23:59:59 -2359", "9" * 400])
async def test_a_retry_after_too_far_away_gives_up_with_the_http_error(retry_after: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=429, headers={"Retry-After": retry_after}, text="slow")

    async with web_server(handler) as url, client_of(url) as client:
        with pytest.raises(HTTPStatusError) as info:
            await client.segments.get_counters(**SEG)
    assert info.value.status == 429


@settings(max_examples=300, deadline=None)
@example(ABSURD_RETRY_AFTER[0])
@example(ABSURD_RETRY_AFTER[1])
@given(st.text(max_size=80) | st.from_regex(r"[A-Za-z]{3}, -?\d{1,25} [A-Za-z]{3} -?\d{1,25}.*"))
def test_no_retry_after_value_makes_the_policy_raise(value: str) -> None:
    error = HTTPStatusError("x", status=429, headers={"Retry-After": value})
    delay = RetryPolicy().delay(0, error, 0.5, datetime(2026, 1, 1, tzinfo=UTC))
    assert delay is None or delay >= 0


async def test_one_absurd_retry_after_does_not_end_a_refresh_many() -> None:
    """Before: a 429 with an unreadable date on one start ended the whole fan-out with a raw
    OverflowError. Here a proxy in front of the fake refuses the second start so."""
    starts = 0

    async with serve(task_plan=TaskPlan.after_polls(1)) as fake:
        upstream = aiohttp.ClientSession()

        async def proxy(request: web.Request) -> web.Response:
            nonlocal starts
            body = await request.read()
            if request.path.endswith(SEG_REFRESH):
                starts += 1
                if starts == 2:
                    date = ABSURD_RETRY_AFTER[0]
                    return web.Response(status=429, headers={"Retry-After": date}, text="wait")
            headers = {"Content-Type": request.content_type}
            async with upstream.post(fake.url + request.path, data=body, headers=headers) as r:
                return web.Response(status=r.status, body=await r.read(), headers=headers)

        try:
            async with web_server(proxy) as url, client_of(url) as client:
                refs = [SegmentRef(7, 24, 1), SegmentRef(8, 24, 1), SegmentRef(7, 24)]
                with anyio.fail_after(10):
                    async with client.segments.refresh_many(refs, concurrency=1) as outcomes:
                        results = [outcome async for outcome in outcomes]
        finally:
            await upstream.close()
    assert [outcome.error for outcome in results] == [None, None, None]
    assert starts == 4  # the refused start was retried once


# --- item 3: every escaping of every secret is scrubbed from errors --------------------------


def utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def forms_of(secret: str) -> dict[str, str]:
    """The secret as a server or proxy might echo it back."""
    json_u = "".join(f"\\u{unit:04x}" for unit in utf16_units(secret))
    return {
        "as sent": secret,
        "json": json.dumps(secret)[1:-1],
        "json, slash escaped": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "json, every char \\u": json_u,
        "json, every char \\U upper": json_u.upper().replace("\\U", "\\u"),
        "json in json": json.dumps(json.dumps(secret))[1:-1],
        "json, mixed": "".join(
            c if i % 2 else f"\\u{ord(c):04x}" for i, c in enumerate(secret) if ord(c) < 0x10000
        )
        + "".join(c for c in secret if ord(c) >= 0x10000),
        "xml": html.escape(secret, quote=True),
        "xml &#x..;": "".join(f"&#x{ord(c):X};" for c in secret),
        "xml &#..;": "".join(f"&#{ord(c)};" for c in secret),
        "xml escaped twice": "".join(f"&amp;#{ord(c)};" for c in secret),
        "percent": urllib.parse.quote(secret, safe=""),
        "python repr": repr(secret)[1:-1],
        "python ascii": ascii(secret)[1:-1],
    }


def unescaped(text: str) -> list[str]:
    """``text`` read back through every unescaping, to find a secret however it is shown."""
    readings = [text, html.unescape(text), html.unescape(html.unescape(text))]
    readings.append(urllib.parse.unquote(text))
    for reading in list(readings):
        try:
            with warnings.catch_warnings():  # "invalid escape sequence" for \/ and the like
                warnings.simplefilter("ignore", DeprecationWarning)
                backslashes = reading.encode("latin-1", "backslashreplace").decode("unicode_escape")
            readings.append(backslashes.encode("utf-16", "surrogatepass").decode("utf-16"))
        except UnicodeError:
            pass
    return readings + [reading.replace("\x00", "") for reading in readings]  # UTF-16


def shown(error: BaseException) -> str:
    """Everything an error tracker would print of an error."""
    parts = [str(error), repr(error), repr(vars(error)), "".join(traceback.format_exception(error))]
    return "\n".join(parts)


REPLIES: dict[str, Callable[[str], web.Response]] = {
    "json envelope": lambda form: web.Response(
        body=b'{"error": 400, "error_text": "bad token ' + form.encode() + b'"}',
        content_type="application/json",
    ),
    "xml envelope": lambda form: web.Response(
        body=b"<xml><error>400</error><error_text>bad " + form.encode() + b"</error_text></xml>",
        content_type="application/xml",
    ),
    "html 502": lambda form: web.Response(
        status=502, body=b"<p>token=" + form.encode() + b"</p>", content_type="text/html"
    ),
    "garbage 200": lambda form: web.Response(body=b"oops " + form.encode()),
    "header of a 503": lambda form: web.Response(status=503, headers={"X-Debug": form}, text="x"),
    # an encoding rather than an escaping: only the secret as sent is tried this way
    "utf-16 body": lambda form: web.Response(status=500, body=form.encode("utf-16-le")),
}


@pytest.mark.parametrize("reply", sorted(REPLIES))
@pytest.mark.parametrize("which", ["token", "admin token"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_an_echoed_secret_escaped_any_way_never_reaches_an_error(
    reply: str, which: str, fmt: str
) -> None:
    """Before: the JSON ``\\/`` and ``\\u00XX`` forms and XML character references reached
    the message, decoded back to the plain token."""
    secret = TOKEN if which == "token" else ADMIN
    forms = forms_of(secret)
    current = ""

    async def handler(request: web.Request) -> web.Response:
        return REPLIES[reply](current)

    leaks = []
    async with web_server(handler) as url, client_of(url, format=fmt, retry=NO_RETRY) as client:
        for name, form in forms.items():
            if reply == "utf-16 body" and name != "as sent":
                continue
            current = form
            with pytest.raises(AltcraftError) as info:
                if which == "token":
                    await client.segments.get_counters(**SEG)
                else:
                    await client.admin.sender_queue_stats(sender_id=1)
            text = shown(info.value)
            if any(MARKER in reading for reading in unescaped(text)):
                leaks.append(f"{name}: {text[:300]}")
    assert leaks == []


async def test_a_secret_quoted_by_aiohttp_from_a_broken_reply_never_reaches_an_error() -> None:
    """Before: aiohttp's message about a bad header line quoted the line, token and all."""
    line = ascii(TOKEN)[1:-1].encode()

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + line + b"\r\n\r\n{}")
        await writer.drain()

    async with RawServer(reply) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with client_of(url, retry=NO_RETRY) as client:
            with pytest.raises(TransportError) as info:
                await client.segments.get_counters(**SEG)
    text = shown(info.value)
    assert "Content-Length" in text
    assert not any(MARKER in reading for reading in unescaped(text))


# --- item 6: no frame of a traceback holds a token -------------------------------------------
#
# Error trackers render a traceback with the locals of every frame (Sentry's
# include_local_variables, ``traceback.TracebackException(capture_locals=True)``). Every kind
# of error the SDK raises is provoked here, each traceback is rendered so and every local of
# every frame (causes, contexts and group members included) is shown with repr().

SDK_ROOT = os.path.dirname(altcraft_async.__file__) + os.sep
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.01, max_interval=0.02), timeout=5)
ECHO = f"<p>you sent token={TOKEN} admin={ADMIN}</p>".encode()
ADMIN_PATH = "admin/senders/queue/stats/"


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception an error tracker renders with it."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    found = []
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        found.append(exc)
        todo += [exc.__cause__, exc.__context__, *getattr(exc, "exceptions", ())]
    return found


def shows_a_token(text: str) -> bool:
    return any(MARKER in reading for reading in unescaped(text))


@attrs.define
class FrameSearch:
    """What :func:`search_frames` found: the locals whose repr shows a token, in the SDK's
    frames and in others (aiohttp's, asyncio's, the test's), and the files of all frames."""

    sdk: list[str] = attrs.Factory(list)
    others: list[str] = attrs.Factory(list)
    files: set[str] = attrs.Factory(set)


def search_frames(error: BaseException) -> FrameSearch:
    """Every local of every frame of ``error``'s traceback and of those chained to it."""
    found = FrameSearch()
    for exc in chain(error):
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            ours = code.co_filename.startswith(SDK_ROOT)
            found.files.add(code.co_filename)
            for name, value in tb.tb_frame.f_locals.items():
                try:
                    text = repr(value)
                except Exception as exc_repr:  # capture_locals shows a placeholder then
                    text = f"<repr failed: {type(exc_repr).__name__}>"
                if shows_a_token(text):
                    path = code.co_filename.removeprefix(SDK_ROOT)
                    (found.sdk if ours else found.others).append(
                        f"{path}:{code.co_qualname}: {name}"
                    )
            tb = tb.tb_next
    return found


def rendered_with_locals(error: BaseException) -> str:
    summary = traceback.TracebackException.from_exception(error, capture_locals=True)
    return "".join(summary.format())


@attrs.define
class Scene:
    """What a scenario runs against: the fake, a client of it, the client's options."""

    fake: FakeAltcraft
    client: AltcraftClient
    options: dict[str, Any]
    receiver: FeedbackReceiver


async def echoed_api_error(scene: Scene) -> None:
    scene.fake.faults.next(SEG_GET, Fault.api_error(400, f"bad token {TOKEN}"))
    await scene.client.segments.get_counters(**SEG)


async def echoed_admin_api_error(scene: Scene) -> None:
    scene.fake.faults.next(ADMIN_PATH, Fault.api_error(403, f"{ADMIN} may not"))
    await scene.client.admin.sender_queue_stats(sender_id=119)


async def echoed_http_502(scene: Scene) -> None:
    scene.fake.faults.next(SEG_GET, Fault.http(502, ECHO))
    await scene.client.segments.get_counters(**SEG, retry=NO_RETRY)


async def echoed_undecodable_reply(scene: Scene) -> None:
    scene.fake.faults.next(ADMIN_PATH, Fault.malformed(ECHO))
    await scene.client.admin.sender_queue_stats(sender_id=119, retry=NO_RETRY)


async def dropped_connection(scene: Scene) -> None:
    scene.fake.faults.next(SEG_REFRESH, Fault.drop())
    await scene.client.segments.refresh_counters(**SEG, retry=NO_RETRY)


async def truncated_reply(scene: Scene) -> None:
    scene.fake.faults.next(SEG_GET, Fault.truncated())
    await scene.client.segments.get_counters(**SEG, retry=NO_RETRY)


async def reset_after_the_request(scene: Scene) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()  # an RST, once the request arrived

    async with RawServer(reset) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with client_of(url, **scene.options, retry=NO_RETRY) as client:
            await client.admin.sender_queue_stats(sender_id=119)


async def request_timeout(scene: Scene) -> None:
    scene.fake.faults.next(SEG_GET, Fault.delay(1))
    await scene.client.segments.get_counters(**SEG, timeout=0.05, retry=NO_RETRY)


async def start_past_the_wait_deadline(scene: Scene) -> None:
    scene.fake.faults.next(SEG_REFRESH, Fault.delay(1))
    await scene.client.segments.refresh_and_wait(**SEG, timeout=0.1)


async def oversized_reply_echoing_a_header(scene: Scene) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"{" * 2000, headers={"X-Echo": ascii(TOKEN)})

    async with web_server(handler) as url, client_of(url, **scene.options) as client:
        await client.admin.sender_queue_stats(sender_id=119)


async def invalid_argument(scene: Scene) -> None:
    await scene.client.segments.get_counters(segment_id=-1, resource_id=24)


async def invalid_match(scene: Scene) -> None:
    await scene.client.relations.get_counter(relation_id=3, match="nobody")  # type: ignore[arg-type]


async def invalid_admin_argument(scene: Scene) -> None:
    await scene.client.admin.sender_queue_stats(sender_id=119, group="nope")  # type: ignore[arg-type]


async def invalid_client_option(scene: Scene) -> None:
    AltcraftClient(scene.fake.url, token=TOKEN, admin_token=ADMIN, format="yaml")  # type: ignore[arg-type]


async def token_with_a_line_break(scene: Scene) -> None:
    AltcraftClient(scene.fake.url, token=TOKEN + "\n", **scene.options)


async def admin_token_with_a_line_break(scene: Scene) -> None:
    AltcraftClient(scene.fake.url, token=TOKEN, admin_token=ADMIN + "\r\n", **scene.options)


async def failed_task(scene: Scene) -> None:
    scene.fake.plan_tasks(TaskPlan.fails(status="error"), count=1)
    await scene.client.segments.refresh_and_wait(**SEG, policy=FAST_POLL)


async def failed_pushed_task(scene: Scene) -> None:
    scene.fake.plan_tasks(TaskPlan.fails(after_seconds=0.05), kind="resource", count=1)
    await scene.client.resources.refresh_and_wait(
        resource_id=24, database_id=1, feedback=scene.receiver
    )


async def task_timeout_after_echoed_poll_errors(scene: Scene) -> None:
    scene.fake.plan_tasks(TaskPlan.never(), count=1)
    scene.fake.faults.script("tasks/status", Fault.http(503, ECHO))
    try:
        await scene.client.segments.refresh_and_wait(**SEG, timeout=0.3, policy=FAST_POLL)
    finally:
        scene.fake.faults.clear()


async def fan_out_failure(scene: Scene) -> None:
    scene.fake.faults.next(SEG_REFRESH, Fault.api_error(401, f"unknown token {TOKEN}"))
    refs = [SegmentRef(7, 24, 1)]
    async with scene.client.segments.refresh_many(refs, policy=FAST_POLL) as outcomes:
        async for outcome in outcomes:
            assert outcome.error is not None
            raise outcome.error


async def closed_while_in_flight(scene: Scene) -> None:
    scene.fake.faults.next(SEG_REFRESH, Fault.delay(5))
    sent = asyncio.Event()
    hooks = {"request": [lambda event: sent.set()]}
    client = client_of(scene.fake.url, **scene.options, event_hooks=hooks)

    async def close_once_sent() -> None:
        await sent.wait()
        await client.aclose()

    closing = asyncio.ensure_future(close_once_sent())
    try:
        await client.segments.refresh_counters(**SEG)
    finally:
        await closing
        scene.fake.faults.clear()


async def closed_client(scene: Scene) -> None:
    client = client_of(scene.fake.url, **scene.options)
    await client.aclose()
    await client.admin.sender_queue_stats(sender_id=119)


async def callers_own_timeout(scene: Scene) -> None:
    """Not an error of the SDK: the caller's deadline cancels a call waiting for its reply,
    and the cancellation's traceback runs through the SDK and aiohttp."""
    async with RawServer(until_closed) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with client_of(url, **scene.options) as client:
            async with asyncio.timeout(0.1):
                await client.admin.sender_queue_stats(sender_id=119)


ERROR_SCENES: dict[str, tuple[type[BaseException], Callable[[Scene], Awaitable[None]]]] = {
    "api error echoing the token": (BadRequestError, echoed_api_error),
    "api error echoing the admin token": (PermissionDeniedError, echoed_admin_api_error),
    "HTTP 502 echoing the tokens": (HTTPStatusError, echoed_http_502),
    "undecodable reply echoing the tokens": (DecodeError, echoed_undecodable_reply),
    "dropped connection": (TransportError, dropped_connection),
    "truncated reply": (TransportError, truncated_reply),
    "reset after the request": (TransportError, reset_after_the_request),
    "request timeout": (RequestTimeoutError, request_timeout),
    "start past the wait's deadline": (RequestTimeoutError, start_past_the_wait_deadline),
    "oversized reply echoing a header": (DecodeError, oversized_reply_echoing_a_header),
    "invalid argument": (InvalidRequestError, invalid_argument),
    "invalid match": (InvalidRequestError, invalid_match),
    "invalid admin argument": (InvalidRequestError, invalid_admin_argument),
    "invalid client option": (InvalidRequestError, invalid_client_option),
    "token with a line break": (InvalidRequestError, token_with_a_line_break),
    "admin token with a line break": (InvalidRequestError, admin_token_with_a_line_break),
    "failed task": (TaskFailedError, failed_task),
    "failed pushed task": (TaskFailedError, failed_pushed_task),
    "task timeout after echoed poll errors": (
        TaskTimeoutError,
        task_timeout_after_echoed_poll_errors,
    ),
    "refresh_many outcome": (AuthenticationError, fan_out_failure),
    "closed while in flight": (ClientClosedError, closed_while_in_flight),
    "closed client": (ClientClosedError, closed_client),
    "the caller's own timeout": (TimeoutError, callers_own_timeout),
}


async def provoke(scene: Scene, run: Callable[[Scene], Awaitable[None]]) -> BaseException:
    with anyio.fail_after(10):
        try:
            await run(scene)
        except Exception as error:
            return error
    raise AssertionError("no error")


@pytest.mark.parametrize("auth", ["body", "bearer"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_no_frame_of_any_error_holds_a_token(fmt: str, auth: str) -> None:
    """Before: the tokens showed in the locals of ``AltcraftClient.__init__`` and ``.call``,
    ``_check_token``, ``build_request`` (the token, the request document),
    ``Transport._send_once`` and ``._decode`` (a reply echoing a token, its bytes or its
    headers), and of aiohttp's ``ClientSession._request`` (the body as ``data``, the bearer
    header in ``headers``). Rendering the traceback of an error from the constructor crashed
    on Python 3.11 (the half-built client's repr raised).
    """
    options: dict[str, Any] = {"format": fmt, "auth": auth, "poll": FAST_POLL}
    sdk_leaks: dict[str, list[str]] = {}
    other_leaks: dict[str, list[str]] = {}
    rendered_leaks: dict[str, str] = {}
    async with (
        serve(task_plan=TaskPlan.after_polls(1)) as fake,
        FeedbackReceiver(secret=None, safety_poll_interval=30) as receiver,
        client_of(fake.url, **options) as client,
    ):
        scene = Scene(fake, client, options, receiver)
        for name, (kind, run) in ERROR_SCENES.items():
            error = await provoke(scene, run)
            assert isinstance(error, kind), f"{name}: {error!r}"
            found = search_frames(error)
            # the search went through the SDK's frames (and aiohttp's, when a call in flight
            # was cancelled by the caller's own timeout)
            assert any(file.startswith(SDK_ROOT) for file in found.files), name
            if kind is TimeoutError:
                assert any(f"{os.sep}aiohttp{os.sep}" in file for file in found.files)
            if found.sdk:
                sdk_leaks[name] = found.sdk
            if found.others:
                other_leaks[name] = found.others
            text = rendered_with_locals(error)
            if shows_a_token(text):
                rendered_leaks[name] = text
    assert sdk_leaks == {}
    assert other_leaks == {}
    assert rendered_leaks == {}


def test_the_frame_search_finds_a_token_in_a_local() -> None:
    """The detector itself, on a frame that holds a token the way the SDK's did."""

    def build(token: str) -> None:
        document = {"token": token}
        raise InvalidRequestError(f"bad request of {len(document)} fields")

    try:
        build(TOKEN)
    except InvalidRequestError as error:
        found = search_frames(error)
        text = rendered_with_locals(error)
    assert sorted(entry.rpartition(": ")[2] for entry in found.others) == ["document", "token"]
    assert found.sdk == [] and shows_a_token(text)


# --- item 4: closing ends every queued call and retry sleep at once --------------------------


async def gather_errors(calls: list[Callable[[], Awaitable[Any]]], ended: list[Any]) -> None:
    async def run(call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call()
        except AltcraftError as error:
            ended.append(error)

    async with anyio.create_task_group() as group:
        for call in calls:
            group.start_soon(run, call)


@pytest.mark.parametrize("queue", ["rate limit", "connection"])
async def test_closing_ends_queued_calls_and_the_call_in_flight_at_once(queue: str) -> None:
    """Before: with a rate limit of 2/s, the last of 6 calls ended 2.5 s after aclose; a
    start in flight ended as TransportError(ServerDisconnected) instead of ClientClosedError."""
    first_sent = anyio.Event()
    ended: list[Any] = []
    options: dict[str, Any] = {"rate_limit": 2} if queue == "rate limit" else {"max_connections": 1}
    async with serve() as fake:
        fake.faults.script(SEG_REFRESH, Fault.delay(5))
        hooks = {"request": [lambda event: first_sent.set()]}
        client = client_of(fake.url, event_hooks=hooks, **options)
        calls = [lambda: client.segments.refresh_counters(**SEG)]
        calls += [lambda: client.segments.get_counters(**SEG)] * 5
        async with anyio.create_task_group() as group:
            group.start_soon(gather_errors, calls, ended)
            await first_sent.wait()
            started = time.monotonic()
            with anyio.fail_after(1):  # not the 2.5 s of the rate limit, nor the 5 s reply
                await client.aclose()
        took = time.monotonic() - started
    assert [type(error) for error in ended] == [ClientClosedError] * 6
    assert took < 1


async def test_a_retry_sleep_that_begins_after_close_ends_at_once() -> None:
    """Before: the 5 s of Retry-After were slept in full, then ClientClosedError."""
    client: AltcraftClient | None = None

    async def close_on_refusal(event: ResponseEvent) -> None:
        if event.status == 429:
            assert client is not None
            await client.aclose()  # the call then decides to retry, and sleeps

    async with serve() as fake:
        fake.faults.next(SEG_GET, Fault.rate_limited(retry_after=5))
        client = client_of(fake.url, event_hooks={"response": [close_on_refusal]})
        with anyio.fail_after(1), pytest.raises(ClientClosedError):
            await client.segments.get_counters(**SEG)
        assert fake.calls(SEG_GET) == 1


# --- items 5 to 7: the webhook receiver under attack -----------------------------------------


class Dribbler:
    """A raw client sending ``head`` then one byte of ``tail`` every ``pace`` seconds (a
    slowloris); ``closed_after`` is when the server hung up on it, None while it has not."""

    def __init__(self, port: int, head: bytes, tail: bytes, pace: float) -> None:
        self.port, self.head, self.tail, self.pace = port, head, tail, pace
        self.closed_after: float | None = None
        self.answer = b""

    async def run(self) -> None:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            async with anyio.create_task_group() as group:

                async def listen() -> None:
                    try:
                        while chunk := await reader.read(65536):
                            self.answer += chunk
                    except ConnectionError:
                        pass
                    self.closed_after = time.monotonic() - started
                    group.cancel_scope.cancel()

                group.start_soon(listen)
                writer.write(self.head)
                for byte in self.tail:  # the attack: a byte now and then, forever
                    await anyio.sleep(self.pace)
                    writer.write(bytes([byte]))
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()


async def post(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, data=body) as response:
        return response.status


PUSHED = b'{"status":"completed","progress":100,"result":[]}'


async def test_a_slowloris_cannot_hold_the_receivers_connections() -> None:
    """Before: every dribbling connection stayed open (aiohttp's server has no header
    deadline), so enough of them exhausted the process's file descriptors."""
    head = b"POST /altcraft-feedback/x HTTP/1.1\r\nHost: a\r\n"
    async with FeedbackReceiver(read_timeout=1.5, max_connections=4, secret=None) as receiver:
        port = int(receiver.reserve().feedback.url.split(":")[2].split("/")[0])
        attackers = [Dribbler(port, head, b"X-Slow: " + b"a" * 1000, 0.02) for _ in range(12)]
        with anyio.fail_after(8):  # before: never
            async with anyio.create_task_group() as group:
                for attacker in attackers:
                    group.start_soon(attacker.run)
        times = sorted(a.closed_after for a in attackers if a.closed_after is not None)
        assert len(times) == 12
        assert times[7] < 1.0  # the 8 over the limit: closed at accept, long before 1.5 s
        assert 1.45 <= times[8] < 5  # the 4 admitted: closed at the header deadline
        waiter = receiver.reserve()
        assert await post(waiter.feedback.url, PUSHED) == 200  # the receiver still serves
        assert waiter.status is not None and waiter.status.succeeded
        assert receiver.open_connections <= 1


async def test_a_body_dribbled_past_the_read_timeout_is_cut_off() -> None:
    async with FeedbackReceiver(read_timeout=0.3, secret=None) as receiver:
        waiter = receiver.reserve()
        path = waiter.feedback.url.split("/", 3)[3]
        port = int(waiter.feedback.url.split(":")[2].split("/")[0])
        head = f"POST /{path} HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n".encode()
        attacker = Dribbler(port, head, PUSHED.ljust(1000), 0.02)
        with anyio.fail_after(3):  # before: never
            await attacker.run()
        assert attacker.closed_after is not None and 0.25 <= attacker.closed_after < 1.5
        assert attacker.answer.startswith(b"HTTP/1.1 408")
        assert waiter.status is None


async def test_rejected_webhooks_are_logged_short_escaped_and_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: each rejection was a WARNING quoting up to 900 KB of the caller's text, with its
    line breaks and terminal escapes, once per call however many calls came."""
    caplog.set_level(logging.WARNING, logger="altcraft_async.feedback")
    hostile = "\n\x1b[31mFAKE LOG LINE\r" * 30_000  # ~ 600 KB
    async with FeedbackReceiver(secret="the-secret") as receiver:
        url = receiver.reserve().feedback.url
        body = json.dumps({"status": hostile, "progress": 5}).encode()
        assert await post(url, body) == 400
        forged = url.replace("the-secret", "forged")
        for _ in range(30):
            assert await post(forged, b"{}") == 403
    records = [r for r in caplog.records if r.name == "altcraft_async.feedback"]
    messages = [record.getMessage() for record in records]
    assert receiver.rejected == 31
    assert all(len(message) < 400 for message in messages), [len(m) for m in messages]
    assert not any(c in message for message in messages for c in "\n\r\x1b")
    assert len(messages) == 11  # 10 one by one, then one line for the rest
    assert "21 more calls rejected" in messages[-1]


@pytest.mark.parametrize(
    "secret", ["a/b", "a?b", "a#b", "a b", "a%2Fb", "..", "s\u00e9cret", "line\n"]
)
def test_a_receiver_secret_that_is_not_one_url_segment_is_refused(secret: str) -> None:
    """Before: accepted, and every push was then refused with 403 (poll only, silently)."""
    with pytest.raises(InvalidRequestError) as info:
        FeedbackReceiver(secret=secret)
    assert secret not in str(info.value)


async def test_a_url_safe_receiver_secret_gets_the_push() -> None:
    fake = FakeAltcraft.seeded(profiles=200, segments=1, task_plan=TaskPlan.after_seconds(0.1))
    async with (
        fake,
        FeedbackReceiver(secret="A.b_c~d-9", safety_poll_interval=30) as receiver,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        with anyio.fail_after(10):
            await client.resources.refresh_and_wait(resource_id=1, database_id=1, feedback=receiver)
    assert receiver.received == 1 and receiver.rejected == 0
    assert fake.calls("tasks/status") == 0
