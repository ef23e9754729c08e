"""Background tasks: the id a refresh returns and the ``tasks/status`` reply."""

from __future__ import annotations

from attrs import frozen

from .counters import CountersSnapshot

__all__ = ["FAILURE_STATUSES", "SUCCESS_STATUSES", "TaskRef", "TaskStatus"]

#: Statuses that end a task successfully (``success`` is what older platform versions send).
SUCCESS_STATUSES = frozenset({"completed", "success"})
#: Statuses that end a task with a failure (undocumented; the ones seen in the wild).
FAILURE_STATUSES = frozenset({"failed", "error", "cancelled", "canceled"})


@frozen
class TaskRef:
    """The ``data`` of a task-starting call: an opaque task id."""

    task_id: str


@frozen
class TaskStatus:
    """A ``tasks/status`` reply. Any status that is neither success nor failure is running."""

    status: str
    progress: float | None = None
    result: tuple[CountersSnapshot, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status.lower() in SUCCESS_STATUSES

    @property
    def failed(self) -> bool:
        return self.status.lower() in FAILURE_STATUSES

    @property
    def done(self) -> bool:
        """True when the task reached a terminal status, successful or not."""
        return self.succeeded or self.failed
