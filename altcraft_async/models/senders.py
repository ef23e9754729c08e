"""Admin API: sender queue statistics (``admin/senders/queue/stats/``)."""

from __future__ import annotations

from typing import Literal

from attrs import frozen

__all__ = ["QueueGroup", "SenderQueueStats"]

#: How the platform groups the queue rows.
QueueGroup = Literal["account", "account_campaign", "isp", "total"]


@frozen
class SenderQueueStats:
    """One row of a sender's queue: message counts by state."""

    account_id: int | None = None
    campaign_id: int | None = None
    isp: str = ""
    hold: int = 0
    new: int = 0
    proc: int = 0
    retry: int = 0
    total: int = 0
