"""``client.segments``: counters of a segment on a resource, and their refresh."""

from __future__ import annotations

from collections.abc import Iterable

from .._awaiter import DEFAULT, ProgressCallback, Task, UseDefault
from .._fanout import FanOut
from .._poll import PollPolicy
from .._retry import RetryPolicy
from ..models import ChannelCounters, CountersSnapshot, SegmentRef
from ._base import Caller, refresh_and_wait, refresh_many, start_task
from ._specs import SEGMENT_COUNTERS, SEGMENTS_GET_COUNTERS

__all__ = ["SegmentsAPI"]


class SegmentsAPI:
    """Segment counters (``segments/get_counters``, ``segments/refresh_counters``)."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def get_counters(
        self,
        *,
        segment_id: int,
        resource_id: int,
        database_id: int | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[ChannelCounters]:
        """``POST segments/get_counters``: the last computed counters, per channel.

        ``database_id`` is needed for dynamic segments. Raises InvalidRequestError (bad ids,
        nothing sent), APIError subclasses, TransportError, HTTPStatusError, DecodeError.
        """
        result: list[ChannelCounters] = await self._caller.call(
            SEGMENTS_GET_COUNTERS,
            {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id},
            timeout=timeout,
            retry=retry,
        )
        return result

    async def refresh_counters(
        self,
        *,
        segment_id: int,
        resource_id: int,
        database_id: int | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Task:
        """``POST segments/refresh_counters``: start a recount; returns the task handle.

        Not retried after the request may have reached the server (a retry could start a
        second task) unless ``retry.retry_starts`` is set. Errors as :meth:`get_counters`.
        """
        args = {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id}
        return await start_task(self._caller, SEGMENT_COUNTERS, args, timeout=timeout, retry=retry)

    async def refresh_and_wait(
        self,
        *,
        segment_id: int,
        resource_id: int,
        database_id: int | None = None,
        timeout: float | UseDefault | None = DEFAULT,
        policy: PollPolicy | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[CountersSnapshot]:
        """Refresh and wait for the new counters (see :meth:`Task.wait` for the errors).

        ``timeout`` covers the whole call, the start request included; when it runs out
        during the start, that raises :class:`RequestTimeoutError` (``.sent`` tells whether a
        task may have been started).
        """
        args = {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id}
        return await refresh_and_wait(
            self._caller,
            SEGMENT_COUNTERS,
            args,
            timeout=timeout,
            policy=policy,
            on_progress=on_progress,
        )

    def refresh_many(
        self,
        refs: Iterable[SegmentRef],
        *,
        concurrency: int = 50,
        timeout: float | UseDefault | None = DEFAULT,
        policy: PollPolicy | None = None,
        fail_fast: bool = False,
    ) -> FanOut[SegmentRef]:
        """Refresh many segments; yields an :class:`Outcome` per ref in completion order.

        At most ``concurrency`` refreshes are in flight. One failure never stops the rest
        unless ``fail_fast``. Leaving the loop early (or ``aclose()``) cancels what is left.
        """
        return refresh_many(
            self._caller,
            SEGMENT_COUNTERS,
            refs,
            SegmentRef,
            concurrency=concurrency,
            timeout=timeout,
            policy=policy,
            fail_fast=fail_fast,
        )
