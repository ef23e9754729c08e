"""What every namespace needs from the client, as a protocol (imports keep flowing downward)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._awaiter import Task, UseDefault, wait_limit
from .._fanout import FanOut
from .._poll import PollPolicy
from .._retry import RetryPolicy
from .._sansio import EndpointSpec
from ..models import CountersSnapshot

if TYPE_CHECKING:
    from .._feedback import PushWaiter

__all__ = ["Caller", "wait_deadline"]

RefT = TypeVar("RefT")


class Caller(Protocol):
    default_poll_policy: PollPolicy

    async def call(
        self,
        spec: EndpointSpec,
        args: Mapping[str, Any],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
    ) -> Any: ...

    def new_task(
        self,
        task_id: str,
        endpoint: str,
        kind: str,
        *,
        created: datetime | None = None,
        push: PushWaiter | None = None,
    ) -> Task: ...

    def fan_out(
        self,
        refs: Iterable[RefT],
        run_one: Callable[[RefT], Awaitable[list[CountersSnapshot]]],
        *,
        concurrency: int,
        fail_fast: bool,
    ) -> FanOut[RefT]: ...


def wait_deadline(
    caller: Caller, timeout: float | UseDefault | None, policy: PollPolicy | None
) -> float | None:
    """The ``time.monotonic()`` deadline of a refresh-and-wait, checked before anything is
    sent: it covers the start request too, not only the polls after it."""
    limit = wait_limit(timeout, policy or caller.default_poll_policy)
    return None if limit is None else time.monotonic() + limit
