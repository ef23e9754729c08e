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

import os
import signal
from typing import Literal

from attrs import frozen

from .._client import AltcraftClient
from .._errors import APIError, TaskFailedError, TaskTimeoutError, TransportError
from ..models import CountersSnapshot, SegmentRef
from ._ledger import StartLedger

__all__ = ["OutcomeState", "PairOutcome", "pair_id", "run_pair"]

CRASH_ENV = "ALTCRAFT_FLEET_CRASH_AFTER_SEND"

#: ``done`` / ``failed`` / ``unknown`` are final; ``started`` (the wait's slice ended),
#: ``busy`` (another owner holds it), ``full`` (in-flight cap), ``released`` (the start never
#: left), ``lost`` (another claim fenced this owner out) are for a later attempt.
OutcomeState = Literal["done", "failed", "unknown", "started", "busy", "full", "released", "lost"]


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


async def run_pair(
    client: AltcraftClient,
    ledger: StartLedger,
    ref: SegmentRef,
    owner: str,
    *,
    timeout: float | None = None,
) -> PairOutcome:
    """Start ``ref``'s refresh unless the ledger says it was (then resume or report it), and
    wait at most ``timeout`` seconds for its counters."""
    pair = pair_id(ref)
    claim = await ledger.claim(pair, owner)
    if claim.action == "start":
        try:
            task = await client.segments.refresh_counters(
                segment_id=ref.segment_id, resource_id=ref.resource_id, database_id=ref.database_id
            )
        except TransportError as error:
            if not error.sent:
                await ledger.release(pair, owner, claim.fence)
                return PairOutcome(ref, "released", detail=str(error))
            raise  # may have started: the lease runs out and the pair is reported unknown
        except APIError as error:  # refused by the platform: nothing started
            await ledger.finish(pair, owner, claim.fence, failed=True, detail=str(error))
            return PairOutcome(ref, "failed", detail=str(error))
        if os.environ.get(CRASH_ENV) == pair:
            os.kill(os.getpid(), signal.SIGKILL)
        if not await ledger.started(pair, owner, claim.fence, task.resume_token()):
            return PairOutcome(ref, "lost", task_id=task.task_id)
    elif claim.action == "resume" and claim.token is not None:
        task = client.tasks.resume(claim.token)
    else:
        return PairOutcome(ref, claim.action, detail=claim.detail)  # type: ignore[arg-type]
    try:
        result = await task.wait(timeout=timeout)
    except TaskTimeoutError:
        return PairOutcome(ref, "started", task_id=task.task_id)
    except TaskFailedError as error:
        await ledger.finish(pair, owner, claim.fence, failed=True, detail=str(error))
        return PairOutcome(ref, "failed", detail=str(error), task_id=task.task_id)
    if not await ledger.finish(pair, owner, claim.fence):
        return PairOutcome(ref, "lost", result, task_id=task.task_id)
    return PairOutcome(ref, "done", result, task_id=task.task_id)
