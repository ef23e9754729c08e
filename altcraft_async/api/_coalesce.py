"""Coalesced task starts: in one client, a refresh of something already being refreshed joins
that refresh instead of starting another server-side task.

A start is keyed by its kind and its arguments (feedback excluded, see ``api._base``). The key
is *running* from the moment its start request is sent until this client learns the task
ended, that is:

- while the start is in flight, concurrent starters of the key await that same start;
- once it answered, callers get handles on the same task id (and single-flight polling then
  makes all their waits share one poll);
- the key is released when any status this client reads says the task ended (succeeded or
  failed), when the start fails, or when no handle on the task is left (a task nobody holds
  is never joined: its result could be arbitrarily old). A wait's :class:`TaskTimeoutError`
  releases nothing: the task may well be running still.

A start that failed fails every caller that joined it, each with a copy of the error (its
cause: the one error), since the leader's retries already spent what the same policy allows:
N joiners of a start that got no answer fail once, together, not one after another. Two
exceptions, where the reason is the leader's own: a leader that was cancelled (or failed with
anything not the SDK's) is replaced by one of the joiners, which leads a new start for all the
others; and a joiner whose retry policy is not the leader's and would retry the failure (a 429,
a start that provably never left) leads a new start too.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from .._errors import AltcraftError, RequestTimeoutError
from .._retry import RetryPolicy
from ..models import FAILURE_STATUSES, SUCCESS_STATUSES, TaskStatus

__all__ = ["StartCoalescer", "start_key"]

#: The statuses of a task that ended, as the decoder normalises them (``TaskStatus.done``).
_ENDED = SUCCESS_STATUSES | FAILURE_STATUSES

HandleT = TypeVar("HandleT")


class _Failed:
    """How a led start failed: the error and the retry policy it was sent under."""

    __slots__ = ("error", "retry")

    def __init__(self, error: AltcraftError, retry: RetryPolicy) -> None:
        self.error = error
        self.retry = retry

    def shared_with(self, retry: RetryPolicy) -> bool:
        """Whether a joiner sending under ``retry`` takes this failure as its own: yes,
        unless its policy is another one that would try again."""
        return retry == self.retry or not retry.should_retry(self.error, starts_task=True)


def start_key(kind_name: str, path: str, args: Mapping[str, Any]) -> Hashable | None:
    """The key two starts share when they would start the same task: the kind, the start
    call and its arguments (None values are absent on the wire, so absent here; the type
    name keeps ``True`` apart from ``1``). None when an argument is unhashable: such a start
    is not coalesced (its build refuses it anyway)."""
    items = tuple(
        sorted(
            (name, type(value).__name__, value) for name, value in args.items() if value is not None
        )
    )
    key = (kind_name, path, items)
    try:
        hash(key)
    except TypeError:
        return None
    return key


class _Entry:
    """One running key: its start (a future of the task id, or of the reason it failed) and
    how many handles on its task are alive."""

    __slots__ = ("handles", "started", "task_id")

    def __init__(self, started: asyncio.Future[str | _Failed | None]) -> None:
        self.started = started
        self.task_id: str | None = None
        self.handles = 0


class StartCoalescer(Generic[HandleT]):
    """The running starts of one client, by :func:`start_key`."""

    __slots__ = ("_by_task", "_entries")

    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}
        self._by_task: dict[str, Hashable] = {}

    def __repr__(self) -> str:
        return f"<StartCoalescer running={len(self._entries)}>"

    def running(self) -> int:
        """Keys running right now (started by this client, not seen ended)."""
        return len(self._entries)

    async def start_or_join(
        self,
        key: Hashable,
        start: Callable[[], Awaitable[HandleT]],
        join: Callable[[str], HandleT],
        task_id_of: Callable[[HandleT], str],
        *,
        retry: RetryPolicy,
        deadline: float | None,
        endpoint: str,
    ) -> HandleT:
        """A handle on the task of ``key``: ``start()``'s when nothing runs under the key,
        else ``join(task_id)`` of the running one (after its start, if still in flight).
        ``retry`` is the policy this caller's start would be sent under."""
        while True:
            entry = self._entries.get(key)
            if entry is None:
                return await self._lead(key, start, task_id_of, retry)
            if entry.task_id is None:
                outcome = await _within(entry.started, deadline, endpoint)
                if outcome is None:
                    continue  # the leader was cancelled: one of the joiners leads anew
                if isinstance(outcome, _Failed):
                    if not outcome.shared_with(retry):
                        continue  # a policy of its own would try again: lead, or join who does
                    raise _copy(outcome.error) from outcome.error
            assert entry.task_id is not None
            return self._hold(key, entry, join(entry.task_id))

    def clear(self) -> None:
        """Forget every running key (the client is closing: nothing is joined after it)."""
        self._entries.clear()
        self._by_task.clear()

    def saw(self, task_id: str, status: TaskStatus[Any]) -> None:
        """A status read of ``task_id`` (any: a poll, ``tasks.status``): one that says the task
        ended releases its start (``.done`` without its calls: decoded statuses are normal)."""
        if status.status in _ENDED:
            self.finished(task_id)

    def finished(self, task_id: str) -> None:
        """A status of ``task_id`` said it ended: later starts of its key start afresh."""
        key = self._by_task.pop(task_id, None)
        if key is not None:
            entry = self._entries.get(key)
            if entry is not None and entry.task_id == task_id:
                del self._entries[key]

    async def _lead(
        self,
        key: Hashable,
        start: Callable[[], Awaitable[HandleT]],
        task_id_of: Callable[[HandleT], str],
        retry: RetryPolicy,
    ) -> HandleT:
        started: asyncio.Future[str | _Failed | None]
        started = asyncio.get_running_loop().create_future()
        entry = self._entries[key] = _Entry(started)
        try:
            handle = await start()
        except BaseException as error:
            if self._entries.get(key) is entry:
                del self._entries[key]
            failed = _Failed(error, retry) if isinstance(error, AltcraftError) else None
            started.set_result(failed)
            raise
        entry.task_id = task_id = task_id_of(handle)
        self._by_task[task_id] = key
        started.set_result(task_id)
        return self._hold(key, entry, handle)

    def _hold(self, key: Hashable, entry: _Entry, handle: HandleT) -> HandleT:
        """Count ``handle`` as one on the entry's task until it is garbage."""
        entry.handles += 1
        finalizer = weakref.finalize(handle, self._let_go, key, entry)
        finalizer.atexit = False
        return handle

    def _let_go(self, key: Hashable, entry: _Entry) -> None:
        entry.handles -= 1
        if entry.handles == 0 and self._entries.get(key) is entry:
            del self._entries[key]
            if entry.task_id is not None and self._by_task.get(entry.task_id) == key:
                del self._by_task[entry.task_id]


def _copy(error: AltcraftError) -> AltcraftError:
    """A joiner's own copy of the leader's error (same type, message and fields): the
    traceback each raise grows, and a note a caller adds, stay its own."""
    clone = type(error).__new__(type(error), *error.args)
    clone.__dict__.update(error.__dict__)
    return clone


async def _within(
    started: asyncio.Future[str | _Failed | None], deadline: float | None, endpoint: str
) -> str | _Failed | None:
    """The outcome of a start this caller joined, awaited until its own ``deadline`` at most
    (its cancellation or deadline leaves the start alone: others may be waiting for it)."""
    if deadline is None:
        return await asyncio.shield(started)
    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
            return await asyncio.shield(started)
    except TimeoutError:
        raise RequestTimeoutError(
            f"{endpoint}: no time left waiting for the start this call joined",
            endpoint=endpoint,
            sent=True,  # the joined start may well have started the task
        ) from None
