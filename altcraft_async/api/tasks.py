"""``client.tasks``: the status of a task, and waiting on a task id stored elsewhere."""

from __future__ import annotations

from typing import Any, overload

from .._awaiter import DEFAULT, ProgressCallback, Task, UseDefault, parse_resume_token
from .._errors import InvalidRequestError
from .._kinds import COUNTERS, ResultT, TaskKind, WaitResultT
from .._poll import PollPolicy
from .._retry import RetryPolicy
from ..models import CountersSnapshot, TaskStatus
from ._base import Caller, check_task_id, read, wait_task
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
        caller, args = self._caller, {"task_id": task_id}
        call = read(
            caller,
            TASKS_STATUS,
            args,
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
        )
        status: TaskStatus = await call
        caller._starts.saw(task_id, status)
        return status

    @overload
    def task(self, task_id: str) -> Task: ...

    @overload
    def task(
        self, task_id: str, *, kind: TaskKind[ResultT, WaitResultT]
    ) -> Task[ResultT, WaitResultT]: ...

    def task(self, task_id: str, *, kind: TaskKind[Any, Any] | None = None) -> Task[Any, Any]:
        """A handle on an existing task id (e.g. one stored in a database). Its result is
        read as ``kind`` says (counters when omitted: the start call is not known)."""
        check_task_id(task_id)
        return self._caller._new_task(task_id, _checked_kind(kind))

    @overload
    def resume(self, resume_token: str) -> Task: ...

    @overload
    def resume(
        self, resume_token: str, *, kind: TaskKind[ResultT, WaitResultT]
    ) -> Task[ResultT, WaitResultT]: ...

    def resume(
        self, resume_token: str, *, kind: TaskKind[Any, Any] | None = None
    ) -> Task[Any, Any]:
        """The handle of a task from its :meth:`Task.resume_token`, in any process.

        The token names its task's kind; the SDK's own kinds are found by that name, and a
        kind of your own is given as ``kind`` (InvalidRequestError if the token names another).
        """
        data = parse_resume_token(resume_token)
        named = data.get("kind", "")
        if kind is None:
            kind = kind_named(named)
        elif named and _checked_kind(kind).name != named:
            raise InvalidRequestError(f"the resume token is of kind {named!r}, not {kind.name!r}")
        return self._caller._new_task(
            data["task_id"], kind, endpoint=data.get("endpoint", ""), created=data["created"]
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


def _checked_kind(kind: TaskKind[Any, Any] | None) -> TaskKind[Any, Any]:
    if kind is None:
        return COUNTERS
    if not isinstance(kind, TaskKind):
        raise InvalidRequestError(f"kind must be a TaskKind, got {type(kind).__name__}")
    return kind
