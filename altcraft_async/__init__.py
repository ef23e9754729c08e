"""altcraft_async: an asyncio SDK for the Altcraft Platform API.

Everything public is re-exported here; modules with a leading underscore are private.
"""

from typing import TYPE_CHECKING, Any

from ._awaiter import Task
from ._client import AltcraftClient
from ._errors import (
    AltcraftError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    DecodeError,
    HTTPStatusError,
    InvalidRequestError,
    PermissionDeniedError,
    RequestTimeoutError,
    TariffLimitError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from ._fanout import FanOut, Outcome
from ._poll import Backoff, PollPolicy
from ._retry import RetryPolicy
from ._transport import RateLimiter
from .models import (
    ChannelCounters,
    CountersSnapshot,
    CounterStatus,
    Feedback,
    Match,
    NumericProperty,
    QueueGroup,
    RelationInfo,
    ResourceRef,
    SegmentRef,
    SenderQueueStats,
    TaskRef,
    TaskStatus,
)

if TYPE_CHECKING:
    from ._feedback import FeedbackReceiver

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # FeedbackReceiver needs aiohttp.web; import it only when push is actually used
    if name == "FeedbackReceiver":
        from ._feedback import FeedbackReceiver

        return FeedbackReceiver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "APIError",
    "AltcraftClient",
    "AltcraftError",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "ChannelCounters",
    "ClientClosedError",
    "CounterStatus",
    "CountersSnapshot",
    "DecodeError",
    "FanOut",
    "Feedback",
    "FeedbackReceiver",
    "HTTPStatusError",
    "InvalidRequestError",
    "Match",
    "NumericProperty",
    "Outcome",
    "PermissionDeniedError",
    "PollPolicy",
    "QueueGroup",
    "RateLimiter",
    "RelationInfo",
    "RequestTimeoutError",
    "ResourceRef",
    "RetryPolicy",
    "SegmentRef",
    "SenderQueueStats",
    "TariffLimitError",
    "Task",
    "TaskFailedError",
    "TaskRef",
    "TaskStatus",
    "TaskTimeoutError",
    "TransportError",
    "__version__",
]
