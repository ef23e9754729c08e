"""The public surface: ``altcraft_async.__all__`` is exactly the names users may import."""

from __future__ import annotations

import subprocess
import sys
import types

import altcraft_async

#: DESIGN.md's fixed names plus what was added since; a change here is a change of the API.
PUBLIC = {
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
}


def test_all_is_exactly_the_public_names() -> None:
    assert set(altcraft_async.__all__) == PUBLIC
    assert len(altcraft_async.__all__) == len(PUBLIC)  # no duplicates


def test_every_public_name_resolves_and_nothing_public_is_unlisted() -> None:
    for name in altcraft_async.__all__:
        assert getattr(altcraft_async, name) is not None, name
    public_attributes = {
        name
        for name, value in vars(altcraft_async).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public_attributes <= PUBLIC


def test_importing_the_sdk_does_not_load_the_fake_or_the_push_receiver() -> None:
    code = (
        "import sys, altcraft_async; "
        "print(sorted(m for m in sys.modules if m.startswith(('altcraft_async.testing', "
        "'altcraft_async._feedback', 'aiohttp.web'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_client_shows_its_api_not_its_plumbing() -> None:
    """What the namespaces and the awaiter use of the client is private; what a user calls is
    not (issue: call, fetch_status, new_task, join_poll, leave_poll and fan_out were public)."""
    from altcraft_async import AltcraftClient

    public = {name for name in dir(AltcraftClient) if not name.startswith("_")}
    assert public == {
        "aclose",
        "closed",
        "connections_in_use",
        "polling_tasks",
        "rate_limiter",
        "request",
        "with_options",
    }
    for plumbing in ("call", "fetch_status", "new_task", "join_poll", "leave_poll", "fan_out"):
        assert not hasattr(AltcraftClient, plumbing)
