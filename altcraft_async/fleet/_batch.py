"""One pair's way through the start ledger: claim, start (or resume), wait, finish.

Nothing new goes on the wire: the start is ``client.segments.refresh_counters``, a resume
``client.tasks.resume(token)``, the wait ``Task.wait``; the ledger decides which, and fences
every write. A wait cut short by ``timeout`` (a slice of a batch) leaves the pair ``started``
for whoever resumes it next.

**The ``sending`` window is bounded and knows what it did not send.** A pair is ``sending``
from its claim to its stored token; a worker that dies in there leaves the pair ``unknown``
at the next claim, and a cancelled start (the engine's job timeout, a shutdown) waits for what
is in flight there (below), so nothing that may wait without bound belongs in there. The
start's rate slot is therefore taken *before* the claim (``RedisRateLimiter.slot``, handed
out a learned claim latency ahead of its time), and what may still wait inside the window is
bounded and, when it ends without sending, gives the claim back (``released``: startable
again), never ``unknown``:

- the start call's whole ``timeout`` is the send lease from the claim, so it ends (sent or
  not) before another claimer may call the pair ``unknown`` (or, with ``on_unknown=
  "restart"``, start it again), and before the engine's job timeout (``arq.worker_settings``
  sets it above slice + send lease); a wait for a slot or a connection that runs past it is a
  ``RequestTimeoutError(sent=False)``: released;
- a start whose slot went stale takes a fresh one only within half the send lease (the other
  half is the send's own), else the limiter raises ``RequestTimeoutError(sent=False)``:
  released, retried on the batch's next try. Not a retake-in-a-loop (which, when every claim
  is late, burned slots forever): one bounded wait per try;
- a start cancelled before its acquire returned (``PrepaidSlot.passed`` is False: nothing
  went towards the transport) gives the claim back, then lets the cancellation go on; so
  does one cancelled while Redis answered its claim (the claim's round trip is seen through,
  so its fence is known: ``_claim``). A start cancelled after its acquire returned is on the
  wire: it is seen through to its stored token (or its verdict), then the cancellation goes
  on, so a graceful stop (arq cancels its jobs on SIGTERM) leaves nothing ``unknown``.
  "Seen through" (``_seen_through``) is more than anyio's shield, which asyncio's
  ``Task.cancel`` (arq's way to end a job) goes through.

Why this rather than a deadline alone: one whole-call deadline cuts a send that began just
before it (sent, so ``unknown``); bounding the slot wait at half the lease leaves the other
half to the send. Why not spend a stale slot: late sends bunch into the next second.

``$ALTCRAFT_FLEET_CRASH_AFTER_SEND``, when it names a pair, makes this process SIGKILL itself
right after that pair's start reply and before the ledger learns its token: the one window a
crash leaves open, for the tests to prove it is detected (``unknown``) and never restarted.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, suppress
from typing import Any, Literal, TypeVar

import anyio
import anyio.lowlevel
from attrs import frozen

from .._awaiter import Task
from .._client import AltcraftClient
from .._codec import to_builtins
from .._errors import (
    AltcraftError,
    APIError,
    DecodeError,
    HTTPStatusError,
    InvalidRequestError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from ..models import CountersSnapshot, SegmentRef
from ._ledger import Claim, StartLedger
from ._limiter import PrepaidSlot, RedisRateLimiter

__all__ = [
    "OutcomeState",
    "PairOutcome",
    "StartVerdict",
    "pair_id",
    "ref_of",
    "run_pair",
    "start_verdict",
]

CRASH_ENV = "ALTCRAFT_FLEET_CRASH_AFTER_SEND"
#: Seconds a claim's round trip, or a cancelled start's give-back, may take.
RELEASE_DEADLINE = 5.0

T = TypeVar("T")

#: ``done`` / ``failed`` / ``unknown`` are final; ``sending`` (a start in flight, as the run
#: API reads a pair), ``started`` (the wait's slice ended),
#: ``busy`` (another owner holds it), ``full`` (in-flight cap), ``released`` (the start never
#: left), ``lost`` (another claim fenced this owner out) are for a later attempt.
OutcomeState = Literal[
    "done", "failed", "unknown", "sending", "started", "busy", "full", "released", "lost"
]


@frozen
class PairOutcome:
    """What :func:`run_pair` did with one pair."""

    ref: SegmentRef
    state: OutcomeState
    result: list[CountersSnapshot] | None = None
    detail: str = ""
    task_id: str | None = None


def pair_id(ref: SegmentRef) -> str:
    """The ledger's name of a pair: ``segment.<segment>.<resource>.<database or 0>``."""
    return f"segment.{ref.segment_id}.{ref.resource_id}.{ref.database_id or 0}"


def ref_of(pair: str) -> SegmentRef:
    """The pair named ``pair`` by :func:`pair_id` (database 0 reads back as None)."""
    kind, segment, resource, database = pair.split(".")
    if kind != "segment":
        raise InvalidRequestError(f"not a pair name: {pair!r}")
    return SegmentRef(int(segment), int(resource), int(database) or None)


async def run_pair(
    client: AltcraftClient,
    ledger: StartLedger,
    ref: SegmentRef,
    owner: str,
    *,
    timeout: float | None = None,
    limiter: RedisRateLimiter | None = None,
    start_timeout: float | None = None,
) -> PairOutcome:
    """Start ``ref``'s refresh unless the ledger says it was (then resume or report it), and
    wait for its counters; ``timeout`` bounds the whole call (the wait for a rate slot and
    the wait for the task share it) but never cuts a start between its claim and its token.

    ``limiter`` (the client's shared one): take the start's rate slot *before* claiming the
    pair, so the ``sending`` window is one round trip, not a wait in the rate queue (a worker
    killed while it waits must leave nothing ``sending``, or the pair would turn unknown).
    A slot that does not come within ``timeout`` leaves the pair unclaimed (``released``):
    a batch of thousands of pairs queued behind one account's rate must still end its slice
    before its engine's job timeout, or the engine gives the batch up.

    ``start_timeout``: seconds the start call may take from its claim (default: the ledger's
    ``send_lease``, so it is over, sent or given back, before the lease is; a longer one only
    for a ledger whose lease is meant to run out at once, as in the crash tests)."""
    pair = pair_id(ref)
    deadline = math.inf if timeout is None else anyio.current_time() + timeout
    async with AsyncExitStack() as prepaid:
        slot: PrepaidSlot | None = None
        if limiter is not None and await ledger.startable(pair):
            with anyio.move_on_after(math.inf if timeout is None else timeout) as queued:
                # the slot, then the claim; a stale slot's fresh one within half the lease
                slot = await prepaid.enter_async_context(limiter.slot(bound=ledger.send_lease / 2))
            if queued.cancelled_caught:
                return PairOutcome(ref, "released", detail="no rate slot within the slice")
        # measured from before the claim: not after Redis' end of the lease
        lease_ends = time.monotonic() + (start_timeout or ledger.send_lease)
        claim = await _claim(ledger, pair, owner)
        if claim.action == "start":
            begun = await _start(client, ledger, pair, ref, owner, claim.fence, lease_ends, slot)
            if isinstance(begun, PairOutcome):
                return begun
            task = begun
        elif claim.action == "resume" and claim.token is not None:
            task = client.tasks.resume(claim.token)
        else:
            return PairOutcome(ref, claim.action, detail=claim.detail)  # type: ignore[arg-type]
    left = deadline - anyio.current_time()
    if left <= 0:
        return PairOutcome(ref, "started", task_id=task.task_id)
    try:
        result = await task.wait(timeout=None if left == math.inf else left)
    except TaskTimeoutError:
        return PairOutcome(ref, "started", task_id=task.task_id)
    except TaskFailedError as error:
        await ledger.finish(pair, owner, claim.fence, failed=True, detail=str(error))
        return PairOutcome(ref, "failed", detail=str(error), task_id=task.task_id)
    stored = await ledger.finish(
        pair, owner, claim.fence, result=to_builtins(result), task_id=task.task_id
    )
    if not stored:
        return PairOutcome(ref, "lost", result, task_id=task.task_id)
    return PairOutcome(ref, "done", result, task_id=task.task_id)


async def _claim(ledger: StartLedger, pair: str, owner: str) -> Claim:
    """``owner``'s claim of ``pair``, its round trip seen through (at most
    ``RELEASE_DEADLINE``): a cancellation that came while Redis answered could not tell
    whether the pair was claimed, and a claim it cut would stay ``sending`` until its lease ran
    out, then turn ``unknown`` though nothing was sent. After the answer the fence is known, so
    a cancelled claimer gives a won claim back and lets the cancellation go on."""
    claim, cancelled = await _seen_through(_within(RELEASE_DEADLINE, ledger.claim(pair, owner)))
    try:
        if cancelled is not None:
            raise cancelled
        await anyio.lowlevel.checkpoint_if_cancelled()
    except anyio.get_cancelled_exc_class():
        if claim.action == "start":
            await _give_back(ledger, pair, owner, claim.fence)
        raise
    return claim


async def _give_back(ledger: StartLedger, pair: str, owner: str, fence: int) -> None:
    """Release a claim on the way out of a cancelled start (seen through, at most
    ``RELEASE_DEADLINE``: a release that does not come leaves the pair to its lease)."""

    async def release() -> None:
        with anyio.move_on_after(RELEASE_DEADLINE):
            await ledger.release(pair, owner, fence)

    await _seen_through(release())


async def _within(seconds: float, work: Awaitable[T]) -> T:
    with anyio.fail_after(seconds):
        return await work


async def _seen_through(
    work: Coroutine[Any, Any, T], *, abandon: Callable[[], bool] = lambda: False
) -> tuple[T, BaseException | None]:
    """Run ``work`` to its end whatever cancels this task meanwhile, unless ``abandon()`` says
    so when the cancellation comes (then ``work`` itself is cancelled). Returns its result and
    the cancellation that came, for the caller to raise once it has acted on the result (a
    cancellation also ends the call when ``work`` failed or was abandoned).

    anyio's shield holds against a cancel scope, not against asyncio's ``Task.cancel``, and
    that is how arq ends a job (its ``job_timeout`` through ``asyncio.wait_for``, a SIGTERM, an
    abort): so ``work`` runs as a task of its own, which a cancellation of this one does not
    reach; the wait after the first cancellation is shielded, so a cancel scope does not
    deliver its cancellation again and again meanwhile."""
    inner = asyncio.ensure_future(work)
    cancelled: BaseException | None = None
    try:
        await asyncio.wait({inner})
    except asyncio.CancelledError as error:  # a cancel scope's or a Task.cancel
        cancelled = error
        if abandon():
            inner.cancel()
        with anyio.CancelScope(shield=True):
            while not inner.done():
                with suppress(asyncio.CancelledError):  # one more Task.cancel
                    await asyncio.wait({inner})
    if cancelled is not None and inner.cancelled():
        raise cancelled
    if cancelled is not None and inner.exception() is not None:
        raise cancelled from inner.exception()  # the work's own error stays in the traceback
    return inner.result(), cancelled


async def _start(
    client: AltcraftClient,
    ledger: StartLedger,
    pair: str,
    ref: SegmentRef,
    owner: str,
    fence: int,
    lease_ends: float,
    slot: PrepaidSlot | None,
) -> Task | PairOutcome:
    """Send the start the ledger gave ``owner`` and store its resume token (the window),
    all of it by ``lease_ends`` (``time.monotonic()``); see the module for why. A
    cancellation before anything went towards the transport gives the claim back; after, the
    start is seen through to its stored token (or its verdict), then the cancellation goes on:
    a job stopped gracefully (arq on SIGTERM) leaves nothing ``unknown``."""

    requesting = True  # False once the request failed: recording its verdict is seen through

    def unsent() -> bool:  # the request, of which provably nothing went towards the transport
        return requesting and slot is not None and not slot.passed

    async def send() -> Task | PairOutcome:
        nonlocal requesting
        try:
            task = await client.segments.refresh_counters(
                segment_id=ref.segment_id,
                resource_id=ref.resource_id,
                database_id=ref.database_id,
                timeout=max(lease_ends - time.monotonic(), 0.001),
            )
        except (TransportError, HTTPStatusError, APIError, DecodeError) as error:
            requesting = False
            return await _start_failed(ledger, pair, ref, owner, fence, error)
        except anyio.get_cancelled_exc_class():
            if unsent():
                await _give_back(ledger, pair, owner, fence)
            raise
        if os.environ.get(CRASH_ENV) == pair:
            os.kill(os.getpid(), signal.SIGKILL)
        if not await ledger.started(pair, owner, fence, task.resume_token()):
            return PairOutcome(ref, "lost", task_id=task.task_id)
        return task

    begun, cancelled = await _seen_through(send(), abandon=unsent)
    if cancelled is not None:
        raise cancelled
    return begun


#: What a failed start request means for its pair: ``released`` (provably never processed:
#: startable again), ``failed`` (refused: nothing started), ``unknown`` (sent, reply lost:
#: Altcraft may have created the task).
StartVerdict = Literal["released", "failed", "unknown"]


def start_verdict(error: AltcraftError) -> StartVerdict:
    """The verdict on a start request that raised ``error`` (the SDK's rule: a start is
    repeated only when it provably was not processed)."""
    if isinstance(error, TransportError):
        return "unknown" if error.sent else "released"
    if isinstance(error, HTTPStatusError):
        if error.status == 429:
            return "released"  # rate-limited: not processed
        return "unknown" if error.status >= 500 else "failed"
    if isinstance(error, APIError):
        return "failed"  # the platform's envelope says it refused the call
    return "unknown"  # a reply that could not be read: the task may exist


async def _start_failed(
    ledger: StartLedger, pair: str, ref: SegmentRef, owner: str, fence: int, error: AltcraftError
) -> PairOutcome:
    verdict = start_verdict(error)
    detail = f"{type(error).__name__}: {error}"
    if verdict == "released":
        await ledger.release(pair, owner, fence)
    elif verdict == "failed":
        await ledger.finish(pair, owner, fence, failed=True, detail=detail)
    else:
        await ledger.unsure(pair, owner, fence, f"the start may have gone out ({detail})")
    return PairOutcome(ref, verdict, detail=detail)
