"""An aiohttp web application that owns one AltcraftClient for its whole lifetime.

``GET /segments/{segment_id}/counters?resource_id=1&database_id=1`` refreshes the segment and
returns its new counters as JSON. The client is created on startup and closed on cleanup
(``cleanup_ctx``), so every request shares one connection pool and one poll loop per task.

    python examples/web_app.py            # self-check: start, call the endpoint once, stop
    python examples/web_app.py --serve    # keep serving on http://127.0.0.1:8080
"""

import asyncio
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from altcraft_async import AltcraftClient, AltcraftError, InvalidRequestError, to_builtins
from altcraft_async.testing import client_from_env

CLIENT = web.AppKey("altcraft_client", AltcraftClient)


async def altcraft_client(app: web.Application) -> AsyncIterator[None]:
    async with client_from_env() as client:
        app[CLIENT] = client
        yield


async def segment_counters(request: web.Request) -> web.Response:
    client = request.app[CLIENT]
    try:
        snapshots = await client.segments.refresh_and_wait(
            segment_id=int(request.match_info["segment_id"]),
            resource_id=int(request.query.get("resource_id", "1")),
            database_id=int(request.query.get("database_id", "1")),
            timeout=30,
        )
    except (ValueError, InvalidRequestError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    except AltcraftError as exc:
        raise web.HTTPBadGateway(text=f"Altcraft: {exc}") from None
    return web.json_response(to_builtins(snapshots))


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(altcraft_client)
    app.router.add_get("/segments/{segment_id}/counters", segment_counters)
    return app


async def self_check() -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/segments/1/counters?resource_id=1") as response,
        ):
            body = await response.json()
            print(f"GET /segments/1/counters -> {response.status}")
            for channel in body[0]["channels"]:
                print(f"  {channel['channel']:6} {channel['status']}")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    if "--serve" in sys.argv:
        web.run_app(make_app(), host="127.0.0.1", port=8080)
    else:
        asyncio.run(self_check())
