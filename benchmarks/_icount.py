"""The client program whose instructions ``benchmarks.instructions`` counts under valgrind.

``python -m benchmarks._icount BASE_URL WARMUP JOBS RUNS FIGURE...`` imports everything, then
forks one child per figure (``CLIENT:ENDPOINT:FORMAT``) and per count in ``RUNS`` (``200,1200``).
Each child makes ``WARMUP`` calls and then that many more, ten at a time, against the lean
server (``benchmarks._server``), and exits; valgrind counts each child in a file of its own
(``%p`` in the output file name). A call that does not return what it should ends its child
with an error (exit 1), so a count is never taken of a run that failed.

The clients (the same three as ``overhead.py``):

- ``raw``: aiohttp posting the bytes the SDK's sans-I/O ``build_request`` made, once, and
  reading the whole reply.
- ``floor``: the least an SDK returning these frozen models must do: encode the arguments,
  send, read, parse (orjson, or ElementTree for XML) and build the models by hand; no
  validation, no error handling, no layers.
- ``sdk``: the public call (``segments.get_counters`` or ``tasks.status``).

The endpoints: ``get_counters`` (the documented reply: three channels) and ``poll`` (a
``tasks/status`` of a task that is still running).
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, cast

import aiohttp
import orjson

from altcraft_async import AltcraftClient, ChannelCounters, CounterStatus, TaskStatus
from altcraft_async._codec import CONTENT_TYPES, Format
from altcraft_async._sansio import EndpointSpec, build_request
from altcraft_async.api._specs import SEGMENTS_GET_COUNTERS, TASKS_STATUS

__all__ = ["CLIENTS", "CONCURRENCY", "ENDPOINTS", "main"]

TOKEN = "abcdefghijklmnqrstuvwxyz"
TASK_ID = "bench-1"
CONCURRENCY = 10
CLIENTS = ("raw", "floor", "sdk")
#: endpoint -> (spec, arguments)
ENDPOINTS: dict[str, tuple[EndpointSpec, dict[str, Any]]] = {
    "get_counters": (SEGMENTS_GET_COUNTERS, {"segment_id": 7, "resource_id": 24, "database_id": 1}),
    "poll": (TASKS_STATUS, {"task_id": TASK_ID}),
}

Call = Callable[[], Awaitable[Any]]


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))


@asynccontextmanager
async def _raw(base_url: str, endpoint: str, fmt: Format) -> AsyncIterator[Call]:
    spec, args = ENDPOINTS[endpoint]
    request = build_request(spec, args, token=TOKEN, fmt=fmt)
    url, body, headers = base_url + request.path, request.body, dict(request.headers)
    async with _session() as session:

        async def call() -> bytes:
            async with session.post(url, data=body, headers=headers) as response:
                return await response.read()

        yield call


def _floor_counters_json(reply: bytes) -> list[ChannelCounters]:
    return [
        ChannelCounters(item["channel"], CounterStatus(**item["status"]))
        for item in orjson.loads(reply)["data"]
    ]


def _floor_counters_xml(reply: bytes) -> list[ChannelCounters]:
    return [
        ChannelCounters(
            item.findtext("channel", ""),
            CounterStatus(**{leaf.tag: int(leaf.text or 0) for leaf in item.iterfind("status/*")}),
        )
        for item in ET.fromstring(reply).iterfind("data")
    ]


def _floor_status_json(reply: bytes) -> TaskStatus:
    data = orjson.loads(reply)["data"]
    return TaskStatus(data["status"], float(data["progress"]), ())


def _floor_status_xml(reply: bytes) -> TaskStatus:
    root = ET.fromstring(reply)
    return TaskStatus(root.findtext("data/status", ""), float(root.findtext("data/progress", 0)))


def _floor_counters_body(fmt: Format) -> bytes:
    if fmt == "json":
        document = {"token": TOKEN, "id": 7, "resource_id": 24, "list_id": 1}
        return orjson.dumps({**document, "format": "json"})
    return (
        f"<xml><token>{TOKEN}</token><id>7</id><resource_id>24</resource_id>"
        "<list_id>1</list_id><format>xml</format></xml>"
    ).encode()


def _floor_status_body(fmt: Format) -> bytes:
    if fmt == "json":
        return orjson.dumps({"token": TOKEN, "task_id": TASK_ID, "format": "json"})
    document = f"<xml><token>{TOKEN}</token><task_id>{TASK_ID}</task_id><format>xml</format></xml>"
    return document.encode()


#: (endpoint, format) -> (the request body, built on each call; the reply's decoder)
_FLOOR: dict[tuple[str, str], tuple[Callable[[Format], bytes], Callable[[bytes], Any]]] = {
    ("get_counters", "json"): (_floor_counters_body, _floor_counters_json),
    ("get_counters", "xml"): (_floor_counters_body, _floor_counters_xml),
    ("poll", "json"): (_floor_status_body, _floor_status_json),
    ("poll", "xml"): (_floor_status_body, _floor_status_xml),
}


@asynccontextmanager
async def _floor(base_url: str, endpoint: str, fmt: Format) -> AsyncIterator[Call]:
    url = base_url + ENDPOINTS[endpoint][0].url_path
    kind = CONTENT_TYPES[fmt]
    headers = {"Content-Type": kind, "Accept": kind}
    make_body, decode = _FLOOR[endpoint, fmt]
    async with _session() as session:

        async def call() -> Any:
            async with session.post(url, data=make_body(fmt), headers=headers) as response:
                reply = await response.read()
            return decode(reply)

        yield call


@asynccontextmanager
async def _sdk(base_url: str, endpoint: str, fmt: Format) -> AsyncIterator[Call]:
    async with AltcraftClient(base_url, token=TOKEN, format=fmt, max_connections=100) as client:
        segments, tasks = client.segments, client.tasks

        async def get_counters() -> list[ChannelCounters]:
            return await segments.get_counters(segment_id=7, resource_id=24, database_id=1)

        async def poll() -> TaskStatus:
            return await tasks.status(TASK_ID)

        yield get_counters if endpoint == "get_counters" else poll


_MAKERS = {"raw": _raw, "floor": _floor, "sdk": _sdk}


def _check(client: str, endpoint: str, result: Any) -> None:
    """The reply each client must return: a run of failures would count the wrong path."""
    if client == "raw":
        ok = isinstance(result, bytes) and (b"<error>0</error>" in result or b'"error":0' in result)
    elif endpoint == "get_counters":
        ok = [counters.channel for counters in result] == ["email", "push", "sms"]
    else:
        ok = result.status == "processing" and not result.done
    if not ok:
        raise SystemExit(f"{client} {endpoint}: unexpected reply {result!r:.200}")


async def run(client: str, endpoint: str, fmt: Format, base_url: str, warmup: int, n: int) -> None:
    """``warmup`` calls, then ``n`` calls, each time by CONCURRENCY workers."""
    async with _MAKERS[client](base_url, endpoint, fmt) as call:

        async def batch(count: int) -> None:
            left = count

            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await call()

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        _check(client, endpoint, await call())
        await batch(warmup)
        await batch(n)


def _child(figure: tuple[str, str, str], base_url: str, warmup: int, n: int) -> NoReturn:
    code = 0
    try:
        client, endpoint, fmt = figure
        asyncio.run(run(client, endpoint, fmt, base_url, warmup, n))  # type: ignore[arg-type]
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)  # a forked child never returns into the parent's code


def fork_runs(
    figures: list[tuple[str, str, str]],
    base_url: str,
    warmup: int,
    runs: tuple[int, ...],
    jobs: int,
) -> int:
    """Run every figure once per count in ``runs``, each in a child forked from this process
    (``jobs`` at a time), and print ``CLIENT:ENDPOINT:FORMAT N PID EXIT`` per child.

    Forked after every import: the start-up (most of a run's instructions under valgrind) is
    paid once, and every child starts from the same state. Returns 1 if a child failed."""
    queue = [(figure, n) for figure in figures for n in runs]
    running: dict[int, tuple[tuple[str, str, str], int]] = {}
    failed = 0
    while queue or running:
        while queue and len(running) < jobs:
            figure, n = queue.pop(0)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(figure, base_url, warmup, n)
            running[pid] = (figure, n)
        pid, status = os.wait()
        figure, n = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        failed |= code != 0
        print(f"{':'.join(figure)} {n} {pid} {code}", flush=True)
    return failed


def main(argv: list[str]) -> int:
    """``BASE_URL WARMUP JOBS RUNS FIGURE...``: RUNS like ``200,1200``, FIGURE like
    ``sdk:poll:xml``."""
    base_url, warmup, jobs, runs, *names = argv
    figures = [cast("tuple[str, str, str]", tuple(name.split(":"))) for name in names]
    for client, endpoint, fmt in figures:
        if client not in _MAKERS or endpoint not in ENDPOINTS or fmt not in CONTENT_TYPES:
            raise SystemExit(f"unknown figure {client}:{endpoint}:{fmt}")
    counts = tuple(int(n) for n in runs.split(","))
    return fork_runs(figures, base_url, int(warmup), counts, int(jobs))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
