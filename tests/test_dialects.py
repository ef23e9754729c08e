"""The fake's dialects, read off the wire with plain aiohttp (never the SDK's client).

Each option is checked where a reader meets it: headers, raw bytes, nulls, fraction digits, the
XML prolog; ``plain`` must stay byte for byte what the fake always sent. The property test at
the end is the contract the dialects exist for: whatever a dialect changes, the SDK's decoder
reads from it the same models as from the documentation's rendering of the same state.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import string
import sys
import threading
import typing
import urllib.request
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, get_args

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web
from helpers import FakeThread, small_platform
from hypothesis import given, settings
from hypothesis import strategies as st

from altcraft_async import APIError, TaskFailedError
from altcraft_async._sansio import EndpointSpec, decode_reply
from altcraft_async.api._specs import (
    ADMIN_SENDER_QUEUE_STATS,
    RELATIONS_GET_COUNTER,
    SEGMENTS_GET_COUNTERS,
    SEGMENTS_REFRESH_COUNTERS,
    TASKS_STATUS,
)
from altcraft_async.cli import main as cli_main
from altcraft_async.models import TaskStatus
from altcraft_async.testing import Dialect, FakeAltcraft, Fault, Platform, QueueRow, TaskPlan
from altcraft_async.testing._dialects import ENV_VAR, PRESETS
from altcraft_async.testing._platform import COUNTER_NAMES, Snapshot
from altcraft_async.testing._tasks import StatusView
from altcraft_async.testing._wire import Format

TOKEN = "test-token"
ADMIN = "admin-token"
OK = "Successful operation"
SEG = {"id": 7, "resource_id": 24}
#: A resource with no channels: its counters are an empty list.
EMPTY_RESOURCE = 25
BOM = b"\xef\xbb\xbf"
PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>'


@attrs.frozen
class Raw:
    """One reply as it came off the wire (aiohttp's reading: chunks joined)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def envelope(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body.decode("utf-8-sig"))
        return parsed

    def data(self) -> Any:
        return self.envelope()["data"]


def platform() -> Platform:
    data = small_platform()
    data.add_resource(EMPTY_RESOURCE, database_ids=1, channels=())
    return data


async def post(
    session: aiohttp.ClientSession,
    fake: FakeAltcraft,
    path: str,
    *,
    token: str = TOKEN,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> Raw:
    async with session.post(
        f"{fake.url}/api/v1.1/{path}", json={"token": token, **params}, headers=headers
    ) as response:
        return Raw(response.status, dict(response.headers), await response.read())


async def start(
    session: aiohttp.ClientSession, fake: FakeAltcraft, plan: TaskPlan, *, resource_id: int = 24
) -> str:
    fake.plan_tasks(plan, count=1)
    reply = await post(
        session, fake, "segments/refresh_counters", id=7, resource_id=resource_id, db_id=1
    )
    task_id: str = reply.data()["task_id"]
    return task_id


async def poll(
    session: aiohttp.ClientSession, fake: FakeAltcraft, task_id: str, times: int = 1
) -> list[Raw]:
    return [await post(session, fake, "tasks/status", task_id=task_id) for _ in range(times)]


async def completed_snapshot(
    session: aiohttp.ClientSession, fake: FakeAltcraft, **params: Any
) -> Raw:
    """The ``tasks/status`` reply of a completed segment refresh."""
    task_id = await start(session, fake, TaskPlan.immediate())
    return await post(session, fake, "tasks/status", task_id=task_id, **params)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def serve(dialect: Dialect | str, **options: Any) -> FakeAltcraft:
    return FakeAltcraft(platform(), clock="manual", dialect=dialect, **options)


# --- plain: what the fake always sent -------------------------------------------------------


@pytest.mark.anyio
async def test_plain_is_the_documentation_byte_for_byte(session):
    async with serve("plain") as fake:
        counters = await post(session, fake, "segments/get_counters", **SEG)
        assert counters.body == (
            b'{"data": [{"channel": "email", "status": {"subscribed_sendable": 2, '
            b'"unconfirmed_sendable": 1}}, {"channel": "sms", "status": {"subscribed_sendable": '
            b'4, "unconfirmed_sendable": 0}}], "error": 0, "error_text": "Successful operation"}'
        )
        assert counters.headers["Content-Type"] == "application/json"
        assert counters.headers["Content-Length"] == str(len(counters.body))
        assert not {"Content-Encoding", "Transfer-Encoding", "Connection"} & set(counters.headers)
        task_id = await start(session, fake, TaskPlan.after_polls(1))
        running, done = await poll(session, fake, task_id, 2)
        assert running.body == (
            b'{"data": {"status": "pending", "progress": 0}, "error": 0, '
            b'"error_text": "Successful operation"}'
        )
        snapshot = done.data()["result"][0]
        assert snapshot["refresh_task_id"] == "" and snapshot["in_progress"] is False
        assert snapshot["updated"] == "2024-04-19T13:31:08.000Z"
        task_id = await start(session, fake, TaskPlan.after_polls(1))
        xml = await post(session, fake, "tasks/status", task_id=task_id, format="xml")
        assert xml.body == (
            b"<xml><data><status>pending</status><progress>0</progress></data><error>0</error>"
            b"<error_text>Successful operation</error_text></xml>"
        )
        assert xml.headers["Content-Type"] == "application/xml"
        missing = await post(session, fake, "segments/get_counters", id=99, resource_id=24)
        assert missing.body == b'{"data": null, "error": 400, "error_text": "segment 99 not found"}'
        fake.faults.next("tasks/status", Fault.rate_limited(0.5))
        limited = await post(session, fake, "tasks/status", task_id=task_id)
        assert limited.status == 429 and limited.headers["Retry-After"] == "0.5"


def test_plain_is_the_default_and_has_no_options():
    assert Dialect() == Dialect.named("plain") == Dialect.named("") == PRESETS["plain"]
    assert repr(Dialect()) == "Dialect()"


# --- choosing a dialect ---------------------------------------------------------------------


def test_presets_combine_left_to_right_and_unknown_names_are_refused():
    both = Dialect.named("go, PROXY")
    assert both.null_lists and both.time_fraction == "nano" and both.gzip and both.chunked
    assert both == PRESETS["go"].combine(PRESETS["proxy"])
    assert Dialect.named("php,java").status_case == "upper"
    assert Dialect.named("java,php").status_case == "title"
    with pytest.raises(ValueError, match=r"unknown dialect 'nope'; known: plain, go, proxy"):
        Dialect.named("go,nope")
    assert {"plain", "go", "proxy", "all"} <= set(PRESETS)
    everything = PRESETS["all"]
    for option in attrs.fields(Dialect):  # "all" turns every option away from the docs' way
        assert getattr(everything, option.name) != option.default, option.name


@pytest.mark.parametrize(
    "options",
    [
        {"utc_offset": "3h"},
        {"utc_offset": "+24:00"},
        {"time_fraction": "micro"},
        {"status_case": "x"},
    ],
)
def test_bad_option_values_are_refused(options):
    with pytest.raises(ValueError):
        Dialect(**options)


def test_the_environment_names_the_default_dialect(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert FakeAltcraft().dialect == Dialect()
    monkeypatch.setenv(ENV_VAR, "go,proxy")
    assert FakeAltcraft().dialect == Dialect.named("go,proxy")
    assert FakeAltcraft(dialect="java").dialect == Dialect.named("java")  # an argument wins
    assert FakeAltcraft(dialect=Dialect(bom=True)).dialect == Dialect(bom=True)
    built: list[FakeAltcraft] = []
    thread = threading.Thread(target=lambda: built.append(FakeAltcraft()))
    thread.start()
    thread.join()
    assert built[0].dialect == Dialect.named("go,proxy")  # the environment is process-wide
    monkeypatch.setenv(ENV_VAR, "klingon")
    with pytest.raises(ValueError, match=rf"\${ENV_VAR}: unknown dialect 'klingon'"):
        FakeAltcraft()


def test_a_fake_served_from_its_own_thread_speaks_the_environments_dialect(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "go")
    with FakeThread(FakeAltcraft(platform())) as served:
        request = urllib.request.Request(
            f"{served.url}/api/v1.1/relations/get_counter",
            data=json.dumps({"token": TOKEN, "rel_id": 3, "profile_id": "nobody"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert (
                response.read() == b'{"error":400,"error_text":"profile not found in database 1"}'
            )


@pytest.mark.anyio
async def test_the_fake_server_command_takes_a_dialect(capsys):
    command = [sys.executable, "-m", "altcraft_async", "fake-server", "--port", "0"]
    command += ["--profiles", "100", "--dialect", "go,proxy"]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        with anyio.fail_after(20):
            # the first line: URL and tokens; the second: the platform and the dialect
            banner = (await process.stdout.readline() + await process.stdout.readline()).decode()
        assert repr(Dialect.named("go,proxy")) in banner
        url = banner.split()[3]
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                f"{url}/api/v1.1/tasks/status", json={"token": TOKEN, "task_id": "x"}
            ) as response,
        ):
            assert response.headers["Content-Encoding"] == "gzip"
            assert await response.read() == b'{"error":400,"error_text":"task x not found"}'
    finally:
        process.terminate()
        await process.wait()
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fake-server", "--dialect", "go,nope"])
    assert exit_info.value.code == 2
    assert "unknown dialect 'nope'" in capsys.readouterr().err


# --- Go's encoding/json ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_null_lists(session):
    async with serve(Dialect(null_lists=True)) as fake:
        task_id = await start(session, fake, TaskPlan.after_polls(1))
        (running,) = await poll(session, fake, task_id)
        assert b'"result": null' in running.body
        assert running.data() == {"status": "pending", "progress": 0, "result": None}
        failed = await start(session, fake, TaskPlan.fails())
        assert (await poll(session, fake, failed))[0].data()["result"] is None
        empty = await start(session, fake, TaskPlan.immediate(), resource_id=EMPTY_RESOURCE)
        assert (await poll(session, fake, empty))[0].data()["result"][0]["channels"] is None
        counters = await post(
            session, fake, "segments/get_counters", id=7, resource_id=EMPTY_RESOURCE
        )
        assert counters.envelope() == {"data": None, "error": 0, "error_text": OK}
        queue = await post(
            session, fake, "admin/senders/queue/stats/", token=ADMIN, id=119, isp="nowhere"
        )
        assert queue.data() is None
        task_id = await start(session, fake, TaskPlan.after_polls(1))
        xml = await post(session, fake, "tasks/status", task_id=task_id, format="xml")
        assert b"<result></result>" in xml.body


@pytest.mark.anyio
async def test_null_maps(session):
    async with serve(Dialect(null_maps=True)) as fake:
        ids = fake.platform.profile_ids(1)
        bare = await post(session, fake, "relations/get_counter", rel_id=3, profile_id=ids[1])
        assert b'"props": null' in bare.body
        full = await post(session, fake, "relations/get_counter", rel_id=3, profile_id=ids[0])
        assert full.data()["props"] == {
            "orders": {"top": {"a1": 5, "b2": 3}, "sum": 8},
            "store": "Omsk",
        }


@pytest.mark.anyio
async def test_omit_empty_drops_empty_strings_and_nulls_but_never_numbers(session):
    async with serve(Dialect(omit_empty=True)) as fake:
        task_id = await start(session, fake, TaskPlan.after_polls(1))
        running, done = await poll(session, fake, task_id, 2)
        assert running.data() == {"status": "pending", "progress": 0}
        snapshot = done.data()["result"][0]
        assert "refresh_task_id" not in snapshot
        assert snapshot["in_progress"] is False
        assert snapshot["channels"][1]["status"]["complained"] == 0
        queue = await post(session, fake, "admin/senders/queue/stats/", token=ADMIN, id=119)
        (total,) = queue.data()
        assert "isp" not in total and total["account_id"] == 0 and total["retry"] == 40
        missing = await post(session, fake, "segments/get_counters", id=99, resource_id=24)
        assert missing.envelope() == {"error": 400, "error_text": "segment 99 not found"}
        empty = await post(session, fake, "segments/get_counters", id=7, resource_id=25)
        assert empty.envelope() == {"error": 0, "error_text": OK}
        ids = fake.platform.profile_ids(1)
        bare = await post(session, fake, "relations/get_counter", rel_id=3, profile_id=ids[1])
        assert "props" not in bare.data()


@pytest.mark.anyio
async def test_omit_empty_keeps_what_null_lists_and_null_maps_write_as_null(session):
    async with serve(Dialect(omit_empty=True, null_lists=True, null_maps=True)) as fake:
        task_id = await start(session, fake, TaskPlan.after_polls(1))
        (running,) = await poll(session, fake, task_id)
        assert running.data() == {"status": "pending", "progress": 0, "result": None}
        ids = fake.platform.profile_ids(1)
        bare = await post(session, fake, "relations/get_counter", rel_id=3, profile_id=ids[1])
        assert bare.data()["props"] is None
        missing = await post(session, fake, "segments/get_counters", id=99, resource_id=24)
        assert "data" not in missing.envelope()  # null, but not a list: omitted


@pytest.mark.anyio
async def test_free_form_map_entries_are_kept_as_they_are(session):
    async with serve(Dialect(omit_empty=True, null_maps=True)) as fake:
        ids = fake.platform.profile_ids(1)
        fake.platform.set_relation_props(3, ids[0], {"note": "", "tags": {}, "gone": None})
        reply = await post(session, fake, "relations/get_counter", rel_id=3, profile_id=ids[0])
        assert reply.data()["props"] == {"note": "", "tags": {}, "gone": None}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "updated"),
    [
        ({}, "2024-04-19T13:31:08.250Z"),
        ({"time_fraction": "nano"}, "2024-04-19T13:31:08.250000000Z"),
        ({"time_fraction": "trimmed"}, "2024-04-19T13:31:08.25Z"),
        ({"utc_offset": "+03:00"}, "2024-04-19T16:31:08.250+03:00"),
        ({"utc_offset": "-05:30", "time_fraction": "nano"}, "2024-04-19T08:01:08.250000000-05:30"),
        ({"utc_offset": "+00:00"}, "2024-04-19T13:31:08.250+00:00"),
    ],
)
async def test_timestamps_change_layout_never_instant(session, options, updated):
    async with serve(Dialect(**options)) as fake:
        fake.advance(0.25)
        reply = await completed_snapshot(session, fake)
        assert reply.data()["result"][0]["updated"] == updated
        instant = datetime(2024, 4, 19, 13, 31, 8, 250_000, tzinfo=UTC)
        assert datetime.fromisoformat(updated) == instant


@pytest.mark.anyio
async def test_whole_seconds_lose_their_fraction_in_go_s_own_layout(session):
    async with serve(Dialect(time_fraction="trimmed")) as fake:
        reply = await completed_snapshot(session, fake)
        assert reply.data()["result"][0]["updated"] == "2024-04-19T13:31:08Z"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "updated"),
    [
        ({}, None),
        ({"zero_time": True}, "0001-01-01T00:00:00.000Z"),
        ({"zero_time": True, "time_fraction": "trimmed"}, "0001-01-01T00:00:00Z"),
        (
            {"zero_time": True, "time_fraction": "nano", "utc_offset": "+03:00"},
            "0001-01-01T00:00:00.000000000Z",
        ),
        ({"zero_time": True, "omit_empty": True}, "0001-01-01T00:00:00.000Z"),
    ],
)
async def test_an_absent_timestamp_is_go_s_zero_time(session, options, updated):
    async with serve(Dialect(**options)) as fake:
        task_id = await start(session, fake, TaskPlan.immediate())
        record = fake.tasks[task_id]
        assert record.result is not None
        record.result[0]["updated"] = None  # a snapshot that was never counted
        (reply,) = await poll(session, fake, task_id)
        assert reply.data()["result"][0]["updated"] == updated


@pytest.mark.anyio
async def test_json_compact(session):
    async with serve(Dialect(json_compact=True)) as fake:
        reply = await post(session, fake, "segments/get_counters", **SEG)
        assert reply.body.startswith(b'{"data":[{"channel":"email","status":{"subscribed_')
        assert b", " not in reply.body and b": " not in reply.body


# --- statuses -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "spelled"),
    [
        ({"status_case": "upper"}, ["PENDING", "PROCESSING", "COMPLETED"]),
        ({"status_case": "title"}, ["Pending", "Processing", "Completed"]),
        ({"status_padding": True}, [" pending ", " processing ", " completed "]),
        ({"legacy_success": True}, ["pending", "processing", "success"]),
        ({"legacy_success": True, "status_case": "upper"}, ["PENDING", "PROCESSING", "SUCCESS"]),
    ],
)
async def test_status_spelling(session, options, spelled):
    async with serve(Dialect(**options)) as fake:
        task_id = await start(session, fake, TaskPlan.after_polls(2))
        replies = await poll(session, fake, task_id, 3)
        assert [reply.data()["status"] for reply in replies] == spelled
        assert fake.tasks[task_id].status == "completed"  # the state stays dialect-free


@pytest.mark.anyio
async def test_progress_as_string(session):
    async with serve(Dialect(progress_as_string=True)) as fake:
        task_id = await start(session, fake, TaskPlan.after_polls(2))
        progress = [reply.data()["progress"] for reply in await poll(session, fake, task_id, 3)]
        assert progress[0] == "0" and progress[2] == "100"
        assert isinstance(progress[1], str) and progress[1].isdigit() and 0 < int(progress[1]) < 100
        xml = await post(session, fake, "tasks/status", task_id=task_id, format="xml")
        assert b"<progress>100</progress>" in xml.body


@pytest.mark.anyio
async def test_progress_is_omitted_while_pending_only(session):
    async with serve(Dialect(omit_pending_progress=True)) as fake:
        task_id = await start(session, fake, TaskPlan.after_polls(2))
        pending, running, done = (r.data() for r in await poll(session, fake, task_id, 3))
        assert pending == {"status": "pending"}
        assert running["progress"] > 0 and done["progress"] == 100
        failed_id = await start(session, fake, TaskPlan.fails(after_polls=1))
        before, failed = (r.data() for r in await poll(session, fake, failed_id, 2))
        assert "progress" not in before
        assert failed == {"status": "failed", "progress": 0}  # failed at 0: not pending


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("failed_result", "expected"),
    [
        ("null", None),
        ("reason", "counters refresh failed"),
        ("object", {"code": 500, "message": "counters refresh failed"}),
    ],
)
async def test_a_failed_task_s_result(session, failed_result, expected):
    async with serve(Dialect(failed_result=failed_result)) as fake:
        task_id = await start(session, fake, TaskPlan.fails(status="error"))
        (reply,) = await poll(session, fake, task_id)
        assert reply.data() == {"status": "error", "progress": 0, "result": expected}
        running_id = await start(session, fake, TaskPlan.after_polls(1))
        assert "result" not in (await poll(session, fake, running_id))[0].data()


@pytest.mark.anyio
async def test_a_failed_task_has_no_result_by_default(session):
    async with serve("plain") as fake:
        task_id = await start(session, fake, TaskPlan.fails())
        (reply,) = await poll(session, fake, task_id)
        assert reply.data() == {"status": "failed", "progress": 0}


# --- a proxy in front -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_gzip_when_the_request_accepts_it():
    async with (
        serve(Dialect(gzip=True)) as fake,
        aiohttp.ClientSession(auto_decompress=False) as raw_session,
    ):
        packed = await post(
            raw_session, fake, "segments/get_counters", headers={"Accept-Encoding": "gzip"}, **SEG
        )
        assert packed.headers["Content-Encoding"] == "gzip"
        assert packed.body[:2] == b"\x1f\x8b"
        assert json.loads(gzip.decompress(packed.body))["data"][0]["channel"] == "email"
        identity = await post(
            raw_session,
            fake,
            "segments/get_counters",
            headers={"Accept-Encoding": "identity"},
            **SEG,
        )
        assert "Content-Encoding" not in identity.headers
        assert identity.body == gzip.decompress(packed.body)


@pytest.mark.anyio
async def test_chunked_bodies_have_no_content_length(session):
    async with serve(Dialect(chunked=True)) as fake:
        reply = await post(session, fake, "segments/get_counters", **SEG)
        assert reply.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in reply.headers
        assert reply.data()[1]["channel"] == "sms"


@pytest.mark.anyio
async def test_connection_close(session):
    async with serve(Dialect(connection_close=True)) as fake:
        reply = await post(session, fake, "segments/get_counters", **SEG)
        assert reply.headers["Connection"] == "close"


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_text_plain_content_type(session, fmt):
    async with serve(Dialect(text_plain=True)) as fake:
        reply = await post(session, fake, "segments/get_counters", format=fmt, **SEG)
        assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
        fake.faults.next("segments/get_counters", Fault.malformed())
        malformed = await post(session, fake, "segments/get_counters", format=fmt, **SEG)
        assert malformed.headers["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.anyio
async def test_retry_after_as_an_http_date(session):
    async with serve(Dialect(retry_after_date=True)) as fake:
        fake.faults.next("tasks/status", Fault.rate_limited(0.5))
        before = datetime.now(UTC)
        limited = await post(session, fake, "tasks/status", task_id="x")
        after = datetime.now(UTC)
        header = limited.headers["Retry-After"]
        assert limited.status == 429 and header.endswith(" GMT")
        when = parsedate_to_datetime(header)
        assert before + timedelta(seconds=0.5) <= when < after + timedelta(seconds=1.5)
        fake.faults.next("tasks/status", Fault.rate_limited(0))
        now = await post(session, fake, "tasks/status", task_id="x")
        when = parsedate_to_datetime(now.headers["Retry-After"])
        assert datetime.now(UTC) - timedelta(seconds=2) < when <= datetime.now(UTC)


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_byte_order_mark_before_the_body(session, fmt):
    async with serve(Dialect(bom=True)) as fake, serve("plain") as plain:
        reply = await post(session, fake, "segments/get_counters", format=fmt, **SEG)
        reference = await post(session, plain, "segments/get_counters", format=fmt, **SEG)
        assert reply.body == BOM + reference.body


# --- XML ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_xml_prolog(session):
    async with serve(Dialect(xml_prolog=True)) as fake, serve("plain") as plain:
        reply = await post(session, fake, "segments/get_counters", format="xml", **SEG)
        reference = await post(session, plain, "segments/get_counters", format="xml", **SEG)
        assert reply.body == PROLOG + b"\n" + reference.body
        as_json = await post(session, fake, "segments/get_counters", **SEG)
        assert as_json.body == (await post(session, plain, "segments/get_counters", **SEG)).body


@pytest.mark.anyio
async def test_xml_indentation(session):
    async with serve(Dialect(xml_indent=True)) as fake:
        reply = await post(session, fake, "segments/refresh_counters", format="xml", **SEG)
        lines = reply.body.decode().splitlines()
        assert lines[:3] == [
            "<xml>",
            "  <data>",
            f"    <task_id>{next(iter(fake.tasks))}</task_id>",
        ]
        assert lines[-1] == "</xml>"


@pytest.mark.anyio
async def test_xml_short_empty_elements(session):
    async with serve(Dialect(xml_short_empty=True)) as fake:
        reply = await completed_snapshot(session, fake, format="xml")
        assert b"<refresh_task_id/>" in reply.body and b"<refresh_task_id>" not in reply.body


@pytest.mark.anyio
async def test_a_bom_comes_before_the_prolog(session):
    async with serve(Dialect(bom=True, xml_prolog=True, xml_indent=True)) as fake:
        reply = await post(session, fake, "segments/get_counters", format="xml", **SEG)
        assert reply.body.startswith(BOM + PROLOG + b"\n<xml>\n  <data>\n")


# --- feedback webhooks ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_feedback_payloads_speak_the_dialect(session):
    received: list[Any] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    dialect = Dialect(status_case="upper", legacy_success=True, null_lists=True, omit_empty=True)
    try:
        async with serve(dialect) as fake:
            for plan in (TaskPlan.immediate(), TaskPlan.fails()):
                fake.plan_tasks(plan, count=1)
                await post(
                    session,
                    fake,
                    "resources/refresh_counters",
                    id=24,
                    list_id=1,
                    feedback={"type": "JSON", "url": hook},
                )
            await fake.wait_webhooks()
            by_status = {payload["status"]: payload for payload in received}
            done, failed = by_status["SUCCESS"], by_status["FAILED"]
            assert "refresh_task_id" not in done["result"][0]
            assert failed == {"status": "FAILED", "progress": 0, "result": None} | {
                "task_id": failed["task_id"]
            }
            sent = sorted((record.payload for record in fake.webhooks), key=lambda p: p["status"])
            assert sent == [failed, done]
            assert {record.status for record in fake.tasks.values()} == {"completed", "failed"}
    finally:
        await runner.cleanup()


# --- the contract: every dialect means the same ---------------------------------------------
#
# A state is rendered twice, in the documentation's way and in a random dialect, in both formats,
# and each rendering goes through the SDK's decoder. Only the body (and its declared content
# type) is rendered: gzip and chunking are aiohttp's business, checked over HTTP above.


def _option_strategy(hint: Any) -> st.SearchStrategy[Any]:
    if hint is bool:
        return st.booleans()
    if typing.get_origin(hint) is typing.Literal:
        return st.sampled_from(get_args(hint))
    return st.none() | st.sampled_from(["+03:00", "-05:30", "+00:00", "+14:00"])  # utc_offset


_HINTS = typing.get_type_hints(Dialect)
DIALECTS = st.builds(
    Dialect,
    **{option.name: _option_strategy(_HINTS[option.name]) for option in attrs.fields(Dialect)},
)
FORMATS: st.SearchStrategy[Format] = st.sampled_from(["json", "xml"])
COUNTS = st.integers(0, 2**31 - 1)
IDS = st.integers(1, 10**6)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
TEXT = st.text(alphabet=string.ascii_letters + " -ёé", max_size=8)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    channels = draw(st.lists(st.sampled_from(["email", "sms", "push", "viber"]), unique=True))
    return Snapshot(
        list_id=draw(IDS),
        resource_id=draw(IDS),
        counters={channel: {name: draw(COUNTS) for name in COUNTER_NAMES} for channel in channels},
        updated=draw(
            st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC))
        ),
        elapsed_ms=draw(st.floats(0, 10**5)),
    )


@st.composite
def task_results(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A completed task's result as the fake keeps it: 0..3 snapshots, some never counted."""
    result = []
    for snapshot in draw(st.lists(snapshots(), max_size=3)):
        wire = snapshot.task_wire()
        if draw(st.booleans()):
            wire["updated"] = None
        result.append(wire)
    return result


@st.composite
def status_views(draw: st.DrawFn) -> StatusView:
    state = draw(st.sampled_from(["running", "succeeded", "failed"]))
    if state == "succeeded":
        return StatusView("completed", 100, draw(task_results()), "succeeded")
    names = ["pending", "processing", "in_progress"] if state == "running" else ["failed"]
    if state == "failed":
        names += ["error", "cancelled", "canceled"]
    return StatusView(draw(st.sampled_from(names)), draw(st.integers(0, 99)), None, state)


@st.composite
def relation_infos(draw: st.DrawFn) -> dict[str, Any]:
    numeric = st.fixed_dictionaries(
        {"top": st.dictionaries(NAMES, COUNTS, max_size=3), "sum": COUNTS}
    )
    props = draw(st.dictionaries(NAMES, TEXT | numeric, max_size=3))
    data = Platform()
    data.add_database(1)
    data.add_relation(1, relation_id=3)
    data.set_relation_props(3, "5d63a1b2c3d4e5f6a7b8c9d0", props)
    return data.relation_info(3, "5d63a1b2c3d4e5f6a7b8c9d0")


@st.composite
def queue_stats(draw: st.DrawFn) -> list[dict[str, Any]]:
    data = Platform()
    sender = data.add_sender(119)
    rows = st.builds(
        QueueRow,
        account_id=st.integers(1, 5),
        campaign_id=st.integers(1, 5),
        isp=st.sampled_from(["", "gmail.com", "mail.ru"]),
        hold=COUNTS,
        new=COUNTS,
        proc=COUNTS,
        retry=COUNTS,
    )
    sender.rows += draw(st.lists(rows, max_size=4))
    group = draw(st.sampled_from(["account", "account_campaign", "isp", "total"]))
    return data.queue_stats(119, group=group)


#: (spec, data, error, error_text): one reply of each endpoint, and envelope errors.
REPLIES = st.one_of(
    st.tuples(st.just(TASKS_STATUS), status_views(), st.just(0), st.just(OK)),
    st.tuples(
        st.just(SEGMENTS_GET_COUNTERS),
        snapshots().map(Snapshot.sendable_wire),
        st.just(0),
        st.just(OK),
    ),
    st.tuples(st.just(RELATIONS_GET_COUNTER), relation_infos(), st.just(0), st.just(OK)),
    st.tuples(st.just(ADMIN_SENDER_QUEUE_STATS), queue_stats(), st.just(0), st.just(OK)),
    st.tuples(
        st.just(SEGMENTS_REFRESH_COUNTERS),
        st.uuids().map(lambda task_id: {"task_id": str(task_id)}),
        st.just(0),
        st.just(OK),
    ),
    st.tuples(
        st.sampled_from([SEGMENTS_GET_COUNTERS, TASKS_STATUS, ADMIN_SENDER_QUEUE_STATS]),
        st.none(),
        st.sampled_from([400, 401, 402, 403]),
        st.just("segment 99 not found"),
    ),
)


def meaning(decode: Callable[[], Any]) -> Any:
    """What a decoded reply tells a user; statuses compared as the docs' contract says."""
    try:
        value = decode()
    except TaskFailedError as failure:
        return ("failed", failure.status.strip().casefold(), failure.progress)
    except APIError as error:
        return (type(error), error.code, error.error_text)
    if not isinstance(value, TaskStatus):
        return value
    if value.failed:
        return ("failed", value.status.strip().casefold(), value.progress)
    if value.succeeded:
        return ("succeeded", value.progress, value.result)
    # a pending task's progress may be absent: it has none yet
    return ("running", value.status.strip().casefold(), value.progress or 0, value.result)


@settings(max_examples=300, deadline=None)
@given(dialect=DIALECTS, fmt=FORMATS, reply=REPLIES)
def test_every_dialect_decodes_to_the_documentation_s_models(
    dialect: Dialect, fmt: Format, reply: tuple[EndpointSpec, Any, int, str]
) -> None:
    spec, data, error, error_text = reply

    def decoder(speaker: Dialect) -> Callable[[], Any]:
        body = speaker.reply_body(data, error, error_text, fmt)
        headers = {"Content-Type": speaker.content_type(fmt)}
        return lambda: decode_reply(spec, 200, headers, body, fmt)

    assert meaning(decoder(dialect)) == meaning(decoder(Dialect()))
