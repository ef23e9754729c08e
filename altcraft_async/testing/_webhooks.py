"""The feedback webhook of the task starts that take one (``resources/refresh_counters``,
``databases/refresh_counters``: the kinds with ``feedback`` in ``_endpoints.TASK_KINDS``).

Assumption (the real payload is undocumented): when a task with ``feedback: {type, url}``
reaches its terminal status, the fake POSTs to ``url`` a JSON object equal to the ``data`` of
``tasks/status`` at that moment plus ``"task_id"``. The ``type`` is recorded, not interpreted.

Delivery modes, to test receivers: ``once`` (normal), ``lost`` (never sent, but recorded) and
``twice`` (sent two times, as an at-least-once platform may). Failures to reach the receiver are
recorded, never raised. Deliveries run as asyncio tasks owned by the fake, with one
``aiohttp.ClientSession``; :meth:`WebhookSender.close` cancels and awaits them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

import aiohttp
from attrs import frozen

__all__ = ["WebhookDelivery", "WebhookRecord", "WebhookSender"]

WebhookDelivery = Literal["once", "lost", "twice"]
_TIMEOUT = aiohttp.ClientTimeout(total=10)


@frozen
class WebhookRecord:
    """One delivery attempt; ``status`` is the receiver's HTTP status, ``error`` why it failed."""

    task_id: str
    url: str
    copy: int
    at: float
    payload: dict[str, Any]
    status: int | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    def __init__(self, now: Callable[[], float], delivery: WebhookDelivery = "once") -> None:
        self.delivery: WebhookDelivery = delivery
        self.records: list[WebhookRecord] = []
        self._now = now
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=_TIMEOUT)

    def send(self, task_id: str, url: str, payload: dict[str, Any]) -> None:
        """Schedule the delivery (or record it as lost / undeliverable at once)."""
        if self.delivery == "lost" or self._session is None:
            error = "lost on purpose" if self.delivery == "lost" else "fake not running"
            self.records.append(WebhookRecord(task_id, url, 1, self._now(), payload, error=error))
            return
        for copy in range(1, 3 if self.delivery == "twice" else 2):
            task = asyncio.get_running_loop().create_task(
                self._post(self._session, task_id, url, payload, copy)
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def wait_idle(self) -> None:
        """Wait until every scheduled delivery has finished (successfully or not)."""
        while self._pending:
            pending = list(self._pending)
            await asyncio.gather(*pending)
            # done tasks leave _pending by a callback that may not have run yet: gathering
            # done tasks does not yield to the loop (3.12+), so drop them here or spin forever
            self._pending.difference_update(pending)

    async def close(self) -> None:
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(
        self,
        session: aiohttp.ClientSession,
        task_id: str,
        url: str,
        payload: dict[str, Any],
        copy: int,
    ) -> None:
        status = error = None
        try:
            async with session.post(url, json=payload) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.records.append(
            WebhookRecord(task_id, url, copy, self._now(), payload, status=status, error=error)
        )
