"""Background tasks: the id a refresh returns and the ``tasks/status`` reply."""

from __future__ import annotations

from typing import Any, Generic

from attrs import field, frozen
from typing_extensions import TypeVar

from ._meta import informational
from .counters import CountersSnapshot

__all__ = [
    "FAILURE_STATUSES",
    "SUCCESS_STATUSES",
    "CountersResult",
    "ResultT",
    "TaskRef",
    "TaskStatus",
    "normalize_status",
]

#: The result of a counters refresh as a status holds it.
CountersResult = tuple[CountersSnapshot, ...]
#: What a task kind's successful status holds as ``result`` (counters unless said otherwise).
ResultT = TypeVar("ResultT", default=CountersResult)

#: Statuses that end a task successfully (``success`` is what older platform versions send).
SUCCESS_STATUSES = frozenset({"completed", "success"})
#: Statuses that end a task with a failure (undocumented; the ones seen in the wild).
FAILURE_STATUSES = frozenset({"failed", "error", "cancelled", "canceled"})


def normalize_status(status: str) -> str:
    """A status as compared: trimmed and case-folded (``" Completed "`` is ``completed``)."""
    return status.strip().casefold()


#: How each status seen so far ends a task: True success, False failure, None still running.
#: ``done`` is asked several times per poll; a dict hit replaces trim, case-fold and two set
#: lookups. Bounded: a platform inventing a status per reply cannot grow it.
_ENDING: dict[str, bool | None] = {}
_ENDING_LIMIT = 256


def _ending(status: str) -> bool | None:
    try:
        return _ENDING[status]
    except KeyError:
        normal = normalize_status(status)
        ending = (
            True if normal in SUCCESS_STATUSES else False if normal in FAILURE_STATUSES else None
        )
        if len(_ENDING) < _ENDING_LIMIT:
            _ENDING[status] = ending
        return ending


def _non_blank(instance: object, attribute: Any, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


@frozen
class TaskRef:
    """The ``data`` of a task-starting call: an opaque task id (never empty: a reply without
    one is a DecodeError, not a task that cannot be polled)."""

    task_id: str = field(validator=_non_blank)


@frozen
class TaskStatus(Generic[ResultT]):
    """A ``tasks/status`` reply. Any status that is neither success nor failure is running.

    The decoder reads it in two steps: ``status`` (trimmed and case-folded) and ``progress``
    first, then ``result`` only when the task succeeded, as the result type of the task's kind
    (``TaskStatus`` alone is a counters refresh's: a tuple of :class:`CountersSnapshot`). A
    running task's ``result`` is never read and stays empty (``()``, or None for a kind whose
    result is not a sequence); a failed task's is kept as sent, as plain data, in
    ``failure_result`` (it may be null, a reason string or an object) and reaches
    :class:`TaskFailedError`.
    """

    status: str
    progress: float | None = informational(None)
    result: ResultT = ()  # type: ignore[assignment]  # the empty result of the default kind
    failure_result: Any = field(default=None, eq=False, repr=False)

    @property
    def succeeded(self) -> bool:
        return _ending(self.status) is True

    @property
    def failed(self) -> bool:
        return _ending(self.status) is False

    @property
    def done(self) -> bool:
        """True when the task reached a terminal status, successful or not."""
        return _ending(self.status) is not None
