"""AltcraftClient end to end: every method, error, retry rule and option against FakeAltcraft.

Every test talks to a real ``FakeAltcraft`` over loopback HTTP. Expected values come from the
fake's own platform (``segment_counters``, ``queue_stats``, ``relation_info``...), never from
constants copied out of a reply. Retries use a fast policy so nothing sleeps for long.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web
from helpers import small_platform

from altcraft_async import (
    AltcraftClient,
    AltcraftError,
    APIError,
    AuthenticationError,
    Backoff,
    BadRequestError,
    ChannelCounters,
    ClientClosedError,
    CountersSnapshot,
    CounterStatus,
    DecodeError,
    Feedback,
    HTTPStatusError,
    InvalidRequestError,
    Match,
    NumericProperty,
    PermissionDeniedError,
    PollPolicy,
    RateLimiter,
    RelationInfo,
    RequestEvent,
    RequestTimeoutError,
    ResponseEvent,
    RetryPolicy,
    SegmentRef,
    SenderQueueStats,
    TariffLimitError,
    TaskStatus,
    TransportError,
)
from altcraft_async._retry import parse_retry_after
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

pytestmark = pytest.mark.anyio

# Distinctive secrets: any leak into a message, a log line or a record is easy to spot.
TOKEN = "user-SECRET-7f3a9c21"
ADMIN = "admin-SECRET-b81d0e55"
SECRETS = (TOKEN, ADMIN)

FAST_RETRY = RetryPolicy(backoff=Backoff(initial=0.001, max_interval=0.01, jitter=1.0))
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.001, max_interval=0.01), timeout=5.0)
NO_RETRY = RetryPolicy(attempts=1)

SEG_GET = "segments/get_counters"
SEG_REFRESH = "segments/refresh_counters"
RES_REFRESH = "resources/refresh_counters"
STATUS = "tasks/status"
QUEUE = "admin/senders/queue/stats/"
RELATION = "relations/get_counter"

FORMATS = pytest.mark.parametrize("fmt", ["json", "xml"])


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def expect(error_type: type[BaseException], call: Awaitable[Any]) -> Any:
    """Await ``call``, which must raise ``error_type``; the error must not show a token."""
    with pytest.raises(error_type) as info:
        await call
    assert_no_secret(str(info.value), repr(info.value))
    return info.value


@asynccontextmanager
async def serve(**options: Any) -> AsyncIterator[FakeAltcraft]:
    """A fake over :func:`small_platform` whose records are checked for tokens afterwards."""
    options.setdefault("token", TOKEN)
    options.setdefault("admin_token", ADMIN)
    options.setdefault("shutdown_timeout", 0.05)  # slow (delayed) handlers are cut short
    async with FakeAltcraft(small_platform(), **options) as fake:
        yield fake
        assert_no_secret(repr(fake.requests), repr(fake), repr(list(fake.tasks.values())))


def make_client(fake: FakeAltcraft, **options: Any) -> AltcraftClient:
    options.setdefault("token", TOKEN)
    options.setdefault("admin_token", ADMIN)
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("poll", FAST_POLL)
    return AltcraftClient(fake.url, **options)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAltcraft]:
    async with serve(webhook_delivery="lost") as server:
        yield server


@pytest.fixture(params=["json", "xml"])
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(fake: FakeAltcraft, fmt: str) -> AsyncIterator[AltcraftClient]:
    async with make_client(fake, format=fmt) as sdk:
        yield sdk
        assert_no_secret(repr(sdk))


def counters_by_channel(snapshot: CountersSnapshot) -> dict[str, dict[str, Any]]:
    return {item.channel: attrs.asdict(item.status) for item in snapshot.channels}


def sendable(counters: dict[str, dict[str, int]]) -> list[ChannelCounters]:
    return [
        ChannelCounters(
            channel,
            CounterStatus(
                subscribed_sendable=counts["subscribed_sendable"],
                unconfirmed_sendable=counts["unconfirmed_sendable"],
            ),
        )
        for channel, counts in counters.items()
    ]


# --- happy paths ----------------------------------------------------------------------------


async def test_get_counters_returns_the_fakes_sendable_counters(client, fake, fmt):
    chans = await client.segments.get_counters(segment_id=7, resource_id=24, database_id=1)
    snapshot = fake.platform.last_snapshot(7, 24, at=None)
    assert chans == sendable(dict(snapshot.counters))
    assert chans == sendable(fake.platform.segment_counters(7, 24))
    assert [c.channel for c in chans] == ["email", "sms"]
    assert chans[0].status.subscribed_sendable == 2  # p0, p1 (p2 unsubscribed, p3 unconfirmed)
    (record,) = fake.requests
    assert record.path == SEG_GET and record.format == fmt and record.token == "user"
    assert record.params is not None
    assert {k: str(v) for k, v in record.params.items()} == {
        "id": "7",
        "resource_id": "24",
        "list_id": "1",
        "format": fmt,
    }
    assert record.content_type == f"application/{fmt}"


async def test_get_counters_of_a_rule_segment_needs_and_sends_the_database(client, fake):
    chans = await client.segments.get_counters(segment_id=8, resource_id=24, database_id=1)
    assert chans == sendable(fake.platform.segment_counters(8, 24))
    error = await expect(
        BadRequestError, client.segments.get_counters(segment_id=8, resource_id=24)
    )
    assert "list_id is required" in error.error_text


async def test_segment_refresh_and_wait_returns_what_the_fake_computed(client, fake, fmt):
    profile = fake.platform.profile_ids(1)[2]
    before = await client.segments.get_counters(segment_id=7, resource_id=24, database_id=1)
    fake.platform.set_subscription(profile, 24, "email", "subscribed")
    task = await client.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
    assert task.task_id in fake.tasks
    assert fake.requests[-1].params is not None
    assert str(fake.requests[-1].params["db_id"]) == "1"  # the wire name of this endpoint
    (snapshot,) = await task.wait(timeout=5)
    expected = fake.platform.segment_counters(7, 24)
    assert counters_by_channel(snapshot) == expected
    assert expected["email"]["subscribed"] == 3  # the change made above is counted
    assert (snapshot.list_id, snapshot.resource_id, snapshot.in_progress) == (1, 24, False)
    assert snapshot.updated is not None and snapshot.updated.tzinfo is not None
    after = await client.segments.get_counters(segment_id=7, resource_id=24, database_id=1)
    assert after == sendable(expected) != before


async def test_refresh_and_wait_in_one_call(client, fake):
    snaps = await client.segments.refresh_and_wait(segment_id=8, resource_id=24, database_id=1)
    assert [counters_by_channel(s) for s in snaps] == [fake.platform.segment_counters(8, 24)]
    snaps = await client.resources.refresh_and_wait(resource_id=24, database_id=1)
    assert [counters_by_channel(s) for s in snaps] == [fake.platform.resource_counters(24, 1)]


async def test_resource_refresh_counters(client, fake, fmt):
    task = await client.resources.refresh_counters(resource_id=24, database_id=1)
    record = fake.requests[-1]
    assert record.params is not None and "feedback" not in record.params
    assert {k: str(record.params[k]) for k in ("id", "list_id")} == {"id": "24", "list_id": "1"}
    assert fake.tasks[task.task_id].kind == "resource"
    (snapshot,) = await task.wait(timeout=5)
    assert counters_by_channel(snapshot) == fake.platform.resource_counters(24, 1)
    assert snapshot.list_id == 1 and snapshot.resource_id == 24


async def test_resource_refresh_counters_with_feedback(client, fake, fmt):
    url = "http://hooks.example.test/altcraft?x=1"
    task = await client.resources.refresh_counters(
        resource_id=24, database_id=1, feedback=Feedback(url=url)
    )
    record = fake.requests[-1]
    assert record.params is not None
    assert record.params["feedback"] == {"type": "JSON", "url": url}
    assert fake.tasks[task.task_id].feedback_url == url
    assert fake.tasks[task.task_id].feedback_type == "JSON"
    (snapshot,) = await task.wait(timeout=5)
    assert counters_by_channel(snapshot) == fake.platform.resource_counters(24, 1)
    assert [hook.task_id for hook in fake.webhooks] == [task.task_id]  # recorded, not sent


async def test_tasks_status_running_then_completed(client, fake):
    fake.plan_tasks(TaskPlan.after_polls(1))
    task = await client.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
    first = await client.tasks.status(task.task_id)
    record = fake.tasks[task.task_id]
    # progress 0, or absent while pending (a dialect that omits it)
    assert first in (TaskStatus(status="pending", progress=0), TaskStatus(status="pending"))
    assert first.status == record.plan.running[0] and not first.done
    second = await task.status()
    assert second.succeeded and second.progress == record.progress == 100
    (snapshot,) = second.result
    assert counters_by_channel(snapshot) == fake.platform.segment_counters(7, 24)
    assert len(record.polls) == 2
    assert await client.tasks.wait_counters(task.task_id, timeout=5) == list(second.result)


@pytest.mark.parametrize("group", ["account", "account_campaign", "isp", "total"])
async def test_admin_sender_queue_stats_each_group(client, fake, group):
    rows = await client.admin.sender_queue_stats(sender_id=119, group=group)
    expected = [SenderQueueStats(**row) for row in fake.platform.queue_stats(119, group=group)]
    assert rows == expected and rows
    (record,) = fake.requests
    assert record.path == QUEUE and record.token == "admin"
    assert record.params is not None and record.params["group"] == group


async def test_admin_sender_queue_stats_filters(client, fake):
    rows = await client.admin.sender_queue_stats(
        sender_id=119, account_id=306, isp="mail.ru", group="account_campaign"
    )
    expected = fake.platform.queue_stats(
        119, account_id=306, isp="mail.ru", group="account_campaign"
    )
    assert rows == [SenderQueueStats(**row) for row in expected]
    assert [(r.account_id, r.campaign_id, r.hold) for r in rows] == [(306, 4914, 80)]
    default = await client.admin.sender_queue_stats(sender_id=119)  # group omitted: total
    assert default == [SenderQueueStats(**fake.platform.queue_stats(119)[0])]


@pytest.mark.parametrize(
    "match",
    [
        Match.email("p0@example.com"),
        Match.email_profile("p0@example.com"),
        Match.phone("+79000000000"),
        Match.profile_id("PROFILE-0"),  # replaced by the real id in the test
        Match.custom("crm", "C0"),
    ],
    ids=["email", "email_profile", "phone", "profile_id", "custom"],
)
@pytest.mark.parametrize("resource_id", [None, 24])
async def test_relations_get_counter_each_match(client, fake, fmt, match, resource_id):
    first = fake.platform.profile_ids(1)[0]
    if match.mode == "profile_id":
        match = Match.profile_id(first)
    info = await client.relations.get_counter(relation_id=3, match=match, resource_id=resource_id)
    wire = fake.platform.relation_info(3, first)
    # ``top`` is free-form, so XML leaves its numbers as text (``sum`` is typed: a number).
    top: dict[str, Any] = {"a1": 5, "b2": 3} if fmt == "json" else {"a1": "5", "b2": "3"}
    assert info == RelationInfo(
        profile_id=first,
        profile_xxh=wire["profile_xxh"],
        props={"orders": NumericProperty(top=top, sum=8), "store": "Omsk"},
    )
    (record,) = fake.requests
    assert record.params is not None and record.params["matching"] == match.mode
    assert ("resource_id" in record.params) is (resource_id is not None)


async def test_relations_profile_without_props_and_unknown_profile(client, fake):
    info = await client.relations.get_counter(relation_id=3, match=Match.phone("+79000000001"))
    assert info.profile_id == fake.platform.profile_ids(1)[1] and dict(info.props) == {}
    error = await expect(
        BadRequestError,
        client.relations.get_counter(relation_id=3, match=Match.email("nobody@example.com")),
    )
    assert "profile not found" in error.error_text


@pytest.mark.altcraft_fake(seeded=True, profiles=500, senders=2)
async def test_pytest_plugin_fixtures_on_seeded_data(altcraft_client, altcraft_fake):
    sender_id = next(iter(altcraft_fake.platform.senders))
    rows = await altcraft_client.admin.sender_queue_stats(sender_id=sender_id, group="isp")
    assert rows == [
        SenderQueueStats(**row)
        for row in altcraft_fake.platform.queue_stats(sender_id, group="isp")
    ]
    segment_id, resource_id, database_id = altcraft_fake.platform.segment_refs()[0]
    chans = await altcraft_client.segments.get_counters(
        segment_id=segment_id, resource_id=resource_id, database_id=database_id
    )
    assert chans == sendable(altcraft_fake.platform.segment_counters(segment_id, resource_id))


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("error_http_status", [False, True])
@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, TariffLimitError),
        (403, PermissionDeniedError),
        (1001, APIError),
        (418, APIError),
    ],
)
async def test_envelope_error_codes_via_faults(fmt, error_http_status, code, error_type):
    async with serve(error_http_status=error_http_status) as fake:
        fake.faults.script(SEG_GET, Fault.api_error(code, f"scripted {code} text"))
        async with make_client(fake, format=fmt) as client:
            error = await expect(
                error_type, client.segments.get_counters(segment_id=7, resource_id=24)
            )
        assert type(error) is error_type
        assert (error.code, error.error_text) == (code, f"scripted {code} text")
        assert error.endpoint == "segments.get_counters"
        expected_status = (code if 400 <= code <= 599 else 400) if error_http_status else 200
        assert error.http_status == expected_status == fake.requests[0].http_status
        assert fake.calls(SEG_GET) == 1  # an envelope error is an answer: never retried


@pytest.mark.parametrize("error_http_status", [False, True])
async def test_envelope_errors_from_real_conditions(fmt, error_http_status):
    async with serve(error_http_status=error_http_status) as fake:
        async with make_client(fake, format=fmt, token="wrong-token-SECRET") as client:
            error = await expect(
                AuthenticationError, client.segments.get_counters(segment_id=7, resource_id=24)
            )
            assert error.code == 401 and "invalid token" in error.error_text
            assert "wrong-token-SECRET" not in str(error)
        async with make_client(fake, format=fmt, admin_token=TOKEN) as client:
            error = await expect(
                PermissionDeniedError, client.admin.sender_queue_stats(sender_id=119)
            )
            assert error.code == 403
            error = await expect(
                BadRequestError, client.segments.get_counters(segment_id=999, resource_id=24)
            )
            assert error.code == 400 and "segment 999 not found" in error.error_text
            assert error.http_status == (400 if error_http_status else 200)
            await expect(BadRequestError, client.tasks.status("no-such-task"))
        assert [r.token for r in fake.requests] == ["invalid", "user", "user", "user"]
        assert [r.error for r in fake.requests] == [401, 403, 400, 400]
        assert not fake.tasks


async def test_admin_call_without_admin_token_sends_nothing(fake, fmt):
    async with make_client(fake, format=fmt, admin_token=None) as client:
        error = await expect(InvalidRequestError, client.admin.sender_queue_stats(sender_id=119))
    assert "admin_token" in str(error)
    assert isinstance(error, ValueError)
    assert fake.requests == []


async def test_invalid_arguments_raise_before_sending(client, fake):
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: client.segments.get_counters(segment_id=0, resource_id=24),
        lambda: client.segments.get_counters(segment_id="7", resource_id=24),
        lambda: client.segments.get_counters(segment_id=True, resource_id=24),
        lambda: client.segments.get_counters(segment_id=7, resource_id=-1),
        lambda: client.segments.get_counters(segment_id=7, resource_id=2**64),
        lambda: client.segments.get_counters(segment_id=7, resource_id=24, timeout=0),
        lambda: client.segments.get_counters(segment_id=7, resource_id=24, timeout=-1.0),
        lambda: client.segments.refresh_counters(segment_id=7, resource_id=None),
        lambda: client.resources.refresh_counters(resource_id=24, database_id=0),
        lambda: client.tasks.status(""),
        lambda: client.tasks.status("   "),
        lambda: client.tasks.status(123),
        lambda: client.admin.sender_queue_stats(sender_id=119, group="everything"),
        lambda: client.admin.sender_queue_stats(sender_id=119, isp=""),
        lambda: client.relations.get_counter(relation_id=3, match="p0@example.com"),
        lambda: client.relations.get_counter(relation_id=0, match=Match.phone("+79000000000")),
        lambda: client.tasks.wait_counters(""),
    ]
    for call in calls:
        await expect(InvalidRequestError, call())
    with pytest.raises(InvalidRequestError):
        Match.email("not-an-email")
    with pytest.raises(InvalidRequestError):
        Feedback(url="ftp://x.test/")
    assert fake.requests == []
    assert not fake.tasks


async def test_feedback_of_the_wrong_type_is_invalid_request(client, fake):
    for feedback in ("http://hooks.example.test/", {"url": "http://hooks.example.test/"}, 1):
        await expect(
            InvalidRequestError,
            client.resources.refresh_counters(resource_id=24, database_id=1, feedback=feedback),
        )
    assert fake.requests == []


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.http(503),
        Fault.http(500),
        Fault.drop(),
        Fault.rate_limited(retry_after=0),
        Fault.rate_limited(retry_after=None),
        Fault.malformed(),
        Fault.truncated(),
    ],
    ids=["503", "500", "drop", "429", "429-no-retry-after", "malformed", "truncated"],
)
@pytest.mark.parametrize("failures", [1, 3])
async def test_reads_are_retried_until_success(client, fake, fault, failures):
    fake.faults.next(SEG_GET, fault, times=failures)
    chans = await client.segments.get_counters(segment_id=7, resource_id=24, database_id=1)
    assert chans == sendable(fake.platform.segment_counters(7, 24))
    assert fake.calls(SEG_GET) == failures + 1
    assert [r.fault is not None for r in fake.requests] == [True] * failures + [False]


async def test_status_polls_are_retried(client, fake):
    task = await client.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
    fake.faults.next(STATUS, Fault.http(502), times=2)
    status = await client.tasks.status(task.task_id)
    assert status.succeeded and fake.calls(STATUS) == 3
    fake.faults.next(STATUS, Fault.drop(), times=2)
    (snapshot,) = await task.wait(timeout=5)  # the awaiter also rides over failed polls
    assert counters_by_channel(snapshot) == fake.platform.segment_counters(7, 24)


async def test_exhausted_retries_raise_the_last_http_error(client, fake):
    fake.faults.script(SEG_GET, Fault.http(503, b"<html>Service Unavailable</html>"))
    error = await expect(
        HTTPStatusError, client.segments.get_counters(segment_id=7, resource_id=24)
    )
    assert error.status == 503 and error.endpoint == "segments.get_counters"
    assert error.headers["Content-Type"].startswith("text/plain")
    assert "Service Unavailable" in error.excerpt
    assert fake.calls(SEG_GET) == FAST_RETRY.attempts


async def test_exhausted_retries_mix_raises_the_last_error_type(client, fake):
    fake.faults.next(SEG_GET, Fault.http(503), times=FAST_RETRY.attempts - 1)
    fake.faults.next(SEG_GET, Fault.drop())
    error = await expect(TransportError, client.segments.get_counters(segment_id=7, resource_id=24))
    assert error.sent is True and not isinstance(error, RequestTimeoutError)
    assert fake.calls(SEG_GET) == FAST_RETRY.attempts


async def test_exhausted_retries_on_garbage_raise_decode_error(client, fake):
    fake.faults.script(SEG_GET, Fault.malformed(b"<html>oops"))
    error = await expect(DecodeError, client.segments.get_counters(segment_id=7, resource_id=24))
    assert "oops" in error.excerpt
    assert fake.calls(SEG_GET) == FAST_RETRY.attempts


async def test_custom_attempts_per_call(client, fake):
    fake.faults.script(SEG_GET, Fault.http(503))
    retry = RetryPolicy(attempts=2, backoff=FAST_RETRY.backoff)
    await expect(
        HTTPStatusError, client.segments.get_counters(segment_id=7, resource_id=24, retry=retry)
    )
    assert fake.calls(SEG_GET) == 2


@pytest.mark.parametrize(
    "fault", [Fault.http(503), Fault.http(500), Fault.drop()], ids=["503", "500", "drop"]
)
@pytest.mark.parametrize("path", [SEG_REFRESH, RES_REFRESH])
async def test_a_start_is_not_retried(client, fake, fault, path):
    fake.faults.next(path, fault)
    error_type = TransportError if fault.kind == "drop" else HTTPStatusError
    if path == SEG_REFRESH:
        call = client.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
    else:
        call = client.resources.refresh_counters(resource_id=24, database_id=1)
    await expect(error_type, call)
    assert fake.calls(path) == 1
    assert not fake.tasks


async def test_a_start_after_processing_fault_is_not_retried_either(client, fake):
    fake.faults.next(SEG_REFRESH, Fault.malformed())  # the task exists; its id is lost
    await expect(
        DecodeError, client.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
    )
    assert fake.calls(SEG_REFRESH) == 1 and len(fake.tasks) == 1  # no duplicate


@pytest.mark.parametrize("fault", [Fault.http(503), Fault.drop()], ids=["503", "drop"])
async def test_a_start_is_retried_when_the_caller_opts_in(client, fake, fault):
    fake.faults.next(SEG_REFRESH, fault, times=2)
    retry = RetryPolicy(retry_starts=True, backoff=FAST_RETRY.backoff)
    task = await client.segments.refresh_counters(
        segment_id=7, resource_id=24, database_id=1, retry=retry
    )
    assert fake.calls(SEG_REFRESH) == 3
    assert list(fake.tasks) == [task.task_id]


async def test_a_start_refused_with_429_is_retried(client, fake):
    fake.faults.next(SEG_REFRESH, Fault.rate_limited(retry_after=0), times=2)
    task = await client.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
    assert fake.calls(SEG_REFRESH) == 3
    assert list(fake.tasks) == [task.task_id]  # rate-limited requests are not processed
    (snapshot,) = await task.wait(timeout=5)
    assert counters_by_channel(snapshot) == fake.platform.segment_counters(7, 24)


@pytest.fixture
def refused_url() -> Iterator[str]:
    """The URL of a port that refuses connections: bound but not listening, and held for the
    whole test, so no other process (CI runs two suites at once) can start listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_connection_refused_raises_transport_error_not_sent(refused_url):
    url = refused_url
    attempts: list[str] = []

    async def on_request_start(session: Any, ctx: Any, params: Any) -> None:
        attempts.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with AltcraftClient(url, token=TOKEN, retry=FAST_RETRY, trace_configs=[trace]) as client:
        error = await expect(
            TransportError, client.segments.get_counters(segment_id=7, resource_id=24)
        )
        assert error.sent is False and error.endpoint == "segments.get_counters"
        # Never sent, so even a start is safely retried.
        error = await expect(
            TransportError, client.segments.refresh_counters(segment_id=7, resource_id=24)
        )
        assert error.sent is False
        assert client.connections_in_use() == 0
    assert len(attempts) == 2 * FAST_RETRY.attempts
    assert all(
        a.endswith(("/api/v1.1/segments/get_counters", "refresh_counters")) for a in attempts
    )


async def test_retry_after_is_honoured(client, fake):
    fake.faults.next(SEG_GET, Fault.rate_limited(retry_after=0.2))
    await client.segments.get_counters(segment_id=7, resource_id=24)
    first, second = fake.requests
    assert first.http_status == 429 and second.http_status == 200
    assert second.at - first.at >= 0.2


async def test_retry_after_beyond_the_cap_raises_at_once(client, fake):
    fake.faults.next(SEG_GET, Fault.rate_limited(retry_after=30))
    retry = RetryPolicy(retry_after_cap=1.0, backoff=FAST_RETRY.backoff)
    with anyio.fail_after(5):
        error = await expect(
            HTTPStatusError,
            client.segments.get_counters(segment_id=7, resource_id=24, retry=retry),
        )
    # delta-seconds, or an HTTP date rounded up to the second (a proxy's dialect)
    wait = parse_retry_after(error.headers["Retry-After"], datetime.now(UTC))
    assert error.status == 429 and wait is not None and 28 <= wait <= 31
    assert fake.calls(SEG_GET) == 1


async def test_retry_deadline_stops_retrying(client, fake):
    fake.faults.script(SEG_GET, Fault.rate_limited(retry_after=0.5))
    retry = RetryPolicy(attempts=10, deadline=0.3, backoff=FAST_RETRY.backoff)
    with anyio.fail_after(5):
        await expect(
            HTTPStatusError,
            client.segments.get_counters(segment_id=7, resource_id=24, retry=retry),
        )
    assert fake.calls(SEG_GET) == 1


# --- timeouts -------------------------------------------------------------------------------


async def test_per_call_timeout(client, fake):
    fake.faults.script(SEG_GET, Fault.delay(30))  # the timeout ends the call, not the reply
    with anyio.fail_after(10):
        error = await expect(
            RequestTimeoutError,
            client.segments.get_counters(segment_id=7, resource_id=24, timeout=0.1, retry=NO_RETRY),
        )
    assert isinstance(error, TimeoutError) and isinstance(error, TransportError)
    assert error.endpoint == "segments.get_counters"
    assert fake.calls(SEG_GET) == 1
    assert client.connections_in_use() == 0


async def test_client_default_timeout(fake, fmt):
    fake.faults.script(SEG_GET, Fault.delay(30))  # the timeout ends the call, not the reply
    async with make_client(fake, format=fmt, timeout=0.1, retry=NO_RETRY) as client:
        with anyio.fail_after(10):
            error = await expect(
                RequestTimeoutError, client.segments.get_counters(segment_id=7, resource_id=24)
            )
        assert isinstance(error, TimeoutError)


async def test_a_timed_out_read_is_retried(client, fake):
    # the first try's reply would take 30 s: cut at 1 s; the retry (a new connection, a whole
    # round trip) has its own second, ample on a loaded machine
    fake.faults.next(SEG_GET, Fault.delay(30))
    chans = await client.segments.get_counters(
        segment_id=7, resource_id=24, database_id=1, request_timeout=1.0
    )
    assert chans == sendable(fake.platform.segment_counters(7, 24))
    assert fake.calls(SEG_GET) == 2


async def test_cancelling_a_call_frees_its_connection(client, fake):
    fake.faults.script(SEG_GET, Fault.delay(30))
    with anyio.move_on_after(0.05) as scope:
        await client.segments.get_counters(segment_id=7, resource_id=24)
    assert scope.cancelled_caught
    assert client.connections_in_use() == 0
    fake.faults.clear()
    assert await client.segments.get_counters(segment_id=7, resource_id=24, database_id=1)


# --- rate limit, auth, hooks, session -------------------------------------------------------


async def test_rate_limit_spaces_requests(fake):
    sent: list[float] = []  # on the fake's clock: when each try left, after its slot
    hooks = {"request": [lambda event: sent.append(fake.clock.now())]}
    async with make_client(fake, rate_limit=20, event_hooks=hooks) as client:
        start = fake.clock.now()
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(lambda: client.segments.get_counters(segment_id=7, resource_id=24))
    arrived = sorted(record.at for record in fake.requests)
    assert len(arrived) == len(sent) == 10
    # the k-th try's slot is k/20 s after the start, and nothing leaves before its slot, at the
    # client or (later still) at the server; a loop woken late may send two at once, which
    # is no more than the rate allowed by then (a gap between arrivals proves nothing). An
    # event loop may fire a timer up to its clock's resolution early (uvloop: 1 ms).
    for times in (sorted(sent), arrived):
        early = [
            (k, round(at - start, 4)) for k, at in enumerate(times) if at - start < k / 20 - 0.002
        ]
        assert early == [], times


async def test_a_call_cancelled_while_waiting_for_its_slot_gives_the_slot_back(fake):
    sent: list[float] = []  # when each try left, after its slot (the client's side)
    hooks = {"request": [lambda event: sent.append(fake.clock.now())]}
    async with make_client(fake, rate_limit=1, event_hooks=hooks) as client:  # 1 request/s
        await client.segments.get_counters(segment_id=7, resource_id=24)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await client.segments.get_counters(segment_id=7, resource_id=24)
        await client.segments.get_counters(segment_id=7, resource_id=24)
    first, last = sent
    assert len(fake.requests) == 2
    # the third call takes the slot 1 s after the first, not the one after the lost slot (2 s)
    assert 0.9 <= last - first < 1.8


@pytest.mark.parametrize("order", ["oldest first", "newest first", "shuffled"])
async def test_waiters_cancelled_in_any_order_give_all_their_slots_back(order: str) -> None:
    limiter = RateLimiter(10)  # a slot every 0.1 s
    await limiter.acquire()
    scopes = [anyio.CancelScope() for _ in range(20)]  # 20 waiters: slots up to 2 s ahead

    async def wait_for_slot(scope: anyio.CancelScope) -> None:
        with scope:
            await limiter.acquire()

    async with anyio.create_task_group() as group:
        for scope in scopes:
            group.start_soon(wait_for_slot, scope)
        await anyio.wait_all_tasks_blocked()
        if order == "newest first":
            scopes.reverse()
        elif order == "shuffled":
            random.Random(4).shuffle(scopes)
        for scope in scopes:
            scope.cancel()
    assert all(scope.cancelled_caught for scope in scopes)
    with anyio.fail_after(1.0):  # the next slot is 0.1 s after the first call, not 2.1 s
        await limiter.acquire()


async def test_adaptive_rate_limit_halves_on_429(fake):
    async with make_client(fake, rate_limit=20, adaptive_rate_limit=True) as client:
        limiter = client.rate_limiter
        assert limiter is not None and limiter.rate == 20
        fake.faults.next(SEG_GET, Fault.rate_limited(retry_after=0))
        await expect(
            HTTPStatusError,
            client.segments.get_counters(segment_id=7, resource_id=24, retry=NO_RETRY),
        )
        assert limiter.rate == 10
        await client.segments.get_counters(segment_id=7, resource_id=24)
        assert 10 < limiter.rate <= 20  # each success wins a little back
    async with make_client(fake, rate_limit=20) as client:
        fake.faults.next(SEG_GET, Fault.rate_limited(retry_after=0))
        await client.segments.get_counters(segment_id=7, resource_id=24)
        assert client.rate_limiter is not None and client.rate_limiter.rate == 20


async def test_no_rate_limiter_by_default(client):
    assert client.rate_limiter is None


async def test_bearer_auth_sends_the_token_in_a_header_only(fake, fmt):
    bodies: list[bytes] = []

    async def on_chunk(session: Any, ctx: Any, params: Any) -> None:
        bodies.append(params.chunk)

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_chunk)
    async with make_client(fake, format=fmt, auth="bearer", trace_configs=[trace]) as client:
        await client.segments.get_counters(segment_id=7, resource_id=24)
        await client.admin.sender_queue_stats(sender_id=119)
    assert [(r.token, r.token_source) for r in fake.requests] == [
        ("user", "header"),
        ("admin", "header"),
    ]
    assert bodies and all(b"SECRET" not in body and b"token" not in body for body in bodies)


async def test_body_auth_sends_the_token_in_the_body(client, fake):
    await client.segments.get_counters(segment_id=7, resource_id=24)
    assert [(r.token, r.token_source) for r in fake.requests] == [("user", "body")]


async def test_trace_configs_pass_through(fake):
    started: list[str] = []
    ended: list[int] = []

    async def on_request_start(session: Any, ctx: Any, params: Any) -> None:
        started.append(f"{params.method} {params.url.path}")

    async def on_request_end(session: Any, ctx: Any, params: Any) -> None:
        ended.append(params.response.status)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    trace.on_request_end.append(on_request_end)
    async with make_client(fake, trace_configs=[trace]) as client:
        await client.segments.get_counters(segment_id=7, resource_id=24)
        await client.tasks.status(
            (await client.segments.refresh_counters(segment_id=7, resource_id=24)).task_id
        )
    assert started == [
        "POST /api/v1.1/segments/get_counters",
        "POST /api/v1.1/segments/refresh_counters",
        "POST /api/v1.1/tasks/status",
    ]
    assert ended == [200, 200, 200]


async def test_extra_headers_are_sent(fake):
    seen: list[str] = []

    async def on_request_start(session: Any, ctx: Any, params: Any) -> None:
        seen.append(params.headers.get("X-Request-Source", ""))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    async with make_client(fake, headers={"X-Request-Source": "tests"}, trace_configs=[trace]) as c:
        await c.segments.get_counters(segment_id=7, resource_id=24)
    assert seen == ["tests"]


async def test_caller_owned_session_is_not_closed(fake, fmt):
    session = aiohttp.ClientSession()
    try:
        client = make_client(fake, format=fmt, session=session)
        async with client:
            chans = await client.segments.get_counters(segment_id=7, resource_id=24)
            assert chans == sendable(fake.platform.segment_counters(7, 24))
        assert client.closed
        assert not session.closed
        async with session.post(f"{fake.url}/api/v1.1/{SEG_GET}", json={}) as response:
            assert response.status == 200  # still usable by its owner
    finally:
        await session.close()
    assert len(fake.requests) == 2


# --- secrets and logging --------------------------------------------------------------------


async def test_repr_and_errors_hold_no_token(fake):
    client = make_client(fake)
    assert_no_secret(repr(client), str(client))
    async with client:
        fake.faults.next(SEG_GET, Fault.api_error(401, "token required"))
        await expect(
            AuthenticationError, client.segments.get_counters(segment_id=7, resource_id=24)
        )
        fake.faults.next(SEG_GET, Fault.malformed(b"garbage"))
        await expect(
            DecodeError,
            client.segments.get_counters(segment_id=7, resource_id=24, retry=NO_RETRY),
        )
        assert_no_secret(repr(client), str(vars(client.segments)))
    assert "closed" in repr(client)
    assert_no_secret(repr(client))


async def test_debug_logging_is_useful_and_redacted(fake, fmt, caplog):
    caplog.set_level(logging.DEBUG)
    async with make_client(fake, format=fmt) as client:
        await client.segments.get_counters(segment_id=7, resource_id=24)
        fake.faults.next(SEG_REFRESH, Fault.rate_limited(retry_after=0))
        task = await client.segments.refresh_counters(segment_id=7, resource_id=24)
        await task.wait(timeout=5)
        await client.admin.sender_queue_stats(sender_id=119, group="isp")
        await client.relations.get_counter(relation_id=3, match=Match.email("p0@example.com"))
        await expect(BadRequestError, client.segments.get_counters(segment_id=999, resource_id=24))
    async with make_client(fake, format=fmt, token="wrong-SECRET-token") as client:
        await expect(
            AuthenticationError, client.segments.get_counters(segment_id=7, resource_id=24)
        )
    everything = caplog.text + "".join(
        f"{r.getMessage()} {r.args!r} {vars(r)!r}" for r in caplog.records
    )
    assert_no_secret(everything)
    assert "wrong-SECRET-token" not in everything
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("altcraft_async")]
    assert any(
        m.startswith("POST segments/get_counters status=200 attempt=1 elapsed=") for m in ours
    ), ours
    assert any(m.startswith("POST segments/refresh_counters status=429 attempt=1") for m in ours)
    assert any(m.startswith("POST segments/refresh_counters status=200 attempt=2") for m in ours)
    assert any(m.startswith("POST admin/senders/queue/stats/ status=200") for m in ours)
    assert any("retry 1" in m for m in ours)
    assert sum("POST " in m for m in ours) == len(fake.requests)


async def test_debug_logging_has_a_line_for_a_try_that_got_no_reply(caplog, refused_url):
    caplog.set_level(logging.DEBUG, logger="altcraft_async")
    url = refused_url
    async with AltcraftClient(url, token=TOKEN, retry=NO_RETRY) as client:
        await expect(TransportError, client.segments.get_counters(segment_id=7, resource_id=24))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("POST ")]
    assert line.startswith("POST segments/get_counters status=None attempt=1 elapsed=")
    assert line.endswith(" error=TransportError")


# --- many calls at once ---------------------------------------------------------------------


async def test_concurrent_calls_share_one_pool(fake):
    results: list[list[ChannelCounters]] = []
    sdk = make_client(fake, max_connections=4)

    async def one() -> None:
        results.append(await sdk.segments.get_counters(segment_id=7, resource_id=24))

    async with sdk:
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(one)
        assert sdk.connections_in_use() == 0
    assert len(results) == 20 and all(r == results[0] for r in results)
    assert fake.stats.max_concurrent <= 4


async def test_errors_are_all_altcraft_errors(client, fake):
    fake.faults.next(SEG_GET, Fault.api_error(402, "tariff"))
    error = await expect(
        TariffLimitError, client.segments.get_counters(segment_id=7, resource_id=24)
    )
    assert isinstance(error, APIError) and isinstance(error, AltcraftError)


# --- review fixes: envelope errors sent with a retryable HTTP status, redirects, timeouts ------


@pytest.mark.parametrize("code", [503, 429])
async def test_an_envelope_error_sent_with_http_503_or_429_is_retried(code: int) -> None:
    async with serve(error_http_status=True) as fake, make_client(fake) as sdk:
        fake.faults.next(SEG_GET, Fault.api_error(code, "busy"))
        channels = await sdk.segments.get_counters(segment_id=7, resource_id=24, database_id=1)
        assert channels
        assert fake.calls(SEG_GET) == 2


async def test_an_envelope_429_on_a_start_is_retried_and_starts_one_task() -> None:
    async with serve(error_http_status=True) as fake, make_client(fake) as sdk:
        fake.faults.next(SEG_REFRESH, Fault.api_error(429, "slow down"))
        await sdk.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
        assert fake.calls(SEG_REFRESH) == 2
        assert len(fake.tasks) == 1


async def test_an_envelope_error_sent_with_http_200_is_not_retried() -> None:
    async with serve() as fake, make_client(fake) as sdk:
        fake.faults.next(SEG_GET, Fault.api_error(503, "busy"))
        error = await expect(
            APIError, sdk.segments.get_counters(segment_id=7, resource_id=24, database_id=1)
        )
        assert error.code == 503 and fake.calls(SEG_GET) == 1


async def test_redirects_are_not_followed_so_the_token_never_travels() -> None:
    seen: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(await request.text())
        return web.Response(text="{}")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(location=f"{other_url}/steal")

    other = web.Application()
    other.router.add_post("/steal", elsewhere)
    front = web.Application()
    front.router.add_post("/api/v1.1/{tail:.*}", redirect)
    runners = [web.AppRunner(other), web.AppRunner(front)]
    for runner in runners:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
    other_url = "http://{}:{}".format(*runners[0].addresses[0][:2])
    front_url = "http://{}:{}".format(*runners[1].addresses[0][:2])
    try:
        async with AltcraftClient(front_url, token=TOKEN, retry=FAST_RETRY) as sdk:
            error = await expect(
                HTTPStatusError, sdk.segments.get_counters(segment_id=7, resource_id=24)
            )
        assert error.status == 307
        assert seen == []
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0, True])
async def test_non_finite_or_non_positive_timeouts_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidRequestError):
        AltcraftClient("http://127.0.0.1:1", token=TOKEN, timeout=bad)
    async with AltcraftClient("http://127.0.0.1:1", token=TOKEN) as sdk:
        with pytest.raises(InvalidRequestError):
            await sdk.segments.get_counters(segment_id=7, resource_id=24, timeout=bad)


# --- event hooks ----------------------------------------------------------------------------


async def test_event_hooks_see_every_try_with_its_status_and_never_the_token(fake, fmt):
    seen: list[RequestEvent | ResponseEvent] = []

    async def on_response(event: ResponseEvent) -> None:  # async hooks are awaited
        seen.append(event)

    hooks = {"request": [seen.append], "response": [on_response]}
    fake.faults.next(SEG_GET, Fault.http(503))
    async with make_client(fake, format=fmt, event_hooks=hooks) as client:
        result = await client.segments.get_counters(segment_id=7, resource_id=24)
        assert result
    url = f"{fake.url}/api/v1.1/{SEG_GET}"
    assert [type(event) for event in seen] == [RequestEvent, ResponseEvent] * 2
    first, failed, second, succeeded = seen
    assert first == RequestEvent("segments.get_counters", url, 1)
    assert second == RequestEvent("segments.get_counters", url, 2)
    assert isinstance(failed, ResponseEvent) and isinstance(succeeded, ResponseEvent)
    assert (failed.attempt, failed.status, failed.error) == (1, 503, None)
    assert (succeeded.attempt, succeeded.status, succeeded.error) == (2, 200, None)
    media = "text/plain" if fake.dialect.text_plain else "application/" + fmt
    assert succeeded.elapsed > 0 and media in succeeded.headers["Content-Type"]
    assert_no_secret(*(repr(event) for event in seen))
    assert_no_secret(*(str(attrs.asdict(event)) for event in seen))


async def test_a_try_that_gets_no_reply_reports_its_error_to_response_hooks(refused_url):
    url = refused_url
    seen: list[ResponseEvent] = []
    retry = RetryPolicy(attempts=2, backoff=FAST_RETRY.backoff)
    hooks = {"response": [seen.append]}
    async with AltcraftClient(url, token=TOKEN, retry=retry, event_hooks=hooks) as client:
        error = await expect(
            TransportError, client.segments.get_counters(segment_id=7, resource_id=24)
        )
    assert [event.attempt for event in seen] == [1, 2]
    assert all(event.status is None for event in seen)
    assert all(isinstance(event.error, TransportError) for event in seen)
    assert seen[-1].error is error


async def test_a_reply_over_the_size_limit_reports_its_status_and_error(fake):
    seen: list[ResponseEvent] = []
    hooks = {"response": [seen.append]}
    async with make_client(fake, max_response_size=10, event_hooks=hooks) as client:
        error = await expect(
            DecodeError, client.segments.get_counters(segment_id=7, resource_id=24)
        )
    (event,) = seen  # a damaged reply is retried, an oversized one is not
    assert event.status == 200 and event.error is error


async def test_task_polls_fire_the_hooks_too(fake):
    endpoints: list[str] = []
    hooks = {"request": [lambda event: endpoints.append(event.endpoint)]}
    fake.plan_tasks(TaskPlan.after_polls(2))
    async with make_client(fake, rate_limit=20, event_hooks=hooks) as client:
        await client.segments.refresh_and_wait(segment_id=7, resource_id=24, database_id=1)
    assert endpoints[0] == "segments.refresh_counters"
    assert endpoints[1:] == ["tasks.status"] * fake.calls(STATUS)
    assert len(endpoints) >= 3


class HookFailed(Exception):
    pass


def broken_hook(event: RequestEvent | ResponseEvent) -> None:
    raise HookFailed(event.endpoint)


@pytest.mark.parametrize("kind", ["request", "response"])
async def test_an_exception_in_a_hook_ends_the_call_and_leaves_nothing_open(fake, kind):
    async with make_client(fake, event_hooks={kind: [broken_hook]}) as client:
        with pytest.raises(HookFailed):
            await client.segments.get_counters(segment_id=7, resource_id=24)
        assert client.connections_in_use() == 0
        # not retried: the hook's error is the caller's, not a transient failure
        assert fake.calls(SEG_GET) == (0 if kind == "request" else 1)
        fake.faults.next(SEG_GET, Fault.http(503))
        with pytest.raises(HookFailed):  # also when the try itself failed
            await client.segments.get_counters(segment_id=7, resource_id=24)
        assert client.connections_in_use() == 0


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ({"request": [print], "send": [print]}, "not 'send'"),
        ({"request": print}, "event_hooks['request'] must be a list of callables"),
        ({"response": [print, "log"]}, "event_hooks['response'] must be a list of callables"),
        ([print], "event_hooks must be a mapping"),
    ],
)
def test_bad_event_hooks_are_refused_when_the_client_is_built(hooks: Any, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        AltcraftClient("http://127.0.0.1:9", token=TOKEN, event_hooks=hooks)


# --- inputs the wire cannot carry, and replies that echo the request -------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.tasks.status("task-\ud800"),
        lambda c: c.relations.get_counter(relation_id=3, match=Match.email("a\ud800@example.com")),
        lambda c: c.relations.get_counter(relation_id=3, match=Match.custom("crm", "v\udfff")),
    ],
    ids=["task-id", "email", "custom-value"],
)
async def test_text_that_is_not_unicode_is_refused_before_sending(fake, fmt, call):
    async with make_client(fake, format=fmt) as client:
        with pytest.raises(InvalidRequestError) as info:
            await call(client)
    assert "lone surrogate" in str(info.value)
    assert_no_secret(str(info.value), repr(info.value))
    assert fake.requests == []


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1])
def test_custom_match_values_must_fit_in_64_bits(value: int) -> None:
    with pytest.raises(InvalidRequestError, match="64 bits"):
        Match.custom("crm", value)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_the_encoder_never_quotes_the_document_in_its_error(fmt: str) -> None:
    from altcraft_async._codec import encode

    with pytest.raises(InvalidRequestError) as info:
        encode({"token": TOKEN, "value": "\ud800"}, fmt)  # type: ignore[arg-type]
    assert_no_secret(str(info.value), repr(info.value))
    assert info.value.__context__ is None or TOKEN not in repr(info.value.__context__)


@pytest.mark.parametrize(
    "token", ["line\r\nX-Injected: 1", "tok\n", "\ud800-token", "", 7], ids=repr
)
def test_a_token_that_cannot_be_sent_is_refused_when_the_client_is_built(token: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        AltcraftClient("http://127.0.0.1:9", token=token, auth="bearer")
    assert str(token) not in str(info.value) or not token


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize("auth", ["body", "bearer"])
async def test_a_reply_echoing_the_request_never_puts_the_token_in_an_error(fmt, status, auth):
    token = 'it\'s-SECRET-"quoted"&<b>'  # escaped differently by JSON and XML

    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=status, body=b"oops " + await request.read())

    app = web.Application()
    app.router.add_post("/api/v1.1/segments/get_counters", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with AltcraftClient(
            url, token=token, format=fmt, auth=auth, retry=NO_RETRY
        ) as client:
            with pytest.raises(AltcraftError) as info:
                await client.segments.get_counters(segment_id=7, resource_id=24)
    finally:
        await runner.cleanup()
    error = info.value
    shown = f"{error} {error!r} {getattr(error, 'excerpt', '')}"
    for form in (token, json.dumps(token)[1:-1], "it&apos;s", "&amp;&lt;b&gt;"):
        assert form not in shown
    assert "***" in shown or auth == "bearer"


def test_the_cli_redacts_a_token_also_as_repr_and_json_escape_it() -> None:
    from altcraft_async.cli import redact

    token = "it's-SECRET\\x"
    text = f"{token} {token!r} {json.dumps(token)}"
    assert "SECRET" not in redact(text, [token])


# --- the retry deadline, adaptive rate limit and constructor checks --------------------------


async def test_the_retry_deadline_bounds_a_slow_try(fake):
    fake.faults.script(SEG_GET, Fault.delay(10.0))
    policy = RetryPolicy(attempts=10, deadline=0.3, backoff=FAST_RETRY.backoff)
    async with make_client(fake, timeout=5.0, retry=policy) as client:
        with anyio.fail_after(2):  # not the 5 s per-try timeout
            await expect(
                RequestTimeoutError, client.segments.get_counters(segment_id=7, resource_id=24)
            )


async def test_the_retry_deadline_bounds_the_wait_for_a_rate_limit_slot(fake):
    async with make_client(fake, rate_limit=1) as client:  # the next slot is 1 s away
        await client.segments.get_counters(segment_id=7, resource_id=24)
        policy = RetryPolicy(deadline=0.2)
        with anyio.fail_after(0.8):
            await expect(
                RequestTimeoutError,
                client.segments.get_counters(segment_id=7, resource_id=24, retry=policy),
            )
    assert fake.calls(SEG_GET) == 1


async def test_a_burst_of_429s_cuts_an_adaptive_rate_once(fake):
    fake.faults.next(SEG_GET, Fault.rate_limited(retry_after=0), times=8)
    async with make_client(fake, rate_limit=1000, adaptive_rate_limit=True) as client:
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(
                    expect,
                    HTTPStatusError,
                    client.segments.get_counters(segment_id=7, resource_id=24, retry=NO_RETRY),
                )
        assert client.rate_limiter is not None and client.rate_limiter.rate == 500


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry": 3}, "retry must be a RetryPolicy"),
        ({"poll": "fast"}, "poll must be a PollPolicy"),
        ({"max_response_size": -1}, "max_response_size must be a positive int"),
        ({"max_response_size": "1"}, "max_response_size must be a positive int"),
        ({"headers": {"X": 1}}, "headers must map str to str"),
        ({"headers": {"X": "a\r\nInjected: 1"}}, "headers must not contain line breaks"),
        ({"ssl": "no"}, "ssl must be True, False, an ssl.SSLContext or a Fingerprint"),
        ({"trace_configs": [1]}, "trace_configs must be a sequence of aiohttp.TraceConfig"),
        ({"base_url": "http://host:99999"}, "base_url is not a valid URL"),
        ({"base_url": "http://[::1"}, "base_url is not a valid URL"),
        ({"base_url": "http://"}, "base_url must be an http(s) URL with a host"),
        ({"base_url": "ftp://host"}, "base_url must be an http(s) URL with a host"),
        ({"base_url": 7}, "base_url must be a str"),
        ({"base_url": "https://user:PASSWORD@host"}, "base_url must not hold credentials"),
    ],
)
def test_bad_client_options_are_refused_when_the_client_is_built(
    options: dict[str, Any], message: str
) -> None:
    options = {"base_url": "http://127.0.0.1:9", "token": TOKEN, **options}
    with pytest.raises(InvalidRequestError) as info:
        AltcraftClient(**options)
    assert message in str(info.value)
    assert "PASSWORD" not in str(info.value)


def test_trace_configs_none_means_none() -> None:
    AltcraftClient("http://127.0.0.1:9", token=TOKEN, trace_configs=None)


@pytest.mark.parametrize("refs", [7, "7", b"7"])
def test_refresh_many_refuses_refs_that_are_not_a_collection(refs: Any) -> None:
    client = AltcraftClient("http://127.0.0.1:9", token=TOKEN)
    with pytest.raises(InvalidRequestError, match="refs must be an iterable"):
        client.segments.refresh_many(refs)


async def test_a_ref_of_the_wrong_kind_is_its_own_failed_outcome(fake):
    refs: list[Any] = [SegmentRef(7, 24, 1), "not a ref", SegmentRef(8, 24, 1)]
    async with make_client(fake) as client:
        outcomes = [o async for o in client.segments.refresh_many(refs)]
    errors = [o.error for o in outcomes if o.error is not None]
    assert len(outcomes) == 3 and len(errors) == 1
    assert isinstance(errors[0], InvalidRequestError) and "SegmentRef" in str(errors[0])


async def test_closing_the_client_cuts_short_a_call_sleeping_before_its_retry(fake):
    refused = anyio.Event()

    def on_response(event: ResponseEvent) -> None:
        if event.status == 429:
            refused.set()

    fake.faults.next(SEG_GET, Fault.rate_limited(retry_after=5))
    client = make_client(fake, event_hooks={"response": [on_response]})
    ended: list[BaseException] = []

    async def call() -> None:
        try:
            await client.segments.get_counters(segment_id=7, resource_id=24)
        except ClientClosedError as error:
            ended.append(error)

    with anyio.fail_after(2):  # not the 5 s of Retry-After
        async with anyio.create_task_group() as group:
            group.start_soon(call)
            await refused.wait()
            await client.aclose()
    assert len(ended) == 1
    assert fake.calls(SEG_GET) == 1


async def test_a_timeout_error_from_a_hook_is_not_taken_for_the_retry_deadline(fake):
    def late(event: RequestEvent) -> None:
        raise TimeoutError("the hook's own")

    policy = RetryPolicy(deadline=5.0)
    async with make_client(fake, retry=policy, event_hooks={"request": [late]}) as client:
        with pytest.raises(TimeoutError, match="the hook's own") as info:
            await client.segments.get_counters(segment_id=7, resource_id=24)
    assert not isinstance(info.value, RequestTimeoutError)
