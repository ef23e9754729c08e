"""``client.segments``: counters of a segment on a resource, and their refresh."""

from __future__ import annotations

from collections.abc import Iterable

from .._awaiter import DEFAULT, ProgressCallback, Task, UseDefault
from .._fanout import FanOut
from .._poll import PollPolicy
from .._retry import RetryPolicy
from ..models import ChannelCounters, CountersSnapshot, SegmentRef
from ._base import Caller, read, refresh_and_wait, refresh_many, start_task
from ._specs import SEGMENT_COUNTERS, SEGMENTS_GET_COUNTERS

__all__ = ["SegmentsAPI"]


class SegmentsAPI:
    """Segment counters (``segments/get_counters``, ``segments/refresh_counters``).

    Every method takes ``timeout`` (seconds for the whole call), ``request_timeout`` (per
    HTTP try) and ``retry`` (the :class:`RetryPolicy` of each of its requests).
    """

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def get_counters(
        self,
        *,
        segment_id: int,
        resource_id: int,
        database_id: int | None = None,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[ChannelCounters]:
        """``POST segments/get_counters``: the last computed counters, per channel.

        ``database_id`` is needed for dynamic segments. Raises InvalidRequestError (bad ids,
        nothing sent), APIError subclasses, TransportError, HTTPStatusError, DecodeError.
        """
        caller = self._caller
        args = {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id}
        call = read(
            caller,
            SEGMENTS_GET_COUNTERS,
            args,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
        )
        result: list[ChannelCounters] = await call
        return result

    async def refresh_counters(
        self,
        *,
        segment_id: int,
        resource_id: int,
        database_id: int | None = None,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        coalesce: bool | None = None,
    ) -> Task:
        """``POST segments/refresh_counters``: start a recount; returns the task handle.

        A recount of the same segment already running in this client is joined, not started
        again: the handle is then on that task (``coalesce=False`` starts a task of its own).
        Not retried after the request may have reached the server (a retry could start a
        second task) unless ``retry.retry_starts`` is set. Errors as :meth:`get_counters`.
        """
        args = {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id}
        return await start_task(
            self._caller,
            SEGMENT_COUNTERS,
            args,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            coalesce=coalesce,
        )

    async def refresh_and_wait(
        self,
        *,
        segment_id: int,
        resource_id: int,
        database_id: int | None = None,
        timeout: float | UseDefault | None = DEFAULT,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        policy: PollPolicy | None = None,
        on_progress: ProgressCallback | None = None,
        coalesce: bool | None = None,
    ) -> list[CountersSnapshot]:
        """Refresh (or join the running refresh, as :meth:`refresh_counters`) and wait for
        the new counters (see :meth:`Task.wait` for the errors).

        ``timeout`` covers the whole call, the start request included (default: the poll
        policy's); when it runs out during the start, that raises
        :class:`RequestTimeoutError` (``.sent`` tells whether a task may have been started).
        ``retry`` and ``request_timeout`` apply to the start and to every status poll.
        """
        args = {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id}
        return await refresh_and_wait(
            self._caller,
            SEGMENT_COUNTERS,
            args,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            policy=policy,
            on_progress=on_progress,
            coalesce=coalesce,
        )

    def refresh_many(
        self,
        refs: Iterable[SegmentRef],
        *,
        concurrency: int = 50,
        timeout: float | UseDefault | None = DEFAULT,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        policy: PollPolicy | None = None,
        fail_fast: bool = False,
        coalesce: bool | None = None,
    ) -> FanOut[SegmentRef]:
        """Refresh many segments; yields an :class:`Outcome` per ref in completion order.

        At most ``concurrency`` refreshes are in flight. One failure never stops the rest
        unless ``fail_fast``. Leaving the loop early (or ``aclose()``) cancels what is left.
        The other options are each ref's refresh's, as in :meth:`refresh_and_wait`
        (``timeout`` bounds each refresh; refs repeated in ``refs`` share one task).
        """
        return refresh_many(
            self._caller,
            SEGMENT_COUNTERS,
            refs,
            SegmentRef,
            concurrency=concurrency,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            policy=policy,
            fail_fast=fail_fast,
            coalesce=coalesce,
        )
