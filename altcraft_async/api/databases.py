"""``client.databases``: counters of a whole database on a resource, and their refresh."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._awaiter import DEFAULT, ProgressCallback, Task, UseDefault
from .._fanout import FanOut
from .._poll import PollPolicy
from .._retry import RetryPolicy
from ..models import ChannelCounters, CountersSnapshot, DatabaseRef, Feedback
from ._base import Caller, read, refresh_and_wait, refresh_many, start_task
from ._specs import DATABASE_COUNTERS, DATABASES_GET_COUNTERS

if TYPE_CHECKING:
    from .._feedback import FeedbackReceiver

__all__ = ["DatabasesAPI"]


class DatabasesAPI:
    """Database counters (``databases/get_counters``, ``databases/refresh_counters``);
    options as ``client.segments``'.

    The Altcraft pages of these two calls are not among the ones this SDK was built from:
    their wire shape is that of their siblings (``segments/get_counters`` and
    ``resources/refresh_counters``), read as tolerantly as everything else.
    """

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def get_counters(
        self,
        *,
        database_id: int,
        resource_id: int,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[ChannelCounters]:
        """``POST databases/get_counters``: the last computed counters of every profile of
        the database on the resource, per channel. Errors as ``segments.get_counters``."""
        result: list[ChannelCounters] = await read(
            self._caller,
            DATABASES_GET_COUNTERS,
            {"database_id": database_id, "resource_id": resource_id},
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
        )
        return result

    async def refresh_counters(
        self,
        *,
        database_id: int,
        resource_id: int,
        feedback: Feedback | FeedbackReceiver | None = None,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        coalesce: bool | None = None,
    ) -> Task:
        """``POST databases/refresh_counters``: start a recount; returns the task handle
        (``feedback``, coalescing and retries as ``resources.refresh_counters``)."""
        args = {"database_id": database_id, "resource_id": resource_id}
        return await start_task(
            self._caller,
            DATABASE_COUNTERS,
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
        database_id: int,
        resource_id: int,
        feedback: Feedback | FeedbackReceiver | None = None,
        timeout: float | UseDefault | None = DEFAULT,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        policy: PollPolicy | None = None,
        on_progress: ProgressCallback | None = None,
        coalesce: bool | None = None,
    ) -> list[CountersSnapshot]:
        """Refresh and wait for the new counters (as ``resources.refresh_and_wait``)."""
        args = {"database_id": database_id, "resource_id": resource_id}
        return await refresh_and_wait(
            self._caller,
            DATABASE_COUNTERS,
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
        refs: Iterable[DatabaseRef],
        *,
        concurrency: int = 50,
        timeout: float | UseDefault | None = DEFAULT,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        policy: PollPolicy | None = None,
        fail_fast: bool = False,
        coalesce: bool | None = None,
    ) -> FanOut[DatabaseRef]:
        """Refresh many databases; outcomes in completion order (as ``segments.refresh_many``)."""
        return refresh_many(
            self._caller,
            DATABASE_COUNTERS,
            refs,
            DatabaseRef,
            concurrency=concurrency,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            policy=policy,
            fail_fast=fail_fast,
            coalesce=coalesce,
        )
