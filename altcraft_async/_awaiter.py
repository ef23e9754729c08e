"""The task awaiter: poll ``tasks/status`` until a refresh is done, shared by every waiter.

A :class:`Task` handle is what ``refresh_counters`` returns. Waiting is *single-flight*: all
waiters on one task id in one client share a :class:`SharedPoll` and only one of them (the
leader) sleeps and polls at a time; the others wait for its news. There is no background
task: when the leader is cancelled or times out it hands over, the next waiter takes the lead
and the schedule carries on from the shared observations. When the last waiter leaves, the
shared state is dropped, so nothing keeps polling for nobody.

A parked wait is the unit users multiply by thousands, so its path uses asyncio's own
``timeout``, ``sleep`` and ``Event`` (the SDK runs on asyncio, as aiohttp does): anyio's
cancel scopes cost about 0.6 KB more per wait and still cancel it from outside as usual.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import math
import random
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol

import anyio

from ._errors import (
    AltcraftError,
    InvalidRequestError,
    TaskFailedError,
    TaskTimeoutError,
)
from ._kinds import COUNTERS, ResultT, TaskKind, WaitResultT
from ._poll import Backoff, Observation, PollPolicy
from ._retry import RetryPolicy
from .models import TaskStatus

if TYPE_CHECKING:  # the receiver imports aiohttp.web: only load it when push is used
    import anyio.abc

    from ._feedback import PushWaiter

__all__ = [
    "DEFAULT",
    "ProgressCallback",
    "SharedPoll",
    "Task",
    "TaskSource",
    "UseDefault",
    "parse_resume_token",
    "remaining",
    "wait_limit",
]

RESUME_TOKEN_VERSION = 1
#: A resume token is ~200 characters; anything far longer is not one (and is not parsed).
_MAX_RESUME_TOKEN = 4096
#: A follower polls on its own schedule only when it is due this much before the leader.
_SLACK = 0.05
#: The last look before a deadline lands at most this many seconds, or this share of the
#: whole wait, before it (whichever is less).
_LAST_LOOK = 1.0
_LAST_LOOK_SHARE = 0.1
#: The least time a wait is given, so that even one begun at its deadline takes a last look.
_SLIVER = 0.001
#: Jitter source shared by all tasks (a Random per task would cost ~3 KB each).
_JITTER = random.Random()
#: Which poll errors are transient: the same rule as for retrying any read.
_POLL_RETRY = RetryPolicy()

ProgressCallback = Callable[[TaskStatus[Any]], Awaitable[None] | None]


class UseDefault(enum.Enum):
    """The type of :data:`DEFAULT`: "use the poll policy's timeout", told apart from
    ``timeout=None`` (no limit) in signatures that type-check."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the policy's timeout": the default of every ``timeout`` of a wait.
DEFAULT: Final = UseDefault.DEFAULT


class TaskSource(Protocol):
    """What the awaiter needs from a client: one status request and the shared-poll registry."""

    default_poll_policy: PollPolicy

    async def fetch_status(
        self, task_id: str, kind: TaskKind[ResultT, Any]
    ) -> TaskStatus[ResultT]: ...

    def join_poll(self, task_id: str, created: float, kind: TaskKind[Any, Any]) -> SharedPoll: ...

    def leave_poll(self, shared: SharedPoll) -> None: ...


class SharedPoll:
    """Poll state of one task id, shared by its waiters in one client."""

    def __init__(self, task_id: str, created: float, kind: TaskKind[Any, Any] = COUNTERS) -> None:
        self.task_id = task_id
        self.kind = kind  # how its statuses are decoded (shared by waiters of one result type)
        self.created = created  # time.monotonic() when the task was created
        self.observations: list[Observation] = []
        self.latest: TaskStatus[Any] | None = None
        self.version = 0
        self.error: AltcraftError | None = None
        self.last_error: AltcraftError | None = None  # of the last poll, if it failed
        self.failures = 0
        self.last_poll_at = created
        self.leading = False
        self.leader_poll_at = math.inf  # when the leader's next poll is due
        self.polling_sooner = False  # a follower with a faster policy polls for everyone
        self.waiters = 0
        self._changed: asyncio.Event | None = None  # made when somebody waits: saves memory
        self._sleep: asyncio.Future[None] | None = None  # the leader's wait for its next poll

    def notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def changed(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    async def sleep(self, delay: float) -> None:
        """``asyncio.sleep(delay)`` that :meth:`close` can cut short (it costs no more)."""
        loop = asyncio.get_running_loop()
        self._sleep = future = loop.create_future()
        timer = loop.call_later(delay, _wake, future)
        try:
            await future
        finally:
            timer.cancel()
            self._sleep = None

    def close(self, error: AltcraftError) -> None:
        """End every wait on this task with ``error`` now (the client is being closed)."""
        self.error = error
        if self._sleep is not None:
            _wake(self._sleep)
        self.notify()

    def next_poll_at(self, policy: PollPolicy, rand: float, last_look: float = math.inf) -> float:
        """When to poll next by ``policy``; a poll the schedule would place past the waiter's
        deadline is brought forward to ``last_look`` (just before it), unless a poll already
        looked after that moment: a wait never times out on a task that finished in time."""
        if self.failures:
            due = self.last_poll_at + policy.backoff.delay(self.failures - 1, rand)
        elif not self.observations:
            due = self.created + policy.first_delay()
        else:
            due = self.last_poll_at + policy.next_delay(self.observations, rand)
        if due > last_look and self.last_poll_at < last_look:
            return max(last_look, self.last_poll_at)
        return due

    async def poll(self, source: TaskSource) -> None:
        """One status request; a retryable failure only delays the next poll."""
        try:
            status = await source.fetch_status(self.task_id, self.kind)
        except AltcraftError as error:
            # only what a read may retry (connection errors, 5xx, 429, unreadable replies)
            # waits for the next poll; anything else (an API error, an HTTP 4xx such as 404,
            # a closed client) ends the wait instead of repeating it until the deadline
            if not _POLL_RETRY.should_retry(error, starts_task=False):
                self.error = error
                return
            self.failures += 1
            self.last_error = error
            self.last_poll_at = time.monotonic()
            return
        now = time.monotonic()
        self.failures = 0
        self.last_error = None
        self.last_poll_at = now
        self.observations.append((now - self.created, status.progress))
        self.latest = status
        self.version += 1


class Task(Generic[ResultT, WaitResultT]):
    """A running background task: poll it, wait for it, or hand it to another process.

    Its :class:`TaskKind` says what its result is: ``Task`` alone is a counters refresh's,
    whose :meth:`wait` returns a list of :class:`CountersSnapshot`.
    """

    def __init__(
        self,
        source: TaskSource,
        task_id: str,
        *,
        kind: TaskKind[ResultT, WaitResultT] = COUNTERS,  # type: ignore[assignment]
        endpoint: str | None = None,
        created: datetime | None = None,
        created_monotonic: float | None = None,
        push: PushWaiter | None = None,
    ) -> None:
        self._source = source
        self._push = push
        if push is not None:  # a handle dropped without a final answer frees its callback
            weakref.finalize(self, push.release)
        self.task_id = task_id
        self.task_kind = kind
        #: The start call's name ("" when not known), and the kind's name: both in resume tokens.
        self.endpoint = endpoint if endpoint is not None else kind.start.name if kind.start else ""
        self.kind = kind.name
        self.created = created or datetime.now(UTC)
        if created_monotonic is None:
            age = max(0.0, (datetime.now(UTC) - self.created).total_seconds())
            created_monotonic = time.monotonic() - age
        self._created_monotonic = created_monotonic

    def __repr__(self) -> str:
        return f"Task(task_id={self.task_id!r}, endpoint={self.endpoint!r})"

    async def status(self) -> TaskStatus[ResultT]:
        """One ``tasks/status`` request (retried as a read)."""
        return await self._source.fetch_status(self.task_id, self.task_kind)

    def resume_token(self) -> str:
        """A small versioned JSON string to pick this wait up again (holds no secret)."""
        return json.dumps(
            {
                "v": RESUME_TOKEN_VERSION,
                "task_id": self.task_id,
                "endpoint": self.endpoint,
                "kind": self.kind,
                "created": self.created.isoformat(),
            },
            separators=(",", ":"),
        )

    async def wait(
        self,
        *,
        timeout: float | UseDefault | None = DEFAULT,
        policy: PollPolicy | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> WaitResultT:
        """Poll until the task is done and return its result (a counters refresh's: the list
        of :class:`CountersSnapshot`).

        ``on_progress`` (sync or async) is called serially once per status change and always
        once at completion. Raises :class:`TaskFailedError` on a failure status and
        :class:`TaskTimeoutError` (carrying :meth:`resume_token`) past the deadline; retryable
        poll errors are retried inside the deadline. Cancelling the wait stops polling at once
        and leaves the server-side task alone.

        A task started with a :class:`FeedbackReceiver` also listens for the webhook: the
        first final answer, pushed or polled, wins; polling then runs at the receiver's slow
        safety interval (unless ``policy`` is given).
        """
        report = _serial(on_progress)
        if self._push is None:
            return await self._poll_until_done(timeout, policy, report)
        return await self._race_push_and_poll(self._push, timeout, policy, report)

    async def _poll_until_done(
        self,
        timeout: float | UseDefault | None,
        policy: PollPolicy | None,
        report: Callable[[TaskStatus[Any]], Awaitable[None]],
    ) -> WaitResultT:
        async with aclosing(self.watch(timeout=timeout, policy=policy)) as statuses:
            async for status in statuses:
                await report(status)
                if status.succeeded:
                    return self.task_kind.deliver(status.result)
        raise AssertionError("watch() ended without a terminal status")  # pragma: no cover

    async def _race_push_and_poll(
        self,
        push: PushWaiter,
        timeout: float | UseDefault | None,
        policy: PollPolicy | None,
        report: Callable[[TaskStatus[Any]], Awaitable[None]],
    ) -> WaitResultT:
        if policy is None:
            interval = push.receiver.safety_poll_interval
            base = self._source.default_poll_policy
            policy = PollPolicy(
                backoff=Backoff(initial=interval, factor=1.0, max_interval=interval, jitter=0.1),
                timeout=base.timeout,
                progress_aware=False,
            )
        outcome: list[WaitResultT | BaseException] = []

        async def by_push(group: anyio.abc.TaskGroup) -> None:
            status = await push.wait()
            try:
                if status.failed:
                    raise _failed(self.task_id, status)
                await report(status)
                outcome.append(self.task_kind.deliver(status.result))
            except Exception as error:
                outcome.append(error)
            group.cancel_scope.cancel()

        async def by_poll(group: anyio.abc.TaskGroup) -> None:
            try:
                outcome.append(await self._poll_until_done(timeout, policy, report))
            except Exception as error:
                outcome.append(error)
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(by_push, group)
            group.start_soon(by_poll, group)
        first = outcome[0]
        if not isinstance(first, TaskTimeoutError):
            push.release()  # final: a later webhook is late; after a timeout, keep listening
        if isinstance(first, BaseException):
            raise first
        return first

    async def watch(
        self, *, timeout: float | UseDefault | None = DEFAULT, policy: PollPolicy | None = None
    ) -> AsyncGenerator[TaskStatus[ResultT], None]:
        """Yield each change of status or progress until the task succeeds.

        Raises like :meth:`wait` on failure or deadline.
        """
        policy = policy or self._source.default_poll_policy
        limit = wait_limit(timeout, policy)
        deadline = math.inf if limit is None else time.monotonic() + limit
        last_look = deadline - _last_look_window(limit)
        shared = self._source.join_poll(self.task_id, self._created_monotonic, self.task_kind)
        seen_version = 0
        last: tuple[str, float | None] | None = None
        try:
            while True:
                if shared.version != seen_version and shared.latest is not None:
                    seen_version = shared.version
                    status = shared.latest
                    if status.failed:
                        raise _failed(self.task_id, status)
                    key = (status.status, status.progress)
                    if key != last or status.succeeded:
                        last = key
                        yield status
                    if status.succeeded:
                        return
                    continue
                if shared.error is not None:
                    raise shared.error
                attempts = policy.max_attempts
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    attempts is not None and len(shared.observations) >= attempts
                ):
                    latest = shared.latest
                    raise TaskTimeoutError(
                        self.task_id,
                        timeout=limit,
                        last_status=latest.status if latest else None,
                        progress=latest.progress if latest else None,
                        resume_token=self.resume_token(),
                    ) from shared.last_error  # why the last polls failed, if they did
                try:
                    async with asyncio.timeout(None if remaining == math.inf else remaining):
                        if not shared.leading:
                            await self._lead(shared, policy, last_look)
                        elif (
                            not shared.polling_sooner
                            and shared.next_poll_at(policy, 0.0, last_look)
                            < shared.leader_poll_at - _SLACK
                        ):
                            await self._poll_sooner(shared, policy, last_look)
                        else:
                            await shared.changed()
                except TimeoutError:
                    pass  # the deadline passed: the next turn raises TaskTimeoutError
        finally:
            self._source.leave_poll(shared)

    async def _lead(self, shared: SharedPoll, policy: PollPolicy, last_look: float) -> None:
        shared.leading = True
        try:
            shared.leader_poll_at = shared.next_poll_at(policy, _JITTER.random(), last_look)
            delay = shared.leader_poll_at - time.monotonic()
            if delay > 0:
                await shared.sleep(delay)
            if shared.error is None:
                await shared.poll(self._source)
        finally:
            shared.leading = False
            shared.leader_poll_at = math.inf
            shared.notify()

    async def _poll_sooner(self, shared: SharedPoll, policy: PollPolicy, last_look: float) -> None:
        """This waiter wants a poll before the leader's (a slow push safety poller leads, or
        this waiter's deadline comes first): wait for news until then, and poll itself if none
        came."""
        version = shared.version
        due = shared.next_poll_at(policy, _JITTER.random(), last_look) - time.monotonic()
        shared.polling_sooner = True
        try:
            try:
                async with asyncio.timeout(max(due, 0.0)):
                    await shared.changed()
                    return
            except TimeoutError:
                pass
            if shared.version == version:
                await shared.poll(self._source)
        finally:
            shared.polling_sooner = False
            shared.notify()


def wait_limit(timeout: float | UseDefault | None, policy: PollPolicy) -> float | None:
    """The seconds a wait may take: ``timeout``, or the policy's when it is omitted (DEFAULT);
    None is no limit. Anything else than a positive number or None is InvalidRequestError."""
    limit = policy.timeout if timeout is DEFAULT else timeout
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0  # NaN
    ):
        raise InvalidRequestError(f"timeout must be a positive number or None, got {limit!r}")
    return limit


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (``time.monotonic()``), at least a sliver: a wait that
    starts at its deadline still gets its last look. None stays None (no deadline)."""
    return None if deadline is None else max(deadline - time.monotonic(), _SLIVER)


def _last_look_window(limit: float | None) -> float:
    """How long before a wait's deadline its last look at the task lands: long enough for a
    status request to come back, short enough that the task had nearly all its time."""
    return 0.0 if limit is None else min(_LAST_LOOK, _LAST_LOOK_SHARE * limit)


def _failed(task_id: str, status: TaskStatus[Any]) -> TaskFailedError:
    return TaskFailedError(
        task_id, status.status, status.progress, raw=status, result=status.failure_result
    )


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _ignore(status: TaskStatus[Any]) -> None:
    """The progress report when nobody listens."""


def _serial(
    callback: ProgressCallback | None,
) -> Callable[[TaskStatus[Any]], Awaitable[None]]:
    """``callback`` made async and serial: calls never overlap, even from two racers, and
    nothing is reported after the final status (the push and the poll may both bring it)."""
    if callback is None:
        return _ignore
    lock = anyio.Lock()
    finished = False

    async def report(status: TaskStatus[Any]) -> None:
        nonlocal finished
        async with lock:
            if finished:
                return
            finished = status.succeeded or status.failed
            result = callback(status)
            if inspect.isawaitable(result):
                await result

    return report


def parse_resume_token(token: str) -> dict[str, Any]:
    """Read a :meth:`Task.resume_token`; raises InvalidRequestError if it is not one."""
    if isinstance(token, str) and len(token) > _MAX_RESUME_TOKEN:
        raise InvalidRequestError(f"not a resume token (longer than {_MAX_RESUME_TOKEN} chars)")
    try:
        data = json.loads(token)
    except (TypeError, ValueError, RecursionError):  # RecursionError: hostile deep nesting
        raise InvalidRequestError("not a resume token (invalid JSON)") from None
    if not isinstance(data, dict) or data.get("v") != RESUME_TOKEN_VERSION:
        raise InvalidRequestError("not a resume token of a supported version")
    task_id = data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise InvalidRequestError("resume token has no task id")
    for key in ("endpoint", "kind"):
        if not isinstance(data.get(key, ""), str):
            raise InvalidRequestError(f"resume token has an invalid {key}")
    try:
        created = datetime.fromisoformat(str(data.get("created")))
    except ValueError:
        raise InvalidRequestError("resume token has an invalid created time") from None
    if created.tzinfo is None:  # Task subtracts it from an aware now()
        raise InvalidRequestError("resume token has a created time without a time zone")
    data["created"] = created
    return data
