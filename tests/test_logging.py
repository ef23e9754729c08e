"""The DEBUG lines of the ``altcraft_async`` logger: every try and retry of one call carries
that call's id, a status poll's lines carry the task id, and no line carries a token.

Real clients: over a transport seam that answers by a script, and against the fake over
loopback with concurrent waits."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import anyio
import pytest
from helpers import small_platform

from altcraft_async import (
    AltcraftClient,
    Backoff,
    HTTPRequest,
    HTTPResponse,
    PollPolicy,
    RetryPolicy,
)
from altcraft_async.testing import FakeAltcraft, MockTransport

pytestmark = pytest.mark.anyio

TOKEN = "log-SECRET-user-31f0"
URL = "https://altcraft.example"
FAST = RetryPolicy(attempts=4, backoff=Backoff(initial=0.001, max_interval=0.002))
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.001, max_interval=0.002), timeout=10)
TASK_ID = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"
COUNTERS = [{"channel": "email", "status": {"subscribed_sendable": 2, "unconfirmed_sendable": 0}}]
CALL_ID = re.compile(r"\bcall=([0-9a-f]{8})\b")


@pytest.fixture
def debug_lines(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The messages of the ``altcraft_async`` logger at DEBUG, filled in as the test runs; at
    the end no record (message, arguments or any attribute) shows the token."""
    caplog.set_level(logging.DEBUG, logger="altcraft_async")
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("altcraft_async")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
    everything = caplog.text + "".join(f"{vars(record)!r}" for record in caplog.records)
    assert TOKEN not in everything


def call_id(line: str) -> str:
    match = CALL_ID.search(line)
    assert match is not None, line
    return match.group(1)


class Script:
    """Answers by endpoint: ``fail`` 503s first (over every endpoint), then the platform's
    answers; tasks/status says "in_progress" ``running`` times, then "completed"."""

    def __init__(self, *, fail: int = 0, running: int = 0) -> None:
        self.fail = fail
        self.running = running

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        if self.fail:
            self.fail -= 1
            return HTTPResponse(503, {}, b"busy")
        if request.endpoint == "segments.refresh_counters":
            return MockTransport.json_reply({"task_id": TASK_ID})
        if request.endpoint == "tasks.status":
            self.running -= 1
            status = "in_progress" if self.running >= 0 else "completed"
            return MockTransport.json_reply({"status": status, "progress": 10, "result": []})
        return MockTransport.json_reply(COUNTERS)


def client_over(script: Script) -> AltcraftClient:
    return AltcraftClient(
        URL, token=TOKEN, transport=MockTransport(script), retry=FAST, poll=FAST_POLL
    )


async def test_the_tries_and_retries_of_one_call_share_its_id(debug_lines: list[str]) -> None:
    async with client_over(Script(fail=2)) as client:
        await client.segments.get_counters(segment_id=7, resource_id=24)
        first = list(debug_lines)
        await client.segments.get_counters(segment_id=7, resource_id=24)
    tries = [line for line in first if line.startswith("POST segments/get_counters")]
    retries = [line for line in first if " retry " in line]
    assert [line.split(" attempt=")[1][0] for line in tries] == ["1", "2", "3"]
    assert len(retries) == 2 and all("after HTTPStatusError" in line for line in retries)
    assert len({call_id(line) for line in tries + retries}) == 1
    (second,) = debug_lines[len(first) :]
    assert call_id(second) != call_id(tries[0])  # another call, another id


async def test_a_status_polls_lines_carry_its_task_id(debug_lines: list[str]) -> None:
    async with client_over(Script(running=2)) as client:
        task = await client.segments.refresh_counters(segment_id=7, resource_id=24)
        await task.wait()
    (start,) = [line for line in debug_lines if "segments/refresh_counters" in line]
    polls = [line for line in debug_lines if line.startswith("POST tasks/status")]
    assert len(polls) == 3
    assert all(line.endswith(f"task={TASK_ID}") for line in polls), polls
    assert "task=" not in start  # its reply makes the task: nothing to name before it
    assert len({call_id(line) for line in [start, *polls]}) == 4  # one id per call


async def test_a_caller_given_task_id_is_shown_quoted_when_unprintable(
    debug_lines: list[str],
) -> None:
    async with client_over(Script()) as client:
        await client.tasks.status("abc\r\nINFO forged line")
        await client.tasks.status("x" * 500)
    first, second = debug_lines
    assert first.endswith("task='abc\\r\\nINFO forged line'") and "\n" not in first
    assert second.endswith("task='" + "x" * 64 + "'")


async def test_concurrent_waits_are_told_apart_by_task_id(debug_lines: list[str]) -> None:
    """Two refreshes waited on at once against the fake: each status request's line names
    the task that request asked about, as the fake recorded it."""
    async with FakeAltcraft(small_platform(), token=TOKEN) as fake:
        client = AltcraftClient(fake.url, token=TOKEN, retry=FAST, poll=FAST_POLL)
        async with client, anyio.create_task_group() as group:
            for segment_id in (7, 8):
                group.start_soon(
                    lambda s=segment_id: client.segments.refresh_and_wait(
                        segment_id=s, resource_id=24, database_id=1
                    )
                )
        asked = [r.params["task_id"] for r in fake.requests if r.path == "tasks/status"]
    logged = [line.rsplit("task=", 1)[1] for line in debug_lines if "tasks/status" in line]
    assert sorted(logged) == sorted(asked)
    assert len(set(asked)) == 2
    polls = [line for line in debug_lines if line.startswith("POST tasks/status")]
    assert len({call_id(line) for line in polls}) == len(polls)
