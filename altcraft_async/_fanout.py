"""Fan-out: refresh many segments or resources at once, outcomes in completion order.

One engine task runs the refreshes, each in an asyncio task of its own, at most
``concurrency`` of them in flight (started and not yet finished), and a memory stream hands
outcomes to the consumer. The refreshes live under the engine, not in the consumer's
``async for`` (nothing in flight may span a ``yield``), and the engine can be cancelled from
anywhere (``aclose()``, leaving an ``async with``, garbage collection of an abandoned
iterator, or the client's ``aclose()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal

import anyio
from attrs import field, frozen
from typing_extensions import TypeAliasType, TypeVar

from ._awaiter import STARTING
from ._errors import AltcraftError, InvalidRequestError
from .models import CountersSnapshot

if TYPE_CHECKING:  # importing anyio's streams costs ~14 ms: only when a fan-out starts
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["Failed", "FanOut", "Outcome", "Succeeded"]

RefT = TypeVar("RefT")
#: What one refresh gives: counters unless the task kind says otherwise.
ResultT = TypeVar("ResultT", default=list[CountersSnapshot])


@frozen
class Succeeded(Generic[RefT, ResultT]):
    """A refresh that finished: its ``result``; ``error`` is ``None`` and ``ok`` is ``True``."""

    ref: RefT
    result: ResultT
    # Constant fields, not properties: pyright narrows a union on a declared field only.
    error: None = field(default=None, init=False, repr=False, eq=False)
    ok: Literal[True] = field(default=True, init=False, repr=False, eq=False)


@frozen
class Failed(Generic[RefT]):
    """A refresh that stopped with ``error``; ``result`` is ``None`` and ``ok`` is ``False``."""

    ref: RefT
    error: AltcraftError
    result: None = field(default=None, init=False, repr=False, eq=False)
    ok: Literal[False] = field(default=False, init=False, repr=False, eq=False)


#: The end of one refresh: a :class:`Succeeded` or a :class:`Failed`. Both have ``ref``,
#: ``result``, ``error`` and ``ok``, and the checks users write narrow the union in mypy and
#: pyright alike: ``if outcome.error is None:`` (then ``outcome.result`` is a ``ResultT``),
#: ``isinstance(outcome, Succeeded)`` and ``match``; ``if outcome.ok:`` narrows in mypy (pyright
#: needs ``outcome.ok is True``). A union, not a class: to test for one at run time use
#: ``isinstance(x, (Succeeded, Failed))``.
Outcome = TypeAliasType(
    "Outcome", Succeeded[RefT, ResultT] | Failed[RefT], type_params=(RefT, ResultT)
)


class FanOut(Generic[RefT, ResultT]):
    """Async iterator of :class:`Outcome`; also an async context manager that cleans up."""

    def __init__(
        self,
        refs: Iterable[RefT],
        run_one: Callable[[RefT], Awaitable[ResultT]],
        *,
        concurrency: int,
        fail_fast: bool,
        on_start: Callable[[FanOut[RefT, ResultT]], None],
        starting_at_once: int | None = None,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidRequestError(f"concurrency must be a positive int, got {concurrency!r}")
        if isinstance(refs, str | bytes) or not isinstance(refs, Iterable):
            raise InvalidRequestError(
                f"refs must be an iterable of refs, got {type(refs).__name__}"
            )
        self._refs = refs
        self._run_one = run_one
        self._concurrency = concurrency
        # refreshes whose wait has not begun yet (their start in flight): the client's pool
        self._starting_at_once = starting_at_once or concurrency
        self._fail_fast = fail_fast
        self._on_start = on_start
        self._engine: asyncio.Task[None] | None = None
        self._receive: MemoryObjectReceiveStream[Outcome[RefT, ResultT]] | None = None
        # kept to be closed here too: an engine cancelled before its first step never does
        self._send: MemoryObjectSendStream[Outcome[RefT, ResultT]] | None = None
        self._aborted: AltcraftError | None = None
        self._closed = False
        self._failure: BaseException | None = None  # the engine's crash, raised once

    def __aiter__(self) -> FanOut[RefT, ResultT]:
        return self

    async def __anext__(self) -> Outcome[RefT, ResultT]:
        if self._aborted is not None:
            raise self._aborted
        if self._closed:
            raise StopAsyncIteration
        if self._receive is None:
            self._start()
        assert self._receive is not None
        try:
            return await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            await self.aclose()
            if self._aborted is not None:  # stopped by client.aclose(): not a normal end
                raise self._aborted from None
            raise StopAsyncIteration from None

    async def __aenter__(self) -> FanOut[RefT, ResultT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _start(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Outcome[RefT, ResultT]](
            math.inf
        )
        send = self._send
        # The engine holds no reference to self: an abandoned FanOut is collected and its
        # __del__ cancels the engine (a bound method here would keep it alive to the end).
        engine = _run(
            self._refs,
            self._run_one,
            self._concurrency,
            self._starting_at_once,
            self._fail_fast,
            send,
        )
        self._engine = asyncio.get_running_loop().create_task(engine)
        self._on_start(self)

    async def abort(self, error: AltcraftError) -> None:
        """Stop, and make the consumer's next step raise ``error`` instead of just ending."""
        self._aborted = error
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel what is still in flight and wait until it has stopped.

        If the engine itself crashed (say ``refs`` raised while being iterated), that error is
        raised here, once.
        """
        self._closed = True
        engine = self._engine
        if engine is None:
            return
        if not engine.done():
            engine.cancel()
        # shielded: when the consumer leaves because *it* is cancelled (move_on_after around
        # the loop), the engine must still be stopped before the exit returns
        with anyio.CancelScope(shield=True):
            await asyncio.wait({engine})
        for stream in (self._send, self._receive):
            if stream is not None:
                stream.close()
        if self._failure is None and not engine.cancelled() and engine.exception() is not None:
            failure = engine.exception()
            # the task group wraps a single crash in an ExceptionGroup: hand over the crash
            while isinstance(failure, BaseExceptionGroup) and len(failure.exceptions) == 1:
                failure = failure.exceptions[0]
            self._failure = failure
            raise failure  # type: ignore[misc]

    def __del__(self) -> None:
        engine = getattr(self, "_engine", None)  # absent when __init__ raised
        if engine is not None and not engine.done() and not engine.get_loop().is_closed():
            engine.cancel()
        for name in ("_send", "_receive"):
            stream = getattr(self, name, None)
            if stream is not None:
                stream.close()


async def _run(
    refs: Iterable[RefT],
    run_one: Callable[[RefT], Awaitable[ResultT]],
    concurrency: int,
    starting_at_once: int,
    fail_fast: bool,
    send: MemoryObjectSendStream[Outcome[RefT, ResultT]],
) -> None:
    """The engine: at most ``concurrency`` refreshes in flight, outcomes into ``send``.

    At most ``starting_at_once`` of them still starting (their wait not begun): 10,000
    start requests queued at once for the client's connections would hold back every due
    poll of the refreshes already started (their notice came seconds late), and each would
    hold its built request meanwhile. Pulls a ref only when a place is free for it; when
    stopped (cancelled, ``fail_fast``, a crash of ``run_one``, or ``refs`` raising), cancels
    the refreshes in flight and waits for them before it ends, re-raising a crash as itself
    (not in a group)."""
    flight = _Flight(run_one, concurrency, starting_at_once, fail_fast, send)
    with send:  # closed at the end, whatever happens: the consumer sees the end
        try:
            pending = iter(refs)
            while True:  # a ref is pulled only once a place is free for it
                while not flight.room() and not flight.stopped:
                    await flight.changed()
                if flight.stopped:
                    break
                ref = next(pending, _END)
                if ref is _END:
                    break
                flight.start(ref)
                # one loop turn per start (as a task group's checkpoint did): the replies and
                # due polls of the refreshes already started get their turn between starts
                await asyncio.sleep(0)
            while flight.running:
                await flight.changed()
        except BaseException:
            await flight.settle()
            raise
        if flight.crash is not None:
            raise flight.crash


#: The end of the refs.
_END: Any = object()


class _Flight:
    """The refreshes of one fan-out in flight, as plain asyncio tasks.

    One asyncio task per refresh and nothing else: a task group's per-task bookkeeping
    (task state, cancel scope, its sets and weak references, events) would be ~18 more
    objects per refresh for the garbage collector to walk while 10,000 waits are parked.
    A refresh's end is handled in :meth:`_finished`, its task's done callback.
    """

    __slots__ = (
        "_context",
        "_fail_fast",
        "_loop",
        "_run_one",
        "_send",
        "_starting_at_once",
        "_wait_begins",
        "_wake",
        "crash",
        "free",
        "running",
        "starting",
        "stopped",
    )

    def __init__(
        self,
        run_one: Callable[[RefT], Awaitable[ResultT]],
        concurrency: int,
        starting_at_once: int,
        fail_fast: bool,
        send: MemoryObjectSendStream[Outcome[RefT, ResultT]],
    ) -> None:
        self._run_one: Callable[[Any], Awaitable[Any]] = run_one
        self._fail_fast = fail_fast
        self._send: MemoryObjectSendStream[Any] = send
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()  # for the done callbacks: one, not one each
        self._wake: asyncio.Future[None] | None = None  # the engine waiting for a change
        self.free = concurrency
        self._starting_at_once = starting_at_once
        self.running: set[asyncio.Task[Any]] = set()
        self.starting = 0  # refreshes running whose wait has not begun (in STARTING)
        self._wait_begins = self.wait_begins  # one bound method for every refresh
        self.stopped = False
        self.crash: BaseException | None = None  # run_one raised something else than ours

    def start(self, ref: Any) -> None:
        task = self._loop.create_task(_one(ref, self._run_one))
        task.add_done_callback(self._finished, context=self._context)
        self.running.add(task)
        STARTING[task] = self._wait_begins
        self.starting += 1
        self.free -= 1

    def room(self) -> bool:
        """A place free for one more refresh, and for one more start."""
        return self.free > 0 and self.starting < self._starting_at_once

    def wait_begins(self, task: asyncio.Task[Any]) -> None:
        """STARTING: the refresh run by ``task`` is past its start."""
        self.starting -= 1
        self._notify()

    async def changed(self) -> None:
        """Until a refresh ends (or the fan-out is stopped)."""
        self._wake = wake = self._loop.create_future()
        try:
            await wake
        finally:
            self._wake = None

    def stop(self) -> None:
        """Cancel every refresh in flight and start no other."""
        self.stopped = True
        for task in self.running:
            task.cancel()
        self._notify()

    async def settle(self) -> None:
        """Stop, and wait until every refresh in flight has ended (cancelling the engine
        again does not cut this short: nothing may outlive it)."""
        self.stop()
        while self.running:
            with contextlib.suppress(asyncio.CancelledError):
                await self.changed()

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _finished(self, task: asyncio.Task[Outcome[Any, Any]]) -> None:
        self.running.discard(task)
        if STARTING.pop(task, None) is not None:  # ended (or was cancelled) in its start
            self.starting -= 1
        self.free += 1
        self._notify()
        if task.cancelled():
            return
        crash = task.exception()
        if crash is not None:  # a bug in run_one, not a failed refresh: the fan-out stops
            if self.crash is None:
                self.crash = crash
            self.stop()
            return
        outcome = task.result()
        try:
            self._send.send_nowait(outcome)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):  # the FanOut is gone
            return
        if self._fail_fast and outcome.error is not None:
            self.stop()


async def _one(ref: RefT, run_one: Callable[[RefT], Awaitable[ResultT]]) -> Outcome[RefT, ResultT]:
    try:
        return Succeeded(ref, await run_one(ref))
    except AltcraftError as error:
        return Failed(ref, error)
