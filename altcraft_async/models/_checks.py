"""Argument checks shared by the models and the request builder; each raises
:class:`InvalidRequestError` (a ValueError) naming the argument."""

from __future__ import annotations

from typing import Any

from .._errors import InvalidRequestError

__all__ = ["MAX_ID", "non_empty_text", "positive_id"]

#: Ids are 64-bit on the platform (and larger ints would not even encode as JSON).
MAX_ID = 2**63 - 1


def positive_id(name: str, value: Any) -> int:
    """``value`` if it is an int (not a bool) in 1..MAX_ID."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise InvalidRequestError(f"{name} must be positive, got {value}")
    if value > MAX_ID:
        raise InvalidRequestError(f"{name} must fit in 64 bits, got {value}")
    return value


def non_empty_text(name: str, value: Any, *, allow_int: bool = False) -> str:
    """``value`` as text if it is a str (or, with ``allow_int``, an int) that is not blank."""
    kinds = (str, int) if allow_int else (str,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidRequestError(f"{name} must be a str, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise InvalidRequestError(f"{name} must not be empty")
    return text
