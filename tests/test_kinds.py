"""Task kinds as data: a kind names its task's result type, and everything that waits on a task
(``wait``, ``watch``, ``status``, resume tokens, polls shared by waiters) reads the result as
that kind says, once, when the task succeeds.

Driven through the transport seam (``MockTransport``): a server of our own script answers
``tasks/status`` with a result of a shape the SDK's own kinds do not know.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from attrs import frozen

from altcraft_async import (
    AltcraftClient,
    Backoff,
    CountersSnapshot,
    DecodeError,
    HTTPRequest,
    HTTPResponse,
    InvalidRequestError,
    PollPolicy,
    TaskFailedError,
    TaskKind,
    TaskStatus,
)
from altcraft_async.testing import MockTransport

pytestmark = pytest.mark.anyio

URL = "https://altcraft.example"
TOKEN = "kinds-SECRET-token"
TASK_ID = "5d1c7d7e-1111-4222-8333-944455556666"
FAST = PollPolicy(backoff=Backoff(initial=0.001, max_interval=0.002), progress_aware=False)


@frozen
class Imported:
    """The result item of an import task (not an Altcraft page: a kind of the user's own)."""

    imported: int
    skipped: int = 0


IMPORT = TaskKind("import", result_type=tuple[Imported, ...], deliver=list)
#: A kind whose result is one object, delivered as is.
REPORT = TaskKind("report", result_type=Imported, deliver=lambda result: result)


def status_server(*replies: dict[str, Any]) -> MockTransport:
    """Answers ``tasks/status`` with ``replies`` in turn (the last one repeated)."""
    answers = list(replies)

    def handler(request: HTTPRequest) -> HTTPResponse:
        assert request.endpoint == "tasks.status"
        assert json.loads(request.body)["task_id"] == TASK_ID
        reply = answers.pop(0) if len(answers) > 1 else answers[0]
        return MockTransport.json_reply(reply)

    return MockTransport(handler)


RUNNING = {"status": "running", "progress": 40, "result": None}
DONE = {"status": "completed", "progress": 100, "result": [{"imported": 10, "skipped": 2}]}


async def test_a_kind_reads_its_own_result_where_counters_would_read_nothing() -> None:
    mock = status_server(RUNNING, DONE)
    async with AltcraftClient(URL, token=TOKEN, transport=mock) as client:
        task = client.tasks.task(TASK_ID, kind=IMPORT)
        assert await task.wait(policy=FAST) == [Imported(10, 2)]
        # the default kind reads the same reply as counters: nothing it knows, an empty snapshot
        assert (await client.tasks.status(TASK_ID)).result == (CountersSnapshot(),)
        assert (await task.status()).result == (Imported(10, 2),)
    assert mock.endpoints() == ["tasks.status"] * 4


async def test_watch_yields_statuses_of_the_kind_and_a_result_that_is_one_object() -> None:
    done = {"status": "completed", "progress": 100, "result": {"imported": 3}}
    mock = status_server(RUNNING, done)
    async with AltcraftClient(URL, token=TOKEN, transport=mock) as client:
        task = client.tasks.task(TASK_ID, kind=REPORT)
        seen: list[TaskStatus[Imported]] = [s async for s in task.watch(policy=FAST)]
        assert [(s.status, s.result) for s in seen] == [
            ("running", None),  # no result read yet: None for a kind whose result is one object
            ("completed", Imported(3)),
        ]
        assert await client.tasks.task(TASK_ID, kind=REPORT).wait(policy=FAST) == Imported(3)


async def test_a_failed_task_of_any_kind_raises_with_what_it_sent() -> None:
    failed = {"status": "failed", "progress": 10, "result": {"reason": "bad file"}}
    mock = status_server(failed)
    async with AltcraftClient(URL, token=TOKEN, transport=mock) as client:
        with pytest.raises(TaskFailedError) as info:
            await client.tasks.task(TASK_ID, kind=IMPORT).wait(policy=FAST)
    assert info.value.result == {"reason": "bad file"}
    assert info.value.raw.result == ()  # the kind's empty result: none was read


async def test_a_result_that_is_not_the_kinds_is_a_decode_error_not_an_empty_value() -> None:
    wrong = {"status": "completed", "progress": 100, "result": [{"imported": "ten"}]}
    mock = status_server(wrong)
    async with AltcraftClient(URL, token=TOKEN, transport=mock) as client:
        with pytest.raises(DecodeError, match="expected an integer within 64 bits, got str"):
            await client.tasks.task(TASK_ID, kind=IMPORT).wait(policy=FAST, timeout=5)
    assert mock.endpoints() == ["tasks.status"]  # the same reply again would not fit either


async def test_waits_that_read_the_result_alike_share_one_poll_and_others_poll_apart() -> None:
    mock = status_server(RUNNING, RUNNING, DONE)
    async with AltcraftClient(URL, token=TOKEN, transport=mock) as client:
        results: dict[str, Any] = {}

        async def wait(name: str, kind: TaskKind[Any, Any]) -> None:
            results[name] = await client.tasks.task(TASK_ID, kind=kind).wait(policy=FAST)

        async with anyio.create_task_group() as group:
            group.start_soon(wait, "a", IMPORT)
            group.start_soon(wait, "b", IMPORT)
            await anyio.wait_all_tasks_blocked()
            assert client.polling_tasks() == {TASK_ID}
        assert results == {"a": [Imported(10, 2)], "b": [Imported(10, 2)]}
    # two waiters, one poll at a time: the replies were shared, not fetched twice over
    assert len(mock.requests) == 3


async def test_a_resume_token_keeps_the_kind_and_a_kind_of_ones_own_is_given_back() -> None:
    mock = status_server(DONE)
    async with AltcraftClient(URL, token=TOKEN, transport=mock) as client:
        token = client.tasks.task(TASK_ID, kind=IMPORT).resume_token()
        assert json.loads(token)["kind"] == "import"
        resumed = client.tasks.resume(token, kind=IMPORT)
        assert (resumed.kind, resumed.task_kind) == ("import", IMPORT)
        assert await resumed.wait(policy=FAST) == [Imported(10, 2)]
        with pytest.raises(InvalidRequestError, match="of kind 'import', not 'report'"):
            client.tasks.resume(token, kind=REPORT)
        with pytest.raises(InvalidRequestError, match="kind must be a TaskKind"):
            client.tasks.task(TASK_ID, kind="import")  # type: ignore[call-overload]


async def test_the_sdks_own_kinds_come_back_from_their_tokens_by_name() -> None:
    mock = MockTransport(lambda request: MockTransport.json_reply({"task_id": TASK_ID}))
    async with AltcraftClient(URL, token=TOKEN, transport=mock) as client:
        refreshes = {
            "segment": client.segments.refresh_counters(segment_id=7, resource_id=24),
            "resource": client.resources.refresh_counters(resource_id=24, database_id=1),
            "database": client.databases.refresh_counters(database_id=1, resource_id=24),
        }
        for name, start in refreshes.items():
            task = await start
            resumed = client.tasks.resume(task.resume_token())
            assert (resumed.kind, resumed.endpoint) == (name, task.endpoint)
            assert resumed.task_kind is task.task_kind
            assert task.endpoint == f"{name}s.refresh_counters"
