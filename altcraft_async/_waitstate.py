"""The awaiter's state machine as pure logic (h11 style): state in, one decision out, no I/O.

All waiters on one task id in one client share a :class:`PollState`; each wait has its own
:class:`Waiter`. Every turn of a wait asks :func:`decide` what to do now and gets one of a
closed set of decisions, as data:

========================  =======================================================================
:class:`Deliver`          a poll brought a status this waiter has not seen: yield it (or, when
                          ``show`` is false, only note it: same status and progress as before)
:class:`Fail`             end the wait with ``error`` (a failure status, or a poll error that is
                          not transient, or the client being closed)
:class:`TimeOut`          the deadline passed or ``max_attempts`` polls were made
:class:`Lead`             nobody polls: sleep until ``poll_at`` and poll for every waiter
:class:`PollSooner`       the leader's next poll comes later than this waiter's policy wants:
                          wait for news until ``due`` and poll itself if none came
:class:`Follow`           wait for the leader's news
========================  =======================================================================

The awaiter (``_awaiter``) carries the decision out: it sleeps, sends the status request and
wakes the others. It changes the shared state only through :class:`PollState`'s methods, which
take the time as an argument: the tests drive both with plain numbers.
"""

from __future__ import annotations

import math
from typing import Any, Final

from attrs import define, frozen

from ._errors import AltcraftError, TaskFailedError
from ._poll import Observation, PollPolicy
from ._retry import RetryPolicy
from .models import TaskStatus

__all__ = [
    "FOLLOW",
    "SLACK",
    "Decision",
    "Deliver",
    "Fail",
    "Follow",
    "Lead",
    "PollSooner",
    "PollState",
    "TimeOut",
    "Waiter",
    "decide",
    "failed_error",
    "last_look_window",
]

#: A follower polls on its own schedule only when it is due this much before the leader.
SLACK: Final = 0.05
#: The last look before a deadline lands at most this many seconds, or this share of the
#: whole wait, before it (whichever is less).
_LAST_LOOK = 1.0
_LAST_LOOK_SHARE = 0.1
#: Which poll errors are transient: the same rule as for retrying any read.
_POLL_RETRY = RetryPolicy()


class PollState:
    """What the waiters of one task id share: the polls so far and who polls next.

    Changed only through its methods (the awaiter's one way in), each of which is one
    transition: a poll answered or failed, a waiter taking or leaving the lead, the wait ended
    for everyone.
    """

    __slots__ = (
        "created",
        "error",
        "failures",
        "last_error",
        "last_poll_at",
        "latest",
        "leader_poll_at",
        "leading",
        "observations",
        "polling_sooner",
        "task_id",
        "version",
        "waiters",
    )

    def __init__(self, task_id: str, created: float) -> None:
        self.task_id: str = task_id
        self.created: float = created  # on the awaiter's clock, when the task was created
        self.observations: list[Observation] = []
        self.latest: TaskStatus[Any] | None = None
        self.version: int = 0  # how many statuses were recorded
        self.error: AltcraftError | None = None  # ends every wait on this task
        self.last_error: AltcraftError | None = None  # of the last poll, if it failed
        self.failures: int = 0  # transient poll failures in a row
        self.last_poll_at: float = created
        self.leading: bool = False
        self.leader_poll_at: float = math.inf  # when the leader's next poll is due
        self.polling_sooner: bool = False  # a follower with a faster policy polls for everyone
        self.waiters: int = 0

    def __repr__(self) -> str:
        return (
            f"<PollState {self.task_id} v{self.version} waiters={self.waiters}"
            f" leading={self.leading} failures={self.failures} error={self.error!r}>"
        )

    # -- transitions -------------------------------------------------------------------------

    def record_status(self, status: TaskStatus[Any], now: float) -> None:
        """A poll answered ``status`` at ``now``."""
        self.failures = 0
        self.last_error = None
        self.last_poll_at = now
        self.observations.append((now - self.created, status.progress))
        self.latest = status
        self.version += 1

    def record_error(self, error: AltcraftError, now: float) -> None:
        """A poll failed at ``now``. Only what a read may retry (connection errors, 5xx, 429,
        unreadable replies) delays the next poll; anything else (an API error, an HTTP 4xx such
        as 404, a closed client) ends every wait rather than repeat it until the deadline."""
        if not _POLL_RETRY.should_retry(error, starts_task=False):
            self.error = error
            return
        self.failures += 1
        self.last_error = error
        self.last_poll_at = now

    def end(self, error: AltcraftError) -> None:
        """End every wait on this task with ``error`` (the client is being closed)."""
        self.error = error

    def begin_leading(self, poll_at: float) -> None:
        self.leading = True
        self.leader_poll_at = poll_at

    def end_leading(self) -> None:
        self.leading = False
        self.leader_poll_at = math.inf

    def begin_polling_sooner(self) -> None:
        self.polling_sooner = True

    def end_polling_sooner(self) -> None:
        self.polling_sooner = False

    def join(self) -> None:
        self.waiters += 1

    def leave(self) -> bool:
        """One waiter left; True if it was the last."""
        self.waiters -= 1
        return self.waiters <= 0

    # -- the schedule --------------------------------------------------------------------------

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


@define(weakref_slot=False)
class Waiter:
    """One wait's own state: its policy and deadline, and what it has already seen."""

    policy: PollPolicy
    limit: float | None  # seconds the wait may take (None: no limit), for TaskTimeoutError
    deadline: float  # on the awaiter's clock; inf without a limit
    last_look: float  # the moment of the last look before the deadline (see next_poll_at)
    seen: int = 0  # the PollState.version this waiter has caught up with
    last_key: tuple[str, float | None] | None = None  # (status, progress) last yielded

    @classmethod
    def start(cls, policy: PollPolicy, limit: float | None, now: float) -> Waiter:
        deadline = math.inf if limit is None else now + limit
        return cls(policy, limit, deadline, deadline - last_look_window(limit))

    def catch_up(self, news: Deliver) -> None:
        self.seen = news.version
        if news.show:
            self.last_key = (news.status.status, news.status.progress)


@frozen
class Deliver:
    """A status this waiter has not seen; ``show`` is false for a repeat of the last one."""

    status: TaskStatus[Any]
    version: int
    show: bool = True


@frozen
class Fail:
    error: AltcraftError


@frozen
class TimeOut:
    """Out of time or attempts; ``cause`` is why the last polls failed, if they did."""

    timeout: float | None
    latest: TaskStatus[Any] | None
    cause: AltcraftError | None


@frozen
class Lead:
    poll_at: float


@frozen
class PollSooner:
    due: float


@frozen
class Follow:
    pass


#: The one Follow: a parked follower holds no decision of its own.
FOLLOW: Final = Follow()

Decision = Deliver | Fail | TimeOut | Lead | PollSooner | Follow


def decide(state: PollState, waiter: Waiter, now: float, rand: float = 0.0) -> Decision:
    """What ``waiter`` does next, given what its task's waiters share, at ``now``.

    In this order: news first (a status not yet seen is delivered even if an error or the
    deadline came after it), then an error that ends every wait, then the deadline and
    ``max_attempts``, then the poll: lead it if nobody does, poll sooner if the leader's next
    poll is later than this waiter's own schedule by more than :data:`SLACK`, else follow.
    ``rand`` in [0, 1) is the jitter of the poll a Lead or PollSooner schedules.
    """
    latest = state.latest
    if state.version != waiter.seen and latest is not None:
        if latest.failed:
            return Fail(failed_error(state.task_id, latest))
        show = latest.succeeded or (latest.status, latest.progress) != waiter.last_key
        return Deliver(latest, state.version, show)
    if state.error is not None:
        return Fail(state.error)
    attempts = waiter.policy.max_attempts
    if now >= waiter.deadline or (attempts is not None and len(state.observations) >= attempts):
        return TimeOut(waiter.limit, latest, state.last_error)
    if not state.leading:
        return Lead(state.next_poll_at(waiter.policy, rand, waiter.last_look))
    if (
        not state.polling_sooner
        and state.next_poll_at(waiter.policy, 0.0, waiter.last_look) < state.leader_poll_at - SLACK
    ):
        return PollSooner(state.next_poll_at(waiter.policy, rand, waiter.last_look))
    return FOLLOW


def last_look_window(limit: float | None) -> float:
    """How long before a wait's deadline its last look at the task lands: long enough for a
    status request to come back, short enough that the task had nearly all its time."""
    return 0.0 if limit is None else min(_LAST_LOOK, _LAST_LOOK_SHARE * limit)


def failed_error(task_id: str, status: TaskStatus[Any]) -> TaskFailedError:
    """The error a failure status ends a wait with."""
    return TaskFailedError(
        task_id, status.status, status.progress, raw=status, result=status.failure_result
    )
