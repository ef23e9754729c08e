"""altcraft_async: an asyncio SDK for the Altcraft Platform API.

Everything public is re-exported here; modules with a leading underscore are private.
"""

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
from .models import (
    ChannelCounters,
    CountersSnapshot,
    CounterStatus,
    Feedback,
    Match,
    NumericProperty,
    RelationInfo,
    ResourceRef,
    SegmentRef,
    SenderQueueStats,
    TaskRef,
    TaskStatus,
)

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AltcraftError",
    "AuthenticationError",
    "BadRequestError",
    "ChannelCounters",
    "ClientClosedError",
    "CounterStatus",
    "CountersSnapshot",
    "DecodeError",
    "Feedback",
    "HTTPStatusError",
    "InvalidRequestError",
    "Match",
    "NumericProperty",
    "PermissionDeniedError",
    "RelationInfo",
    "RequestTimeoutError",
    "ResourceRef",
    "SegmentRef",
    "SenderQueueStats",
    "TariffLimitError",
    "TaskFailedError",
    "TaskRef",
    "TaskStatus",
    "TaskTimeoutError",
    "TransportError",
    "__version__",
]
