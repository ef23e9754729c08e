"""Credentials that no repr shows: what the client keeps of its tokens (stdlib only).

Error trackers render a traceback with the locals of every frame (Sentry's
``include_local_variables``, ``traceback.TracebackException(capture_locals=True)``, rich,
loguru), each local by its ``repr``. So the client keeps each token as a :class:`Secret` from
the first line of its constructor on and hands it down as that object; only the encoder calls
:meth:`Secret.reveal`, inside an expression, when it writes the request body. A token that
must travel as a ``str`` (the ``Authorization`` header that aiohttp writes) is a
:class:`HiddenStr`: a real string whose ``repr`` shows nothing, so the headers mapping that
holds it is safe in any frame, aiohttp's included.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HiddenStr", "Secret"]


class Secret:
    """A token whose ``repr`` and ``str`` are ``Secret('***')``; :meth:`reveal` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The token itself: only for writing it on the wire, never into a local."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled (it would write the token out)")


class HiddenStr(str):
    """A ``str`` whose ``repr`` is ``'***'``: the value is used as it is (aiohttp writes it),
    but a mapping or frame that holds it shows nothing of it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"
