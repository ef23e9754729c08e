"""``client.resources``: recount a resource's subscription statistics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._awaiter import DEFAULT, ProgressCallback, Task, UseDefault, remaining
from .._errors import InvalidRequestError
from .._fanout import FanOut
from .._poll import PollPolicy
from .._retry import RetryPolicy
from ..models import CountersSnapshot, Feedback, ResourceRef
from ._base import Caller, wait_deadline
from ._specs import RESOURCES_REFRESH_COUNTERS

if TYPE_CHECKING:
    from .._feedback import FeedbackReceiver

__all__ = ["ResourcesAPI"]


class ResourcesAPI:
    """Resource counters (``resources/refresh_counters``)."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def refresh_counters(
        self,
        *,
        resource_id: int,
        database_id: int,
        feedback: Feedback | FeedbackReceiver | None = None,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> Task:
        """``POST resources/refresh_counters``: start a recount; returns the task handle.

        With ``feedback`` the platform also POSTs the statistics to ``feedback.url`` when done;
        with a :class:`FeedbackReceiver` the returned task's ``wait`` races that push against
        polling.
        Not retried after the request may have reached the server unless
        ``retry.retry_starts`` is set. Raises InvalidRequestError (nothing sent), APIError
        subclasses, TransportError, HTTPStatusError, DecodeError.
        """
        return await self._start(resource_id, database_id, feedback, timeout, retry, None)

    async def _start(
        self,
        resource_id: int,
        database_id: int,
        feedback: Feedback | FeedbackReceiver | None,
        timeout: float | None,
        retry: RetryPolicy | None,
        deadline: float | None,
    ) -> Task:
        push = None
        if feedback is not None and not isinstance(feedback, Feedback):
            from .._feedback import FeedbackReceiver  # loads aiohttp.web: only when used

            if not isinstance(feedback, FeedbackReceiver):
                raise InvalidRequestError(
                    f"feedback must be a Feedback or a FeedbackReceiver, "
                    f"got {type(feedback).__name__}"
                )
            push = feedback.reserve()  # one callback URL per refresh
            feedback = push.feedback
        try:
            ref = await self._caller.call(
                RESOURCES_REFRESH_COUNTERS,
                {"resource_id": resource_id, "database_id": database_id, "feedback": feedback},
                timeout=timeout,
                retry=retry,
                deadline=deadline,
            )
        except BaseException:
            if push is not None:
                push.release()
            raise
        if push is not None:
            push.task_id = ref.task_id
        return self._caller.new_task(
            ref.task_id, RESOURCES_REFRESH_COUNTERS.name, "resource", push=push
        )

    async def refresh_and_wait(
        self,
        *,
        resource_id: int,
        database_id: int,
        feedback: Feedback | FeedbackReceiver | None = None,
        timeout: float | UseDefault | None = DEFAULT,
        policy: PollPolicy | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[CountersSnapshot]:
        """Refresh and wait for the new counters (see :meth:`Task.wait` for the errors).

        With ``feedback=FeedbackReceiver(...)`` the webhook and the poller race: whichever
        brings the final result first wins. ``timeout`` covers the whole call, the start
        request included (see ``segments.refresh_and_wait``).
        """
        deadline = wait_deadline(self._caller, timeout, policy)
        task = await self._start(resource_id, database_id, feedback, None, None, deadline)
        return await task.wait(timeout=remaining(deadline), policy=policy, on_progress=on_progress)

    def refresh_many(
        self,
        refs: Iterable[ResourceRef],
        *,
        concurrency: int = 50,
        timeout: float | UseDefault | None = DEFAULT,
        policy: PollPolicy | None = None,
        fail_fast: bool = False,
    ) -> FanOut[ResourceRef]:
        """Refresh many resources; outcomes in completion order (as ``segments.refresh_many``)."""

        async def run_one(ref: ResourceRef) -> list[CountersSnapshot]:
            if not isinstance(ref, ResourceRef):  # this ref's outcome is the error; the rest go on
                raise InvalidRequestError(
                    f"refresh_many takes ResourceRef items, got {type(ref).__name__}"
                )
            return await self.refresh_and_wait(
                resource_id=ref.resource_id,
                database_id=ref.database_id,
                timeout=timeout,
                policy=policy,
            )

        return self._caller.fan_out(refs, run_one, concurrency=concurrency, fail_fast=fail_fast)
