"""``client.request``: any endpoint on the modelled calls' send path.

Against FakeAltcraft (real HTTP: auth, admin token, formats, typed errors) and through
MockTransport (the retry rules of reads and starts, what goes on the wire, the checks that
refuse a path or params before anything is sent).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from attrs import frozen
from helpers import small_platform

from altcraft_async import (
    AltcraftClient,
    APIError,
    Backoff,
    BadRequestError,
    HTTPRequest,
    HTTPResponse,
    HTTPStatusError,
    InvalidRequestError,
    PermissionDeniedError,
    RequestEvent,
    RetryPolicy,
    SenderQueueStats,
    TransportError,
)
from altcraft_async.testing import FakeAltcraft, MockTransport

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(attempts=3, backoff=Backoff(initial=0.001, max_interval=0.005))
FORMATS = pytest.mark.parametrize("fmt", ["json", "xml"])


@frozen
class Database:
    """The two fields of a ``databases/list`` row the fake sends (the test's own model)."""

    id: int
    name: str


@asynccontextmanager
async def scene(**client_options: Any) -> AsyncIterator[tuple[FakeAltcraft, AltcraftClient]]:
    platform = small_platform()
    platform.add_database(5, name="second")
    client_options.setdefault("retry", FAST_RETRY)
    async with FakeAltcraft(platform) as fake:
        client_options.setdefault("admin_token", fake.admin_token)
        async with AltcraftClient(fake.url, token=fake.token, **client_options) as client:
            yield fake, client


def listed(fake: FakeAltcraft) -> list[dict[str, Any]]:
    return [{"id": db.id, "name": db.name} for db in fake.platform.databases.values()]


# --- against the fake ------------------------------------------------------------------------


async def test_request_returns_the_envelopes_data_as_plain_data() -> None:
    async with scene() as (fake, client):
        assert await client.request("databases/list") == listed(fake)
        record = fake.requests[-1]
        assert (record.path, record.token, record.token_source) == (
            "databases/list",
            "user",
            "body",
        )


@FORMATS
async def test_response_names_the_model_the_data_is_read_as(fmt: str) -> None:
    async with scene(format=fmt) as (fake, client):
        databases = await client.request("databases/list", response=list[Database])
        assert databases == [Database(**row) for row in listed(fake)]
        assert fake.requests[-1].format == fmt


async def test_xml_plain_data_is_what_the_xml_says() -> None:
    # without a model XML has no numbers: the plain data keeps the text (response= types it)
    async with scene(format="xml") as (fake, client):
        rows = await client.request("databases/list")
        assert [(int(row["id"]), row["name"]) for row in rows] == [
            (row["id"], row["name"]) for row in listed(fake)
        ]


async def test_params_go_as_given_and_a_typed_error_comes_back() -> None:
    async with scene() as (fake, client):
        rows = await client.request(
            "databases/get_counters", {"id": 1, "resource_id": 24, "unused": None}
        )
        assert rows == await client.request("databases/get_counters", {"id": 1, "resource_id": 24})
        assert fake.requests[-1].params == {"id": 1, "resource_id": 24, "format": "json"}
        with pytest.raises(BadRequestError) as caught:
            await client.request("databases/get_counters", {"id": 999, "resource_id": 24})
        assert caught.value.endpoint == "databases.get_counters"


async def test_an_unknown_path_is_an_api_error() -> None:
    async with scene() as (_, client):
        with pytest.raises(APIError) as caught:
            await client.request("databases/no_such_call")
        assert caught.value.code == 404 and caught.value.endpoint == "databases.no_such_call"


async def test_bearer_auth_and_the_admin_token() -> None:
    async with scene(auth="bearer") as (fake, client):
        await client.request("databases/list")
        assert (fake.requests[-1].token, fake.requests[-1].token_source) == ("user", "header")
        rows = await client.request(
            "admin/senders/queue/stats/",
            {"id": 119, "group": "total"},
            admin=True,
            response=list[SenderQueueStats],
        )
        assert rows == await client.admin.sender_queue_stats(sender_id=119, group="total")
        assert fake.requests[-1].token == "admin"
        with pytest.raises(PermissionDeniedError):  # the user token is no admin's
            await client.request("admin/senders/queue/stats/", {"id": 119})


async def test_admin_without_an_admin_token_sends_nothing() -> None:
    async with scene(admin_token=None) as (fake, client):
        with pytest.raises(InvalidRequestError, match="admin_token"):
            await client.request("admin/senders/queue/stats/", {"id": 119}, admin=True)
        assert fake.stats.requests == 0


# --- through the transport seam ---------------------------------------------------------------


def answering(*replies: HTTPResponse | Exception) -> Callable[[HTTPRequest], HTTPResponse]:
    """A handler giving ``replies`` in turn (an exception is raised), the last one forever."""
    queue = list(replies)

    def handler(request: HTTPRequest) -> HTTPResponse:
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    return handler


@asynccontextmanager
async def mocked(
    *replies: HTTPResponse | Exception, **options: Any
) -> AsyncIterator[tuple[MockTransport, AltcraftClient]]:
    transport = MockTransport(answering(*replies))
    options.setdefault("retry", FAST_RETRY)
    async with AltcraftClient(
        "https://altcraft.example", token="tok-1", transport=transport, **options
    ) as client:
        yield transport, client


UNAVAILABLE = MockTransport.json_reply(status=503, error=0)
OK = MockTransport.json_reply({"task_id": "t-1"})


async def test_a_request_is_retried_as_a_read() -> None:
    async with mocked(UNAVAILABLE, OK) as (transport, client):
        assert await client.request("campaigns/list") == {"task_id": "t-1"}
        assert transport.endpoints() == ["campaigns.list"] * 2


async def test_a_start_is_not_retried_once_it_may_have_arrived() -> None:
    async with mocked(UNAVAILABLE, OK) as (transport, client):
        with pytest.raises(HTTPStatusError):
            await client.request("campaigns/start", {"id": 3}, starts_task=True)
        assert len(transport.requests) == 1
    refused = TransportError("refused", sent=False)
    async with mocked(refused, OK) as (transport, client):  # never left: safe to retry
        assert await client.request("campaigns/start", {"id": 3}, starts_task=True)
        assert len(transport.requests) == 2
    opted_in = RetryPolicy(attempts=2, backoff=FAST_RETRY.backoff, retry_starts=True)
    async with mocked(UNAVAILABLE, OK) as (transport, client):
        assert await client.request("campaigns/start", {"id": 3}, starts_task=True, retry=opted_in)
        assert len(transport.requests) == 2


async def test_what_goes_on_the_wire() -> None:
    events: list[RequestEvent] = []
    async with mocked(OK, event_hooks={"request": [events.append]}) as (transport, client):
        await client.request("campaigns/list", {"filter": {"ids": [1, 2], "active": True}})
        (request,) = transport.requests
        assert request.url == "https://altcraft.example/api/v1.1/campaigns/list"
        assert json.loads(request.body) == {
            "token": "tok-1",
            "filter": {"ids": [1, 2], "active": True},
            "format": "json",
        }
        assert [event.endpoint for event in events] == ["campaigns.list"]
    async with mocked(MockTransport.reply({"n": 1}, fmt="xml"), format="xml") as (transport, c):
        assert await c.request("campaigns/list", {"id": 7}) == {"n": "1"}
        body = transport.requests[0].body
        assert body.startswith(b"<xml>") and b"<id>7</id>" in body and b"tok-1" in body
    async with mocked(OK, auth="bearer") as (transport, client):
        await client.request("campaigns/list")
        assert "token" not in json.loads(transport.requests[0].body)
        assert transport.requests[0].headers["Authorization"] == "Bearer tok-1"


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/databases/list",
        "https://evil.example/databases/list",
        "//evil.example/databases/list",
        "../databases/list",
        "databases/../admin/x",
        "databases/./list",
        "databases//list",
        "databases/list?token=x",
        "databases/list#x",
        "databases list",
        "databases\\list",
        5,
        None,
    ],
)
async def test_a_bad_path_is_refused_before_anything_is_sent(path: Any) -> None:
    async with mocked(OK) as (transport, client):
        with pytest.raises(InvalidRequestError, match="path"):
            await client.request(path)
        assert transport.requests == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"token": "other"}, "token"),
        ({"format": "xml"}, "format"),
        ({"Token": "other"}, "Token"),  # a server may match names without case
        ({"FORMAT": "xml"}, "FORMAT"),
        ([("id", 1)], "mapping"),
        ({"id": object()}, "plain data"),
        ({"id": float("nan")}, "finite"),
        ({"id": 2**64}, "64 bits"),
        ({1: "x"}, "parameter name"),
        ({"a": {"<b>": 1}}, "parameter name"),
        ({"a": [{"ok": b"bytes"}]}, "plain data"),
    ],
)
async def test_bad_params_are_refused_before_anything_is_sent(params: Any, message: str) -> None:
    async with mocked(OK) as (transport, client):
        with pytest.raises(InvalidRequestError, match=message):
            await client.request("campaigns/list", params)
        assert transport.requests == []


async def test_admin_and_starts_task_must_be_bools() -> None:
    async with mocked(OK) as (transport, client):
        with pytest.raises(InvalidRequestError, match="admin"):
            await client.request("campaigns/list", admin="yes")  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match="starts_task"):
            await client.request("campaigns/list", starts_task=1)  # type: ignore[arg-type]
        assert transport.requests == []


async def test_the_readmes_example_runs_against_the_fake(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Any other endpoint", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert block.rstrip().endswith("asyncio.run(main())")
    namespace: dict[str, Any] = {}
    exec(block.rstrip().removesuffix("asyncio.run(main())"), namespace)
    await namespace["main"]()
    printed = capsys.readouterr().out
    assert "Database(id=1, name='database 1')" in printed and "'id': '1'" in printed


async def test_a_list_inside_a_list_is_refused_in_xml_before_sending() -> None:
    # JSON has nested arrays; XML repeats an element once and has no form for a list in a list
    async with mocked(MockTransport.reply({"n": 1}, fmt="xml"), format="xml") as (transport, c):
        with pytest.raises(InvalidRequestError, match="ids: a list inside a list has no XML"):
            await c.request("campaigns/list", {"ids": [[1, 2], [3]]})
        assert transport.requests == []
        assert await c.request("campaigns/list", {"ids": [1, 2]}) == {"n": "1"}  # XML: text
        assert b"<ids>1</ids><ids>2</ids>" in transport.requests[0].body
