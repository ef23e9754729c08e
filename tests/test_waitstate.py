"""The awaiter's state machine as pure logic: table-driven, no event loop, no sockets.

Each row of the decision table is (shared state, this waiter, now) -> the decision. The shared
state is built the way the awaiter builds it, through :class:`PollState`'s transitions, with
explicit times; a waiter is a :class:`Waiter` with its deadline and last look written out.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from altcraft_async import (
    Backoff,
    ClientClosedError,
    HTTPStatusError,
    PermissionDeniedError,
    PollPolicy,
    TaskFailedError,
    TaskStatus,
    TransportError,
)
from altcraft_async._awaiter import PollRegistry
from altcraft_async._waitstate import (
    FOLLOW,
    SLACK,
    Decision,
    Deliver,
    Fail,
    Lead,
    PollSooner,
    PollState,
    TimeOut,
    Waiter,
    decide,
)

TASK = "task-1"
#: Polls 1 s after creation, then 2, 4, 8, 8 ... s after the last poll (a poll's own backoff
#: counts the polls so far); retries of failed polls wait 1, 2, 4 ... s.
STEADY = PollPolicy(
    backoff=Backoff(initial=1.0, factor=2.0, max_interval=8.0, jitter=0.0),
    progress_aware=False,
    min_interval=0.0,
)
#: Like STEADY with half of each delay randomised.
JITTERY = PollPolicy(
    backoff=Backoff(initial=1.0, factor=2.0, max_interval=8.0, jitter=0.5),
    progress_aware=False,
    min_interval=0.0,
)
#: A push safety poller's schedule: every 30 s.
SLOW = PollPolicy(backoff=Backoff(initial=30.0, factor=1.0, max_interval=30.0, jitter=0.0))

PENDING = TaskStatus("pending", 0.0)
RUNNING = TaskStatus("processing", 40.0)
FURTHER = TaskStatus("processing", 60.0)
DONE = TaskStatus("completed", 100.0)
FAILED = TaskStatus("failed", 30.0)

UNAVAILABLE = HTTPStatusError("503", endpoint="tasks.status", status=503)
RESET = TransportError("connection reset", endpoint="tasks.status")
NOT_FOUND = HTTPStatusError("404", endpoint="tasks.status", status=404)
FORBIDDEN = PermissionDeniedError(403, "forbidden", endpoint="tasks.status")
CLOSED = ClientClosedError(f"the client was closed while waiting for task {TASK}")

Step = Callable[[PollState], None]


def polled(at: float, status: TaskStatus) -> Step:
    return lambda state: state.record_status(status, at)


def poll_failed(at: float, error: HTTPStatusError | TransportError | PermissionDeniedError) -> Step:
    return lambda state: state.record_error(error, at)


def leading(poll_at: float) -> Step:
    return lambda state: state.begin_leading(poll_at)


def polling_sooner(state: PollState) -> None:
    state.begin_polling_sooner()


def closed(state: PollState) -> None:
    state.end(CLOSED)


def shared(*steps: Step, created: float = 0.0) -> PollState:
    state = PollState(TASK, created)
    for step in steps:
        step(state)
    return state


def waiter(
    *,
    policy: PollPolicy = STEADY,
    limit: float | None = 60.0,
    deadline: float = 60.0,
    last_look: float = 59.0,
    seen: int = 0,
    last_key: tuple[str, float | None] | None = None,
) -> Waiter:
    return Waiter(policy, limit, deadline, last_look, seen, last_key)


def attempts(count: int) -> PollPolicy:
    return PollPolicy(backoff=STEADY.backoff, progress_aware=False, max_attempts=count)


KEY_RUNNING = ("processing", 40.0)

# fmt: off
ROWS = [
    # -- Deliver: news first ----------------------------------------------------------------
    pytest.param(shared(polled(1.0, PENDING)), waiter(), 1.0, 0.0,
                 Deliver(PENDING, 1), id="the first status is shown"),
    pytest.param(shared(polled(1.0, RUNNING), polled(3.0, RUNNING)),
                 waiter(seen=1, last_key=KEY_RUNNING), 3.0, 0.0,
                 Deliver(RUNNING, 2, show=False), id="a repeat is noted, not shown"),
    pytest.param(shared(polled(1.0, RUNNING), polled(3.0, FURTHER)),
                 waiter(seen=1, last_key=KEY_RUNNING), 3.0, 0.0,
                 Deliver(FURTHER, 2), id="progress moved: shown"),
    pytest.param(shared(polled(1.0, RUNNING), polled(3.0, FURTHER)), waiter(), 3.0, 0.0,
                 Deliver(FURTHER, 2), id="a waiter that missed polls sees the latest only"),
    pytest.param(shared(polled(1.0, DONE)), waiter(last_key=("completed", 100.0)), 1.0, 0.0,
                 Deliver(DONE, 1), id="success is always shown"),
    pytest.param(shared(polled(1.0, RUNNING), closed), waiter(), 1.0, 0.0,
                 Deliver(RUNNING, 1), id="error set while a newer status is unseen: news first"),
    pytest.param(shared(polled(1.0, DONE)), waiter(deadline=0.5, last_look=0.4), 1.0, 0.0,
                 Deliver(DONE, 1), id="news is delivered past the deadline"),
    pytest.param(shared(polled(1.0, RUNNING)), waiter(policy=attempts(1)), 1.0, 0.0,
                 Deliver(RUNNING, 1), id="news is delivered at max_attempts"),
    # -- Fail ---------------------------------------------------------------------------------
    pytest.param(shared(polled(1.0, RUNNING), closed), waiter(seen=1), 1.0, 0.0,
                 Fail(CLOSED), id="closed: every wait ends"),
    pytest.param(shared(poll_failed(1.0, NOT_FOUND)), waiter(), 1.0, 0.0,
                 Fail(NOT_FOUND), id="a 404 ends the wait"),
    pytest.param(shared(poll_failed(1.0, FORBIDDEN)), waiter(), 1.0, 0.0,
                 Fail(FORBIDDEN), id="an API error ends the wait"),
    pytest.param(shared(poll_failed(1.0, FORBIDDEN)), waiter(deadline=0.5), 1.0, 0.0,
                 Fail(FORBIDDEN), id="the error wins over the deadline"),
    # -- TimeOut -------------------------------------------------------------------------------
    pytest.param(shared(polled(1.0, RUNNING)), waiter(seen=1, deadline=5.0), 5.0, 0.0,
                 TimeOut(60.0, RUNNING, None), id="deadline exactly now"),
    pytest.param(shared(), waiter(limit=None, deadline=math.inf, last_look=math.inf,
                                  policy=attempts(2)), 1e9, 0.0,
                 Lead(1.0), id="no deadline: never times out"),
    pytest.param(shared(polled(1.0, RUNNING), polled(3.0, RUNNING)),
                 waiter(policy=attempts(2), seen=2, limit=None), 3.0, 0.0,
                 TimeOut(None, RUNNING, None), id="max_attempts reached"),
    pytest.param(shared(polled(1.0, RUNNING), poll_failed(3.0, RESET), poll_failed(4.0, RESET)),
                 waiter(policy=attempts(2), seen=1), 4.0, 0.0,
                 Lead(6.0), id="failed polls are no attempts"),
    pytest.param(shared(polled(1.0, RUNNING), poll_failed(3.0, UNAVAILABLE)),
                 waiter(seen=1, deadline=3.5), 3.5, 0.0,
                 TimeOut(60.0, RUNNING, UNAVAILABLE), id="the last poll error is the cause"),
    pytest.param(shared(poll_failed(1.0, UNAVAILABLE), polled(2.0, RUNNING)),
                 waiter(seen=1, deadline=3.0), 3.0, 0.0,
                 TimeOut(60.0, RUNNING, None), id="an answer clears the cause"),
    pytest.param(shared(poll_failed(1.0, UNAVAILABLE)), waiter(deadline=2.0), 2.0, 0.0,
                 TimeOut(60.0, None, UNAVAILABLE), id="timed out without any status"),
    # -- Lead: nobody polls ---------------------------------------------------------------------
    pytest.param(shared(), waiter(), 0.0, 0.0,
                 Lead(1.0), id="first poll: created + first delay"),
    pytest.param(shared(created=-100.0), waiter(), 0.0, 0.0,
                 Lead(-99.0), id="a task created long ago (resumed): due already"),
    pytest.param(shared(polled(1.0, RUNNING)), waiter(seen=1), 1.0, 0.0,
                 Lead(3.0), id="next poll by the backoff"),
    pytest.param(shared(polled(1.0, RUNNING), poll_failed(2.0, UNAVAILABLE)),
                 waiter(seen=1), 2.0, 0.0,
                 Lead(3.0), id="a retryable failure: retry backoff from the failure"),
    pytest.param(shared(polled(1.0, RUNNING), poll_failed(2.0, UNAVAILABLE),
                        poll_failed(3.0, RESET)), waiter(seen=1), 3.0, 0.0,
                 Lead(5.0), id="failures in a row back off further"),
    pytest.param(shared(polled(1.0, RUNNING)),
                 waiter(seen=1, deadline=2.6, last_look=2.5), 1.0, 0.0,
                 Lead(2.5), id="a poll due past the deadline comes at the last look"),
    pytest.param(shared(polled(1.0, RUNNING), polled(2.55, RUNNING)),
                 waiter(seen=2, deadline=2.6, last_look=2.5), 2.55, 0.0,
                 Lead(6.55), id="the last look already taken: no second one"),
    pytest.param(shared(polled(1.0, RUNNING)), waiter(policy=JITTERY, seen=1), 1.0, 0.5,
                 Lead(2.5), id="jitter shortens the leader's delay"),
    # -- PollSooner: the leader is slower than this waiter ------------------------------------
    pytest.param(shared(leading(30.0)), waiter(), 0.0, 0.0,
                 PollSooner(1.0), id="a slow leader: poll on one's own schedule"),
    pytest.param(shared(leading(1.0 + SLACK + 0.001)), waiter(), 0.0, 0.0,
                 PollSooner(1.0), id="due just more than SLACK before the leader"),
    pytest.param(shared(leading(1.0 + SLACK - 0.001)), waiter(), 0.0, 0.0,
                 FOLLOW, id="due just within SLACK of the leader: follow"),
    pytest.param(shared(polled(1.0, RUNNING), leading(31.0)),
                 waiter(seen=1, deadline=2.2, last_look=2.0), 1.0, 0.0,
                 PollSooner(2.0), id="the last look comes before the leader's poll"),
    pytest.param(shared(polled(1.0, RUNNING), leading(3.0 - SLACK)),
                 waiter(policy=JITTERY, seen=1), 1.0, 0.9,
                 FOLLOW, id="sooner is judged without jitter"),
    pytest.param(shared(polled(1.0, RUNNING), leading(31.0)),
                 waiter(policy=JITTERY, seen=1), 1.0, 0.5,
                 PollSooner(2.5), id="the sooner poll itself has jitter"),
    # -- Follow ---------------------------------------------------------------------------------
    pytest.param(shared(leading(1.0)), waiter(policy=SLOW), 0.0, 0.0,
                 FOLLOW, id="the leader polls first: follow"),
    pytest.param(shared(leading(30.0), polling_sooner), waiter(), 0.0, 0.0,
                 FOLLOW, id="someone already polls sooner: follow"),
]
# fmt: on


@pytest.mark.parametrize(("state", "wait", "now", "rand", "expected"), ROWS)
def test_decide(
    state: PollState, wait: Waiter, now: float, rand: float, expected: Decision
) -> None:
    assert decide(state, wait, now, rand) == expected


def test_a_failure_status_fails_the_wait_with_task_failed_error() -> None:
    failed = TaskStatus("failed", 30.0, failure_result={"reason": "quota"})
    decision = decide(shared(polled(1.0, RUNNING), polled(3.0, failed)), waiter(seen=1), 3.0)
    assert isinstance(decision, Fail)
    error = decision.error
    assert isinstance(error, TaskFailedError)
    assert (error.task_id, error.status, error.progress) == (TASK, "failed", 30.0)
    assert error.raw is failed and error.result == {"reason": "quota"}


def test_a_failure_status_fails_even_past_the_deadline_and_after_an_error() -> None:
    state = shared(polled(1.0, FAILED), closed)
    decision = decide(state, waiter(deadline=0.5), 1.0)
    assert isinstance(decision, Fail) and isinstance(decision.error, TaskFailedError)


def test_the_follow_decision_is_one_object() -> None:
    """A parked follower holds no decision of its own (a wait is multiplied by 100k)."""
    first = decide(shared(leading(1.0)), waiter(policy=SLOW), 0.0)
    second = decide(shared(leading(1.0)), waiter(policy=SLOW), 0.0)
    assert first is second is FOLLOW


# --- one wait's own state ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "now", "deadline", "last_look"),
    [
        (600.0, 10.0, 610.0, 609.0),  # a long wait: its last look 1 s before the deadline
        (5.0, 10.0, 15.0, 14.5),  # a short one: in its last tenth
        (None, 10.0, math.inf, math.inf),  # no limit: no deadline, no last look
    ],
)
def test_a_waiter_starts_with_its_deadline_and_last_look(
    limit: float | None, now: float, deadline: float, last_look: float
) -> None:
    wait = Waiter.start(STEADY, limit, now)
    assert (wait.deadline, wait.last_look) == (pytest.approx(deadline), pytest.approx(last_look))
    assert (wait.seen, wait.last_key, wait.limit) == (0, None, limit)


def test_catching_up_notes_the_version_and_what_was_shown() -> None:
    wait = waiter()
    wait.catch_up(Deliver(RUNNING, 1))
    assert (wait.seen, wait.last_key) == (1, KEY_RUNNING)
    wait.catch_up(Deliver(FURTHER, 2, show=False))
    assert (wait.seen, wait.last_key) == (2, KEY_RUNNING)


# --- the shared state's transitions --------------------------------------------------------------


def test_recording_statuses_and_failures() -> None:
    state = PollState(TASK, created=10.0)
    state.record_error(UNAVAILABLE, 11.0)
    state.record_error(RESET, 12.5)
    assert (state.failures, state.last_error, state.last_poll_at) == (2, RESET, 12.5)
    assert (state.version, state.latest, state.error) == (0, None, None)
    state.record_status(RUNNING, 14.0)
    assert (state.failures, state.last_error, state.last_poll_at) == (0, None, 14.0)
    assert (state.version, state.latest, state.observations) == (1, RUNNING, [(4.0, 40.0)])
    state.record_error(NOT_FOUND, 15.0)  # not transient: ends every wait, delays nothing
    assert (state.error, state.failures, state.last_poll_at) == (NOT_FOUND, 0, 14.0)


def test_leading_and_polling_sooner() -> None:
    state = PollState(TASK, created=0.0)
    state.begin_leading(4.0)
    assert (state.leading, state.leader_poll_at) == (True, 4.0)
    state.end_leading()
    assert (state.leading, state.leader_poll_at) == (False, math.inf)
    state.begin_polling_sooner()
    assert state.polling_sooner
    state.end_polling_sooner()
    assert not state.polling_sooner


def test_a_leader_that_leaves_hands_over_to_the_next_waiter() -> None:
    """Two waiters, one schedule: after the leader polled once and left (cancelled, or its
    deadline passed), the follower's next turn leads from the shared observations."""
    state = PollState(TASK, created=0.0)
    leader, follower = waiter(), waiter()
    lead = decide(state, leader, 0.0)
    assert lead == Lead(1.0)
    state.begin_leading(lead.poll_at)
    assert decide(state, follower, 0.0) is FOLLOW
    state.record_status(RUNNING, 1.0)
    state.end_leading()
    assert decide(state, follower, 1.0) == Deliver(RUNNING, 1)
    follower.catch_up(Deliver(RUNNING, 1))
    assert decide(state, follower, 1.0) == Lead(3.0)  # the schedule carries on


@pytest.mark.parametrize(
    ("last_poll", "due", "last_look", "expected"),
    [
        (0.0, 0.5, 1.35, 0.5),  # due before the last look: the schedule stands
        (0.5, 2.5, 1.35, 1.35),  # due past the deadline: brought forward to the last look
        (1.4, 3.4, 1.35, 3.4),  # a poll already looked inside the window: no second look
        (1.2, 1.4, 1.35, 1.35),  # due inside the window: the earlier of the two
        (0.5, 2.5, math.inf, 2.5),  # no deadline: nothing to look before
    ],
)
def test_next_poll_at_brings_a_late_poll_forward(
    last_poll: float, due: float, last_look: float, expected: float
) -> None:
    state = PollState(TASK, created=0.0)
    state.record_status(RUNNING, last_poll)
    policy = PollPolicy(
        backoff=Backoff(initial=due - last_poll, factor=1.0, jitter=0.0), progress_aware=False
    )
    assert state.next_poll_at(policy, 0.0, last_look) == pytest.approx(expected)


# --- the registry --------------------------------------------------------------------------------


def test_the_registry_shares_one_poll_per_task_and_drops_it_with_the_last_waiter() -> None:
    registry = PollRegistry(clock=lambda: 100.0)
    first = registry.join(TASK, created=95.0)
    second = registry.join(TASK, created=99.0)  # the second handle's creation time is ignored
    other = registry.join("task-2", created=99.0)
    assert second is first and first.created == 95.0 and first.waiters == 2
    assert registry.task_ids() == {TASK, "task-2"}
    registry.leave(second)
    assert registry.task_ids() == {TASK, "task-2"}
    registry.leave(first)
    registry.leave(other)
    assert registry.task_ids() == frozenset()
    assert registry.join(TASK, created=100.0) is not first  # a new wait starts afresh
    assert registry.clock() == 100.0


def test_closing_the_registry_ends_every_wait_with_client_closed_error() -> None:
    registry = PollRegistry(clock=lambda: 0.0)
    polls = [registry.join(task_id, created=0.0) for task_id in ("a", "b")]
    polls[0].record_status(RUNNING, 1.0)
    registry.close_all()
    for state in polls:
        decision = decide(state, waiter(seen=state.version), 2.0)
        assert isinstance(decision, Fail) and isinstance(decision.error, ClientClosedError)
        assert state.task_id in str(decision.error)
