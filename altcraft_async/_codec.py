"""Bytes <-> plain data for JSON and XML, and the cattrs converters that type the plain data.

Pure functions, no I/O. Two converters share one set of strict hooks: the JSON one accepts
exactly the JSON types a field declares; the XML one adds lenient hooks, because XML has no
types and no arrays: numbers and booleans arrive as text, a one-item list looks like a single
element, and an empty element (``<props/>``, ``<isp></isp>``) carries no hint of its type. The
target model's field types decide what such values become.

XML is parsed with the C-accelerated ``xml.etree.ElementTree`` (expat), several times faster
than a pure-Python SAX walk. Documents with a DTD are refused before parsing: without a DTD
there are no entity declarations, so no entity expansion (billion laughs, quadratic blowup) and
no external entities can happen.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import NoneType, UnionType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin

import attrs
import orjson

from ._errors import DecodeError, InvalidRequestError
from .models.relations import NumericProperty

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    import cattrs

# cattrs and xml.etree are imported on first use, not at import time: together with building
# the two converters they were a third of the SDK's own import time.

__all__ = [
    "CONTENT_TYPES",
    "MAX_DEPTH",
    "Format",
    "encode",
    "escape_xml",
    "excerpt",
    "parse",
    "structure",
    "unstructure",
]

T = TypeVar("T")

Format = Literal["json", "xml"]
CONTENT_TYPES: dict[str, str] = {"json": "application/json", "xml": "application/xml"}
#: Deepest nesting accepted in a reply; Altcraft's documents are at most 6 levels deep.
MAX_DEPTH = 64

_DTD = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def excerpt(body: bytes, limit: int = 80) -> str:
    """A short, printable start of a reply body for error messages."""
    return body[:limit].decode("utf-8", "replace")


_excerpt = excerpt  # for :func:`structure`, whose ``excerpt`` argument shadows the function


# --- encoding -------------------------------------------------------------------------------


def encode(document: Mapping[str, Any], fmt: Format) -> bytes:
    """Encode a request (or reply) document.

    XML uses the ``<xml>`` root, nested mappings as nested elements, lists as repeated
    elements, booleans as ``true``/``false`` and None as an empty element.
    """
    try:
        if fmt == "json":
            return orjson.dumps(document)
        parts: list[str] = ["<xml>"]
        _xml_fields(document, parts)
        parts.append("</xml>")
        return "".join(parts).encode()
    except (TypeError, UnicodeEncodeError) as exc:
        failure = type(exc).__name__
    # The checks in models/_checks should have refused the value already. The encoder's own
    # error quotes the document, token included: it is replaced, and raised outside the
    # except block so that it is not even kept as __context__.
    raise InvalidRequestError(f"the request cannot be encoded as {fmt}: {failure}")


def escape_xml(text: str) -> str:
    """``xml.sax.saxutils.escape`` without importing ``xml.sax``: ``&``, ``<`` and ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_fields(document: Mapping[str, Any], out: list[str]) -> None:
    for key, value in document.items():
        items = value if isinstance(value, list | tuple) else (value,)
        open_tag = f"<{key}>"
        close_tag = f"</{key}>"
        for item in items:
            out.append(open_tag)
            kind = type(item)
            # Exact int/float/str first (the usual ids and strings): cheaper than the Mapping
            # ABC check; bool is a distinct type, so it still reaches its own branch.
            if kind is int or kind is float:
                out.append(str(item))  # digits, sign, ".", "e", "inf", "nan": nothing to escape
            elif kind is str:
                out.append(escape_xml(item))
            elif isinstance(item, Mapping):
                _xml_fields(item, out)
            elif isinstance(item, bool):
                out.append("true" if item else "false")
            elif item is not None:
                out.append(escape_xml(str(item)))
            out.append(close_tag)


# --- parsing --------------------------------------------------------------------------------


def parse(body: bytes, fmt: Format, *, endpoint: str = "") -> dict[str, Any]:
    """Parse a reply (or request) body into plain data: a dict at the top.

    XML elements become dicts (repeated children become lists), text stays text and empty
    elements become None; the typing is left to :func:`structure`. Raises :class:`DecodeError`.
    """
    if fmt == "json":
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(
                f"invalid JSON: {exc}", endpoint=endpoint, excerpt=excerpt(body)
            ) from None
    else:
        document = _parse_xml(body, endpoint)
    if not isinstance(document, dict):
        raise DecodeError(
            f"expected an object, got {type(document).__name__}",
            endpoint=endpoint,
            excerpt=excerpt(body),
            transient=False,
        )
    return document


def _parse_xml(body: bytes, endpoint: str) -> dict[str, Any] | None:
    body = body.lstrip()
    # UTF-16/32 bodies always hold NUL bytes (UTF-8 XML never does): refusing them keeps the
    # DTD check below honest, since it can only see an ASCII-compatible ``<!DOCTYPE``.
    if b"\x00" in body:
        raise DecodeError(
            "XML that is not UTF-8 is refused",
            endpoint=endpoint,
            excerpt=excerpt(body),
            transient=False,
        )
    if _DTD.search(body):
        raise DecodeError(
            "XML with a DTD is refused", endpoint=endpoint, excerpt=excerpt(body), transient=False
        )
    import xml.etree.ElementTree as ET  # lazy: see the imports above

    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        message = f"invalid XML: {exc}"
        raise DecodeError(message, endpoint=endpoint, excerpt=excerpt(body)) from None
    try:
        plain = _element(root, 0)
    except _TooDeep:
        raise DecodeError(
            f"XML nested deeper than {MAX_DEPTH} levels",
            endpoint=endpoint,
            excerpt=excerpt(body),
            transient=False,
        ) from None
    return plain if isinstance(plain, dict) else None


class _TooDeep(Exception):
    """Raised by :func:`_element` past ``MAX_DEPTH``; turned into a DecodeError with an excerpt."""


def _element(element: ET.Element, depth: int) -> Any:
    """Plain data of ``element`` (at ``depth``, the root being 0); deeper than MAX_DEPTH raises.

    Repeated children become a list (no other value here is a list, so a list always means
    repetition); a leaf's text is kept as sent, and blank text counts as empty (None).
    """
    if len(element) == 0:
        return _leaf(element.text)
    if depth >= MAX_DEPTH:  # its children would be too deep
        raise _TooDeep
    result: dict[str, Any] = {}
    for child in element:
        # a leaf (most elements) is read inline to save a call
        value = _element(child, depth + 1) if len(child) else _leaf(child.text)
        key = child.tag
        if key in result:
            previous = result[key]
            if isinstance(previous, list):
                previous.append(value)
            else:
                result[key] = [previous, value]
        else:
            result[key] = value
    return result


def _leaf(text: str | None) -> str | None:
    """A leaf's text as sent; None when the element is empty or blank."""
    return text if text and not text.isspace() else None


# --- typing ---------------------------------------------------------------------------------


def _fail(value: object, kind: str) -> ValueError:
    return ValueError(f"expected {kind}, got {type(value).__name__} {str(value)[:40]!r}")


def _strict_int(value: Any, _: type) -> int:
    if type(value) is int:
        return value
    raise _fail(value, "an integer")


def _strict_float(value: Any, _: type) -> float:
    if type(value) in (int, float):
        return float(value)
    raise _fail(value, "a number")


def _strict_str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    raise _fail(value, "a string")


def _strict_bool(value: Any, _: type) -> bool:
    if type(value) is bool:
        return value
    raise _fail(value, "a boolean")


def _datetime(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise _fail(value, "an ISO 8601 timestamp")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _props(value: Any, _: type) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(value, "an object")
    return {key: _prop(item) for key, item in value.items()}


def _prop(value: Any) -> Any:
    if isinstance(value, dict) and "sum" in value:
        top = value.get("top")
        total = value["sum"]
        if isinstance(total, str):  # XML: whole numbers stay int, as JSON has them
            total = int(total) if _XML_INT.fullmatch(total) else float(total)
        if type(total) not in (int, float):
            raise _fail(total, "a number")
        return NumericProperty(top=top if isinstance(top, dict) else {}, sum=total)
    return value


def _is_props(tp: Any) -> bool:
    args = get_args(tp)
    return (
        get_origin(tp) in (Mapping, dict)
        and len(args) == 2
        and NumericProperty in get_args(args[1])
    )


def _is_sequence(tp: Any) -> bool:
    return get_origin(tp) in (list, tuple)


def _sequence_hook(converter: cattrs.Converter, lenient: bool) -> Callable[[Any], Any]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        item_type = get_args(tp)[0]
        as_tuple = get_origin(tp) is tuple
        item_hook = converter.get_structure_hook(item_type)

        def hook(value: Any, _: Any) -> Any:
            if not isinstance(value, list):
                if lenient and value is None:
                    value = []
                elif lenient and isinstance(value, dict | str):
                    value = [value]
                else:
                    raise _fail(value, "a list")
            items = [item_hook(item, item_type) for item in value]
            return tuple(items) if as_tuple else items

        return hook

    return factory


_XML_INT = re.compile(r"[+-]?[0-9]+")
_XML_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _lenient_int(value: Any, _: type) -> int:
    if type(value) is int:
        return value
    # Plain ASCII digits (the usual case) skip the regex; ``isdigit`` alone would also accept
    # other Unicode digits, hence ``isascii``.
    if isinstance(value, str) and (
        (value.isascii() and value.isdigit()) or _XML_INT.fullmatch(value)
    ):
        return int(value)
    raise _fail(value, "an integer")


def _lenient_float(value: Any, _: type) -> float:
    if type(value) in (int, float):
        return float(value)
    if isinstance(value, str) and _XML_FLOAT.fullmatch(value):
        return float(value)
    raise _fail(value, "a number")


def _lenient_str(value: Any, _: type) -> str:
    if value is None:
        return ""
    return _strict_str(value, str)


_XML_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _lenient_bool(value: Any, _: type) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, str) and value.lower() in _XML_BOOLS:
        return _XML_BOOLS[value.lower()]
    raise _fail(value, "a boolean")


def _is_optional(tp: Any) -> bool:
    args = get_args(tp)
    return len(args) == 2 and NoneType in args and get_origin(tp) in (Union, UnionType)


def _optional_hook(converter: cattrs.Converter) -> Callable[[Any], Any]:
    """``X | None``: None stays None, anything else goes to X's hook, resolved once.

    Same result as cattrs's own optional handling, which looks X's hook up on every value.
    """

    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        inner = get_args(tp)[0] if get_args(tp)[1] is NoneType else get_args(tp)[1]
        inner_hook = converter.get_structure_hook(inner)

        def hook(value: Any, _: Any) -> Any:
            return None if value is None else inner_hook(value, inner)

        return hook

    return factory


def _model_hook(converter: cattrs.Converter, lenient: bool) -> Callable[[Any], Any]:
    """Structure attrs models from dicts only; in XML an empty element is an empty model."""
    from cattrs.gen import make_dict_structure_fn  # lazy: see the imports above

    def factory(cls: Any) -> Callable[[Any, Any], Any]:
        fields_hook = make_dict_structure_fn(cls, converter)

        def hook(value: Any, _: Any) -> Any:
            if lenient and value is None:
                value = {}
            elif not isinstance(value, dict):
                raise _fail(value, f"an object for {cls.__name__}")
            return fields_hook(value, cls)

        return hook

    return factory


def _lenient_props(value: Any, tp: type) -> dict[str, Any]:
    return {} if value is None else _props(value, tp)


def _make_converter(lenient: bool) -> cattrs.Converter:
    import cattrs  # lazy: see the imports above

    converter = cattrs.Converter(detailed_validation=False)
    converter.register_structure_hook(int, _lenient_int if lenient else _strict_int)
    converter.register_structure_hook(float, _lenient_float if lenient else _strict_float)
    converter.register_structure_hook(str, _lenient_str if lenient else _strict_str)
    converter.register_structure_hook(bool, _lenient_bool if lenient else _strict_bool)
    converter.register_structure_hook(datetime, _datetime)
    converter.register_structure_hook_func(_is_props, _lenient_props if lenient else _props)
    converter.register_structure_hook_factory(_is_sequence, _sequence_hook(converter, lenient))
    converter.register_structure_hook_factory(_is_optional, _optional_hook(converter))
    converter.register_structure_hook_factory(attrs.has, _model_hook(converter, lenient))
    converter.register_unstructure_hook(datetime, _unstructure_datetime)
    converter.register_unstructure_hook(NumericProperty, _unstructure_numeric)
    return converter


def _unstructure_datetime(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _unstructure_numeric(value: NumericProperty) -> dict[str, Any]:
    return {"top": dict(value.top), "sum": value.sum}


#: The converters by format, built on first use (see the imports above).
_CONVERTERS: dict[str, cattrs.Converter] = {}
#: Structure hooks by (format, type): skips the converter's dispatch on every reply.
_HOOKS: dict[tuple[str, Any], Callable[[Any, Any], Any]] = {}


def _converter(fmt: str) -> cattrs.Converter:
    converter = _CONVERTERS.get(fmt)
    if converter is None:
        converter = _CONVERTERS[fmt] = _make_converter(lenient=fmt == "xml")
    return converter


def structure(
    data: Any,
    cls: type[T] | Any,
    fmt: Format,
    *,
    endpoint: str = "",
    excerpt: str = "",
    body: bytes | None = None,
) -> T:
    """Type plain data as ``cls`` (an attrs class or e.g. ``list[Model]``) or raise DecodeError.

    ``excerpt`` (the start of the reply body) goes into the error, as for parse errors; or pass
    the whole ``body`` and the excerpt is only cut from it when there is an error.
    """
    try:
        hook = _HOOKS.get((fmt, cls))
        if hook is None:
            hook = _HOOKS[fmt, cls] = _converter(fmt).get_structure_hook(cls)
        result: T = hook(data, cls)
    except DecodeError:
        raise
    except Exception as exc:  # cattrs raises KeyError/TypeError/ValueError/ClassValidationError
        if body is not None and not excerpt:
            excerpt = _excerpt(body)
        raise DecodeError(
            f"reply data does not fit {getattr(cls, '__name__', cls)}: {type(exc).__name__}: {exc}",
            endpoint=endpoint,
            excerpt=excerpt,
            transient=False,
        ) from None
    return result


def unstructure(obj: Any) -> Any:
    """Plain data of a model, ready for :func:`encode` (datetimes as ISO 8601 with ``Z``)."""
    return _converter("json").unstructure(obj)
