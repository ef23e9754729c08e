"""What every namespace needs from the client (a protocol, so imports keep flowing downward),
and the start / wait / fan-out steps every refresh shares: a namespace method is a signature
and one call of these."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from .._awaiter import ProgressCallback, Task, UseDefault, remaining, wait_limit
from .._errors import InvalidRequestError
from .._fanout import FanOut
from .._kinds import ResultT, TaskKind, WaitResultT
from .._poll import PollPolicy
from .._retry import RetryPolicy
from .._sansio import EndpointSpec
from ..models import Feedback, TaskRef

if TYPE_CHECKING:
    from .._feedback import FeedbackReceiver, PushWaiter

__all__ = ["Caller", "refresh_and_wait", "refresh_many", "start_task", "wait_deadline"]

RefT = TypeVar("RefT")
T = TypeVar("T")


class Caller(Protocol):
    default_poll_policy: PollPolicy

    async def call(
        self,
        spec: EndpointSpec,
        args: Mapping[str, Any],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> Any: ...

    def new_task(
        self,
        task_id: str,
        kind: TaskKind[ResultT, WaitResultT],
        *,
        endpoint: str | None = None,
        created: datetime | None = None,
        push: PushWaiter | None = None,
    ) -> Task[ResultT, WaitResultT]: ...

    def fan_out(
        self,
        refs: Iterable[RefT],
        run_one: Callable[[RefT], Awaitable[T]],
        *,
        concurrency: int,
        fail_fast: bool,
    ) -> FanOut[RefT, T]: ...


def wait_deadline(
    caller: Caller, timeout: float | UseDefault | None, policy: PollPolicy | None
) -> float | None:
    """The ``time.monotonic()`` deadline of a refresh-and-wait, checked before anything is
    sent: it covers the start request too, not only the polls after it."""
    limit = wait_limit(timeout, policy or caller.default_poll_policy)
    return None if limit is None else time.monotonic() + limit


async def start_task(
    caller: Caller,
    kind: TaskKind[ResultT, WaitResultT],
    args: Mapping[str, Any],
    *,
    feedback: Feedback | FeedbackReceiver | None = None,
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
    deadline: float | None = None,
) -> Task[ResultT, WaitResultT]:
    """Call ``kind.start`` and return the handle of the task it started.

    With a :class:`FeedbackReceiver` as ``feedback``, a callback URL of its own is reserved
    for this task (and given back if the start fails), so the task's wait races the push
    against polling.
    """
    spec = kind.start
    if spec is None:
        raise InvalidRequestError(f"{kind!r} names no start call")
    push = None
    if feedback is not None and not isinstance(feedback, Feedback):
        from .._feedback import reserve_push  # loads aiohttp.web: only when push is used

        push = reserve_push(feedback, kind)
        feedback = push.feedback
    if feedback is not None:
        args = {**args, "feedback": feedback}
    try:
        ref: TaskRef = await caller.call(
            spec, args, timeout=timeout, retry=retry, deadline=deadline
        )
    except BaseException:
        if push is not None:
            push.release()
        raise
    if push is not None:
        push.task_id = ref.task_id
    return caller.new_task(ref.task_id, kind, push=push)


async def refresh_and_wait(
    caller: Caller,
    kind: TaskKind[ResultT, WaitResultT],
    args: Mapping[str, Any],
    *,
    feedback: Feedback | FeedbackReceiver | None = None,
    timeout: float | UseDefault | None,
    policy: PollPolicy | None,
    on_progress: ProgressCallback | None = None,
) -> WaitResultT:
    """Start a task of ``kind`` and wait for its result; ``timeout`` covers both."""
    deadline = wait_deadline(caller, timeout, policy)
    task = await start_task(caller, kind, args, feedback=feedback, deadline=deadline)
    return await task.wait(timeout=remaining(deadline), policy=policy, on_progress=on_progress)


def refresh_many(
    caller: Caller,
    kind: TaskKind[ResultT, WaitResultT],
    refs: Iterable[RefT],
    ref_type: type[RefT],
    *,
    concurrency: int,
    timeout: float | UseDefault | None,
    policy: PollPolicy | None,
    fail_fast: bool,
) -> FanOut[RefT, WaitResultT]:
    """:func:`refresh_and_wait` of every ref (an attrs value whose fields are the start
    call's arguments), ``concurrency`` at a time; outcomes in completion order."""

    async def run_one(ref: RefT) -> WaitResultT:
        if not isinstance(ref, ref_type):  # this ref's outcome is the error; the rest go on
            raise InvalidRequestError(
                f"refresh_many takes {ref_type.__name__} items, got {type(ref).__name__}"
            )
        return await refresh_and_wait(caller, kind, _fields_of(ref), timeout=timeout, policy=policy)

    return caller.fan_out(refs, run_one, concurrency=concurrency, fail_fast=fail_fast)


def _fields_of(ref: Any) -> dict[str, Any]:
    """A ref's fields by name: they are named as the start call's arguments."""
    return attrs.asdict(ref, recurse=False)
