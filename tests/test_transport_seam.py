"""The transport seam: a real client whose requests go to a MockTransport (or a transport of
its own), no socket anywhere. What crosses the seam is checked as it crosses: the requests the
transport saw, the replies it gave, the errors it raised, and what the client made of them."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import pytest

from altcraft_async import (
    AiohttpTransport,
    AltcraftClient,
    AsyncTransport,
    Backoff,
    BadRequestError,
    ChannelCounters,
    CounterStatus,
    DecodeError,
    HTTPRequest,
    HTTPResponse,
    HTTPStatusError,
    InvalidRequestError,
    RateLimiterProtocol,
    RequestEvent,
    RequestTimeoutError,
    ResponseEvent,
    RetryPolicy,
    TransportError,
)
from altcraft_async.testing import MockTransport

pytestmark = pytest.mark.anyio

URL = "https://altcraft.example"
TOKEN = "seam-SECRET-token"
SEG = {"segment_id": 7, "resource_id": 24, "database_id": 1}
GET = "segments.get_counters"
START = "segments.refresh_counters"
FAST = RetryPolicy(attempts=3, backoff=Backoff(initial=0.001, max_interval=0.002))

#: The documented reply of segments/get_counters.
COUNTERS = [
    {"channel": "email", "status": {"subscribed_sendable": 209, "unconfirmed_sendable": 0}},
    {"channel": "sms", "status": {"subscribed_sendable": 108, "unconfirmed_sendable": 0}},
]
TASK = {"task_id": "930bfdb0-a5a8-4207-a77d-6b989bdea326"}

Handler = Callable[[HTTPRequest], HTTPResponse]


def client_over(transport: AsyncTransport, **options: Any) -> AltcraftClient:
    options.setdefault("retry", FAST)
    return AltcraftClient(URL, token=TOKEN, transport=transport, **options)


def failing(times: int, error: TransportError, reply: HTTPResponse) -> Handler:
    """A handler that raises ``error`` on its first ``times`` requests, then gives ``reply``."""
    seen = 0

    def handler(request: HTTPRequest) -> HTTPResponse:
        nonlocal seen
        seen += 1
        if seen <= times:
            raise error
        return reply

    return handler


# --- a call through the seam ----------------------------------------------------------------


async def test_a_call_is_one_request_through_the_transport_and_its_reply_decoded() -> None:
    mock = MockTransport(lambda request: MockTransport.json_reply(COUNTERS))
    async with client_over(mock) as client:
        channels = await client.segments.get_counters(**SEG)
    assert channels == [
        ChannelCounters("email", CounterStatus(subscribed_sendable=209, unconfirmed_sendable=0)),
        ChannelCounters("sms", CounterStatus(subscribed_sendable=108, unconfirmed_sendable=0)),
    ]
    (request,) = mock.requests
    assert (request.method, request.endpoint) == ("POST", GET)
    assert request.url == f"{URL}/api/v1.1/segments/get_counters"
    assert request.headers["Content-Type"] == "application/json"
    # the documented wire names, the token in the body
    assert json.loads(request.body) == {
        "token": TOKEN,
        "list_id": 1,
        "resource_id": 24,
        "id": 7,
        "format": "json",
    }
    assert mock.closed  # the client closes the transport it was given


async def test_an_xml_client_reads_an_xml_reply_from_the_mock() -> None:
    mock = MockTransport(lambda request: MockTransport.reply(TASK, fmt="xml"))
    async with client_over(mock, format="xml") as client:
        task = await client.segments.refresh_counters(**SEG)
    assert task.task_id == TASK["task_id"]
    assert mock.requests[0].body.startswith(b"<xml>")


async def test_an_envelope_error_from_the_mock_is_the_api_error() -> None:
    mock = MockTransport(lambda request: MockTransport.json_reply(error=400, error_text="no"))
    async with client_over(mock) as client:
        with pytest.raises(BadRequestError) as info:
            await client.segments.get_counters(**SEG)
    assert info.value.error_text == "no" and mock.endpoints() == [GET]


# --- retries driven by the transport's failures ---------------------------------------------


async def test_a_read_is_retried_after_two_failures_that_reached_the_server() -> None:
    handler = failing(2, TransportError("reset", sent=True), MockTransport.json_reply(COUNTERS))
    mock = MockTransport(handler)
    async with client_over(mock) as client:
        assert len(await client.segments.get_counters(**SEG)) == 2
    assert mock.endpoints() == [GET] * 3


async def test_a_start_is_not_retried_once_its_request_may_have_arrived() -> None:
    handler = failing(2, TransportError("reset", sent=True), MockTransport.json_reply(TASK))
    mock = MockTransport(handler)
    async with client_over(mock) as client:
        with pytest.raises(TransportError) as info:
            await client.segments.refresh_counters(**SEG)
    assert info.value.sent is True
    assert mock.endpoints() == [START]  # a retry could have started a second task


async def test_a_start_whose_request_never_left_is_retried() -> None:
    handler = failing(2, TransportError("refused", sent=False), MockTransport.json_reply(TASK))
    mock = MockTransport(handler)
    async with client_over(mock) as client:
        task = await client.segments.refresh_counters(**SEG)
    assert task.task_id == TASK["task_id"]
    assert mock.endpoints() == [START] * 3


async def test_a_slow_async_handler_is_the_per_try_timeout() -> None:
    never = asyncio.Event()

    async def handler(request: HTTPRequest) -> HTTPResponse:
        await never.wait()
        raise AssertionError("not reached")

    mock = MockTransport(handler)
    async with client_over(mock, timeout=0.01, retry=RetryPolicy(attempts=2)) as client:
        with anyio.fail_after(5), pytest.raises(RequestTimeoutError) as info:
            await client.segments.get_counters(**SEG)
    assert info.value.sent is True and len(mock.requests) == 2


async def test_a_retry_deadline_spent_in_a_request_hook_says_the_request_was_not_sent() -> None:
    """The deadline cuts the try before the transport had it: sent=False, nothing sent."""
    stuck = asyncio.Event()

    async def slow_hook(event: RequestEvent) -> None:
        await stuck.wait()

    mock = MockTransport(lambda request: MockTransport.json_reply(TASK))
    hooks = {"request": [slow_hook]}
    async with client_over(mock, event_hooks=hooks, retry=RetryPolicy(deadline=0.02)) as client:
        with anyio.fail_after(5), pytest.raises(RequestTimeoutError) as info:
            await client.segments.refresh_counters(**SEG)
    assert info.value.sent is False and mock.requests == []


# --- the rate limiter's feedback ------------------------------------------------------------


class CountingLimiter:
    """A limiter of the caller's own (no RateLimiter): records what the send path tells it."""

    def __init__(self) -> None:
        self.paced: list[float] = []
        self.rate_limited: list[float] = []
        self.successes = 0

    async def acquire(self, sleep: Callable[[float], Awaitable[object]]) -> float:
        await sleep(0)  # the client's sleep, which closing the client would cut short
        self.paced.append(float(len(self.paced)))
        return self.paced[-1]

    def on_rate_limited(self, paced_at: float) -> None:
        self.rate_limited.append(paced_at)

    def on_success(self) -> None:
        self.successes += 1


async def test_429s_and_the_success_after_them_reach_a_custom_limiter() -> None:
    replies = iter(
        [
            HTTPResponse(429, {"Retry-After": "0"}, b"slow down"),
            MockTransport.json_reply(error=429, error_text="slow", status=429),
            MockTransport.json_reply(COUNTERS),
        ]
    )
    mock = MockTransport(lambda request: next(replies))
    limiter = CountingLimiter()
    assert isinstance(limiter, RateLimiterProtocol)
    async with client_over(mock, rate_limiter=limiter) as client:
        assert client.rate_limiter is limiter
        assert len(await client.segments.get_counters(**SEG)) == 2
    assert limiter.paced == [0.0, 1.0, 2.0]
    assert limiter.rate_limited == [0.0, 1.0]  # each 429 with the pacing time of its try
    assert limiter.successes == 1


async def test_a_failure_that_is_no_429_is_not_reported_to_the_limiter() -> None:
    mock = MockTransport(lambda request: HTTPResponse(503, {}, b"down"))
    limiter = CountingLimiter()
    async with client_over(mock, rate_limiter=limiter) as client:
        with pytest.raises(HTTPStatusError):
            await client.segments.get_counters(**SEG)
    assert len(limiter.paced) == FAST.attempts
    assert limiter.rate_limited == [] and limiter.successes == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit": 5}, "rate_limiter= replaces rate_limit="),
        ({"adaptive_rate_limit": True}, "rate_limiter= replaces rate_limit="),
    ],
)
def test_rate_limiter_excludes_the_built_in_limiter_options(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        AltcraftClient(URL, token=TOKEN, rate_limiter=CountingLimiter(), **options)


def test_a_rate_limiter_without_the_protocol_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="rate_limiter must have async acquire"):
        AltcraftClient(URL, token=TOKEN, rate_limiter=object())  # type: ignore[arg-type]


# --- hooks ----------------------------------------------------------------------------------


async def test_the_hooks_fire_once_per_try_with_what_each_try_got() -> None:
    replies = iter(
        [
            HTTPResponse(503, {"Retry-After": "0"}, b"down"),
            TransportError("reset", sent=True),
            MockTransport.json_reply(COUNTERS),
        ]
    )

    def handler(request: HTTPRequest) -> HTTPResponse:
        reply = next(replies)
        if isinstance(reply, TransportError):
            raise reply
        return reply

    requests: list[RequestEvent] = []
    responses: list[ResponseEvent] = []
    hooks = {"request": [requests.append], "response": [responses.append]}
    async with client_over(MockTransport(handler), event_hooks=hooks) as client:
        await client.segments.get_counters(**SEG)
    assert [(event.endpoint, event.attempt) for event in requests] == [(GET, 1), (GET, 2), (GET, 3)]
    assert [event.attempt for event in responses] == [1, 2, 3]
    assert [event.status for event in responses] == [503, None, 200]
    assert [type(event.error).__name__ for event in responses] == [
        "NoneType",
        "TransportError",
        "NoneType",
    ]
    assert all(event.url == f"{URL}/api/v1.1/segments/get_counters" for event in requests)


# --- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["body", "bearer"])
async def test_the_token_is_in_the_request_but_never_in_a_repr(auth: str) -> None:
    echo = MockTransport(lambda request: HTTPResponse(200, dict(request.headers), request.body))
    async with client_over(echo, auth=auth, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(DecodeError):  # the echo is no envelope
            await client.segments.get_counters(**SEG)
    (request,) = echo.requests
    carried = request.body.decode() if auth == "body" else request.headers["Authorization"]
    assert TOKEN in carried
    reply = echo.handler(request)
    assert isinstance(reply, HTTPResponse)
    for shown in (repr(request), repr(reply), repr(echo), repr(echo.requests)):
        assert "SECRET" not in shown


async def test_a_transport_error_quoting_the_token_is_blanked() -> None:
    def handler(request: HTTPRequest) -> HTTPResponse:
        raise TransportError(f"proxy said: bad line {request.body!r}", sent=False)

    async with client_over(MockTransport(handler), retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(TransportError) as info:
            await client.segments.get_counters(**SEG)
    assert "SECRET" not in str(info.value) and "proxy said" in str(info.value)


# --- choosing the transport -----------------------------------------------------------------


async def test_transport_with_a_session_is_refused_before_anything_is_sent() -> None:
    mock = MockTransport(lambda request: MockTransport.json_reply(COUNTERS))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(InvalidRequestError, match="transport= cannot be combined with session"):
            AltcraftClient(URL, token=TOKEN, transport=mock, session=session)
    assert mock.requests == []


@pytest.mark.parametrize(
    "options",
    [
        {"ssl": False},
        {"trace_configs": [aiohttp.TraceConfig()]},
        {"headers": {"X-Team": "a"}},
        {"max_response_size": 10},
    ],
    ids=["ssl", "trace_configs", "headers", "max_response_size"],
)
def test_transport_with_another_aiohttp_option_is_refused(options: dict[str, Any]) -> None:
    (name,) = options
    with pytest.raises(InvalidRequestError, match=f"cannot be combined with {name}"):
        AltcraftClient(
            URL,
            token=TOKEN,
            transport=MockTransport(lambda request: HTTPResponse(200, {}, b"")),
            **options,
        )


def test_a_transport_that_is_no_async_transport_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="transport must be an AsyncTransport"):
        AltcraftClient(URL, token=TOKEN, transport=object())  # type: ignore[arg-type]


class DictTransport:
    """A transport of the caller's own: replies by endpoint label, counts what it was sent."""

    def __init__(self, replies: dict[str, HTTPResponse]) -> None:
        self.replies = replies
        self.sent: list[str] = []
        self.in_flight_seen: list[int] = []
        self.client: AltcraftClient | None = None
        self.closed = False

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        assert timeout == 7.5
        self.sent.append(request.endpoint)
        if self.client is not None:
            self.in_flight_seen.append(self.client.connections_in_use())
        return self.replies[request.endpoint]

    async def aclose(self) -> None:
        self.closed = True


async def test_a_transport_class_of_ones_own_works() -> None:
    transport = DictTransport(
        {GET: MockTransport.json_reply(COUNTERS), START: MockTransport.json_reply(TASK)}
    )
    assert isinstance(transport, AsyncTransport)
    client = client_over(transport, timeout=7.5)
    transport.client = client
    async with client:
        assert len(await client.segments.get_counters(**SEG)) == 2
        assert (await client.segments.refresh_counters(**SEG)).task_id == TASK["task_id"]
        assert client.connections_in_use() == 0
    assert transport.sent == [GET, START]
    assert transport.in_flight_seen == [1, 1]
    assert transport.closed and client.closed


async def test_the_aiohttp_transport_can_be_made_and_given_explicitly() -> None:
    """The aiohttp options go to AiohttpTransport; the client closes it (no unclosed session
    warning follows: warnings are errors here). The port is bound but not listening, and kept
    bound so no other process can take it: the connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        transport = AiohttpTransport(max_connections=2, headers={"X-Team": "a"})
        url = f"http://127.0.0.1:{port}"
        async with AltcraftClient(url, token=TOKEN, transport=transport, retry=FAST) as client:
            with anyio.fail_after(30), pytest.raises(TransportError) as info:
                await client.segments.get_counters(**SEG)
    assert info.value.sent is False and transport.closed and not transport.session_open
