"""Refresh tasks: how each one unfolds (:class:`TaskPlan`) and what happened (:class:`TaskRecord`).

A plan says when a task ends and how: at once, on the N-th status poll, after T virtual
seconds, never, or with a failure status. Time-based plans end "by themselves": a timer on the
server clock finishes them even if nobody polls, so a feedback webhook fires on time.

``after_polls(n)``: polls 1..n answer a running status and the task becomes done right after
the n-th poll is answered, so poll n+1 is the first to see the terminal status
(``after_polls(0)`` is :meth:`TaskPlan.immediate`).

Progress rises with the plan's own notion of elapsed work (time for ``after_seconds``, polls for
``after_polls``, a slow creep towards 99 for ``never``) plus a little seeded noise, is monotone,
stays at most 99 while running and is 100 once completed; a failed task keeps its last progress.
The first non-terminal status (``pending``) is shown while progress is 0, later ones after.

What a poll tells is a :class:`StatusView`: the status, progress and result as the fake's state
has them, plus whether the task is running, succeeded or failed, so that a dialect can render it
(``success``, ``null`` results...) without guessing from the status text.

Each record keeps the server-clock times benchmarks need: creation, when the task became done,
every poll, and when the terminal status was first served (``notice_latency`` is the delay
between the last two). A task is *in flight* from creation until its terminal status is first
served.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from typing import Any, Literal

from attrs import define, evolve, field, frozen

from ._clock import Clock, Timer

__all__ = [
    "PlanSource",
    "StatusView",
    "TaskBook",
    "TaskKind",
    "TaskPlan",
    "TaskRecord",
    "TaskState",
]

#: The name of a kind of refresh task (``segment``, ``resource``, ``database``): a key of the
#: fake's kinds table (``_endpoints.TASK_KINDS``), which says how each one starts and ends.
TaskKind = str
TaskState = Literal["running", "succeeded", "failed"]
#: How progress of a ``never`` plan creeps towards 99: 1 - exp(-t / this) (virtual seconds).
_NEVER_TIME_CONSTANT = 30.0
_NOISE = 3.0


@frozen
class TaskPlan:
    """How a task unfolds; build one with the class methods."""

    polls: int | None = None
    seconds: float | None = None
    terminal: str = "completed"
    succeeds: bool = True
    running: tuple[str, ...] = ("pending", "processing")

    def __attrs_post_init__(self) -> None:
        if self.polls is not None and self.seconds is not None:
            raise ValueError("a plan ends after polls or after seconds, not both")
        if (self.polls or 0) < 0 or (self.seconds or 0) < 0:
            raise ValueError("polls and seconds must be >= 0")
        if not self.running:
            raise ValueError("a plan needs at least one running status")

    @classmethod
    def immediate(cls) -> TaskPlan:
        """Done when created: the first poll sees the terminal status."""
        return cls(polls=0)

    @classmethod
    def after_polls(cls, polls: int) -> TaskPlan:
        """Done right after the ``polls``-th status poll has been answered."""
        return cls(polls=polls)

    @classmethod
    def after_seconds(cls, seconds: float) -> TaskPlan:
        """Done ``seconds`` (server-clock seconds) after creation, polled or not."""
        return cls(seconds=seconds)

    @classmethod
    def never(cls) -> TaskPlan:
        """Runs forever (progress creeps towards 99)."""
        return cls()

    @classmethod
    def fails(
        cls, *, after_polls: int = 0, after_seconds: float | None = None, status: str = "failed"
    ) -> TaskPlan:
        """Ends with ``status`` (``failed``, ``error``, ``cancelled``...) and no result."""
        if after_seconds is not None:
            return cls(seconds=after_seconds, terminal=status, succeeds=False)
        return cls(polls=after_polls, terminal=status, succeeds=False)

    def with_terminal(self, status: str) -> TaskPlan:
        """The same plan ending with another status (e.g. ``success``, as older versions)."""
        return evolve(self, terminal=status)

    def with_running(self, *statuses: str) -> TaskPlan:
        """The same plan with other non-terminal statuses (first one while progress is 0)."""
        return evolve(self, running=statuses)

    def describe(self) -> str:
        if self.polls is not None:
            when = "immediately" if self.polls == 0 else f"after {self.polls} polls"
        elif self.seconds is not None:
            when = f"after {self.seconds:g}s"
        else:
            return "never ends"
        return f"{self.terminal} {when}"


#: A fixed plan, or a callable drawing one per task from the fake's seeded generator.
PlanSource = TaskPlan | Callable[[random.Random], TaskPlan]


@frozen
class StatusView:
    """One answer of ``tasks/status`` (or a feedback payload), before any dialect renders it."""

    status: str
    progress: int
    result: list[dict[str, Any]] | None
    state: TaskState

    def wire(self) -> dict[str, Any]:
        """The ``data`` as the documentation shows it (a result only once there is one)."""
        data: dict[str, Any] = {"status": self.status, "progress": self.progress}
        if self.result is not None:
            data["result"] = self.result
        return data


@define(eq=False)
class TaskRecord:
    """One task and its history (times are server-clock seconds)."""

    task_id: str
    kind: TaskKind
    resource_id: int
    database_id: int
    plan: TaskPlan
    created_at: float
    segment_id: int | None = None
    feedback_url: str | None = None
    feedback_type: str | None = None
    status: str = ""
    progress: int = 0
    done_at: float | None = None
    polls: list[float] = field(factory=list)
    final_served_at: float | None = None
    result: list[dict[str, Any]] | None = None
    noise: random.Random = field(factory=random.Random, repr=False)

    @property
    def done(self) -> bool:
        return self.done_at is not None

    @property
    def in_flight(self) -> bool:
        """Started and its terminal status not yet served to anybody."""
        return self.final_served_at is None

    @property
    def notice_latency(self) -> float | None:
        """Server-clock delay between the task becoming done and a poll first seeing it."""
        if self.done_at is None or self.final_served_at is None:
            return None
        return self.final_served_at - self.done_at

    def view(self) -> StatusView:
        """What ``tasks/status`` tells as of the last update."""
        state: TaskState = (
            "running" if not self.done else "succeeded" if self.plan.succeeds else "failed"
        )
        return StatusView(self.status, self.progress, self.result, state)


@define(eq=False)
class _Override:
    plan: TaskPlan
    kind: TaskKind | None
    segment_id: int | None
    resource_id: int | None
    remaining: int | None

    def matches(self, kind: TaskKind, segment_id: int | None, resource_id: int) -> bool:
        return (
            (self.kind is None or self.kind == kind)
            and (self.segment_id is None or self.segment_id == segment_id)
            and (self.resource_id is None or self.resource_id == resource_id)
        )


class TaskBook:
    """Creates tasks, answers polls, finishes time-based tasks on the clock.

    ``on_done(record)`` runs once when a task reaches its terminal status (the server computes
    the result there and sends the feedback webhook).
    """

    def __init__(
        self,
        clock: Clock,
        default_plan: PlanSource,
        *,
        seed: int,
        on_done: Callable[[TaskRecord], None],
    ) -> None:
        self.clock = clock
        self.default_plan = default_plan
        self.tasks: dict[str, TaskRecord] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._rng = random.Random(seed)
        self._on_done = on_done
        self._overrides: list[_Override] = []
        self._timers: dict[str, Timer] = {}

    def plan_tasks(
        self,
        plan: TaskPlan,
        *,
        kind: TaskKind | None = None,
        segment_id: int | None = None,
        resource_id: int | None = None,
        count: int | None = None,
    ) -> None:
        """Use ``plan`` for the next ``count`` matching starts (all of them when None).

        The latest matching override wins; the default plan applies when none matches.
        """
        if count is not None and count < 1:
            raise ValueError("count must be >= 1 (or None for every matching start)")
        self._overrides.insert(0, _Override(plan, kind, segment_id, resource_id, count))

    def create(
        self,
        kind: TaskKind,
        *,
        resource_id: int,
        database_id: int,
        segment_id: int | None = None,
        feedback_url: str | None = None,
        feedback_type: str | None = None,
    ) -> TaskRecord:
        now = self.clock.now()
        record = TaskRecord(
            task_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            kind=kind,
            resource_id=resource_id,
            database_id=database_id,
            segment_id=segment_id,
            feedback_url=feedback_url,
            feedback_type=feedback_type,
            plan=self._plan_for(kind, segment_id, resource_id),
            created_at=now,
            noise=random.Random(self._rng.getrandbits(64)),
        )
        record.status = record.plan.running[0]
        self.tasks[record.task_id] = record
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        plan = record.plan
        if plan.polls == 0 or plan.seconds == 0:
            self._finish(record, now)
        elif plan.seconds is not None:
            self._timers[record.task_id] = self.clock.call_at(
                now + plan.seconds, lambda: self._finish_due(record)
            )
        return record

    def poll(self, task_id: str) -> StatusView:
        """Answer one ``tasks/status`` call (KeyError for an unknown id)."""
        record = self.tasks[task_id]
        now = self.clock.now()
        record.polls.append(now)
        plan = record.plan
        if not record.done and plan.seconds is not None and now >= record.created_at + plan.seconds:
            self._finish_due(record)
        if record.done:
            if record.final_served_at is None:
                record.final_served_at = now
                self.in_flight -= 1
            return record.view()
        record.progress = self._progress(record, now)
        width = len(plan.running) - 1
        record.status = (
            plan.running[0]
            if record.progress == 0 or width == 0
            else plan.running[1 + (record.progress * width) // 100]
        )
        view = record.view()
        if plan.polls is not None and len(record.polls) >= plan.polls:
            self._finish(record, now)
        return view

    def cancel_timers(self) -> None:
        """Call off every pending finish timer (the server is stopping)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def reset_stats(self) -> None:
        self.max_in_flight = self.in_flight

    def _plan_for(self, kind: TaskKind, segment_id: int | None, resource_id: int) -> TaskPlan:
        for override in self._overrides:
            if override.matches(kind, segment_id, resource_id):
                if override.remaining is not None:
                    override.remaining -= 1
                    if override.remaining == 0:
                        self._overrides.remove(override)
                return override.plan
        if isinstance(self.default_plan, TaskPlan):
            return self.default_plan
        return self.default_plan(self._rng)

    def _progress(self, record: TaskRecord, now: float) -> int:
        plan = record.plan
        elapsed = now - record.created_at
        if plan.seconds is not None:
            fraction = elapsed / plan.seconds
        elif plan.polls is not None:
            fraction = (len(record.polls) - 1) / plan.polls
        else:
            fraction = 1 - math.exp(-elapsed / _NEVER_TIME_CONSTANT)
        raw = fraction * 100 + (record.noise.uniform(-_NOISE, _NOISE) if fraction > 0 else 0)
        return max(record.progress, min(99, int(raw)))

    def _finish_due(self, record: TaskRecord) -> None:
        if not record.done and record.plan.seconds is not None:
            self._finish(record, record.created_at + record.plan.seconds)

    def _finish(self, record: TaskRecord, at: float) -> None:
        timer = self._timers.pop(record.task_id, None)
        if timer is not None:
            timer.cancel()
        record.done_at = at
        record.status = record.plan.terminal
        if record.plan.succeeds:
            record.progress = 100
        self._on_done(record)
