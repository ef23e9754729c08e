"""examples/fastapi_app.py served by a real uvicorn process, driven by real HTTP requests.

The app's client talks to a FakeAltcraft running in the test process on loopback, so each
test can check what the app answers against what the fake holds and recorded. Each test
starts uvicorn (``--port 0``: the port it bound is read from its start-up line, so no race for
a free port), and stops it with SIGTERM: it must shut down gracefully (the lifespan closes the
client) with no traceback, no unclosed session and no warning on its stderr (``-W default``
shows every warning).

The app runs in another process, so the test cannot hook into its client. Two waits therefore
check a condition again and again (``until``): each check is an HTTP round trip to the app's
``/health`` (never a sleep) and ``anyio.fail_after`` bounds the loop. "Polling has stopped" is
then proved by the fake's own record: across a *quiet window* (a request of the app that the
fake holds for 0.3 s, fifteen times the app's longest pause between polls) no poll arrives.

fastapi and uvicorn are in the ``dev`` extra. Without them the module is skipped, except
when ``$CI`` is set: there a missing dependency is an error, not a silent skip.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream
from attrs import define, field
from helpers import small_platform

from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

for _module in ("fastapi", "uvicorn"):
    if importlib.util.find_spec(_module) is None:
        if os.environ.get("CI"):
            raise ImportError(f"{_module} is missing: CI must install the dev extra")
        pytest.skip(f"{_module} is not installed (the dev extra has it)", allow_module_level=True)

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
#: The longest pause between two polls of the app's client: a live poller polls 15 times in
#: a quiet window.
POLL_MAX_INTERVAL = 0.02
QUIET_WINDOW = 0.3
RESOURCE = 24  # small_platform's resource; its segment 7 is static, 8 dynamic (a rule)


@define
class App:
    """A running uvicorn process serving the example, and what it wrote to stderr."""

    process: Process
    url: str = ""
    stderr: list[str] = field(factory=list)


@asynccontextmanager
async def served_app(fake: FakeAltcraft) -> AsyncIterator[App]:
    """uvicorn serving examples.fastapi_app against ``fake``; stopped by SIGTERM on exit (and
    killed in any case), then checked for a clean exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTCRAFT_")}
    env |= {
        "ALTCRAFT_URL": fake.url,
        "ALTCRAFT_TOKEN": fake.token,
        "ALTCRAFT_POLL_MAX_INTERVAL": str(POLL_MAX_INTERVAL),
    }
    command = [sys.executable, "-W", "default", "-m", "uvicorn", "examples.fastapi_app:app"]
    command += ["--host", "127.0.0.1", "--port", "0", "--no-access-log"]
    process = await anyio.open_process(
        command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    app = App(process)
    started = anyio.Event()

    async def read_stderr() -> None:
        assert process.stderr is not None
        pending = ""
        async for chunk in TextReceiveStream(process.stderr):
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                app.stderr.append(line)
                if "Uvicorn running on " in line:
                    app.url = line.split("Uvicorn running on ")[1].split()[0]
                    started.set()
        app.stderr.append(pending)
        started.set()  # EOF: the process is gone (the check below tells)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(read_stderr)
            with anyio.fail_after(60):  # imports and start-up on a loaded machine
                await started.wait()
            assert app.url, "uvicorn did not start:\n" + "\n".join(app.stderr)
            yield app
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await process.wait()  # the reader ends at EOF, the group with it
    finally:
        if process.returncode is None:
            process.kill()
            with anyio.CancelScope(shield=True):
                await process.wait()
        await process.aclose()
    output = "\n".join(app.stderr)
    # uvicorn (0.29+) ends a graceful stop by raising the signal again with its default
    # action, so that whoever sent it sees the process end by it: -SIGTERM, not 0
    assert process.returncode == -signal.SIGTERM, output
    assert "Application shutdown complete" in output and "Finished server process" in output
    for bad in ("Traceback", "ERROR", "Unclosed", "Warning", fake.token):
        assert bad not in output, output


async def get_json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Run ``check`` until it holds; each run is a round trip to the app, 30 s at most."""
    with anyio.fail_after(30):
        while not await check():
            pass


def sendable(counters: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    keep = ("subscribed_sendable", "unconfirmed_sendable")
    return {channel: {k: counts[k] for k in keep} for channel, counts in counters.items()}


def by_channel(items: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Channel -> the counters the JSON gives (None ones, which the reply omitted, left out)."""
    return {
        item["channel"]: {k: v for k, v in item["status"].items() if v is not None}
        for item in items
    }


async def test_counters_and_refresh_and_wait_return_the_fakes_numbers() -> None:
    fake = FakeAltcraft(small_platform(), task_plan=TaskPlan.after_polls(2))
    async with fake, served_app(fake) as app, aiohttp.ClientSession() as session:
        counters_url = f"{app.url}/segments/7/counters?resource_id={RESOURCE}"
        before = fake.platform.segment_counters(7, RESOURCE)
        assert by_channel(await get_json(session, "GET", counters_url)) == sendable(before)

        # a third member subscribes: the stored counters stay, a refresh counts it
        third = fake.platform.profile_ids(1)[2]
        fake.platform.set_subscription(third, RESOURCE, "email", "subscribed")
        after = fake.platform.segment_counters(7, RESOURCE)
        assert after["email"]["subscribed"] == before["email"]["subscribed"] + 1
        assert by_channel(await get_json(session, "GET", counters_url)) == sendable(before)

        refresh_url = f"{app.url}/segments/7/refresh?resource_id={RESOURCE}"
        snapshots = await get_json(session, "POST", refresh_url)
        (task,) = fake.tasks.values()
        assert len(task.polls) == 3 and task.result is not None  # polled to the end
        assert [by_channel(s["channels"]) for s in snapshots] == [after]
        assert snapshots[0]["resource_id"] == RESOURCE
        assert snapshots[0]["updated"].endswith("Z")  # to_builtins: ISO 8601 timestamps
        assert by_channel(await get_json(session, "GET", counters_url)) == sendable(after)
        assert await get_json(session, "GET", f"{app.url}/health") == {"polling_tasks": []}


async def test_fan_out_returns_one_outcome_per_ref() -> None:
    platform = small_platform()
    platform.add_static_segment(1, platform.profile_ids(1)[2:], segment_id=9)
    fake = FakeAltcraft(platform, task_plan=TaskPlan.after_polls(1))
    fake.plan_tasks(TaskPlan.fails(after_polls=1), segment_id=9)
    refs = [{"segment_id": s, "resource_id": RESOURCE, "database_id": 1} for s in (7, 8, 9, 99)]
    async with fake, served_app(fake) as app, aiohttp.ClientSession() as session:
        outcomes = await get_json(session, "POST", f"{app.url}/segments/refresh", json=refs)

        by_segment = {outcome["ref"]["segment_id"]: outcome for outcome in outcomes}
        assert len(outcomes) == len(by_segment) == 4
        assert [by_segment[s]["ref"] for s in (7, 8, 9, 99)] == refs
        for segment in (7, 8):
            (snapshot,) = by_segment[segment]["snapshots"]
            expected = fake.platform.segment_counters(segment, RESOURCE)
            assert by_channel(snapshot["channels"]) == expected
        assert by_segment[9]["error"].startswith("TaskFailedError: ")
        assert by_segment[99]["error"].startswith("BadRequestError: ")
        assert sorted(task.segment_id or 0 for task in fake.tasks.values()) == [7, 8, 9]

        async with session.post(f"{app.url}/segments/refresh", json=[{"segment_id": 0}]) as bad:
            assert bad.status == 422  # from_builtins refuses it before anything is sent
        assert len(fake.tasks) == 3


TWO_REFS = [{"segment_id": s, "resource_id": RESOURCE, "database_id": 1} for s in (7, 8)]


@pytest.mark.parametrize(
    ("path", "body", "segments"),
    [
        (f"/segments/7/refresh?resource_id={RESOURCE}", None, [7]),
        ("/segments/refresh", TWO_REFS, [7, 8]),
    ],
    ids=["refresh_and_wait", "refresh_many"],
)
async def test_a_caller_that_disconnects_stops_the_polling(
    path: str, body: list[dict[str, int]] | None, segments: list[int]
) -> None:
    fake = FakeAltcraft(small_platform(), task_plan=TaskPlan.never())
    async with fake, served_app(fake) as app, aiohttp.ClientSession() as session:
        health = f"{app.url}/health"
        polling: list[str] = []

        async def waiting_and_polled() -> bool:
            polling[:] = (await get_json(session, "GET", health))["polling_tasks"]
            return len(polling) == len(segments) and all(fake.tasks[t].polls for t in polling)

        async def stopped() -> bool:
            return not (await get_json(session, "GET", health))["polling_tasks"]

        async with anyio.create_task_group() as group:
            caller = aiohttp.ClientSession()  # its own connection, closed to disconnect

            async def abandoned_refresh() -> None:
                async with caller, caller.post(app.url + path, json=body):
                    pytest.fail("a refresh of a task that never ends answered")

            group.start_soon(abandoned_refresh)
            await until(waiting_and_polled)
            tasks = sorted(fake.tasks.values(), key=lambda task: task.segment_id or 0)
            assert sorted(polling) == sorted(task.task_id for task in tasks)
            assert [task.segment_id for task in tasks] == segments
            group.cancel_scope.cancel()  # leaving `async with caller` closes the connection
        assert caller.closed

        await until(stopped)
        polls = [len(task.polls) for task in tasks]
        # the quiet window: the fake holds this request of the app for QUIET_WINDOW seconds
        fake.faults.next("segments/get_counters", Fault.delay(QUIET_WINDOW))
        await get_json(session, "GET", f"{app.url}/segments/7/counters?resource_id={RESOURCE}")
        (window,) = [r for r in fake.requests if r.path == "segments/get_counters"]
        assert fake.clock.now() - window.at >= QUIET_WINDOW
        assert [len(task.polls) for task in tasks] == polls
        assert all(at < window.at for task in tasks for at in task.polls)
        assert all(task.in_flight for task in tasks)  # the tasks still run: nobody waits
        assert fake.calls("segments/refresh_counters") == len(segments)
        assert await stopped()
