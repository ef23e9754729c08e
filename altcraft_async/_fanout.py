"""Fan-out: refresh many segments or resources at once, outcomes in completion order.

An anyio task group runs the refreshes, a :class:`anyio.CapacityLimiter` keeps at most
``concurrency`` of them in flight (started and not yet finished), and a memory stream hands
outcomes to the consumer. The task group lives in one engine task, not in the consumer's
``async for``: a task group must not span a ``yield``, and the engine can be cancelled from
anywhere (``aclose()``, leaving an ``async with``, garbage collection of an abandoned
iterator, or the client's ``aclose()``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Generic, Literal

import anyio
from attrs import field, frozen
from typing_extensions import TypeAliasType, TypeVar

from ._errors import AltcraftError, InvalidRequestError
from .models import CountersSnapshot

if TYPE_CHECKING:  # importing anyio's streams costs ~14 ms: only when a fan-out starts
    import anyio.abc
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
        engine = _run(self._refs, self._run_one, self._concurrency, self._fail_fast, send)
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
    fail_fast: bool,
    send: MemoryObjectSendStream[Outcome[RefT, ResultT]],
) -> None:
    """The engine: at most ``concurrency`` refreshes in flight, outcomes into ``send``."""
    limiter = anyio.CapacityLimiter(concurrency)
    async with send, anyio.create_task_group() as group:
        for ref in refs:
            token = object()
            await limiter.acquire_on_behalf_of(token)
            group.start_soon(_one, ref, run_one, fail_fast, token, limiter, send, group)


async def _one(
    ref: RefT,
    run_one: Callable[[RefT], Awaitable[ResultT]],
    fail_fast: bool,
    token: object,
    limiter: anyio.CapacityLimiter,
    send: MemoryObjectSendStream[Outcome[RefT, ResultT]],
    group: anyio.abc.TaskGroup,
) -> None:
    outcome: Outcome[RefT, ResultT]
    try:
        outcome = Succeeded(ref, await run_one(ref))
    except AltcraftError as error:
        outcome = Failed(ref, error)
    finally:
        limiter.release_on_behalf_of(token)
    try:
        send.send_nowait(outcome)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):  # the FanOut is gone
        return
    if fail_fast and outcome.error is not None:
        group.cancel_scope.cancel()
