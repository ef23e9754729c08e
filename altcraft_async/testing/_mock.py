"""MockTransport: a client's requests answered by a function, without a socket.

    def handler(request: HTTPRequest) -> HTTPResponse:
        if request.endpoint == "segments.get_counters":
            return MockTransport.json_reply([])
        return MockTransport.json_reply(error=400, error_text="no such thing")

    async with AltcraftClient(url, token=..., transport=MockTransport(handler)) as client:
        ...

The handler is sync or async; raising one of the SDK's :class:`TransportError` simulates a
network failure (its ``sent`` says whether the request left). Where :class:`FakeAltcraft` is
the platform over real HTTP, this is the seam below the client, for tests of the send path
itself (retries, hooks, feedback to the rate limiter) that need no server.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._codec import CONTENT_TYPES, Format, encode
from .._errors import RequestTimeoutError
from .._transport import HTTPRequest, HTTPResponse

__all__ = ["Handler", "MockTransport"]

#: Answers one request: sync, or async.
Handler = Callable[[HTTPRequest], HTTPResponse | Awaitable[HTTPResponse]]


class MockTransport:
    """An :class:`AsyncTransport` that answers each request with ``handler(request)``.

    ``requests`` records every request sent, in order (their bodies hold the token: read
    them in a test, they never show in a repr). An async handler still running after the
    try's ``timeout`` ends in :class:`RequestTimeoutError` (``sent=True``), as over a network.
    """

    def __init__(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        self.handler = handler
        self.requests: list[HTTPRequest] = []
        self.closed: bool = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<MockTransport {state}, {len(self.requests)} requests>"

    async def send(self, request: HTTPRequest, *, timeout: float) -> HTTPResponse:
        self.requests.append(request)
        reply = self.handler(request)
        if inspect.isawaitable(reply):
            reply = await _within(reply, timeout, request.endpoint)
        if not isinstance(reply, HTTPResponse):
            raise TypeError(f"the handler returned {type(reply).__name__}, not an HTTPResponse")
        return reply

    async def aclose(self) -> None:
        self.closed = True

    def endpoints(self) -> list[str]:
        """The endpoint of each request, in order (``segments.get_counters``, ...)."""
        return [request.endpoint for request in self.requests]

    @staticmethod
    def json_reply(
        data: Any = None,
        *,
        error: int = 0,
        error_text: str = "",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPResponse:
        """An Altcraft envelope in JSON: ``{"data": ..., "error": ..., "error_text": ...}``."""
        return MockTransport.reply(
            data, error=error, error_text=error_text, status=status, headers=headers, fmt="json"
        )

    @staticmethod
    def reply(
        data: Any = None,
        *,
        error: int = 0,
        error_text: str = "",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        fmt: Format = "json",
    ) -> HTTPResponse:
        """An Altcraft envelope in ``fmt`` (``"json"`` or ``"xml"``), as the platform sends."""
        body = encode({"data": data, "error": error, "error_text": error_text}, fmt)
        return HTTPResponse(status, {"Content-Type": CONTENT_TYPES[fmt], **(headers or {})}, body)


async def _within(reply: Awaitable[HTTPResponse], timeout: float, endpoint: str) -> HTTPResponse:
    try:
        async with asyncio.timeout(timeout) as deadline:
            return await reply
    except TimeoutError:
        if not deadline.expired():  # the handler's own
            raise
    raise RequestTimeoutError(
        f"{endpoint}: no reply within {timeout:.3g}s", endpoint=endpoint, sent=True
    )
