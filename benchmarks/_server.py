"""A lean aiohttp server with fixed replies, run in its own process by the benchmarks.

``python -m benchmarks._server --port 0`` binds ``127.0.0.1``, prints ``PORT <n>`` on one line
and serves until killed (or until stdin closes, so it never outlives its parent):

- ``segments/get_counters``: the documented example reply, XML when the request body is XML
  (``Content-Type: application/xml``), else its JSON twin. The bytes are fixed, so the server
  costs the same whoever calls it: the SDK or raw aiohttp.
- ``segments/refresh_counters``: a fresh task id each call.
- ``tasks/status``: a task that never finishes (``processing``, progress 0), in the request's
  format, for the memory benchmark and the instruction count of a running poll.
- ``GET /_bench/stats``: requests served per endpoint and this process's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter

import orjson
from aiohttp import web

from ._proc import serve_until_stdin_closes

__all__ = [
    "GET_COUNTERS_JSON",
    "GET_COUNTERS_XML",
    "STATUS_JSON",
    "STATUS_XML",
    "make_app",
    "reply_for",
]

#: The documented XML reply of ``segments/get_counters``.
GET_COUNTERS_XML = (
    b"<xml>"
    b"<data><channel>email</channel><status>"
    b"<subscribed_sendable>209</subscribed_sendable>"
    b"<unconfirmed_sendable>0</unconfirmed_sendable></status></data>"
    b"<data><channel>push</channel><status>"
    b"<subscribed_sendable>0</subscribed_sendable>"
    b"<unconfirmed_sendable>0</unconfirmed_sendable></status></data>"
    b"<data><channel>sms</channel><status>"
    b"<subscribed_sendable>108</subscribed_sendable>"
    b"<unconfirmed_sendable>0</unconfirmed_sendable></status></data>"
    b"<error>0</error><error_text>Successful operation</error_text>"
    b"</xml>"
)

#: Its JSON twin, as documented.
GET_COUNTERS_JSON = orjson.dumps(
    {
        "data": [
            {"channel": "email", "status": {"subscribed_sendable": 209, "unconfirmed_sendable": 0}},
            {"channel": "push", "status": {"subscribed_sendable": 0, "unconfirmed_sendable": 0}},
            {"channel": "sms", "status": {"subscribed_sendable": 108, "unconfirmed_sendable": 0}},
        ],
        "error": 0,
        "error_text": "Successful operation",
    }
)

#: A running task's ``tasks/status`` reply (it never finishes), in both formats.
STATUS_JSON = orjson.dumps(
    {
        "data": {"status": "processing", "progress": 0, "result": []},
        "error": 0,
        "error_text": "Successful operation",
    }
)
STATUS_XML = (
    b"<xml><data><status>processing</status><progress>0</progress><result></result></data>"
    b"<error>0</error><error_text>Successful operation</error_text></xml>"
)


def _is_xml(body: bytes, content_type: str) -> bool:
    return content_type == "application/xml" or body[:1] == b"<"


def reply_for(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The fixed ``get_counters`` reply in the request's format."""
    if _is_xml(body, content_type):
        return GET_COUNTERS_XML, "application/xml"
    return GET_COUNTERS_JSON, "application/json"


def make_app() -> web.Application:
    counts: Counter[str] = Counter()
    task_ids = itertools.count(1)

    async def get_counters(request: web.Request) -> web.Response:
        body = await request.read()
        counts["segments/get_counters"] += 1
        reply, content_type = reply_for(body, request.content_type)
        return web.Response(body=reply, content_type=content_type)

    async def refresh_counters(request: web.Request) -> web.Response:
        await request.read()
        counts["segments/refresh_counters"] += 1
        data = {"data": {"task_id": f"bench-{next(task_ids)}"}, "error": 0, "error_text": ""}
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    async def task_status(request: web.Request) -> web.Response:
        body = await request.read()
        counts["tasks/status"] += 1
        if _is_xml(body, request.content_type):
            return web.Response(body=STATUS_XML, content_type="application/xml")
        return web.Response(body=STATUS_JSON, content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        payload = {"requests": dict(counts), "cpu_s": time.process_time()}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v1.1/segments/get_counters", get_counters)
    app.router.add_post("/api/v1.1/segments/refresh_counters", refresh_counters)
    app.router.add_post("/api/v1.1/tasks/status", task_status)
    app.router.add_get("/_bench/stats", stats)
    return app


async def serve(host: str, port: int) -> None:
    await serve_until_stdin_closes(make_app(), host, port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
