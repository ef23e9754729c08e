"""One pair's way through the start ledger: claim, start (or resume), wait, finish.

Nothing new goes on the wire: the start is ``client.segments.refresh_counters``, a resume
``client.tasks.resume(token)``, the wait ``Task.wait``; the ledger decides which, and fences
every write. A wait cut short by ``timeout`` (a slice of a batch) leaves the pair ``started``
for whoever resumes it next.

``$ALTCRAFT_FLEET_CRASH_AFTER_SEND``, when it names a pair, makes this process SIGKILL itself
right after that pair's start reply and before the ledger learns its token: the one window a
crash leaves open, for the tests to prove it is detected (``unknown``) and never restarted.
"""

from __future__ import annotations

import math
import os
import signal
from contextlib import AsyncExitStack
from typing import Literal

import anyio
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
from ._ledger import StartLedger
from ._limiter import RedisRateLimiter

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
) -> PairOutcome:
    """Start ``ref``'s refresh unless the ledger says it was (then resume or report it), and
    wait for its counters; ``timeout`` bounds the whole call (the wait for a rate slot and
    the wait for the task share it) but never cuts a start between its claim and its token.

    ``limiter`` (the client's shared one): take the start's rate slot *before* claiming the
    pair, so the ``sending`` window is one round trip, not a wait in the rate queue (a worker
    killed while it waits must leave nothing ``sending``, or the pair would turn unknown).
    A slot that does not come within ``timeout`` leaves the pair unclaimed (``released``):
    a batch of thousands of pairs queued behind one account's rate must still end its slice
    before its engine's job timeout, or the engine gives the batch up."""
    pair = pair_id(ref)
    deadline = math.inf if timeout is None else anyio.current_time() + timeout
    async with AsyncExitStack() as prepaid:
        if limiter is not None and await ledger.startable(pair):
            with anyio.move_on_after(math.inf if timeout is None else timeout) as queued:
                await prepaid.enter_async_context(limiter.slot())  # the slot, then the claim
            if queued.cancelled_caught:
                return PairOutcome(ref, "released", detail="no rate slot within the slice")
        claim = await ledger.claim(pair, owner)
        if claim.action == "start":
            begun = await _start(client, ledger, pair, ref, owner, claim.fence)
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


async def _start(
    client: AltcraftClient, ledger: StartLedger, pair: str, ref: SegmentRef, owner: str, fence: int
) -> Task | PairOutcome:
    """Send the start the ledger gave ``owner`` and store its resume token (the window)."""
    try:
        task = await client.segments.refresh_counters(
            segment_id=ref.segment_id, resource_id=ref.resource_id, database_id=ref.database_id
        )
    except (TransportError, HTTPStatusError, APIError, DecodeError) as error:
        return await _start_failed(ledger, pair, ref, owner, fence, error)
    if os.environ.get(CRASH_ENV) == pair:
        os.kill(os.getpid(), signal.SIGKILL)
    if not await ledger.started(pair, owner, fence, task.resume_token()):
        return PairOutcome(ref, "lost", task_id=task.task_id)
    return task


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
