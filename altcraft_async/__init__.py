"""altcraft_async: an asyncio SDK for the Altcraft Platform API.

Everything public is re-exported here; modules with a leading underscore are private.
Imports flow downward only::

    _version          __version__ (a leaf: the client's User-Agent and the CLI read it)
    _errors           the exception tree (stdlib only)
    _secret           Secret, HiddenStr: the tokens as objects no repr shows (stdlib only)
    models/           frozen attrs models; _checks: argument checks shared with _sansio
    _codec            bytes <-> plain data (JSON, XML), the cattrs converters (the tolerant
                      reader), to_builtins / from_builtins; its encoder reveals the token
    _xmlread          the usual XML reply read straight from its elements by readers made
                      once per type (the same hooks); anything unusual is left to _codec
    _sansio           endpoint specs -> request bytes; reply bytes -> model or error (no I/O);
                      Auth: how a token goes on the wire, made once per client
    _poll             the poll policy as pure logic (never sleeps)
    _retry            the retry policy as pure logic; retry_target, the one retry driver
                      (tries, pauses, the deadline; clock and sleep passed in)
    _ratelimit        RateLimiter and the RateLimiterProtocol a shared limiter plugs into
    _kinds            TaskKind: what starts a background task and what its result is (data)
    _events           request/response events and the event_hooks that receive them
    _scrub            Scrubber: every escaping of every secret blanked from replies and errors
    _transport        the seam: HTTPRequest -> AsyncTransport.send -> HTTPResponse; the
                      AiohttpTransport, the only user of aiohttp.ClientSession, which maps
                      every aiohttp and OS exception to ours in one function
    _send             SendPath: build -> rate-limit slot -> connection slot -> hooks ->
                      transport -> hooks -> decode -> limiter feedback, under retry_target
    _waitstate        the awaiter's state machine: each turn's decision, a pure function
    _awaiter          Task handles: single-flight polling, deadlines, push/poll race; the
                      client's PollRegistry (shared polls by task id, the clock)
    _fanout           refresh_many: one engine task running a task per refresh, bounded
                      in flight and while starting
    _feedback         FeedbackReceiver (aiohttp.web), imported only when used: matching
                      webhooks to the waits
    _feedback_guard   the receiver's defences: connections bounded in number and time,
                      rejections logged short, escaped and rate-limited
    api/              one module per area: the namespaces' methods, each a signature and one
                      call; _specs: every endpoint and task kind as data; _base: the shared
                      start / wait / fan-out steps
    _client           AltcraftClient: configuration, lifecycle, namespaces; call = build + drive
    cli/              the altcraft-async command line: a table of commands (__init__) over
                      _remote (a real account) and _local (demo, fake-server: load testing/),
                      both over _output (tables, JSON, progress, redaction)
    testing/          FakeAltcraft, MockTransport and the pytest plugin (lazy: the fake loads
                      when a fixture is used); the modules above never import it
"""

import typing as _typing

from ._awaiter import DEFAULT, Task, UseDefault
from ._client import AltcraftClient
from ._codec import from_builtins, to_builtins
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
from ._events import EventHookMap, RequestEvent, ResponseEvent
from ._fanout import Failed, FanOut, Outcome, Succeeded
from ._kinds import TaskKind
from ._poll import Backoff, PollPolicy
from ._ratelimit import RateLimiter, RateLimiterProtocol
from ._retry import RetryPolicy
from ._transport import AiohttpTransport, AsyncTransport, HTTPRequest, HTTPResponse
from ._version import __version__
from .models import (
    ChannelCounters,
    CountersSnapshot,
    CounterStatus,
    DatabaseRef,
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

if _typing.TYPE_CHECKING:
    from ._feedback import FeedbackReceiver


def __getattr__(name: str) -> _typing.Any:
    # FeedbackReceiver needs aiohttp.web; import it only when push is actually used
    if name == "FeedbackReceiver":
        from ._feedback import FeedbackReceiver

        return FeedbackReceiver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT",
    "APIError",
    "AiohttpTransport",
    "AltcraftClient",
    "AltcraftError",
    "AsyncTransport",
    "AuthenticationError",
    "Backoff",
    "BadRequestError",
    "ChannelCounters",
    "ClientClosedError",
    "CounterStatus",
    "CountersSnapshot",
    "DatabaseRef",
    "DecodeError",
    "EventHookMap",
    "Failed",
    "FanOut",
    "Feedback",
    "FeedbackReceiver",
    "HTTPRequest",
    "HTTPResponse",
    "HTTPStatusError",
    "InvalidRequestError",
    "Match",
    "NumericProperty",
    "Outcome",
    "PermissionDeniedError",
    "PollPolicy",
    "QueueGroup",
    "RateLimiter",
    "RateLimiterProtocol",
    "RelationInfo",
    "RequestEvent",
    "RequestTimeoutError",
    "ResourceRef",
    "ResponseEvent",
    "RetryPolicy",
    "SegmentRef",
    "SenderQueueStats",
    "Succeeded",
    "TariffLimitError",
    "Task",
    "TaskFailedError",
    "TaskKind",
    "TaskRef",
    "TaskStatus",
    "TaskTimeoutError",
    "TransportError",
    "UseDefault",
    "__version__",
    "from_builtins",
    "to_builtins",
]
