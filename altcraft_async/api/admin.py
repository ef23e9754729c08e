"""``client.admin``: the administrator API (needs the admin token)."""

from __future__ import annotations

from .._retry import RetryPolicy
from ..models import QueueGroup, SenderQueueStats
from ._base import Caller, read
from ._specs import ADMIN_SENDER_QUEUE_STATS

__all__ = ["AdminAPI"]


class AdminAPI:
    """Administrator endpoints; calls use ``admin_token``."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def sender_queue_stats(
        self,
        *,
        sender_id: int,
        account_id: int | None = None,
        campaign_id: int | None = None,
        isp: str | None = None,
        group: QueueGroup | None = None,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> list[SenderQueueStats]:
        """``POST admin/senders/queue/stats/``: message counts in a sender's queue.

        ``group`` is one of account, account_campaign, isp, total. Raises InvalidRequestError
        (also when the client has no admin token; nothing sent), PermissionDeniedError (403)
        and the other APIError subclasses, TransportError, HTTPStatusError, DecodeError.
        """
        result: list[SenderQueueStats] = await read(
            self._caller,
            ADMIN_SENDER_QUEUE_STATS,
            {
                "sender_id": sender_id,
                "account_id": account_id,
                "campaign_id": campaign_id,
                "isp": isp,
                "group": group,
            },
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
        )
        return result
