"""``client.resources``: recount a resource's subscription statistics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._awaiter import DEFAULT, ProgressCallback, Task, UseDefault
from .._fanout import FanOut
from .._poll import PollPolicy
from .._retry import RetryPolicy
from ..models import CountersSnapshot, Feedback, ResourceRef
from ._base import Caller, refresh_and_wait, refresh_many, start_task
from ._specs import RESOURCE_COUNTERS

if TYPE_CHECKING:
    from .._feedback import FeedbackReceiver

__all__ = ["ResourcesAPI"]


class ResourcesAPI:
    """Resource counters (``resources/refresh_counters``); options as ``client.segments``'."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def refresh_counters(
        self,
        *,
        resource_id: int,
        database_id: int,
        feedback: Feedback | FeedbackReceiver | None = None,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        coalesce: bool | None = None,
    ) -> Task:
        """``POST resources/refresh_counters``: start a recount; returns the task handle.

        With ``feedback`` the platform also POSTs the statistics to ``feedback.url`` when done;
        with a :class:`FeedbackReceiver` the returned task's ``wait`` races that push against
        polling. A recount of the same pair already running in this client is joined (see
        ``segments.refresh_counters``), except with a plain :class:`Feedback`: the platform
        calls that webhook only for a task started with it. A start with a receiver that
        joins a running task gets no push: its handle polls.
        Not retried after the request may have reached the server unless
        ``retry.retry_starts`` is set. Raises InvalidRequestError (nothing sent), APIError
        subclasses, TransportError, HTTPStatusError, DecodeError.
        """
        args = {"resource_id": resource_id, "database_id": database_id}
        return await start_task(
            self._caller,
            RESOURCE_COUNTERS,
            args,
            feedback=feedback,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            coalesce=coalesce,
        )

    async def refresh_and_wait(
        self,
        *,
        resource_id: int,
        database_id: int,
        feedback: Feedback | FeedbackReceiver | None = None,
        timeout: float | UseDefault | None = DEFAULT,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        policy: PollPolicy | None = None,
        on_progress: ProgressCallback | None = None,
        coalesce: bool | None = None,
    ) -> list[CountersSnapshot]:
        """Refresh and wait for the new counters (see :meth:`Task.wait` for the errors).

        With ``feedback=FeedbackReceiver(...)`` the webhook and the poller race: whichever
        brings the final result first wins. ``timeout`` covers the whole call, the start
        request included (see ``segments.refresh_and_wait``).
        """
        args = {"resource_id": resource_id, "database_id": database_id}
        return await refresh_and_wait(
            self._caller,
            RESOURCE_COUNTERS,
            args,
            feedback=feedback,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            policy=policy,
            on_progress=on_progress,
            coalesce=coalesce,
        )

    def refresh_many(
        self,
        refs: Iterable[ResourceRef],
        *,
        concurrency: int = 50,
        timeout: float | UseDefault | None = DEFAULT,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        policy: PollPolicy | None = None,
        fail_fast: bool = False,
        coalesce: bool | None = None,
    ) -> FanOut[ResourceRef]:
        """Refresh many resources; outcomes in completion order (as ``segments.refresh_many``)."""
        return refresh_many(
            self._caller,
            RESOURCE_COUNTERS,
            refs,
            ResourceRef,
            concurrency=concurrency,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            policy=policy,
            fail_fast=fail_fast,
            coalesce=coalesce,
        )
