"""``client.request``: any endpoint, as an ad-hoc :class:`EndpointSpec` checked before sending.

The SDK models a handful of the platform's endpoints; the rest are reached on the same send
path (auth, format, retries, rate limit, hooks, typed errors) through a spec made per call:
its parameters are the caller's own names passed through unchanged, once checked to be plain
data that the JSON and XML encoders write faithfully, and never the ``token`` (the client
adds it) or ``format`` (the client's).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .._errors import InvalidRequestError
from .._sansio import EndpointSpec, Param

__all__ = ["check_path", "check_plain", "request_spec"]

#: A path segment: what the documented paths are made of (``admin/senders/queue/stats/``).
_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+")
#: A parameter name at any depth: also a valid XML element name.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
#: Names the client writes itself.
_RESERVED = frozenset({"token", "format"})
#: Nesting deeper than this is no API parameter (and would exhaust the encoders' stacks).
_MAX_DEPTH = 32
_INT64 = range(-(2**63), 2**63)


def check_path(path: object) -> str:
    """``path`` is an endpoint path relative to ``/api/v1.1/``, as the docs spell it
    (``databases/list``, ``admin/senders/queue/stats/``): segments of letters, digits, ``_``
    and ``-``, an optional trailing slash; no scheme, host, query, ``..`` or leading ``/``."""
    if not isinstance(path, str) or not path:
        raise InvalidRequestError(f"path must be a non-empty str, got {path!r}")
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith("/"):
        raise InvalidRequestError(
            f"path must be relative to the API root (e.g. 'databases/list'), got {path!r}"
        )
    segments = path.removesuffix("/").split("/")
    if not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise InvalidRequestError(
            "path must be segments of letters, digits, '_' and '-' separated by '/' "
            f"(no '..', query or fragment), got {path!r}"
        )
    return path


def check_plain(params: object) -> dict[str, Any]:
    """``params`` as a dict, checked to be plain data: str keys naming parameters, values
    None, bool, 64-bit int, finite float, str, or lists and mappings of them. ``token`` and
    ``format`` (in any case) are the client's to write."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidRequestError(f"params must be a mapping, got {type(params).__name__}")
    for name in params:
        # any spelling: a server that matches keys without case (Go's encoding/json does)
        # would read a "Token" of the caller's over the client's own
        if isinstance(name, str) and name.casefold() in _RESERVED:
            raise InvalidRequestError(
                f"params must not hold {name!r}: the client sends its own (the token from "
                "the client's configuration, the format it was made with)"
            )
    _check_value("params", params, 0)
    return dict(params)


def _check_value(where: str, value: object, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidRequestError(f"{where}: nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if value not in _INT64:
            raise InvalidRequestError(f"{where}: {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequestError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not _NAME.fullmatch(key):
                raise InvalidRequestError(
                    f"{where}: key {key!r} is not a parameter name (letters, digits, '_', "
                    "'.', '-', not starting with a digit)"
                )
            _check_value(f"{where}[{key!r}]", item, depth + 1)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(f"{where}[{index}]", item, depth + 1)
        return
    raise InvalidRequestError(
        f"{where}: {type(value).__name__} is not plain data (None, bool, int, float, str, "
        "list or mapping)"
    )


def _as_given(name: str, wire: str, value: Any) -> Mapping[str, Any]:
    """A passed-through parameter: already checked by :func:`check_plain`."""
    return {wire: value}


def request_spec(
    path: str,
    params: Mapping[str, Any],
    *,
    response: Any,
    admin: bool,
    starts_task: bool,
) -> EndpointSpec:
    """The spec of one ``client.request``: ``params``' names as they are, none required.
    Its name (in errors, events and log lines) is the path with dots: ``databases.list``."""
    return EndpointSpec(
        name=path.removesuffix("/").replace("/", "."),
        path=path,
        params=tuple(Param(name, name, _as_given, required=False) for name in params),
        response=response,
        starts_task=starts_task,
        admin=admin,
    )
