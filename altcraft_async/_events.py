"""Request and response events for ``event_hooks``: what an observer sees of each HTTP try.

Hooks are for metrics, tracing and logging that ``logging`` alone does not give: one
:class:`RequestEvent` right before each try is sent (retries and task polls included) and one
:class:`ResponseEvent` once its reply was read or the try failed without one. An event never
holds the request body or the request headers, since the token travels in one of them.

A hook is a callable taking the event; if it returns an awaitable, that is awaited before the
call goes on. An exception raised by a hook is not caught: like a bug in the caller's own code
it ends the call it came from (and in ``refresh_many``, the whole run). A try that is
cancelled while in flight (a ``wait`` deadline, a cancel scope, ``fail_fast``) gets no
response event: hooks are not run on the cancellation path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypedDict

from attrs import field, frozen

from ._errors import AltcraftError, InvalidRequestError

__all__ = ["EventHookMap", "EventHooks", "Hook", "RequestEvent", "ResponseEvent", "emit"]

#: A request or response hook: sync, or async (its awaitable result is awaited).
Hook = Callable[[Any], object]


@frozen
class RequestEvent:
    """A try about to be sent: ``endpoint`` (e.g. ``segments.get_counters``), the ``url``
    (which never holds the token) and ``attempt``, counting from 1."""

    endpoint: str
    url: str
    attempt: int


@frozen
class ResponseEvent:
    """How a try ended: ``elapsed`` seconds after it was sent, with the reply's ``status`` and
    ``headers``, or an ``error`` when it failed (``status`` None if no reply came at all).

    The error is what the try raised before any retry: a :class:`TransportError` (timeouts
    included), or a :class:`DecodeError` for a reply over ``max_response_size``. Replies
    that arrived are reported before they are decoded, so API errors show as a status here.
    """

    endpoint: str
    url: str
    attempt: int
    elapsed: float
    status: int | None = None
    headers: Mapping[str, str] = field(factory=dict, repr=False, eq=False)
    error: AltcraftError | None = None


class EventHookMap(TypedDict, total=False):
    """What ``AltcraftClient(event_hooks=...)`` takes, typed so that a type checker catches a
    response hook given as a request hook, or a misspelt key."""

    request: Sequence[Callable[[RequestEvent], object]]
    response: Sequence[Callable[[ResponseEvent], object]]


@frozen
class EventHooks:
    """The hooks of one client, by kind."""

    request: tuple[Hook, ...] = ()
    response: tuple[Hook, ...] = ()

    @classmethod
    def from_mapping(cls, hooks: EventHookMap | Mapping[str, Sequence[Hook]] | None) -> EventHooks:
        """Check ``{"request": [...], "response": [...]}`` (either key optional)."""
        if hooks is None:
            return cls()
        if not isinstance(hooks, Mapping):
            raise InvalidRequestError(
                f"event_hooks must be a mapping of 'request'/'response' to lists of "
                f"callables, got {type(hooks).__name__}"
            )
        unknown = sorted(map(repr, set(hooks) - {"request", "response"}))
        if unknown:
            raise InvalidRequestError(
                f"event_hooks takes 'request' and 'response', not {', '.join(unknown)}"
            )
        checked: dict[str, tuple[Hook, ...]] = {}
        for kind, callables in hooks.items():
            if not isinstance(callables, list | tuple) or not all(map(callable, callables)):
                raise InvalidRequestError(f"event_hooks[{kind!r}] must be a list of callables")
            checked[kind] = tuple(callables)
        return cls(**checked)


async def emit(hooks: tuple[Hook, ...], event: RequestEvent | ResponseEvent) -> None:
    """Call each hook with ``event`` in order, awaiting those that return an awaitable."""
    for hook in hooks:
        result = hook(event)
        # most hooks are sync and return None: skip the isawaitable protocol checks for them
        if result is not None and inspect.isawaitable(result):
            await result
