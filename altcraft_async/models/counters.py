"""Subscription counters of segments and resources (``segments/get_counters``, task results)."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

from ._meta import informational

__all__ = ["ChannelCounters", "CounterStatus", "CountersSnapshot"]


@frozen
class CounterStatus:
    """Profile counts of one channel by subscription status; counters the reply omits are None."""

    all: int | None = None
    subscribed: int | None = None
    subscribed_sendable: int | None = None
    unconfirmed: int | None = None
    unconfirmed_sendable: int | None = None
    unsubscribed: int | None = None
    hardbounced: int | None = None
    complained: int | None = None
    suspended: int | None = None
    invalid: int | None = None


@frozen
class ChannelCounters:
    """Counters of one channel (``email``, ``sms``, ``push`` or a custom channel name)."""

    channel: str
    status: CounterStatus = CounterStatus()


@frozen
class CountersSnapshot:
    """One item of a refresh task's ``result``: the counters as computed at ``updated``.

    ``channels`` are the data; the other fields describe it and are read tolerantly (a value
    the decoder cannot read, such as a malformed timestamp, is left at its default).
    """

    channels: tuple[ChannelCounters, ...] = ()
    in_progress: bool = informational(False)
    list_id: int | None = informational(None)
    resource_id: int | None = informational(None)
    refresh_task_id: str = informational("")
    last_count_time: str = informational("")
    updated: datetime | None = informational(None)

    def channel(self, name: str) -> ChannelCounters | None:
        """The counters of channel ``name``, or None when the snapshot has no such channel."""
        for item in self.channels:
            if item.channel == name:
                return item
        return None
