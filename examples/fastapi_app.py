"""A FastAPI app that owns one AltcraftClient and stops waiting when its caller goes away.

    ALTCRAFT_URL=https://... ALTCRAFT_TOKEN=... uvicorn examples.fastapi_app:app

- ``GET  /segments/{id}/counters?resource_id=1``: the last computed counters.
- ``POST /segments/{id}/refresh?resource_id=1``: refresh, wait, return the new snapshots.
- ``POST /segments/refresh`` with ``[{"segment_id": 1, "resource_id": 1}, ...]``: refresh many
  at once; one outcome per ref, a failure never stops the rest.
- ``GET  /health``: the task ids the client is waiting on right now (``polling_tasks()``).

The client is made in the lifespan, so every request shares one connection pool and one poll
loop per task, and it is closed when the server stops. The models are attrs classes, not
pydantic ones: ``response_model=list[ChannelCounters]`` fails when the route is defined, and
returning them fails when FastAPI encodes them. ``to_builtins`` turns them into the wire's
JSON (field names, ISO timestamps); ``from_builtins`` reads request bodies back into them.

Starlette does not cancel a handler whose caller disconnected: an abandoned refresh would go on
polling until its task ends. :func:`cancel_on_disconnect` stops it.
"""

import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Body, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from altcraft_async import (
    AltcraftClient,
    AltcraftError,
    Backoff,
    BadRequestError,
    DecodeError,
    InvalidRequestError,
    PollPolicy,
    SegmentRef,
    TaskTimeoutError,
    from_builtins,
    to_builtins,
)

T = TypeVar("T")


def client_from_environment() -> AltcraftClient:
    """``ALTCRAFT_URL`` and ``ALTCRAFT_TOKEN``; ``ALTCRAFT_POLL_MAX_INTERVAL`` caps the pause
    between two polls of a task (seconds, 15 by default). A web request waits at most 2
    minutes for a task: longer, and a proxy in front would have given up on it anyway."""
    missing = [name for name in ("ALTCRAFT_URL", "ALTCRAFT_TOKEN") if not os.environ.get(name)]
    if missing:
        raise RuntimeError(f"set {' and '.join(missing)} in the environment")
    max_interval = float(os.environ.get("ALTCRAFT_POLL_MAX_INTERVAL", "15"))
    poll = PollPolicy(backoff=Backoff(max_interval=max_interval), timeout=120.0)
    return AltcraftClient(os.environ["ALTCRAFT_URL"], token=os.environ["ALTCRAFT_TOKEN"], poll=poll)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    async with client_from_environment() as client:
        yield {"altcraft": client}  # the lifespan state: request.state.altcraft


def altcraft(request: Request) -> AltcraftClient:
    client: AltcraftClient = request.state.altcraft
    return client


Client = Annotated[AltcraftClient, Depends(altcraft)]
app = FastAPI(title="Altcraft counters", lifespan=lifespan)


class ClientDisconnected(Exception):
    """The HTTP caller went away before the answer was ready; its work was cancelled."""


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it as soon as the HTTP caller disconnects.

    A watcher task waits for the ASGI ``http.disconnect`` message (``receive()`` blocks until
    the server has one, so nothing polls) and cancels the task group, which cancels ``work``
    where it awaits. Cancelled, a task wait of the SDK stops polling (the task leaves
    ``client.polling_tasks()``) and a fan-out cancels every refresh it still runs. Raises
    :class:`ClientDisconnected` then, which the handler below answers for nobody.
    """
    results: list[T] = []
    errors: list[Exception] = []

    async def watch(scope: anyio.CancelScope) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass  # the rest of a request body: the endpoint has what it needs
        scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch, group.cancel_scope)
        try:
            results.append(await work)
        except Exception as exc:  # raised below as it is: a task group would wrap it in a group
            errors.append(exc)
        group.cancel_scope.cancel()  # the work is over: stop watching
    if errors:
        raise errors[0]
    if not results:
        raise ClientDisconnected
    return results[0]


@app.exception_handler(ClientDisconnected)
async def client_disconnected(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)  # nginx's "client closed request"; nobody reads it


@app.exception_handler(InvalidRequestError)  # refused before sending
@app.exception_handler(DecodeError)  # a request body that from_builtins cannot read
@app.exception_handler(BadRequestError)  # refused by Altcraft: an unknown id, say
async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


@app.exception_handler(TaskTimeoutError)
async def task_timeout(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=504)


@app.exception_handler(AltcraftError)
async def altcraft_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"Altcraft: {exc}"}, status_code=502)


@app.get("/segments/{segment_id}/counters")
async def segment_counters(
    client: Client, segment_id: int, resource_id: int, database_id: int | None = None
) -> JSONResponse:
    counters = await client.segments.get_counters(
        segment_id=segment_id, resource_id=resource_id, database_id=database_id
    )
    return JSONResponse(to_builtins(counters))


@app.post("/segments/{segment_id}/refresh")
async def refresh_segment(
    request: Request,
    client: Client,
    segment_id: int,
    resource_id: int,
    database_id: int | None = None,
) -> JSONResponse:
    wait = client.segments.refresh_and_wait(
        segment_id=segment_id, resource_id=resource_id, database_id=database_id
    )
    return JSONResponse(to_builtins(await cancel_on_disconnect(request, wait)))


@app.post("/segments/refresh")
async def refresh_segments(
    request: Request, client: Client, refs: Annotated[list[dict[str, Any]], Body()]
) -> JSONResponse:
    segment_refs = from_builtins(list[SegmentRef], refs)

    async def refresh_all() -> list[dict[str, Any]]:
        outcomes = []
        async with client.segments.refresh_many(segment_refs, concurrency=20) as results:
            async for outcome in results:
                if outcome.error is not None:
                    failure = f"{type(outcome.error).__name__}: {outcome.error}"
                    outcomes.append({"ref": to_builtins(outcome.ref), "error": failure})
                else:
                    snapshots = to_builtins(outcome.result)
                    outcomes.append({"ref": to_builtins(outcome.ref), "snapshots": snapshots})
        return outcomes

    return JSONResponse(await cancel_on_disconnect(request, refresh_all()))


@app.get("/health")
async def health(client: Client) -> dict[str, list[str]]:
    return {"polling_tasks": sorted(client.polling_tasks())}
