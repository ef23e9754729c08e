"""The task awaiter: poll ``tasks/status`` until a refresh is done, shared by every waiter.

A :class:`Task` handle is what ``refresh_counters`` returns. Waiting is *single-flight*: all
waiters on one task id in one client share a :class:`SharedPoll` and only one of them (the
leader) sleeps and polls at a time; the others wait for its news. There is no background
task: when the leader is cancelled or times out it hands over, the next waiter takes the lead
and the schedule carries on from the shared observations. When the last waiter leaves, the
shared state is dropped, so nothing keeps polling for nobody.

What a wait does at each turn is decided by ``_waitstate.decide``, a pure function of the
shared state, the wait's own and the time; this module only carries the decision out (sleep,
poll, wake the others). A client's :class:`PollRegistry` holds its shared polls and the clock.

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
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol

import anyio

from ._errors import (
    AltcraftError,
    ClientClosedError,
    InvalidRequestError,
    TaskTimeoutError,
)
from ._kinds import COUNTERS, ResultT, TaskKind, WaitResultT
from ._poll import Backoff, PollPolicy
from ._waitstate import (
    Deliver,
    Fail,
    Follow,
    Lead,
    PollSooner,
    PollState,
    TimeOut,
    Waiter,
    decide,
    failed_error,
)
from .models import TaskStatus

if TYPE_CHECKING:  # the receiver imports aiohttp.web: only load it when push is used
    import anyio.abc

    from ._feedback import PushWaiter

__all__ = [
    "DEFAULT",
    "STARTING",
    "PollRegistry",
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
#: The least time a wait is given, so that even one begun at its deadline takes a last look.
_SLIVER = 0.001
#: Jitter source shared by all tasks (a Random per task would cost ~3 KB each).
_JITTER = random.Random()

ProgressCallback = Callable[[TaskStatus[Any]], Awaitable[None] | None]

#: The refreshes of fan-outs (``_fanout``) still in their start, by their asyncio task: each
#: told (called with its task) when its wait begins, the start then behind it. A fan-out bounds
#: the refreshes still *starting*, so that thousands of start requests never queue ahead of
#: the due polls of the refreshes already started. A dict, not a context variable: a context
#: variable set for every refresh would cost each a copy of its context's map at every request.
STARTING: dict[asyncio.Task[Any], Callable[[asyncio.Task[Any]], None]] = {}


class UseDefault(enum.Enum):
    """The type of :data:`DEFAULT`: "use the poll policy's timeout", told apart from
    ``timeout=None`` (no limit) in signatures that type-check."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the policy's timeout": the default of every ``timeout`` of a wait.
DEFAULT: Final = UseDefault.DEFAULT


class TaskSource(Protocol):
    """What the awaiter needs from a client: its default policy and one status request."""

    default_poll_policy: PollPolicy

    async def _fetch_status(
        self, task_id: str, kind: TaskKind[ResultT, Any]
    ) -> TaskStatus[ResultT]: ...


class SharedPoll(PollState):
    """A :class:`PollState` with the means to wake its waiters: the followers' event and the
    leader's sleep, which :meth:`close` cuts short."""

    __slots__ = ("_changed", "_sleep", "_timer", "kind")

    def __init__(self, task_id: str, created: float, kind: TaskKind[Any, Any] = COUNTERS) -> None:
        super().__init__(task_id, created)
        # how its statuses are decoded (shared by waiters of one result type)
        self.kind: TaskKind[Any, Any] = kind
        self._changed: asyncio.Event | None = None  # made when somebody waits: saves memory
        self._sleep: asyncio.Future[None] | None = None  # the leader's wait for its next poll
        self._timer: asyncio.TimerHandle | None = None  # that wait's end

    def notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def changed(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        await self._changed.wait()

    def sleep(self, delay: float) -> asyncio.Future[None]:
        """A future done after ``delay`` seconds, or at once when :meth:`close` cuts the sleep
        short. The leader awaits it directly (no coroutine of its own: one object less per
        parked wait) and then calls :meth:`woke`."""
        loop = asyncio.get_running_loop()
        self._sleep = future = loop.create_future()
        self._timer = loop.call_later(delay, _wake, future)
        return future

    def woke(self) -> None:
        """The sleep is over (or was cancelled): drop its timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._sleep = None

    def end_leading(self) -> None:
        super().end_leading()
        self.notify()

    def end_polling_sooner(self) -> None:
        super().end_polling_sooner()
        self.notify()

    def close(self, error: AltcraftError) -> None:
        """End every wait on this task with ``error`` now (the client is being closed)."""
        self.end(error)
        if self._sleep is not None:
            _wake(self._sleep)
        self.notify()


class PollGate:
    """At most ``limit`` polls of the client's waits past this point at once (the client's
    ``max_connections``); the others wait here in line, each on one future.

    When thousands of waits fall due together (10,000 started at once all poll first 0.5 s
    later), a poll queued for a connection further down would already hold its built request,
    its body and the call path's frames; the process keeps that peak as resident memory. In
    line here, a due poll holds only its wait's own frames.
    """

    __slots__ = ("_free", "_queue")

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._queue: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """Pass now if a place is free (True); False: :meth:`queue`. Either way, :meth:`leave`."""
        if self._free and not self._queue:
            self._free -= 1
            return True
        return False

    async def queue(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed a place just as cancelled
                self.leave()
            raise

    def leave(self) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():  # a cancelled one is skipped
                waiter.set_result(None)
                return
        self._free += 1


class PollRegistry:
    """The shared polls of one client, by task id, and the clock the awaiter reads.

    A wait joins the poll of its task id (made on first use) and leaves it when it ends (waits
    whose kinds read the result as different types poll apart: the decoding is the poll's); the
    last to leave drops it, so nothing keeps polling for nobody. ``clock`` is a monotonic
    clock in seconds (``time.monotonic``; a test may give its own): every time the awaiter
    schedules by comes from it, while the parked waits themselves sleep on asyncio's timers.
    ``gate`` lets at most ``polls_at_once`` status requests of the waits go at once.
    """

    __slots__ = ("_polls", "clock", "gate", "polls_at_once")

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, polls_at_once: int = 100
    ) -> None:
        self.clock: Callable[[], float] = clock
        self._polls: dict[tuple[str, Any], SharedPoll] = {}
        self.gate: PollGate = PollGate(polls_at_once)
        self.polls_at_once: int = polls_at_once  # the client's max_connections

    def __repr__(self) -> str:
        return f"<PollRegistry tasks={len(self._polls)}>"

    def join(self, task_id: str, created: float, kind: TaskKind[Any, Any] = COUNTERS) -> SharedPoll:
        key = (task_id, kind.result_type)
        shared = self._polls.get(key)
        if shared is None:
            shared = self._polls[key] = SharedPoll(task_id, created, kind)
        shared.join()
        return shared

    def leave(self, shared: SharedPoll) -> None:
        key = (shared.task_id, shared.kind.result_type)
        if shared.leave() and self._polls.get(key) is shared:
            del self._polls[key]

    def task_ids(self) -> frozenset[str]:
        """The task ids some wait is on right now."""
        return frozenset(task_id for task_id, _ in self._polls)

    def close_all(self) -> None:
        """End every wait with ClientClosedError now: parked waits wake at once, not at their
        next poll."""
        for shared in list(self._polls.values()):
            shared.close(
                ClientClosedError(f"the client was closed while waiting for task {shared.task_id}")
            )


class Task(Generic[ResultT, WaitResultT]):
    """A running background task: poll it, wait for it, or hand it to another process.

    Its :class:`TaskKind` says what its result is: ``Task`` alone is a counters refresh's,
    whose :meth:`wait` returns a list of :class:`CountersSnapshot`.
    """

    # one handle per wait is common (100k waits, 100k handles): no __dict__
    __slots__ = (
        "__weakref__",
        "_created_monotonic",
        "_polls",
        "_push",
        "_source",
        "created",
        "endpoint",
        "kind",
        "task_id",
        "task_kind",
    )

    def __init__(
        self,
        source: TaskSource,
        polls: PollRegistry,
        task_id: str,
        *,
        kind: TaskKind[ResultT, WaitResultT] = COUNTERS,  # type: ignore[assignment]
        endpoint: str | None = None,
        created: datetime | None = None,
        created_monotonic: float | None = None,
        push: PushWaiter | None = None,
    ) -> None:
        self._source = source
        self._polls = polls
        self._push = push
        if push is not None:  # a handle dropped without a final answer frees its callback
            weakref.finalize(self, push.release)
        self.task_id: str = task_id
        self.task_kind: TaskKind[ResultT, WaitResultT] = kind
        #: The start call's name ("" when not known), and the kind's name: both in resume tokens.
        self.endpoint: str = (
            endpoint if endpoint is not None else kind.start.name if kind.start else ""
        )
        self.kind: str = kind.name
        self.created: datetime = created or datetime.now(UTC)
        if created_monotonic is None:
            age = max(0.0, (datetime.now(UTC) - self.created).total_seconds())
            created_monotonic = polls.clock() - age
        self._created_monotonic = created_monotonic

    def __repr__(self) -> str:
        return f"Task(task_id={self.task_id!r}, endpoint={self.endpoint!r})"

    def __reduce__(self) -> Any:
        # a handle holds its client (a connection pool, a loop): what crosses processes is
        # the resume token, a small JSON string
        raise TypeError(
            "a Task cannot be pickled (it holds its client): pass task.resume_token(), a JSON "
            "string, and pick the task up with client.tasks.resume(token) on the other side"
        )

    async def status(self) -> TaskStatus[ResultT]:
        """One ``tasks/status`` request (retried as a read)."""
        return await self._source._fetch_status(self.task_id, self.task_kind)

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
        _wait_begins()
        if self._push is None:
            return await self._poll_until_done(timeout, policy, report)
        return await self._race_push_and_poll(self._push, timeout, policy, report)

    async def _poll_until_done(
        self,
        timeout: float | UseDefault | None,
        policy: PollPolicy | None,
        report: Callable[[TaskStatus[Any]], Awaitable[None]],
    ) -> WaitResultT:
        """:meth:`watch`'s loop without its async generator (three objects fewer per parked
        wait, none made per status): each status shown is reported, the success returned."""
        waiter, shared = self._join(timeout, policy)
        try:
            while True:
                status = await self._next_news(shared, waiter)
                if report is not _ignore:
                    await report(status)
                if status.succeeded:
                    return self.task_kind.deliver(status.result)
        finally:
            self._polls.leave(shared)

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
                    raise failed_error(self.task_id, status)
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
        _wait_begins()
        waiter, shared = self._join(timeout, policy)
        try:
            while True:
                status = await self._next_news(shared, waiter)
                yield status
                if status.succeeded:
                    return
        finally:
            self._polls.leave(shared)

    def _join(
        self, timeout: float | UseDefault | None, policy: PollPolicy | None
    ) -> tuple[Waiter, SharedPoll]:
        """A new wait's own state, and the shared poll of its task (left by the caller)."""
        policy = policy or self._source.default_poll_policy
        waiter = Waiter.start(policy, wait_limit(timeout, policy), self._polls.clock())
        return waiter, self._polls.join(self.task_id, self._created_monotonic, self.task_kind)

    async def _next_news(self, shared: SharedPoll, waiter: Waiter) -> TaskStatus[Any]:
        """Take turns (_waitstate.decide, then do it) until a status to show: return it; a
        failure, the deadline or the client closing raise."""
        clock = self._polls.clock
        while True:
            match decide(shared, waiter, clock(), _JITTER.random()):
                case Deliver() as news:
                    waiter.catch_up(news)
                    if news.show:
                        return news.status
                case Fail(error=error):
                    raise error
                case TimeOut() as out:
                    raise self._timed_out(out) from out.cause
                case Lead(poll_at=poll_at):
                    await self._lead(shared, poll_at, waiter.deadline)
                case turn:  # PollSooner or Follow, until the deadline at most
                    try:
                        async with asyncio.timeout(_seconds(waiter.deadline - clock())):
                            await self._take_turn(shared, turn)
                    except TimeoutError:
                        pass  # the next turn decides TimeOut

    def _timed_out(self, out: TimeOut) -> TaskTimeoutError:
        latest = out.latest
        return TaskTimeoutError(
            self.task_id,
            timeout=out.timeout,
            last_status=latest.status if latest else None,
            progress=latest.progress if latest else None,
            resume_token=self.resume_token(),
        )

    def _take_turn(
        self, shared: SharedPoll, turn: PollSooner | Follow
    ) -> Coroutine[Any, Any, None]:
        """What to await for this turn: poll sooner, or wait for news (a plain function: one
        coroutine frame less for every parked wait)."""
        if isinstance(turn, PollSooner):
            return self._poll_sooner(shared, turn.due)
        return shared.changed()

    async def _lead(self, shared: SharedPoll, poll_at: float, deadline: float) -> None:
        """Sleep until ``poll_at`` and poll for every waiter (unless the wait ended), all
        before ``deadline`` (the next turn then decides TimeOut).

        The sleep itself stops at the deadline: only the poll runs under an
        ``asyncio.timeout``, so a parked leader holds one timer, not two."""
        clock = self._polls.clock
        shared.begin_leading(poll_at)
        try:
            delay = min(poll_at, deadline) - clock()
            if delay > 0:
                try:
                    await shared.sleep(delay)
                finally:
                    shared.woke()
            if shared.error is not None or poll_at > deadline:
                return
            try:
                async with asyncio.timeout(_seconds(deadline - clock())):
                    await self._poll(shared)
            except TimeoutError:
                pass
        finally:
            shared.end_leading()

    async def _poll_sooner(self, shared: SharedPoll, due: float) -> None:
        """This waiter wants a poll before the leader's (a slow push safety poller leads, or
        this waiter's deadline comes first): wait for news until ``due``, and poll itself if
        none came."""
        version = shared.version
        shared.begin_polling_sooner()
        try:
            try:
                async with asyncio.timeout(max(due - self._polls.clock(), 0.0)):
                    await shared.changed()
                    return
            except TimeoutError:
                pass
            if shared.version == version:
                await self._poll(shared)
        finally:
            shared.end_polling_sooner()

    async def _poll(self, shared: SharedPoll) -> None:
        """One status request (through the client's :class:`PollGate`), its answer or error
        recorded in the shared state."""
        gate = self._polls.gate
        if not gate.take():
            await gate.queue()
        try:
            if shared.error is not None:  # the client closed while this poll stood in line
                return
            try:
                status = await self._source._fetch_status(self.task_id, shared.kind)
            except AltcraftError as error:
                shared.record_error(error, self._polls.clock())
                return
            shared.record_status(status, self._polls.clock())
        finally:
            gate.leave()


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


def _seconds(left: float) -> float | None:
    """``asyncio.timeout``'s delay for ``left`` seconds: None for no deadline."""
    return None if left == math.inf else left


def _wait_begins() -> None:
    """Tell the fan-out running this wait, if any, that its start is done (STARTING)."""
    if STARTING:
        task = asyncio.current_task()
        begins = STARTING.pop(task, None) if task is not None else None
        if begins is not None:
            begins(task)  # type: ignore[arg-type]


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
