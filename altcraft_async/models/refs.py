"""Small values naming what to refresh, and the feedback webhook of resource refreshes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from attrs import field, frozen

from .._errors import InvalidRequestError
from ._checks import positive_id

__all__ = ["DatabaseRef", "Feedback", "ResourceRef", "SegmentRef"]


def _positive_id(instance: object, attribute: Any, value: Any) -> None:
    positive_id(attribute.name, value)


def _optional_positive_id(instance: object, attribute: Any, value: Any) -> None:
    if value is not None:
        _positive_id(instance, attribute, value)


@frozen
class SegmentRef:
    """A segment's counters on one resource; ``database_id`` is needed for dynamic segments."""

    segment_id: int = field(validator=_positive_id)
    resource_id: int = field(validator=_positive_id)
    database_id: int | None = field(default=None, validator=_optional_positive_id)


@frozen
class ResourceRef:
    """A resource's counters in one database."""

    resource_id: int = field(validator=_positive_id)
    database_id: int = field(validator=_positive_id)


@frozen
class DatabaseRef:
    """A database's counters on one resource."""

    database_id: int = field(validator=_positive_id)
    resource_id: int = field(validator=_positive_id)


def _http_url(instance: object, attribute: Any, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidRequestError(f"feedback url must be a str, got {type(value).__name__}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError(f"feedback url must be an absolute http(s) URL, got {value!r}")


@frozen
class Feedback:
    """Where the platform POSTs a resource refresh's statistics when it is done."""

    url: str = field(validator=_http_url)
    type: str = "JSON"

    def __repr__(self) -> str:
        # a receiver's callback URL carries a shared secret in its path: show the host only
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return f"Feedback(url='{parts.scheme}://{host}/...', type={self.type!r})"
