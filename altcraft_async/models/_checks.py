"""Argument checks shared by the models and the request builder; each raises
:class:`InvalidRequestError` (a ValueError) naming the argument."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._errors import InvalidRequestError

__all__ = [
    "MAX_ID",
    "check_encodable",
    "check_number",
    "non_empty_text",
    "number_in_range",
    "positive_id",
]

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
    check_encodable(name, text)
    return text


def check_encodable(name: str, text: str) -> None:
    r"""Refuse text that cannot go on the wire as UTF-8 (lone surrogates such as ``"\ud800"``),
    here and not in the encoder, whose error would quote the whole body, token included."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(f"{name} is not valid Unicode text (a lone surrogate)") from None


def check_number(
    name: str,
    value: object,
    *,
    above: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
    integer: bool = False,
    optional: bool = False,
    unbounded: bool = False,
) -> None:
    """``value`` is a number (an int with ``integer``; None too with ``optional``; ``math.inf``
    too with ``unbounded``, for limits where it means "no limit") within the bounds, else an
    InvalidRequestError naming it. NaN and bools are never accepted."""
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and (integer or math.isnan(value)))
        or (value == math.inf and not unbounded)
        or value == -math.inf
    ):
        kind = "an int" if integer else "a number" if unbounded else "a finite number"
        wanted = kind + (" or None" if optional else "")
        raise InvalidRequestError(f"{name} must be {wanted}, got {value!r}")
    if above is not None and not value > above:
        raise InvalidRequestError(f"{name} must be greater than {above}, got {value!r}")
    if at_least is not None and value < at_least:
        raise InvalidRequestError(f"{name} must be at least {at_least}, got {value!r}")
    if at_most is not None and value > at_most:
        raise InvalidRequestError(f"{name} must be at most {at_most}, got {value!r}")


def number_in_range(**bounds: Any) -> Callable[[object, Any, Any], None]:
    """:func:`check_number` as an attrs validator for settings (the field names the value)."""

    def check(instance: object, attribute: Any, value: object) -> None:
        check_number(attribute.name, value, **bounds)

    return check
