"""What every namespace needs from the client (a protocol, so imports keep flowing downward),
and the read / start / wait / fan-out steps every method shares: a namespace method is a
signature and one call of these.

The per-call options mean the same in every method (``README.md``, "Timeouts and retries"):

- ``timeout``: seconds for the *whole call*: every try, every pause between tries, the start
  and the polls of a wait. None: no limit but the retry policy's. For waits its default,
  ``DEFAULT``, is the poll policy's ``timeout``.
- ``request_timeout``: seconds for *each HTTP try* (default: the client's ``timeout=``).
- ``retry``: the :class:`RetryPolicy` of every HTTP request the call makes (a refresh's start
  and its status polls; default: the client's ``retry=``).
- ``coalesce`` (task starts): join a refresh of the same thing already running in this client
  (None: the client's ``coalesce=``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from .._awaiter import ProgressCallback, Task, UseDefault, remaining, wait_limit
from .._errors import InvalidRequestError, TaskFailedError
from .._fanout import FanOut
from .._kinds import ResultT, TaskKind, WaitResultT
from .._poll import PollPolicy
from .._retry import RetryPolicy
from .._sansio import EndpointSpec
from ..models import Feedback, TaskRef
from ..models._checks import check_number
from ._coalesce import StartCoalescer, start_key

if TYPE_CHECKING:
    from .._feedback import FeedbackReceiver, PushWaiter

__all__ = [
    "Caller",
    "call_deadline",
    "check_task_id",
    "read",
    "refresh_and_wait",
    "refresh_many",
    "start_task",
    "wait_deadline",
    "wait_for",
    "wait_task",
]

RefT = TypeVar("RefT")
T = TypeVar("T")


class Caller(Protocol):
    default_poll_policy: PollPolicy
    #: Whether task starts join a running refresh of the same thing by default.
    coalesce: bool
    _retry: RetryPolicy
    _starts: StartCoalescer[Task[Any, Any]]

    def _call(
        self,
        spec: EndpointSpec,
        args: Mapping[str, Any],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> Awaitable[Any]: ...

    def _new_task(
        self,
        task_id: str,
        kind: TaskKind[ResultT, WaitResultT],
        *,
        endpoint: str | None = None,
        created: datetime | None = None,
        push: PushWaiter | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float | None = None,
    ) -> Task[ResultT, WaitResultT]: ...

    def _fan_out(
        self,
        refs: Iterable[RefT],
        run_one: Callable[[RefT], Awaitable[T]],
        *,
        concurrency: int,
        fail_fast: bool,
    ) -> FanOut[RefT, T]: ...


def call_deadline(timeout: float | None) -> float | None:
    """The ``time.monotonic()`` deadline of a call whose whole ``timeout`` starts now."""
    check_number("timeout", timeout, above=0.0, optional=True)
    return None if timeout is None else time.monotonic() + timeout


def wait_deadline(
    caller: Caller, timeout: float | UseDefault | None, policy: PollPolicy | None
) -> float | None:
    """The ``time.monotonic()`` deadline of a refresh-and-wait, checked before anything is
    sent: it covers the start request too, not only the polls after it."""
    limit = wait_limit(timeout, policy or caller.default_poll_policy)
    return None if limit is None else time.monotonic() + limit


def _check_options(request_timeout: object, retry: object, policy: object = None) -> None:
    """The per-call options every method takes, checked before anything is sent."""
    check_number("request_timeout", request_timeout, above=0.0, optional=True)
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise InvalidRequestError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
    if policy is not None and not isinstance(policy, PollPolicy):
        raise InvalidRequestError(f"policy must be a PollPolicy, got {type(policy).__name__}")


def read(
    caller: Caller,
    spec: EndpointSpec,
    args: Mapping[str, Any],
    *,
    timeout: float | None,
    request_timeout: float | None,
    retry: RetryPolicy | None,
) -> Awaitable[Any]:
    """One read call under the per-call options, to be awaited (a plain function: a bad
    option raises here, and the call path has one coroutine layer less)."""
    if timeout is None and request_timeout is None and retry is None:
        return caller._call(spec, args)  # the usual call: nothing to check or work out
    if request_timeout is not None or retry is not None:
        _check_options(request_timeout, retry)
    deadline = None if timeout is None else call_deadline(timeout)
    return caller._call(spec, args, timeout=request_timeout, retry=retry, deadline=deadline)


async def start_task(
    caller: Caller,
    kind: TaskKind[ResultT, WaitResultT],
    args: Mapping[str, Any],
    *,
    feedback: Feedback | FeedbackReceiver | None = None,
    timeout: float | None = None,
    request_timeout: float | None = None,
    retry: RetryPolicy | None = None,
    coalesce: bool | None = None,
    deadline: float | None = None,
) -> Task[ResultT, WaitResultT]:
    """Call ``kind.start`` and return the handle of the task it started, or of the running
    task of the same kind and arguments it joined (see ``api._coalesce``).

    ``deadline`` (a refresh-and-wait's, which covers its start) replaces ``timeout``.

    Feedback and coalescing: a start with a plain :class:`Feedback` (a webhook of the
    caller's own) always starts its own task, since only a start of its own makes the
    platform call that webhook. A start with a :class:`FeedbackReceiver` may join a running
    task: its handle then polls, with no push to expect. When it starts the task itself, a
    callback URL of its own is reserved for it (and given back if the start fails), so its
    wait races the push against polling.
    """
    spec = kind.start
    if spec is None:
        raise InvalidRequestError(f"{kind!r} names no start call")
    _check_options(request_timeout, retry)
    if deadline is None:
        deadline = call_deadline(timeout)
    coalesce = _coalescing(caller, coalesce)

    async def start() -> Task[ResultT, WaitResultT]:
        return await _start(
            caller, kind, spec, args, feedback, request_timeout, retry, deadline=deadline
        )

    key = start_key(kind.name, spec.path, args) if coalesce else None
    if key is None or isinstance(feedback, Feedback):
        return await start()

    def join(task_id: str) -> Task[Any, Any]:
        return caller._new_task(task_id, kind, retry=retry, request_timeout=request_timeout)

    task: Task[ResultT, WaitResultT] = await caller._starts.start_or_join(
        key,
        start,
        join,
        _task_id_of,
        retry=retry or caller._retry,
        deadline=deadline,
        endpoint=spec.name,
    )
    return task


def _task_id_of(task: Task[Any, Any]) -> str:
    return task.task_id


def _coalescing(caller: Caller, coalesce: object) -> bool:
    if coalesce is None:
        return caller.coalesce
    if not isinstance(coalesce, bool):
        raise InvalidRequestError(f"coalesce must be a bool or None, got {coalesce!r}")
    return coalesce


async def _start(
    caller: Caller,
    kind: TaskKind[ResultT, WaitResultT],
    spec: EndpointSpec,
    args: Mapping[str, Any],
    feedback: Feedback | FeedbackReceiver | None,
    request_timeout: float | None,
    retry: RetryPolicy | None,
    *,
    deadline: float | None,
) -> Task[ResultT, WaitResultT]:
    """The start request itself, with a push reservation when the feedback is a receiver."""
    push = None
    if feedback is not None and not isinstance(feedback, Feedback):
        from .._feedback import reserve_push  # loads aiohttp.web: only when push is used

        push = reserve_push(feedback, kind)
        feedback = push.feedback
    if feedback is not None:
        args = {**args, "feedback": feedback}
    try:
        ref: TaskRef = await caller._call(
            spec, args, timeout=request_timeout, retry=retry, deadline=deadline
        )
    except BaseException:
        if push is not None:
            push.release()
        raise
    if push is not None:
        push.task_id = ref.task_id
    return caller._new_task(
        ref.task_id, kind, push=push, retry=retry, request_timeout=request_timeout
    )


async def wait_for(
    caller: Caller,
    task: Task[ResultT, WaitResultT],
    *,
    deadline: float | None,
    policy: PollPolicy | None,
    on_progress: ProgressCallback | None,
) -> WaitResultT:
    """Wait for ``task`` until ``deadline``; its end (a result or a failure) releases its
    start for later refreshes. A timeout releases nothing: the task may still be running."""
    try:
        result = await task.wait(
            timeout=remaining(deadline), policy=policy, on_progress=on_progress
        )
    except TaskFailedError:
        caller._starts.finished(task.task_id)
        raise
    caller._starts.finished(task.task_id)  # a pushed result is seen by no poll
    return result


def check_task_id(task_id: object) -> None:
    if not isinstance(task_id, str) or not task_id.strip():
        raise InvalidRequestError(f"task_id must be a non-empty str, got {task_id!r}")


async def wait_task(
    caller: Caller,
    task_id: str,
    kind: TaskKind[ResultT, WaitResultT],
    *,
    timeout: float | UseDefault | None,
    request_timeout: float | None,
    retry: RetryPolicy | None,
    policy: PollPolicy | None,
    on_progress: ProgressCallback | None,
) -> WaitResultT:
    """Wait for the task ``task_id`` (of ``kind``) under the per-call options."""
    check_task_id(task_id)
    _check_options(request_timeout, retry, policy)
    deadline = wait_deadline(caller, timeout, policy)
    task = caller._new_task(task_id, kind, retry=retry, request_timeout=request_timeout)
    return await wait_for(caller, task, deadline=deadline, policy=policy, on_progress=on_progress)


async def refresh_and_wait(
    caller: Caller,
    kind: TaskKind[ResultT, WaitResultT],
    args: Mapping[str, Any],
    *,
    feedback: Feedback | FeedbackReceiver | None = None,
    timeout: float | UseDefault | None,
    request_timeout: float | None = None,
    retry: RetryPolicy | None = None,
    policy: PollPolicy | None,
    on_progress: ProgressCallback | None = None,
    coalesce: bool | None = None,
) -> WaitResultT:
    """Start a task of ``kind`` (or join the running one) and wait for its result;
    ``timeout`` covers both, ``retry`` and ``request_timeout`` every request of both."""
    _check_options(request_timeout, retry, policy)
    deadline = wait_deadline(caller, timeout, policy)
    task = await start_task(
        caller,
        kind,
        args,
        feedback=feedback,
        request_timeout=request_timeout,
        retry=retry,
        coalesce=coalesce,
        deadline=deadline,
    )
    return await wait_for(caller, task, deadline=deadline, policy=policy, on_progress=on_progress)


def refresh_many(
    caller: Caller,
    kind: TaskKind[ResultT, WaitResultT],
    refs: Iterable[RefT],
    ref_type: type[RefT],
    *,
    concurrency: int,
    timeout: float | UseDefault | None,
    request_timeout: float | None = None,
    retry: RetryPolicy | None = None,
    policy: PollPolicy | None,
    fail_fast: bool,
    coalesce: bool | None = None,
) -> FanOut[RefT, WaitResultT]:
    """:func:`refresh_and_wait` of every ref (an attrs value whose fields are the start
    call's arguments), ``concurrency`` at a time; outcomes in completion order. The options
    are each refresh's (``timeout`` bounds each ref's refresh, as one refresh_and_wait)."""
    _check_options(request_timeout, retry, policy)
    wait_limit(timeout, policy or caller.default_poll_policy)  # a bad timeout fails now
    _coalescing(caller, coalesce)

    async def run_one(ref: RefT) -> WaitResultT:
        if not isinstance(ref, ref_type):  # this ref's outcome is the error; the rest go on
            raise InvalidRequestError(
                f"refresh_many takes {ref_type.__name__} items, got {type(ref).__name__}"
            )
        return await refresh_and_wait(
            caller,
            kind,
            _fields_of(ref),
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
            policy=policy,
            coalesce=coalesce,
        )

    return caller._fan_out(refs, run_one, concurrency=concurrency, fail_fast=fail_fast)


def _fields_of(ref: Any) -> dict[str, Any]:
    """A ref's fields by name: they are named as the start call's arguments."""
    return attrs.asdict(ref, recurse=False)
