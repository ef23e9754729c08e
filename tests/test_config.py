"""The conventions users bring from openai-python, stripe-python and httpx: configuration from
the environment, ``with_options`` views sharing one pool, the User-Agent, proxies from the
environment (``trust_env``), and a Task that refuses to be pickled (its resume token travels).

Real clients throughout: against the fake over loopback (with a forward proxy of aiohttp.web
in front when proxies are tried), or over a transport seam that records what it is handed."""

from __future__ import annotations

import gc
import pickle
import traceback
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from helpers import small_platform

import altcraft_async
from altcraft_async import (
    AiohttpTransport,
    AltcraftClient,
    Backoff,
    ClientClosedError,
    HTTPRequest,
    HTTPResponse,
    InvalidRequestError,
    PollPolicy,
    RetryPolicy,
    TaskTimeoutError,
)
from altcraft_async.testing import FakeAltcraft, MockTransport

pytestmark = pytest.mark.anyio

TOKEN = "cfg-SECRET-user-5d1e"
ADMIN = "cfg-SECRET-admin-9a7c"
URL = "https://altcraft.example"
SEG = {"segment_id": 7, "resource_id": 24}
ENV_NAMES = ("ALTCRAFT_URL", "ALTCRAFT_TOKEN", "ALTCRAFT_ADMIN_TOKEN")
PROXY_NAMES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_NAMES = ("NO_PROXY", "no_proxy")
FAST = RetryPolicy(attempts=3, backoff=Backoff(initial=0.001, max_interval=0.002))
TASK_ID = "930bfdb0-a5a8-4207-a77d-6b989bdea326"
COUNTERS = [{"channel": "email", "status": {"subscribed_sendable": 2, "unconfirmed_sendable": 0}}]
UA = f"altcraft-async/{altcraft_async.__version__}"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the machine's own leaks in: each test sets what it reads."""
    for name in (*ENV_NAMES, *PROXY_NAMES, *NO_PROXY_NAMES):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAltcraft]:
    async with FakeAltcraft(small_platform(), token=TOKEN, admin_token=ADMIN) as server:
        yield server


class RecordingTransport:
    """A transport of the test's own: answers like the platform and keeps what it is handed
    (the endpoint, the per-try timeout and the headers of each request)."""

    def __init__(self, *, failing: int = 0, running: bool = False) -> None:
        self.failing = failing  # the first requests get HTTP 503
        self.running = running  # tasks/status says "in_progress" for ever
        self.seen: list[tuple[str, float, dict[str, str]]] = []
        self.closed = False

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        self.seen.append((request.endpoint, timeout, dict(request.headers)))
        if self.failing:
            self.failing -= 1
            return HTTPResponse(503, {}, b"busy")
        if request.endpoint == "segments.refresh_counters":
            return MockTransport.json_reply({"task_id": TASK_ID})
        if request.endpoint == "tasks.status":
            status = "in_progress" if self.running else "completed"
            return MockTransport.json_reply({"status": status, "progress": 50, "result": []})
        return MockTransport.json_reply(COUNTERS)

    async def aclose(self) -> None:
        self.closed = True

    def endpoints(self) -> list[str]:
        return [endpoint for endpoint, _, _ in self.seen]

    def timeouts(self) -> list[float]:
        return [timeout for _, timeout, _ in self.seen]


def client_over(transport: RecordingTransport, **options: Any) -> AltcraftClient:
    options.setdefault("retry", FAST)
    return AltcraftClient(URL, token=TOKEN, transport=transport, **options)


# --- configuration from the environment -----------------------------------------------------


async def test_an_omitted_url_and_tokens_come_from_the_environment(
    fake: FakeAltcraft, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTCRAFT_URL", fake.url)
    monkeypatch.setenv("ALTCRAFT_TOKEN", TOKEN)
    monkeypatch.setenv("ALTCRAFT_ADMIN_TOKEN", ADMIN)
    async with AltcraftClient() as client:
        counters = await client.segments.get_counters(**SEG)
        await client.admin.sender_queue_stats(sender_id=119, group="isp")
    assert counters and [r.token for r in fake.requests] == ["user", "admin"]


async def test_an_argument_wins_over_the_environment(
    fake: FakeAltcraft, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeAltcraft() as other:  # the environment points elsewhere, with other tokens
        monkeypatch.setenv("ALTCRAFT_URL", other.url)
    monkeypatch.setenv("ALTCRAFT_TOKEN", "env-SECRET-wrong")
    monkeypatch.setenv("ALTCRAFT_ADMIN_TOKEN", "env-SECRET-wrong-admin")
    async with AltcraftClient(fake.url, token=TOKEN, admin_token=ADMIN) as client:
        await client.segments.get_counters(**SEG)
        await client.admin.sender_queue_stats(sender_id=119, group="isp")
    assert [r.token for r in fake.requests] == ["user", "admin"]


async def test_each_omitted_argument_is_read_on_its_own(
    fake: FakeAltcraft, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL given, the tokens from the environment; no admin token anywhere: none."""
    monkeypatch.setenv("ALTCRAFT_TOKEN", TOKEN)
    monkeypatch.setenv("ALTCRAFT_ADMIN_TOKEN", "")  # empty: unset, as in a compose file
    async with AltcraftClient(fake.url) as client:
        await client.segments.get_counters(**SEG)
        with pytest.raises(InvalidRequestError, match="needs admin_token"):
            await client.admin.sender_queue_stats(sender_id=119, group="isp")
    assert [r.token for r in fake.requests] == ["user"]


@pytest.mark.parametrize(
    ("environment", "arguments", "named"),
    [
        ({"ALTCRAFT_TOKEN": TOKEN}, {}, "ALTCRAFT_URL"),
        ({"ALTCRAFT_TOKEN": TOKEN, "ALTCRAFT_URL": ""}, {}, "ALTCRAFT_URL"),
        ({"ALTCRAFT_URL": URL}, {}, "ALTCRAFT_TOKEN"),
        ({"ALTCRAFT_URL": URL, "ALTCRAFT_TOKEN": ""}, {}, "ALTCRAFT_TOKEN"),
        ({}, {"base_url": URL}, "ALTCRAFT_TOKEN"),
    ],
    ids=["no url", "empty url", "no token", "empty token", "url given, no token"],
)
def test_a_missing_setting_names_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    arguments: dict[str, Any],
    named: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidRequestError, match=f"missing: pass .* or set {named}"):
        AltcraftClient(**arguments)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ALTCRAFT_URL", "ftp://user:env-SECRET@host", "ALTCRAFT_URL must be an http"),
        ("ALTCRAFT_URL", "https://user:env-SECRET@host", "ALTCRAFT_URL must not hold"),
        ("ALTCRAFT_TOKEN", "env-SECRET\r\nX-Injected: 1", "ALTCRAFT_TOKEN must not contain"),
        ("ALTCRAFT_ADMIN_TOKEN", "env-SECRET\nadmin", "ALTCRAFT_ADMIN_TOKEN must not contain"),
    ],
)
def test_a_bad_setting_from_the_environment_is_named_never_quoted(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv("ALTCRAFT_URL", URL)
    monkeypatch.setenv("ALTCRAFT_TOKEN", TOKEN)
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidRequestError, match=message) as info:
        AltcraftClient()
    assert "SECRET" not in str(info.value)


def test_a_token_from_the_environment_is_a_secret_in_every_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A constructor failing after the tokens were read: the traceback rendered with the locals
    of every frame (as error trackers do) shows neither token."""
    monkeypatch.setenv("ALTCRAFT_URL", URL)
    monkeypatch.setenv("ALTCRAFT_TOKEN", TOKEN)
    monkeypatch.setenv("ALTCRAFT_ADMIN_TOKEN", ADMIN)
    with pytest.raises(InvalidRequestError) as info:
        AltcraftClient(format="yaml")  # type: ignore[arg-type]
    rendered = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    assert "format must be" in rendered and "Secret('***')" in rendered
    assert TOKEN not in rendered and ADMIN not in rendered
    client = AltcraftClient()
    shown = repr(client) + repr(vars(client)) + repr(vars(client._send))
    assert TOKEN not in shown and ADMIN not in shown


def test_base_url_stays_the_first_positional_argument() -> None:
    client = AltcraftClient(URL, token=TOKEN, transport=RecordingTransport())
    assert client.base_url == URL


# --- with_options: views sharing one pool ---------------------------------------------------


async def test_a_view_sends_with_its_own_timeout_and_a_call_argument_wins() -> None:
    # the view's timeout= is its tries' default; a call's request_timeout= is its own tries'
    # (a call's timeout= bounds the whole call: tests/test_api_surface.py)
    transport = RecordingTransport()
    async with client_over(transport, timeout=30) as client:
        quick = client.with_options(timeout=2.5)
        await quick.segments.get_counters(**SEG)
        await client.segments.get_counters(**SEG)
        await quick.segments.get_counters(**SEG, request_timeout=4)
        task = await quick.segments.refresh_counters(**SEG)
        await task.status()  # the handle polls through the view that started it
    assert transport.timeouts() == [2.5, 30.0, 4.0, 2.5, 2.5]


async def test_a_view_retries_by_its_own_policy() -> None:
    transport = RecordingTransport(failing=10)
    async with client_over(transport) as client:
        once = client.with_options(retry=RetryPolicy(attempts=1))
        with pytest.raises(altcraft_async.HTTPStatusError):
            await once.segments.get_counters(**SEG)
        assert len(transport.seen) == 1
        with pytest.raises(altcraft_async.HTTPStatusError):
            await client.segments.get_counters(**SEG)
        assert len(transport.seen) == 1 + FAST.attempts


async def test_a_view_waits_by_its_own_poll_policy() -> None:
    transport = RecordingTransport(running=True)
    short = PollPolicy(backoff=Backoff(initial=0.001, max_interval=0.002), timeout=0.05)
    async with client_over(transport, poll=PollPolicy(timeout=600)) as client:
        view = client.with_options(poll=short)
        task = await view.segments.refresh_counters(**SEG)
        with pytest.raises(TaskTimeoutError) as info:
            await task.wait()
        assert info.value.timeout == 0.05
        assert client.default_poll_policy.timeout == 600  # the parent is left as it was


async def test_views_share_the_pool_its_limit_and_its_lifetime(fake: FakeAltcraft) -> None:
    client = AltcraftClient(fake.url, token=TOKEN, max_connections=1, retry=FAST)
    async with client:
        view = client.with_options(timeout=10)
        # leaving a view's block leaves the pool open
        async with view, anyio.create_task_group() as group:
            for caller in (client, view, view, client):
                group.start_soon(lambda c=caller: c.segments.get_counters(**SEG))
        assert view.closed is False and "view" in repr(view)
        await client.segments.get_counters(**SEG)
        del view
        gc.collect()  # a dropped view warns of nothing (warnings are errors here)
        other = client.with_options(retry=RetryPolicy(attempts=1))
    assert fake.stats.max_concurrent == 1 and len(fake.requests) == 5
    assert other.closed
    with pytest.raises(ClientClosedError):
        await other.segments.get_counters(**SEG)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"retry": 3}, "retry must be a RetryPolicy"),
        ({"poll": {"timeout": 5}}, "poll must be a PollPolicy"),
    ],
)
def test_a_bad_view_option_is_refused(options: dict[str, Any], message: str) -> None:
    client = client_over(RecordingTransport())
    with pytest.raises(InvalidRequestError, match=message):
        client.with_options(**options)


# --- User-Agent -----------------------------------------------------------------------------


async def test_every_request_carries_the_user_agent_across_the_seam() -> None:
    transport = RecordingTransport()
    async with client_over(transport) as client:
        task = await client.segments.refresh_counters(**SEG)
        await task.wait(timeout=5)
        await client.with_options(timeout=3).segments.get_counters(**SEG)
    assert transport.endpoints() == [
        "segments.refresh_counters",
        "tasks.status",
        "segments.get_counters",
    ]
    assert [headers["User-Agent"] for _, _, headers in transport.seen] == [UA] * 3


def wire_headers(seen: list[dict[str, str]]) -> aiohttp.TraceConfig:
    """A trace config recording the headers aiohttp wrote on the wire."""

    async def on_headers_sent(session: Any, context: Any, params: Any) -> None:
        seen.append(dict(params.headers))

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(on_headers_sent)
    return trace


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, UA),
        ({"X-Team": "growth"}, UA),
        ({"User-Agent": "crm-sync/2.1"}, "crm-sync/2.1"),
        ({"user-agent": "crm-sync/2.1"}, "crm-sync/2.1"),
    ],
    ids=["default", "other headers", "replaced", "replaced, lower case"],
)
async def test_the_user_agent_on_the_wire(
    fake: FakeAltcraft, headers: dict[str, str] | None, expected: str
) -> None:
    seen: list[dict[str, str]] = []
    options: dict[str, Any] = {"trace_configs": [wire_headers(seen)], "headers": headers}
    async with AltcraftClient(fake.url, token=TOKEN, **options) as client:
        await client.segments.get_counters(**SEG)
        await client.segments.refresh_and_wait(**SEG, timeout=10)
    assert len(seen) == len(fake.requests) >= 3
    for sent in seen:
        (agent,) = [value for key, value in sent.items() if key.lower() == "user-agent"]
        assert agent == expected
        assert "aiohttp" not in agent


async def test_a_user_agent_of_an_aiohttp_transport_of_ones_own_wins(fake: FakeAltcraft) -> None:
    seen: list[dict[str, str]] = []
    transport = AiohttpTransport(
        headers={"USER-AGENT": "mine/1"}, trace_configs=[wire_headers(seen)]
    )
    async with AltcraftClient(fake.url, token=TOKEN, transport=transport) as client:
        await client.segments.get_counters(**SEG)
    assert [sent["User-Agent"] for sent in seen] == ["mine/1"]


# --- trust_env: proxies from the environment ------------------------------------------------


@asynccontextmanager
async def forward_proxy() -> AsyncIterator[tuple[str, list[tuple[str, str]]]]:
    """A minimal HTTP forward proxy on loopback: it records the absolute URL and User-Agent
    of each request it is asked to forward, forwards it, and relays the reply."""
    forwarded: list[tuple[str, str]] = []
    upstream = aiohttp.ClientSession()  # trust_env off: straight to the target

    async def relay(request: web.Request) -> web.Response:
        target = str(request.url)
        forwarded.append((target, request.headers.get("User-Agent", "")))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with upstream.post(target, data=await request.read(), headers=headers) as reply:
            body = await reply.read()
            kept = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=reply.status, body=body, headers=kept)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", forwarded
    finally:
        await runner.cleanup()
        await upstream.close()


HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "host"}
)


@pytest.mark.parametrize(
    ("trust_env", "no_proxy", "proxied"),
    [(True, None, True), (False, None, False), (True, "127.0.0.1", False)],
    ids=["trusted", "not trusted (the default)", "trusted, host in NO_PROXY"],
)
async def test_trust_env_sends_through_the_environment_proxy(
    fake: FakeAltcraft,
    monkeypatch: pytest.MonkeyPatch,
    trust_env: bool,
    no_proxy: str | None,
    proxied: bool,
) -> None:
    async with forward_proxy() as (proxy_url, forwarded):
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("http_proxy", proxy_url)
        if no_proxy is not None:
            monkeypatch.setenv("NO_PROXY", no_proxy)
            monkeypatch.setenv("no_proxy", no_proxy)
        options: dict[str, Any] = {"trust_env": True} if trust_env else {}
        async with AltcraftClient(fake.url, token=TOKEN, retry=FAST, **options) as client:
            counters = await client.segments.get_counters(**SEG)
    assert counters and len(fake.requests) == 1
    expected = [(f"{fake.url}/api/v1.1/segments/get_counters", UA)] if proxied else []
    assert forwarded == expected


async def test_trust_env_belongs_to_the_clients_own_session() -> None:
    with pytest.raises(InvalidRequestError, match="cannot be combined with trust_env"):
        AltcraftClient(URL, token=TOKEN, transport=RecordingTransport(), trust_env=True)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(InvalidRequestError, match=r"aiohttp\.ClientSession\(trust_env=True\)"):
            AltcraftClient(URL, token=TOKEN, session=session, trust_env=True)
    with pytest.raises(InvalidRequestError, match="trust_env must be a bool"):
        AltcraftClient(URL, token=TOKEN, trust_env="yes")  # type: ignore[arg-type]


# --- a Task crosses processes as its resume token, not pickled ------------------------------


async def test_pickling_a_task_points_to_its_resume_token() -> None:
    async with client_over(RecordingTransport()) as client:
        task = await client.segments.refresh_counters(**SEG)
        with pytest.raises(TypeError) as info:
            pickle.dumps(task)
        message = str(info.value)
        assert "task.resume_token()" in message and "client.tasks.resume(token)" in message
        resumed = client.tasks.resume(task.resume_token())  # what the message says works
        assert resumed.task_id == task.task_id
        assert await resumed.wait(timeout=5) == []


async def test_a_view_keeps_the_client_that_owns_its_pool_alive(fake: FakeAltcraft) -> None:
    # AltcraftClient(...).with_options(...) with the client dropped at once: the pool is the
    # client's, so the view must keep it reachable (to be closed, or reported unclosed)
    client = AltcraftClient(fake.url, token=TOKEN)
    owner = weakref.ref(client)
    view = client.with_options(timeout=5)
    del client
    gc.collect()
    async with view:
        await view.segments.get_counters(**SEG)
    kept = owner()
    assert kept is not None and not kept.closed  # leaving the view left the pool open
    await kept.aclose()
    assert view.closed
