"""What the fake saw: one record per request, counters per endpoint, concurrency peaks.

Records never hold the token: the parsed parameters are stored without it, and only which kind
of token came (``user``, ``admin``, ``invalid`` or ``missing``) and from where is kept, so a
failing test can print ``fake.requests`` without leaking a credential.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from attrs import define, frozen

__all__ = ["Recorder", "RequestRecord", "Stats", "TokenKind"]

TokenKind = Literal["user", "admin", "invalid", "missing"]


@define
class RequestRecord:
    """One request, filled in as it is served (times are server-clock seconds).

    ``http_status`` is None when no reply was sent (dropped connection); ``error`` is the
    envelope code when an envelope was sent; ``task_id`` is set when the call created a task.
    """

    seq: int
    at: float
    path: str
    call: int
    content_type: str
    params: dict[str, Any] | None = None
    token: TokenKind = "missing"
    token_source: Literal["body", "header"] | None = None
    format: str = "json"
    http_status: int | None = None
    error: int | None = None
    error_text: str | None = None
    fault: str | None = None
    task_id: str | None = None


@frozen
class Stats:
    """A snapshot of the fake's counters."""

    requests: int
    by_endpoint: dict[str, int]
    concurrent: int
    max_concurrent: int
    tasks_started: int
    tasks_in_flight: int
    max_tasks_in_flight: int
    webhooks_sent: int


class Recorder:
    """Request records and per-endpoint call numbers (reset by ``FakeAltcraft.reset``)."""

    def __init__(self) -> None:
        self.requests: list[RequestRecord] = []
        self.calls: Counter[str] = Counter()
        self.concurrent = 0
        self.max_concurrent = 0

    def open(self, at: float, path: str, content_type: str) -> RequestRecord:
        """Start recording a request; its 1-based call number for ``path`` is assigned here."""
        self.calls[path] += 1
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        record = RequestRecord(
            seq=len(self.requests) + 1,
            at=at,
            path=path,
            call=self.calls[path],
            content_type=content_type,
        )
        self.requests.append(record)
        return record

    def close(self) -> None:
        self.concurrent -= 1

    def reset(self) -> None:
        self.requests.clear()
        self.calls.clear()
        self.max_concurrent = self.concurrent
