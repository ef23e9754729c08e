"""Requests and replies without I/O: endpoint specs in, bytes out; bytes in, models out.

Each endpoint is one declarative :class:`EndpointSpec` (defined in ``api/``): its documented
path, the table mapping explicit Python parameter names to the wire's drifting names (``list_id``
here, ``db_id`` there), the reply model, and whether a retry is safe. :func:`build_request`
validates arguments and raises :class:`InvalidRequestError` before anything is sent;
:func:`decode_reply` turns ``(status, headers, body)`` into the model or the right error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from attrs import Factory, field, frozen

from ._codec import (
    CONTENT_TYPES,
    Format,
    encode,
    excerpt,
    parse,
    structure,
    structure_hook,
    without_bom,
)
from ._errors import DecodeError, HTTPStatusError, InvalidRequestError, api_error_for
from ._secret import HiddenStr, Secret
from ._xmlread import UNUSUAL, read_reply
from .models import Feedback, Match
from .models._checks import MAX_ID, non_empty_text, positive_id

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


#: A spec's arguments checked and encoded as a request body with an Auth's token, in its
#: format; raises InvalidRequestError.
BodyOf = Callable[[Mapping[str, Any], "Auth"], bytes]


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
    #: The structure hook of ``response`` by format, kept at its first reply (a cache)
    decoders: dict[str, Callable[[Any, Any], Any]] = field(
        init=False, eq=False, repr=False, factory=dict
    )
    #: Derived once from ``params``: the function that checks a call's arguments and
    #: encodes its body (see :func:`_encoder_of`).
    encode_body: BodyOf = field(
        init=False,
        eq=False,
        repr=False,
        default=Factory(lambda self: _encoder_of(self), True),
    )


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


#: The expressions reading ``v`` as the validators above do (the usual value inline, the
#: validator itself for anything else): for the generated wire fields.
_INLINE: dict[Any, str] = {
    _positive_int: "v if type(v) is int and 0 < v <= MAX_ID else positive_id({name}, v)",
    # ASCII text always encodes; blank text (or other kinds) goes to the check that says why
    _text: "v if type(v) is str and v.isascii() and v and not v.isspace()"
    " else non_empty_text({name}, v)",
}


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

    __slots__ = ("body_token", "format", "headers", "json_head")

    def __init__(self, token: Secret, fmt: Format, *, bearer: bool = False) -> None:
        self.format: Format = fmt
        #: The token of the body, None when it goes in the header.
        self.body_token: Secret | None = None if bearer else token
        #: A JSON body's start, up to the first argument (the token's field, encoded once);
        #: None for XML, or a token JSON cannot encode (the encoder then says so per call).
        self.json_head: bytes | None = None
        if fmt == "json":
            with contextlib.suppress(TypeError):  # orjson's JSONEncodeError
                self.json_head = (
                    b"{" if bearer else b'{"token":' + orjson.dumps(token.reveal()) + b","
                )
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
    return PreparedRequest(spec.name, spec.url_path, auth.headers, encode_request(spec, args, auth))


def encode_request(spec: EndpointSpec, args: Mapping[str, Any], auth: Auth) -> bytes:
    """The body of a call of ``spec`` with ``args`` in ``auth``'s format (arguments checked
    first: InvalidRequestError, nothing encoded): :attr:`EndpointSpec.encode_body`."""
    return spec.encode_body(args, auth)


def _body(document: dict[str, Any], auth: Auth) -> bytes:
    """The body of a request whose arguments' wire fields are ``document``.

    A JSON body is the token's field, encoded once per :class:`Auth`, then the arguments'
    fields, then the format: the bytes :func:`encode` writes for the whole document, without
    revealing the token on every call. No local here holds the token or the body. (The
    generated encoders do the same inline: :data:`_JSON_BODY`.)"""
    if auth.json_head is not None:
        try:
            middle: bytes | None = orjson.dumps(document)
        except TypeError:  # orjson's JSONEncodeError: encode below says what is wrong
            middle = None
        if middle is not None:
            if len(middle) == 2:  # b"{}"
                return auth.json_head + _JSON_TAIL[1:]
            return auth.json_head + middle[1:-1] + _JSON_TAIL
    return _encoded(document, auth)


def _encoded(fields: dict[str, Any], auth: Auth) -> bytes:
    """The whole document encoded by :func:`encode` (XML, or JSON it refuses to write)."""
    # the document holds the token as a Secret: its repr, and this frame's, never show it
    token_field = auth.body_token
    document: dict[str, Any] = {} if token_field is None else {"token": token_field}
    document.update(fields)
    document["format"] = auth.format
    return encode(document, auth.format)


#: What ends every JSON body: its format (after the comma that follows the last field).
_JSON_TAIL = b',"format":"json"}'
#: :func:`_body`'s code, the end of every generated encoder (a call less per request).
_JSON_BODY = """\
    if auth.json_head is not None:
        try:
            middle = dumps(document)
        except TypeError:
            middle = None
        if middle is not None:
            if len(middle) == 2:
                return auth.json_head + TAIL[1:]
            return auth.json_head + middle[1:-1] + TAIL
    return _encoded(document, auth)"""


def _encoder_by_loop(spec: EndpointSpec) -> BodyOf:
    """The body encoder of any spec, a parameter at a time (what :func:`_encoder_of`
    generates without a loop)."""
    params, names, endpoint = spec.params, spec.names, spec.name

    def encode_body(args: Mapping[str, Any], auth: Auth) -> bytes:
        if not names.issuperset(args):
            _unknown(endpoint, names, args)
        document: dict[str, Any] = {}
        for param in params:
            value = args.get(param.name)
            if value is None:
                if param.required:
                    raise InvalidRequestError(f"{endpoint}: {param.name} is required")
                continue
            document.update(param.to_wire(param.name, param.wire, value))
        return _body(document, auth)

    return encode_body


def _unknown(endpoint: str, names: frozenset[str], args: Mapping[str, Any]) -> None:
    unknown = [name for name in args if name not in names]
    raise InvalidRequestError(f"{endpoint}: unknown argument(s) {', '.join(unknown)}")


def _encoder_of(spec: EndpointSpec) -> BodyOf:
    """A spec's :attr:`EndpointSpec.encode_body`: generated code for the specs whose
    parameters are all ids and texts (the hot calls), the loop for the others."""
    if not all(param.to_wire in _INLINE for param in spec.params):
        return _encoder_by_loop(spec)
    namespace: dict[str, Any] = {
        "names": spec.names,
        "_unknown": _unknown,
        "InvalidRequestError": InvalidRequestError,
        "positive_id": positive_id,
        "non_empty_text": non_empty_text,
        "MAX_ID": MAX_ID,
        "dumps": orjson.dumps,
        "TAIL": _JSON_TAIL,
        "_encoded": _encoded,
    }
    endpoint = spec.name
    lines = [
        "def encode_body(args, auth):",
        "    if not names.issuperset(args):",
        f"        _unknown({endpoint!r}, names, args)",
        "    document = {}",
    ]
    for param in spec.params:
        name, wire = param.name, param.wire
        read = _INLINE[param.to_wire].format(name=repr(name))
        lines.append(f"    v = args.get({name!r})")
        if param.required:
            message = f"{endpoint}: {name} is required"
            lines += ["    if v is None:", f"        raise InvalidRequestError({message!r})"]
            lines.append(f"    document[{wire!r}] = {read}")
        else:
            lines += ["    if v is not None:", f"        document[{wire!r}] = {read}"]
    lines.append(_JSON_BODY)
    exec("\n".join(lines), namespace)  # our own code, made from the spec's parameters
    generated: BodyOf = namespace["encode_body"]
    return generated


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
        try:
            envelope = orjson.loads(body)
        except orjson.JSONDecodeError:
            envelope = None
        if type(envelope) is dict and type(code := envelope.get("error")) is int and code == 0:
            data = envelope.get("data")
            hook = spec.decoders.get(fmt)
            if hook is None:
                hook = spec.decoders[fmt] = structure_hook(spec.response, fmt)
            try:
                return hook(data, spec.response)
            except Exception:  # structure, below, says what is wrong
                pass
            # outside the except block: the hook's error is not kept as context
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
