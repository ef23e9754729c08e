"""The Redis keys of the fleet: every key it writes is named here, under one prefix per account.

Keeping the names in one table is what lets the tests assert "no key but the documented ones".
"""

from __future__ import annotations

from .._errors import InvalidRequestError

__all__ = [
    "PREFIX",
    "check_name",
    "counts_key",
    "in_flight_key",
    "meta_key",
    "pair_key",
    "rate_key",
    "refs_key",
    "unknown_key",
]

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
    """The account's shared rate schedule: a hash (tat, interval, last_cut, granted), with a
    TTL."""
    return f"{PREFIX}:{account}:rate"


def in_flight_key(account: str) -> str:
    """The account's server-side tasks in flight (started, not finished): an integer, TTL."""
    return f"{PREFIX}:{account}:in_flight"


def pair_key(account: str, run: str, pair: str) -> str:
    """One pair of a run in the start ledger: a hash (state, owner, fence, lease, token,
    detail, result, task, since), with the run's TTL. Its name is also the pub/sub channel on
    which the pair's final state is published."""
    return f"{PREFIX}:{account}:run:{run}:pair:{pair}"


def counts_key(account: str, run: str) -> str:
    """A run's counters (started, done, failed, unknown, restarted): a hash, with the run's
    TTL."""
    return f"{PREFIX}:{account}:run:{run}:counts"


def unknown_key(account: str, run: str) -> str:
    """The pairs of a run left ``unknown``: a set, with the run's TTL."""
    return f"{PREFIX}:{account}:run:{run}:unknown"


def meta_key(account: str, run: str) -> str:
    """A run's description: a hash (total, batch_size, created), with the run's TTL."""
    return f"{PREFIX}:{account}:run:{run}:meta"


def refs_key(account: str, run: str) -> str:
    """A run's pairs, in order: a list of pair names, with the run's TTL."""
    return f"{PREFIX}:{account}:run:{run}:refs"
