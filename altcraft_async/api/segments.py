"""``client.segments``: counters of a segment on a resource, and their refresh."""

from __future__ import annotations

from collections.abc import Iterable

from .._awaiter import DEFAULT, ProgressCallback, Task, UseDefault, remaining
from .._errors import InvalidRequestError
from .._fanout import FanOut
from .._poll import PollPolicy
from .._retry import RetryPolicy
from ..models import ChannelCounters, CountersSnapshot, SegmentRef
from ._base import Caller, wait_deadline
from ._specs import SEGMENTS_GET_COUNTERS, SEGMENTS_REFRESH_COUNTERS

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
        return await self._start(segment_id, resource_id, database_id, timeout, retry, None)

    async def _start(
        self,
        segment_id: int,
        resource_id: int,
        database_id: int | None,
        timeout: float | None,
        retry: RetryPolicy | None,
        deadline: float | None,
    ) -> Task:
        ref = await self._caller.call(
            SEGMENTS_REFRESH_COUNTERS,
            {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id},
            timeout=timeout,
            retry=retry,
            deadline=deadline,
        )
        return self._caller.new_task(ref.task_id, SEGMENTS_REFRESH_COUNTERS.name, "segment")

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
        deadline = wait_deadline(self._caller, timeout, policy)
        task = await self._start(segment_id, resource_id, database_id, None, None, deadline)
        return await task.wait(timeout=remaining(deadline), policy=policy, on_progress=on_progress)

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

        async def run_one(ref: SegmentRef) -> list[CountersSnapshot]:
            if not isinstance(ref, SegmentRef):  # this ref's outcome is the error; the rest go on
                raise InvalidRequestError(
                    f"refresh_many takes SegmentRef items, got {type(ref).__name__}"
                )
            return await self.refresh_and_wait(
                segment_id=ref.segment_id,
                resource_id=ref.resource_id,
                database_id=ref.database_id,
                timeout=timeout,
                policy=policy,
            )

        return self._caller.fan_out(refs, run_one, concurrency=concurrency, fail_fast=fail_fast)
