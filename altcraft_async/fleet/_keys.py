"""The Redis keys of the fleet: every key it writes is named here, under one prefix per account.

Keeping the names in one table is what lets the tests assert "no key but the documented ones".
"""

from __future__ import annotations

from .._errors import InvalidRequestError

__all__ = ["PREFIX", "check_name", "rate_key"]

#: Every fleet key starts with this, then the account name.
PREFIX = "altcraft_async:fleet"


def check_name(what: str, value: object) -> str:
    """A non-empty name without the ``:`` and ``{}`` that would let two names share a key."""
    if not isinstance(value, str) or not value or any(c in value for c in ":{}\n"):
        raise InvalidRequestError(
            f"{what} must be a non-empty str without ':', '{{', '}}', got {value!r}"
        )
    return value


def rate_key(account: str) -> str:
    """The account's shared rate schedule: a hash (tat, interval, last_cut), with a TTL."""
    return f"{PREFIX}:{account}:rate"
