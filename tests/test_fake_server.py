"""The fake Altcraft server, driven over real HTTP by a plain aiohttp client (not the SDK)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from helpers import prints_in_a_subprocess, small_platform

from altcraft_async._codec import encode, parse
from altcraft_async._errors import DecodeError
from altcraft_async.testing import (
    FakeAltcraft,
    Fault,
    ManualClock,
    TaskPlan,
)
from altcraft_async.testing._seed import seeded_platform

pytestmark = pytest.mark.anyio

TOKEN = "test-token"
ADMIN = "admin-token"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAltcraft]:
    async with FakeAltcraft(small_platform(), clock="manual") as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def call(
    session: aiohttp.ClientSession,
    fake: FakeAltcraft,
    path: str,
    *,
    token: str | None = TOKEN,
    xml_request: bool = False,
    **params: Any,
) -> tuple[int, dict[str, Any]]:
    """POST one call; return the HTTP status and the parsed envelope (in the reply's format)."""
    body = {**({"token": token} if token is not None else {}), **params}
    fmt = "xml" if xml_request else "json"
    async with session.post(
        f"{fake.url}/api/v1.1/{path}",
        data=encode(body, fmt),
        headers={"Content-Type": f"application/{fmt}"},
    ) as response:
        raw = await response.read()
        return response.status, parse(raw, params.get("format", "json"))


async def ok(session: aiohttp.ClientSession, fake: FakeAltcraft, path: str, **params: Any) -> Any:
    status, envelope = await call(session, fake, path, **params)
    assert (status, envelope["error"]) == (200, 0), envelope
    assert envelope["error_text"] == "Successful operation"
    return envelope["data"]


def sendable(counters: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    return [
        {
            "channel": channel,
            "status": {
                "subscribed_sendable": counts["subscribed_sendable"],
                "unconfirmed_sendable": counts["unconfirmed_sendable"],
            },
        }
        for channel, counts in counters.items()
    ]


# --- state and counters ---------------------------------------------------------------------


async def test_counters_follow_data_changes_after_a_refresh(fake, session):
    ref = {"id": 7, "resource_id": 24, "list_id": 1}
    before = await ok(session, fake, "segments/get_counters", **ref)
    assert before == sendable(fake.platform.segment_counters(7, 24))
    assert before[0] == {
        "channel": "email",
        "status": {"subscribed_sendable": 2, "unconfirmed_sendable": 1},
    }
    profile = fake.platform.profile_ids(1)[2]
    fake.platform.set_subscription(profile, 24, "email", "subscribed")
    # Stale until refreshed, like the platform.
    assert await ok(session, fake, "segments/get_counters", **ref) == before
    started = await ok(session, fake, "segments/refresh_counters", id=7, resource_id=24, db_id=1)
    status = await ok(session, fake, "tasks/status", task_id=started["task_id"])
    assert status["status"] == "completed" and status["progress"] == 100
    (snapshot,) = status["result"]
    expected = fake.platform.segment_counters(7, 24)
    assert {c["channel"]: c["status"] for c in snapshot["channels"]} == expected
    assert expected["email"]["subscribed"] == 3
    assert snapshot["list_id"] == 1 and snapshot["resource_id"] == 24
    assert snapshot["in_progress"] is False and snapshot["refresh_task_id"] == ""
    assert snapshot["updated"] == "2024-04-19T13:31:08.000Z"
    assert snapshot["last_count_time"].startswith("counted at 2024-04-19T13:31:08Z in ")
    after = await ok(session, fake, "segments/get_counters", **ref)
    assert after == sendable(expected) != before


async def test_sendable_rule_and_rule_segments(fake):
    platform = fake.platform
    first, second = platform.profile_ids(1)[:2]
    assert platform.segment_counters(7, 24)["email"]["subscribed_sendable"] == 2
    platform.update_profile(first, suspended=True)
    platform.update_profile(second, email="not-an-email")
    counts = platform.segment_counters(7, 24)
    assert counts["email"]["subscribed"] == 2
    assert counts["email"]["subscribed_sendable"] == 0
    assert counts["sms"]["subscribed_sendable"] == 3  # the phone is still valid for `second`
    assert counts["email"]["all"] == counts["sms"]["all"] == 4
    assert platform.segment_counters(8, 24)["email"]["all"] == 3  # ages 30, 40, 50
    platform.update_profile(platform.profile_ids(1)[4], fields={"age": 33})  # 60 -> 33: in
    platform.update_profile(second, fields={"age": 70})  # 30 -> 70: out
    assert platform.segment_counters(8, 24)["email"]["all"] == 3
    assert platform.profile(first).suspended


async def test_resource_refresh_counts_the_whole_database(fake, session):
    started = await ok(session, fake, "resources/refresh_counters", id=24, list_id=1)
    (snapshot,) = (await ok(session, fake, "tasks/status", task_id=started["task_id"]))["result"]
    counts = {c["channel"]: c["status"] for c in snapshot["channels"]}
    assert counts == fake.platform.resource_counters(24, 1)
    assert counts["email"]["all"] == 5 and counts["email"]["hardbounced"] == 1


async def test_database_counters_stay_stale_until_a_database_refresh_completes(fake, session):
    ref = {"id": 1, "resource_id": 24}
    before = await ok(session, fake, "databases/get_counters", **ref)
    assert before == sendable(fake.platform.resource_counters(24, 1))
    assert before[0] == {
        "channel": "email",
        "status": {"subscribed_sendable": 2, "unconfirmed_sendable": 1},
    }
    unsubscribed = fake.platform.profile_ids(1)[2]
    fake.platform.set_subscription(unsubscribed, 24, "email", "subscribed")
    assert await ok(session, fake, "databases/get_counters", **ref) == before
    # a resource refresh counts the same profiles but stores nothing
    await ok(session, fake, "resources/refresh_counters", id=24, list_id=1)
    assert await ok(session, fake, "databases/get_counters", **ref) == before
    fake.plan_tasks(TaskPlan.after_polls(2), kind="database", count=1)
    started = await ok(session, fake, "databases/refresh_counters", **ref)
    record = fake.tasks[started["task_id"]]
    assert (record.kind, record.database_id, record.resource_id) == ("database", 1, 24)
    assert record.plan == TaskPlan.after_polls(2)
    running = await ok(session, fake, "tasks/status", task_id=started["task_id"])
    assert running["status"] != "completed" and "result" not in running
    assert await ok(session, fake, "databases/get_counters", **ref) == before  # still running
    await ok(session, fake, "tasks/status", task_id=started["task_id"])  # done after this one
    status = await ok(session, fake, "tasks/status", task_id=started["task_id"])
    assert status["status"] == "completed" and status["progress"] == 100
    (snapshot,) = status["result"]
    expected = fake.platform.resource_counters(24, 1)
    assert {c["channel"]: c["status"] for c in snapshot["channels"]} == expected
    assert expected["email"]["subscribed_sendable"] == 3
    assert snapshot["list_id"] == 1 and snapshot["resource_id"] == 24
    after = await ok(session, fake, "databases/get_counters", **ref)
    assert after == sendable(expected) != before
    # the segment snapshots are their own: unchanged by the database refresh
    segment = await ok(session, fake, "segments/get_counters", id=7, resource_id=24, list_id=1)
    assert segment == sendable(fake.platform.segment_counters(7, 24))


async def test_plan_tasks_refuses_an_unknown_kind(fake):
    with pytest.raises(ValueError, match="unknown task kind 'databse'; known: segment, resource"):
        fake.plan_tasks(TaskPlan.never(), kind="databse")


async def test_unknown_ids_and_bad_parameters_are_error_400(fake, session):
    cases = [
        ("segments/get_counters", {"id": 99, "resource_id": 24}, "segment 99 not found"),
        ("segments/get_counters", {"id": 7, "resource_id": 5}, "resource 5 not found"),
        ("segments/get_counters", {"resource_id": 24}, "id is required"),
        ("segments/get_counters", {"id": 8, "resource_id": 24}, "list_id is required"),
        ("segments/get_counters", {"id": "x", "resource_id": 24}, "id must be an integer"),
        ("segments/refresh_counters", {"id": 7, "resource_id": 24, "db_id": 2}, "database 2"),
        ("resources/refresh_counters", {"id": 24}, "list_id is required"),
        ("databases/get_counters", {"id": 9, "resource_id": 24}, "database 9 not found"),
        ("databases/get_counters", {"id": 1, "resource_id": 5}, "resource 5 not found"),
        ("databases/get_counters", {"resource_id": 24}, "id is required"),
        ("databases/get_counters", {"id": 1}, "resource_id is required"),
        ("databases/refresh_counters", {"id": 9, "resource_id": 24}, "database 9 not found"),
        ("databases/refresh_counters", {"id": 1, "resource_id": 5}, "resource 5 not found"),
        (
            "databases/refresh_counters",
            {"id": 1, "resource_id": 24, "feedback": {"url": "ftp://x"}},
            "feedback.url must be an absolute http(s) URL",
        ),
        ("tasks/status", {"task_id": "nope"}, "task nope not found"),
        ("relations/get_counter", {"rel_id": 4, "email": "a@b.c"}, "relation 4 not found"),
        ("relations/get_counter", {"rel_id": 3, "matching": "phone"}, "phone is required"),
    ]
    for path, params, text in cases:
        status, envelope = await call(session, fake, path, **params)
        assert (status, envelope["error"]) == (200, 400), (path, params)
        assert text in envelope["error_text"], (path, envelope)
    async with session.post(
        f"{fake.url}/api/v1.1/segments/get_counters",
        data=b"id=7",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as response:
        assert "unsupported Content-Type" in parse(await response.read(), "json")["error_text"]
    async with session.post(
        f"{fake.url}/api/v1.1/segments/get_counters",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    ) as response:
        assert parse(await response.read(), "json")["error"] == 400
    async with session.post(
        f"{fake.url}/api/v1.1/segments/get_counters",
        data=b'{"token": "test-token", "format": "csv"}',
        headers={"Content-Type": "application/json"},
    ) as response:
        assert "format must be" in parse(await response.read(), "json")["error_text"]
    status, envelope = await call(session, fake, "admin/senders/queue/stats", token=ADMIN, id=1)
    assert status == 404 and "trailing slash" in envelope["error_text"]
    assert not fake.tasks  # nothing invalid started a task


async def test_relations_by_each_matching_mode(fake, session):
    first = fake.platform.profile_ids(1)[0]
    expected = {
        "profile_id": first,
        "profile_xxh": fake.platform.relation_info(3, first)["profile_xxh"],
        "props": {"orders": {"top": {"a1": 5, "b2": 3}, "sum": 8}, "store": "Omsk"},
    }
    matchings: list[dict[str, Any]] = [
        {"profile_id": first},  # the documented example: no `matching` at all
        {"matching": "profile_id", "profile_id": first},
        {"email": "p0@example.com"},
        {"matching": "email_profile", "email": "p0@example.com"},
        {"matching": "phone", "phone": "+79000000000"},
        {"matching": "custom", "field_name": "crm", "field_value": "C0", "resource_id": 24},
    ]
    for matching in matchings:
        assert await ok(session, fake, "relations/get_counter", rel_id=3, **matching) == expected
    assert len(expected["profile_xxh"]) == 16
    other = await ok(session, fake, "relations/get_counter", rel_id=3, email="p1@example.com")
    assert other["props"] == {}
    _status, envelope = await call(
        session, fake, "relations/get_counter", rel_id=3, email="nobody@example.com"
    )
    assert envelope["error"] == 400 and "profile not found" in envelope["error_text"]


async def test_sender_queue_stats_groups_and_filters(fake, session):
    def stats(**params: Any) -> Any:
        return ok(session, fake, "admin/senders/queue/stats/", token=ADMIN, id=119, **params)

    (total,) = await stats()
    assert total == {
        "account_id": 0,
        "campaign_id": 0,
        "hold": 80,
        "isp": "",
        "new": 115,
        "proc": 110,
        "retry": 40,
        "total": 345,
    }
    by_account = await stats(group="account")
    assert [(r["account_id"], r["total"]) for r in by_account] == [(306, 340), (412, 5)]
    by_campaign = await stats(group="account_campaign", account_id=306)
    assert [(r["campaign_id"], r["total"]) for r in by_campaign] == [(4591, 200), (4914, 140)]
    by_isp = await stats(group="isp", campaign_id=4914)
    assert [(r["isp"], r["total"]) for r in by_isp] == [("gmail.com", 5), ("mail.ru", 140)]
    assert await stats(isp="GMAIL.com", group="isp") == [
        {**total, "isp": "gmail.com", "hold": 0, "new": 105, "proc": 100, "retry": 0, "total": 205}
    ]
    _, envelope = await call(
        session, fake, "admin/senders/queue/stats/", token=ADMIN, id=119, group="daily"
    )
    assert envelope["error"] == 400
    _status, envelope = await call(session, fake, "admin/senders/queue/stats/", token=ADMIN, id=1)
    assert envelope["error_text"] == "sender 1 not found"


# --- tokens ---------------------------------------------------------------------------------


async def test_tokens(session):
    platform = small_platform()
    async with FakeAltcraft(platform, tokens=["second-user"]) as fake:
        ref = {"id": 7, "resource_id": 24}
        for token, code, text in [
            (None, 401, "token required"),
            ("wrong", 401, "invalid token"),
            (ADMIN, 403, "forbidden: an admin token cannot call the user API"),
        ]:
            status, envelope = await call(
                session, fake, "segments/get_counters", token=token, **ref
            )
            assert (status, envelope["error"], envelope["error_text"]) == (200, code, text)
        status, envelope = await call(session, fake, "admin/senders/queue/stats/", id=119)
        assert envelope["error"] == 403
        await ok(session, fake, "segments/get_counters", token="second-user", **ref)
        async with session.post(
            f"{fake.url}/api/v1.1/segments/get_counters",
            json=ref,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            assert parse(await response.read(), "json")["error"] == 0
        kinds = [(r.token, r.token_source) for r in fake.requests]
        assert kinds[:3] == [("missing", None), ("invalid", "body"), ("admin", "body")]
        assert kinds[-1] == ("user", "header")
        assert all("token" not in (r.params or {}) for r in fake.requests)
        for text in (repr(fake), repr(fake.requests), repr(fake.stats)):
            assert TOKEN not in text and ADMIN not in text and "second-user" not in text


async def test_error_http_status_option(session):
    async with FakeAltcraft(small_platform(), error_http_status=True) as fake:
        status, envelope = await call(session, fake, "segments/get_counters", token="bad", id=7)
        assert (status, envelope["error"]) == (401, 401)
        status, envelope = await call(session, fake, "segments/get_counters", id=99, resource_id=24)
        assert (status, envelope["error"]) == (400, 400)


# --- formats --------------------------------------------------------------------------------


async def test_xml_requests_and_replies_for_every_endpoint(fake, session):
    profile = fake.platform.profile_ids(1)[0]

    async def xml(path: str, **params: Any) -> Any:
        status, envelope = await call(session, fake, path, xml_request=True, format="xml", **params)
        assert status == 200 and envelope["error"] == "0", envelope
        assert envelope["error_text"] == "Successful operation"
        return envelope["data"]

    counters = await xml("segments/get_counters", id=7, resource_id=24, list_id=1)
    assert counters == [
        {"channel": "email", "status": {"subscribed_sendable": "2", "unconfirmed_sendable": "1"}},
        {"channel": "sms", "status": {"subscribed_sendable": "4", "unconfirmed_sendable": "0"}},
    ]
    task = await xml("segments/refresh_counters", id=7, resource_id=24, db_id=1)
    status = await xml("tasks/status", task_id=task["task_id"])
    assert status["status"] == "completed" and status["progress"] == "100"
    result = status["result"]  # one snapshot: a single <result> element
    assert isinstance(result, dict) and result["in_progress"] == "false"
    assert result["refresh_task_id"] is None  # <refresh_task_id></refresh_task_id>
    assert [c["channel"] for c in result["channels"]] == ["email", "sms"]
    assert result["channels"][0]["status"]["all"] == "4"
    resource_task = await xml(
        "resources/refresh_counters",
        id=24,
        list_id=1,
        feedback={"type": "JSON", "url": "http://127.0.0.1:9/unused"},
    )
    assert fake.tasks[resource_task["task_id"]].feedback_url == "http://127.0.0.1:9/unused"
    relation = await xml("relations/get_counter", rel_id=3, profile_id=profile)
    assert relation["props"]["orders"] == {"top": {"a1": "5", "b2": "3"}, "sum": "8"}
    empty = await xml("relations/get_counter", rel_id=3, email="p1@example.com")
    assert empty["props"] is None  # <props></props>
    rows = await xml("admin/senders/queue/stats/", token=ADMIN, id=119, group="account")
    assert isinstance(rows, list) and rows[0]["isp"] is None and rows[0]["total"] == "340"
    one_row = await xml("admin/senders/queue/stats/", token=ADMIN, id=119)
    assert isinstance(one_row, dict) and one_row["total"] == "345"  # one row looks like an object
    await fake.wait_webhooks()
    assert all(r.format == "xml" and r.content_type == "application/xml" for r in fake.requests)


async def test_xml_request_with_json_reply_and_refused_entities(fake, session):
    data = await ok(session, fake, "segments/get_counters", xml_request=True, id=7, resource_id=24)
    assert data[0]["status"]["subscribed_sendable"] == 2
    for body in (
        b'<!DOCTYPE x [<!ENTITY a "b">]><xml><token>test-token</token><id>&a;</id></xml>',
        b"<other><token>test-token</token></other>",
    ):
        async with session.post(
            f"{fake.url}/api/v1.1/segments/get_counters",
            data=body,
            headers={"Content-Type": "application/xml"},
        ) as response:
            assert parse(await response.read(), "json")["error"] == 400


# --- tasks ----------------------------------------------------------------------------------


async def start_segment_task(session: aiohttp.ClientSession, fake: FakeAltcraft) -> str:
    data = await ok(session, fake, "segments/refresh_counters", id=7, resource_id=24, db_id=1)
    task_id: str = data["task_id"]
    return task_id


async def test_task_after_polls(fake, session):
    fake.plan_tasks(TaskPlan.after_polls(3).with_running("pending", "in_progress"))
    task_id = await start_segment_task(session, fake)
    seen = [await ok(session, fake, "tasks/status", task_id=task_id) for _ in range(5)]
    statuses = [s["status"] for s in seen]
    assert statuses == ["pending", "in_progress", "in_progress", "completed", "completed"]
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and progress[0] == 0 and progress[3] == 100
    assert all(p <= 99 for p in progress[:3])
    assert ["result" in s for s in seen] == [False, False, False, True, True]
    record = fake.tasks[task_id]
    assert len(record.polls) == 5 and record.done_at == 0.0 and record.notice_latency == 0.0


async def test_task_after_seconds_on_a_manual_clock(fake, session):
    fake.plan_tasks(TaskPlan.after_seconds(10))
    task_id = await start_segment_task(session, fake)
    assert (await ok(session, fake, "tasks/status", task_id=task_id))["status"] == "pending"
    fake.clock.advance(5)
    half = await ok(session, fake, "tasks/status", task_id=task_id)
    assert half["status"] == "processing" and 45 <= half["progress"] <= 55
    fake.clock.advance(6)  # the timer fires at 10 even though nobody polls
    record = fake.tasks[task_id]
    assert record.done and record.done_at == 10 and record.in_flight
    fake.advance(1)
    done = await ok(session, fake, "tasks/status", task_id=task_id)
    assert done["status"] == "completed" and done["result"][0]["updated"].startswith(
        "2024-04-19T13:31:18.000"
    )
    assert record.polls == [0, 5, 12] and record.notice_latency == 2
    assert not record.in_flight and fake.stats.tasks_in_flight == 0


async def test_task_never_failures_and_terminal_variants(fake, session):
    fake.plan_tasks(TaskPlan.never(), count=1)
    fake.plan_tasks(TaskPlan.fails(after_polls=1, status="error"), count=1)
    fake.plan_tasks(TaskPlan.immediate().with_terminal("success"), count=1)
    success, failing, never = [await start_segment_task(session, fake) for _ in range(3)]
    assert (await ok(session, fake, "tasks/status", task_id=success))["status"] == "success"
    first = await ok(session, fake, "tasks/status", task_id=failing)
    failed = await ok(session, fake, "tasks/status", task_id=failing)
    assert first["status"] == "pending" and failed == {"status": "error", "progress": 0}
    fake.advance(3600)
    for _ in range(3):
        running = await ok(session, fake, "tasks/status", task_id=never)
        assert running["status"] == "processing" and running["progress"] == 99
    assert "result" not in running
    assert fake.stats.tasks_in_flight == 1 and fake.stats.max_tasks_in_flight == 3
    # Overrides were used up: the default plan (immediate) is back.
    assert fake.tasks[await start_segment_task(session, fake)].plan == TaskPlan.immediate()


async def test_plan_overrides_match_and_callable_defaults(session):
    drawn: list[float] = []

    def realistic(rng: Any) -> TaskPlan:
        drawn.append(rng.uniform(0.5, 5))
        return TaskPlan.after_seconds(drawn[-1])

    async with FakeAltcraft(small_platform(), clock="manual", task_plan=realistic) as fake:
        fake.plan_tasks(TaskPlan.never(), segment_id=8)
        fake.plan_tasks(TaskPlan.after_polls(2), kind="resource", resource_id=24, count=1)
        seg7 = await start_segment_task(session, fake)
        seg8 = await ok(session, fake, "segments/refresh_counters", id=8, resource_id=24, db_id=1)
        res1 = await ok(session, fake, "resources/refresh_counters", id=24, list_id=1)
        res2 = await ok(session, fake, "resources/refresh_counters", id=24, list_id=1)
        plans = [fake.tasks[t].plan for t in (seg7, seg8["task_id"])]
        plans += [fake.tasks[res1["task_id"]].plan, fake.tasks[res2["task_id"]].plan]
        assert plans == [
            TaskPlan.after_seconds(drawn[0]),
            TaskPlan.never(),
            TaskPlan.after_polls(2),
            TaskPlan.after_seconds(drawn[1]),
        ]
        assert all(0.5 <= d <= 5 for d in drawn)


async def test_same_seed_same_task_ids_and_progress(session):
    async def run() -> list[Any]:
        async with FakeAltcraft(
            small_platform(), clock="manual", task_plan=TaskPlan.after_seconds(100), seed=5
        ) as fake:
            task_id = await start_segment_task(session, fake)
            seen = [task_id]
            for _ in range(6):
                fake.advance(13)
                seen.append(await ok(session, fake, "tasks/status", task_id=task_id))
            return seen

    first, second = await run(), await run()
    assert first == second
    progress = [s["progress"] for s in first[1:]]
    assert progress == sorted(progress) and progress[-1] < 99


async def test_time_scale_finishes_without_polls_and_fires_the_webhook(session, receiver):
    url, received = receiver
    plan = TaskPlan.after_seconds(5)  # 5 virtual seconds = 50 ms at time_scale 100
    async with FakeAltcraft(small_platform(), time_scale=100, task_plan=plan) as fake:
        started = await ok(
            session,
            fake,
            "resources/refresh_counters",
            id=24,
            list_id=1,
            feedback={"type": "JSON", "url": url},
        )
        payload = await asyncio.wait_for(received.get(), timeout=5)
        record = fake.tasks[started["task_id"]]
        assert record.done_at == record.created_at + 5 and record.polls == []
        assert payload["task_id"] == started["task_id"]
        assert payload["status"] == "completed" and payload["progress"] == 100
        assert payload["result"][0]["resource_id"] == 24


# --- webhooks -------------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, asyncio.Queue[dict[str, Any]]]]:
    """A local HTTP receiver; every JSON body POSTed to it lands in the queue."""
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handle(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/hook", received
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("delivery", "copies"), [("once", 1), ("twice", 2), ("lost", 0)])
async def test_webhook_delivery_modes(fake, session, receiver, delivery, copies):
    url, received = receiver
    fake.webhook_delivery = delivery
    fake.plan_tasks(TaskPlan.after_seconds(30))
    started = await ok(
        session,
        fake,
        "resources/refresh_counters",
        id=24,
        list_id=1,
        feedback={"type": "JSON", "url": url},
    )
    fake.advance(29)
    await fake.wait_webhooks()
    assert received.empty() and not fake.webhooks
    fake.advance(1)
    await fake.wait_webhooks()
    assert received.qsize() == copies
    records = fake.webhooks
    assert len(records) == max(copies, 1)
    assert all(r.task_id == started["task_id"] and r.at == 30 for r in records)
    assert [r.delivered for r in records] == [True] * copies or delivery == "lost"
    if delivery == "lost":
        assert records[0].error == "lost on purpose"


async def test_database_refresh_fires_its_feedback_webhook(fake, session, receiver):
    url, received = receiver
    fake.plan_tasks(TaskPlan.after_seconds(10), kind="database")
    started = await ok(
        session,
        fake,
        "databases/refresh_counters",
        id=1,
        resource_id=24,
        feedback={"type": "JSON", "url": url},
    )
    record = fake.tasks[started["task_id"]]
    assert (record.feedback_url, record.feedback_type) == (url, "JSON")
    fake.advance(10)
    await fake.wait_webhooks()
    payload = received.get_nowait()
    assert payload["task_id"] == started["task_id"]
    assert payload["status"] == "completed" and payload["progress"] == 100
    (snapshot,) = payload["result"]
    assert snapshot["list_id"] == 1 and snapshot["resource_id"] == 24
    counts = {c["channel"]: c["status"] for c in snapshot["channels"]}
    assert counts == fake.platform.resource_counters(24, 1)
    (delivery,) = fake.webhooks
    assert delivery.delivered and delivery.at == 10


async def test_webhook_to_an_unreachable_receiver_is_recorded(fake, session):
    await ok(
        session,
        fake,
        "resources/refresh_counters",
        id=24,
        list_id=1,
        feedback={"type": "JSON", "url": "http://127.0.0.1:9/hook"},
    )
    await fake.wait_webhooks()
    (record,) = fake.webhooks
    assert not record.delivered and record.status is None and record.error


# --- faults ---------------------------------------------------------------------------------


async def test_scripted_http_errors_create_no_task(fake, session):
    fake.faults.script("segments/refresh_counters", Fault.http(503), calls=[1, 2])
    url = f"{fake.url}/api/v1.1/segments/refresh_counters"
    body = {"token": TOKEN, "id": 7, "resource_id": 24, "db_id": 1}
    for _ in range(2):
        async with session.post(url, json=body) as response:
            assert response.status == 503
            assert await response.read() == b"Service Unavailable"
    assert not fake.tasks
    task_id = await start_segment_task(session, fake)
    assert list(fake.tasks) == [task_id]
    assert [r.fault for r in fake.requests] == ["http 503", "http 503", None]
    assert [r.task_id for r in fake.requests] == [None, None, task_id]


async def test_fault_after_processing_creates_the_task(fake, session):
    fake.faults.next("segments/refresh_counters", Fault.http(502, after_processing=True))
    fake.faults.next("segments/refresh_counters", Fault.drop(after_processing=True))
    url = f"{fake.url}/api/v1.1/segments/refresh_counters"
    body = {"token": TOKEN, "id": 7, "resource_id": 24, "db_id": 1}
    async with session.post(url, json=body) as response:
        assert (response.status, await response.read()) == (502, b"Bad Gateway")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with session.post(url, json=body) as response:
            await response.read()
    assert len(fake.tasks) == 2
    assert [r.task_id is not None for r in fake.requests] == [True, True]
    assert [r.http_status for r in fake.requests] == [502, None]


async def test_rate_limited_with_retry_after(fake, session):
    fake.faults.next("segments/get_counters", Fault.rate_limited(retry_after=1))
    fake.faults.next("segments/get_counters", Fault.rate_limited(retry_after=0.25))
    url = f"{fake.url}/api/v1.1/segments/get_counters"
    body = {"token": TOKEN, "id": 7, "resource_id": 24}
    for expected in ("1", "0.25"):
        async with session.post(url, json=body) as response:
            assert response.status == 429 and response.headers["Retry-After"] == expected
    await ok(session, fake, "segments/get_counters", id=7, resource_id=24)


async def test_dropped_truncated_and_malformed_replies(fake, session):
    url = f"{fake.url}/api/v1.1/segments/get_counters"
    body = {"token": TOKEN, "id": 7, "resource_id": 24}
    fake.faults.script("segments/get_counters", Fault.drop(), calls=[1])
    fake.faults.script("segments/get_counters", Fault.truncated(), calls=[2])
    fake.faults.script("segments/get_counters", Fault.malformed(), calls=[3])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with session.post(url, json=body) as response:
            await response.read()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with session.post(url, json=body) as response:
            await response.read()
    async with session.post(url, json=body) as response:
        assert response.status == 200 and response.content_type == "application/json"
        with pytest.raises(DecodeError):
            parse(await response.read(), "json")
    labels = [r.fault for r in fake.requests]
    assert labels == ["drop", "truncated after processing", "malformed after processing"]


async def test_envelope_error_faults(fake, session):
    for code, text in [(402, "tariff limit"), (500, "internal error"), (1, "odd")]:
        fake.faults.next("tasks/status", Fault.api_error(code, text))
        status, envelope = await call(session, fake, "tasks/status", task_id="x", format="xml")
        assert (status, envelope["error"], envelope["error_text"]) == (200, str(code), text)


async def test_delay_any_path_and_concurrency_peaks(fake, session):
    fake.faults.next("*", Fault.delay(0.05), times=3)
    replies = await asyncio.gather(
        *(ok(session, fake, "segments/get_counters", id=7, resource_id=24) for _ in range(3))
    )
    assert replies[0] == replies[1] == replies[2]
    stats = fake.stats
    assert stats.max_concurrent == 3 and stats.concurrent == 0
    assert stats.by_endpoint == {"segments/get_counters": 3}
    assert [r.fault for r in fake.requests] == ["delay 0.05s"] * 3
    fake.reset()
    assert fake.stats.requests == 0 and fake.stats.max_concurrent == 0
    await ok(session, fake, "segments/get_counters", id=7, resource_id=24)
    assert fake.requests[0].call == 1 and fake.requests[0].fault is None


async def test_chaos_is_seeded_and_clearable(session):
    async def run() -> list[str | None]:
        async with FakeAltcraft(small_platform()) as fake:
            fake.faults.chaos(seed=3, http_5xx=0.2, drop=0.1, rate_limited=0.1, malformed=0.1)
            for _ in range(40):
                try:
                    async with session.post(
                        f"{fake.url}/api/v1.1/segments/refresh_counters",
                        json={"token": TOKEN, "id": 7, "resource_id": 24, "db_id": 1},
                    ) as response:
                        await response.read()
                except aiohttp.ClientError:
                    pass
            created = {r.task_id for r in fake.requests if r.task_id}
            assert created == set(fake.tasks)  # only unfaulted (or malformed) starts created one
            fake.faults.clear()
            await start_segment_task(session, fake)
            return [r.fault for r in fake.requests]

    first, second = await run(), await run()
    assert first == second and first[-1] is None
    kinds = {label.split()[0] for label in first if label}
    assert kinds == {"http", "drop", "rate_limited", "malformed"}


# --- lifecycle, plugin, generator -----------------------------------------------------------


async def test_stop_cancels_timers_and_deliveries():
    before = asyncio.all_tasks()
    clock = ManualClock()
    reached = asyncio.Event()

    class Silent(asyncio.Protocol):
        """Reads the webhook request and never answers (and, unlike aiohttp, runs no task)."""

        def data_received(self, data: bytes) -> None:
            reached.set()

    server = await asyncio.get_running_loop().create_server(Silent, "127.0.0.1", 0)
    hook = "http://{}:{}/hook".format(*server.sockets[0].getsockname()[:2])
    fake = FakeAltcraft(small_platform(), clock=clock, task_plan=TaskPlan.after_seconds(60))
    assert "stopped" in repr(fake)
    async with fake, aiohttp.ClientSession() as session:
        for plan in (TaskPlan.after_seconds(60), TaskPlan.immediate()):
            fake.plan_tasks(plan, count=1)
            await ok(
                session,
                fake,
                "resources/refresh_counters",
                id=24,
                list_id=1,
                feedback={"type": "JSON", "url": hook},
            )
        await reached.wait()
        assert clock.pending_timers == 1
        url = fake.url
    server.close()
    await server.wait_closed()
    assert clock.pending_timers == 0
    assert asyncio.all_tasks() == before
    assert not fake.webhooks  # the cancelled delivery never completed
    with pytest.raises(RuntimeError):
        _ = fake.url
    assert url.startswith("http://127.0.0.1:")


@pytest.mark.altcraft_fake(seeded=True, profiles=200, segments=4, clock="manual")
async def test_pytest_plugin_fixture(altcraft_fake, session):
    assert len(altcraft_fake.platform.profile_ids(1)) == 200
    refs = altcraft_fake.platform.segment_refs()
    segment_id, resource_id, database_id = refs[0]
    data = await ok(
        session,
        altcraft_fake,
        "segments/get_counters",
        id=segment_id,
        resource_id=resource_id,
        list_id=database_id,
    )
    assert data == sendable(altcraft_fake.platform.segment_counters(segment_id, resource_id))
    relation = altcraft_fake.platform.relations[1]
    profile_id = next(iter(relation.props))
    info = await ok(
        session, altcraft_fake, "relations/get_counter", rel_id=1, profile_id=profile_id
    )
    assert info["props"] == relation.props[profile_id]
    _, envelope = await call(
        session,
        altcraft_fake,
        "relations/get_counter",
        rel_id=1,
        profile_id=profile_id,
        format="xml",
    )  # seeded props are valid XML element names
    assert envelope["data"]["props"]["purchases"]["sum"] == str(info["props"]["purchases"]["sum"])


def test_seeded_generator_is_deterministic():
    first = seeded_platform(profiles=3000, segments=10, seed=7)
    second = seeded_platform(profiles=3000, segments=10, seed=7)
    other = seeded_platform(profiles=3000, segments=10, seed=8)
    assert first.profile_ids(1) == second.profile_ids(1) != other.profile_ids(1)
    refs = first.segment_refs()
    assert refs == second.segment_refs() and len(refs) == 30
    counts = [first.segment_counters(s, r) for s, r, _ in refs]
    assert counts == [second.segment_counters(s, r) for s, r, _ in refs]
    assert {s.id: (s.static, s.rule) for s in first.segments.values()} == {
        s.id: (s.static, s.rule) for s in second.segments.values()
    }
    assert [first.queue_stats(i, group="isp") for i in first.senders] == [
        second.queue_stats(i, group="isp") for i in second.senders
    ]
    assert first.relations[1].props == second.relations[1].props
    assert any(s.dynamic for s in first.segments.values())
    assert any(not s.dynamic for s in first.segments.values())


def test_seeded_generator_builds_100k_profiles():
    platform = seeded_platform(profiles=100_000, segments=50, databases=2)
    assert sum(len(db) for db in platform.databases.values()) == 100_000
    segment_id, resource_id, _ = platform.segment_refs()[-1]
    counts = platform.segment_counters(segment_id, resource_id)
    assert all(c["all"] > 0 for c in counts.values())
    email = platform.resource_counters(1, 1)["email"]
    assert email["all"] == 50_000
    assert sum(email[s] for s in ("subscribed", "unsubscribed", "hardbounced")) < 50_000


WAIT_IDLE_RACE = """
import asyncio, time
from altcraft_async.testing._webhooks import WebhookSender

async def main():
    sender = WebhookSender(time.monotonic)
    async def deliver():
        return None
    task = asyncio.get_running_loop().create_task(deliver())
    await asyncio.sleep(0)  # done; the callback that drops it from _pending not yet run
    sender._pending.add(task)
    task.add_done_callback(sender._pending.discard)
    await sender.wait_idle()
    print("idle")

asyncio.run(main())
"""


def test_wait_webhooks_does_not_spin_on_a_delivery_that_just_finished() -> None:
    # gather() of done tasks returns without yielding on 3.12+: the loop never ran the
    # callback, and wait_idle spun forever at full CPU (seen once in CI)
    prints_in_a_subprocess(WAIT_IDLE_RACE, "idle")
