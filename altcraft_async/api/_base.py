"""What every namespace needs from the client, as a protocol (imports keep flowing downward)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._awaiter import Task
from .._fanout import FanOut
from .._retry import RetryPolicy
from .._sansio import EndpointSpec
from ..models import CountersSnapshot

if TYPE_CHECKING:
    from .._feedback import PushWaiter

RefT = TypeVar("RefT")


class Caller(Protocol):
    async def call(
        self,
        spec: EndpointSpec,
        args: Mapping[str, Any],
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
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
