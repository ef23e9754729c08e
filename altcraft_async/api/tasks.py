"""``client.tasks``: the status of a task, and waiting on a task id stored elsewhere."""

from __future__ import annotations

from .._awaiter import DEFAULT, ProgressCallback, Task, UseDefault, parse_resume_token
from .._kinds import COUNTERS
from .._poll import PollPolicy
from .._retry import RetryPolicy
from ..models import CountersSnapshot, TaskStatus
from ._base import Caller, check_task_id, read_status, wait_task
from ._specs import TASKS_STATUS, kind_named

__all__ = ["TasksAPI"]


class TasksAPI:
    """Tasks (``tasks/status``) and the awaiter for ids kept across restarts."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def status(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> TaskStatus:
        """``POST tasks/status``: one status request (retried as a read).

        Raises InvalidRequestError (empty id), APIError subclasses, TransportError,
        HTTPStatusError, DecodeError.
        """
        return await read_status(
            self._caller,
            TASKS_STATUS,
            task_id,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
        )

    def task(self, task_id: str) -> Task:
        """A handle on an existing task id (e.g. one stored in a database)."""
        check_task_id(task_id)
        return self._caller.new_task(task_id, COUNTERS)  # its start call is unknown

    def resume(self, resume_token: str) -> Task:
        """The handle of a task from its :meth:`Task.resume_token`, in any process."""
        data = parse_resume_token(resume_token)
        return self._caller.new_task(
            data["task_id"],
            kind_named(data.get("kind", "")),
            endpoint=data.get("endpoint", ""),
            created=data["created"],
        )

    async def wait_counters(
        self,
        task_id: str,
        *,
        timeout: float | UseDefault | None = DEFAULT,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        policy: PollPolicy | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[CountersSnapshot]:
        """Wait for a refresh task by id and return its counters (see :meth:`Task.wait`);
        ``retry`` and ``request_timeout`` apply to each status poll."""
        return await wait_task(
            self._caller,
            task_id,
            COUNTERS,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            policy=policy,
            on_progress=on_progress,
        )
