"""Typed models of the Altcraft API: frozen attrs classes that use the wire's field names."""

from .counters import ChannelCounters, CountersSnapshot, CounterStatus
from .refs import DatabaseRef, Feedback, ResourceRef, SegmentRef
from .relations import Match, NumericProperty, RelationInfo
from .senders import QueueGroup, SenderQueueStats
from .tasks import FAILURE_STATUSES, SUCCESS_STATUSES, TaskRef, TaskStatus

__all__ = [
    "FAILURE_STATUSES",
    "SUCCESS_STATUSES",
    "ChannelCounters",
    "CounterStatus",
    "CountersSnapshot",
    "DatabaseRef",
    "Feedback",
    "Match",
    "NumericProperty",
    "QueueGroup",
    "RelationInfo",
    "ResourceRef",
    "SegmentRef",
    "SenderQueueStats",
    "TaskRef",
    "TaskStatus",
]
