"""Task kinds as data: what starts a background task and what its result is.

A refresh call returns a task id; ``tasks/status`` then reports the task until it is done and
carries its ``result``. What that result is depends on the call that started the task, so a
:class:`TaskKind` names it: the status is decoded as ``TaskStatus[kind.result_type]`` and a
wait hands back ``kind.deliver(status.result)``. Counters are the default kind, and what every
task whose start is unknown (a bare task id) is read as.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic

from attrs import frozen
from typing_extensions import TypeVar

from ._sansio import EndpointSpec
from .models import CountersSnapshot
from .models.tasks import CountersResult

__all__ = ["COUNTERS", "ResultT", "TaskKind", "WaitResultT"]

#: What a kind's successful status holds as ``result``.
ResultT = TypeVar("ResultT", default=CountersResult)
#: What waiting for a task of the kind returns.
WaitResultT = TypeVar("WaitResultT", default=list[CountersSnapshot])


@frozen
class TaskKind(Generic[ResultT, WaitResultT]):
    """A kind of background task.

    - ``name``: short and stable, kept in resume tokens (``"segment"``, ``"resource"``...).
    - ``start``: the spec of the call that starts it (None: not known, e.g. a bare task id).
    - ``result_type``: the type a successful status's ``result`` is decoded as, once, when
      the task succeeds (any type the SDK's converters read: a model, a tuple of models...).
    - ``deliver``: turns that result into what a wait returns (counters: a list).
    """

    name: str
    start: EndpointSpec | None = None
    result_type: Any = CountersResult
    deliver: Callable[[ResultT], WaitResultT] = list  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TaskKind({self.name!r})"


#: Counters of a refresh whose start call is not known (a task id stored elsewhere).
COUNTERS: TaskKind[CountersResult, list[CountersSnapshot]] = TaskKind("")
