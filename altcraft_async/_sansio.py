"""Requests and replies without I/O: endpoint specs in, bytes out; bytes in, models out.

Each endpoint is one declarative :class:`EndpointSpec` (defined in ``api/``): its documented
path, the table mapping explicit Python parameter names to the wire's drifting names (``list_id``
here, ``db_id`` there), the reply model, and whether a retry is safe. :func:`build_request`
validates arguments and raises :class:`InvalidRequestError` before anything is sent;
:func:`decode_reply` turns ``(status, headers, body)`` into the model or the right error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import Factory, field, frozen

from ._codec import (
    CONTENT_TYPES,
    Format,
    encode,
    excerpt,
    json_object_or_none,
    parse,
    structure,
    without_bom,
)
from ._errors import DecodeError, HTTPStatusError, InvalidRequestError, api_error_for
from ._secret import HiddenStr, Secret
from ._xmlread import UNUSUAL, read_reply
from .models import Feedback, Match
from .models._checks import non_empty_text, positive_id

__all__ = [
    "API_PREFIX",
    "Auth",
    "EndpointSpec",
    "Param",
    "PreparedRequest",
    "build_request",
    "choice_param",
    "decode_reply",
    "feedback_param",
    "id_param",
    "match_param",
    "str_param",
]

API_PREFIX = "/api/v1.1/"

#: A validator turns one Python argument into wire fields (usually one), or raises.
WireFields = Callable[[str, str, Any], Mapping[str, Any]]


@frozen
class Param:
    """One Python parameter of an endpoint and how it goes on the wire."""

    name: str
    wire: str
    to_wire: WireFields
    required: bool = True


@frozen
class EndpointSpec:
    """Everything needed to call one endpoint, as data."""

    name: str
    path: str
    params: tuple[Param, ...]
    response: Any
    starts_task: bool = False
    admin: bool = False
    #: Derived once from ``params`` and ``path``: the argument names and the URL path.
    names: frozenset[str] = field(
        init=False, default=Factory(lambda self: frozenset(p.name for p in self.params), True)
    )
    url_path: str = field(init=False, default=Factory(lambda self: API_PREFIX + self.path, True))


@frozen
class PreparedRequest:
    """What goes on the wire. ``body`` holds the token: never log or repr it."""

    endpoint: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        return f"PreparedRequest(endpoint={self.endpoint!r}, path={self.path!r}, body=<hidden>)"


#: Ids are 64-bit on the platform (and JSON encoding refuses larger ints).
def _positive_int(name: str, wire: str, value: Any) -> Mapping[str, Any]:
    return {wire: positive_id(name, value)}


def _text(name: str, wire: str, value: Any) -> Mapping[str, Any]:
    return {wire: non_empty_text(name, value)}


def _match(name: str, wire: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Match):
        raise InvalidRequestError(
            f"{name} must be a Match (e.g. Match.email(...)), got {type(value).__name__}"
        )
    return value.wire_params()


def _feedback(name: str, wire: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Feedback):
        raise InvalidRequestError(f"{name} must be a Feedback, got {type(value).__name__}")
    return {wire: {"type": value.type, "url": value.url}}


def choice_param(name: str, wire: str, choices: tuple[str, ...], *, required: bool = True) -> Param:
    """A string from a fixed set of values."""

    def to_wire(name: str, wire: str, value: Any) -> Mapping[str, Any]:
        if value not in choices:
            raise InvalidRequestError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        return {wire: value}

    return Param(name, wire, to_wire, required)


def id_param(name: str, wire: str, *, required: bool = True) -> Param:
    """A positive integer id."""
    return Param(name, wire, _positive_int, required)


def str_param(name: str, wire: str, *, required: bool = True) -> Param:
    """A non-empty string."""
    return Param(name, wire, _text, required)


def match_param(name: str = "match") -> Param:
    """A :class:`Match`, which expands into ``matching`` and its fields."""
    return Param(name, "matching", _match)


def feedback_param(name: str = "feedback") -> Param:
    """An optional :class:`Feedback` webhook target."""
    return Param(name, "feedback", _feedback, required=False)


class Auth:
    """How one token goes on the wire in one format, made once per client: in the body as a
    :class:`Secret` (the encoder reveals it) or in an ``Authorization: Bearer`` header held as
    a :class:`HiddenStr`. No repr of it, of the request document or of the headers shows it."""

    __slots__ = ("body_token", "headers")

    def __init__(self, token: Secret, fmt: Format, *, bearer: bool = False) -> None:
        #: The token of the body, None when it goes in the header.
        self.body_token: Secret | None = None if bearer else token
        self.headers: Mapping[str, str] = (
            {**_HEADERS[fmt], "Authorization": HiddenStr("Bearer " + token.reveal())}
            if bearer
            else _HEADERS[fmt]
        )

    def __repr__(self) -> str:
        return f"Auth({'body' if self.body_token is not None else 'bearer'})"


def build_request(
    spec: EndpointSpec,
    args: Mapping[str, Any],
    *,
    token: Auth | Secret | str,
    fmt: Format,
    bearer: bool = False,
) -> PreparedRequest:
    """Validate ``args`` against ``spec`` and encode the request; nothing here does I/O.

    Arguments set to None count as absent. ``token`` is the client's :class:`Auth` for
    ``fmt`` (``bearer`` is then its own), or a bare token that goes in the body as
    documented, or in an ``Authorization: Bearer`` header when ``bearer`` is set.
    """
    auth = token if type(token) is Auth else _auth_of(spec, token, fmt, bearer)
    if not spec.names.issuperset(args):
        unknown = [name for name in args if name not in spec.names]
        raise InvalidRequestError(f"{spec.name}: unknown argument(s) {', '.join(unknown)}")
    # the document holds the token as a Secret: its repr, and this frame's, never show it
    token_field = auth.body_token
    document: dict[str, Any] = {} if token_field is None else {"token": token_field}
    for param in spec.params:
        value = args.get(param.name)
        if value is None:
            if param.required:
                raise InvalidRequestError(f"{spec.name}: {param.name} is required")
            continue
        document.update(param.to_wire(param.name, param.wire, value))
    document["format"] = fmt
    return PreparedRequest(spec.name, spec.url_path, auth.headers, encode(document, fmt))


def _auth_of(spec: EndpointSpec, token: Any, fmt: Format, bearer: bool) -> Auth:
    """The :class:`Auth` of a bare token (the client makes its own once)."""
    if isinstance(token, str):
        token = Secret(token)
    if not isinstance(token, Secret) or not isinstance(token.reveal(), str) or not token.reveal():
        raise InvalidRequestError(f"{spec.name}: a non-empty token is required")
    return Auth(token, fmt, bearer=bearer)


#: The headers of a request in each format, shared by every request: typed read-only, and a
#: plain dict because aiohttp copies a dict faster than any other mapping.
_HEADERS: Mapping[str, Mapping[str, str]] = {
    fmt: {"Content-Type": kind, "Accept": kind} for fmt, kind in CONTENT_TYPES.items()
}


def decode_reply(
    spec: EndpointSpec,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    fmt: Format,
) -> Any:
    """Decode a reply into ``spec.response`` or raise the matching error.

    The envelope's ``error`` decides first, whatever the HTTP status (the platform may send
    errors with HTTP 200). A non-2xx reply without a readable envelope is an
    :class:`HTTPStatusError`; a 2xx reply that is not the documented shape a :class:`DecodeError`.
    A reply in the other format than the one asked for (a JSON error to an XML request, say) is
    still read, so its error code and text are not lost.
    """
    ok_status = 200 <= status < 300
    if ok_status and fmt == "json":  # the usual reply: a JSON object with error 0
        envelope = json_object_or_none(body)
        if envelope is not None and type(code := envelope.get("error")) is int and code == 0:
            data = envelope.get("data")
            return structure(data, spec.response, fmt, endpoint=spec.name, body=body)
        # anything else, exactly as before (a BOM, an error, another format, no envelope)
    elif ok_status:  # the usual XML reply, read straight from its elements
        result = read_reply(body, spec.response)
        if result is not UNUSUAL:
            return result
    try:
        envelope = parse(body, fmt, endpoint=spec.name)
    except DecodeError:
        fallback = _envelope_in_other_format(body, fmt)
        if fallback is None:
            if ok_status:
                raise
            raise _status_error(spec, status, headers, body) from None
        fmt, envelope = fallback
    code = _error_code(envelope.get("error"))
    if code is None:
        if ok_status:
            raise DecodeError(
                "reply has no error code",
                endpoint=spec.name,
                excerpt=excerpt(body),
                transient=False,
            )
        raise _status_error(spec, status, headers, body)
    if code != 0:
        text = envelope.get("error_text")
        raise api_error_for(
            code,
            text if isinstance(text, str) else "",
            endpoint=spec.name,
            http_status=status,
            headers=headers,
        )
    if not ok_status:
        raise _status_error(spec, status, headers, body)
    return structure(envelope.get("data"), spec.response, fmt, endpoint=spec.name, body=body)


def _envelope_in_other_format(body: bytes, fmt: Format) -> tuple[Format, dict[str, Any]] | None:
    """The body read in the other format, if it plainly starts like it (``{`` for JSON, ``<``
    for XML) and holds an envelope; None otherwise (an HTML page is no envelope)."""
    start = without_bom(body).lstrip()[:1]
    other: Format | None = "json" if start == b"{" else "xml" if start == b"<" else None
    if other is None or other == fmt:
        return None
    try:
        envelope = parse(body, other)
    except DecodeError:
        return None
    return (other, envelope) if "error" in envelope else None


def _error_code(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _status_error(
    spec: EndpointSpec, status: int, headers: Mapping[str, str], body: bytes
) -> HTTPStatusError:
    return HTTPStatusError(
        f"{spec.name}: HTTP {status}",
        endpoint=spec.name,
        status=status,
        headers=headers,
        excerpt=excerpt(body),
    )
