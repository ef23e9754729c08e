"""Bytes <-> plain data for JSON and XML, and the cattrs converters that type the plain data.

Pure functions, no I/O. The typing follows the tolerant-reader rules (see the typing section
and DESIGN.md). Two converters share them and differ where the formats do: XML has no types
and no arrays, so integers arrive as text, a one-item list looks like a single element, and an
empty element (``<props/>``, ``<isp></isp>``) carries no hint of its type. The target model's
field types decide what such values become.

XML is parsed with the C-accelerated ``xml.etree.ElementTree`` (expat), several times faster
than a pure-Python SAX walk. Documents with a DTD are refused before parsing: without a DTD
there are no entity declarations, so no entity expansion (billion laughs, quadratic blowup) and
no external entities can happen.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from types import MemberDescriptorType, NoneType, UnionType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, cast, get_args, get_origin

import attrs
import orjson

from ._errors import DecodeError, InvalidRequestError
from ._secret import Secret
from .models._meta import INFORMATIONAL
from .models.relations import NumericProperty
from .models.tasks import (
    FAILURE_STATUSES,
    SUCCESS_STATUSES,
    CountersResult,
    TaskStatus,
    normalize_status,
)

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    import cattrs

# cattrs and xml.etree are imported on first use, not at import time: together with building
# the two converters they were a third of the SDK's own import time.

__all__ = [
    "CONTENT_TYPES",
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "Format",
    "encode",
    "escape_xml",
    "excerpt",
    "from_builtins",
    "parse",
    "structure",
    "structure_hook",
    "to_builtins",
    "unstructure",
    "without_bom",
]

T = TypeVar("T")

Format = Literal["json", "xml"]
CONTENT_TYPES: dict[str, str] = {"json": "application/json", "xml": "application/xml"}
#: Deepest nesting accepted in a reply; Altcraft's documents are at most 6 levels deep.
MAX_DEPTH = 64

_DTD = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_BOM = codecs.BOM_UTF8


def without_bom(body: bytes) -> bytes:
    """``body`` without a UTF-8 byte-order mark (some servers and proxies put one first)."""
    return body[3:] if body.startswith(_BOM) else body


def excerpt(body: bytes, limit: int = 80) -> str:
    """A short, printable start of a reply body for error messages."""
    return body[:limit].decode("utf-8", "replace")


_excerpt = excerpt  # for :func:`structure`, whose ``excerpt`` argument shadows the function


# --- encoding -------------------------------------------------------------------------------


def encode(document: Mapping[str, Any], fmt: Format) -> bytes:
    """Encode a request (or reply) document.

    XML uses the ``<xml>`` root, nested mappings as nested elements, lists as repeated
    elements, booleans as ``true``/``false`` and None as an empty element. A :class:`Secret`
    value (the token) is revealed here, as it is written, and nowhere before.
    """
    try:
        if fmt == "json":
            return orjson.dumps(document, default=_reveal)
        return _xml_document(document)
    except (TypeError, UnicodeEncodeError) as exc:
        failure = type(exc).__name__
    # The checks in models/_checks should have refused the value already. The encoder's own
    # error quotes the document, token included: it is replaced, and raised outside the
    # except block so that it is not even kept as __context__.
    raise InvalidRequestError(f"the request cannot be encoded as {fmt}: {failure}")


def _reveal(value: object) -> str:
    """orjson's hook for what it cannot write itself: a :class:`Secret`, revealed."""
    if type(value) is Secret:
        return value.reveal()
    raise TypeError


def _xml_document(document: Mapping[str, Any]) -> bytes:
    # A frame of its own: the parts (the token among them) never sit in a local of encode,
    # whose frame stays in the traceback of the error it raises.
    parts: list[str] = ["<xml>"]
    _xml_fields(document, parts)
    parts.append("</xml>")
    return "".join(parts).encode()


def escape_xml(text: str) -> str:
    """``xml.sax.saxutils.escape`` without importing ``xml.sax``: ``&``, ``<`` and ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_fields(document: Mapping[str, Any], out: list[str]) -> None:
    for key, value in document.items():
        kind = type(value)
        # One value of an exact int/float/str (the usual ids and strings) is one f-string: no
        # tag built apart, no escaping call when there is nothing to escape. bool is a type of
        # its own, so it still reaches its branch in _xml_items.
        if kind is int or kind is float:  # digits, sign, ".", "e", "inf", "nan": no escaping
            out.append(f"<{key}>{value}</{key}>")
        elif kind is str or kind is Secret:
            text = value if kind is str else value.reveal()
            if "&" in text or "<" in text or ">" in text:
                text = escape_xml(text)
            out.append(f"<{key}>{text}</{key}>")
        else:
            _xml_items(key, value if isinstance(value, list | tuple) else (value,), out)


def _xml_items(key: str, items: Any, out: list[str]) -> None:
    """The elements of ``key``: one per item (a list or tuple repeats the element)."""
    open_tag = f"<{key}>"
    close_tag = f"</{key}>"
    for item in items:
        out.append(open_tag)
        kind = type(item)
        if kind is int or kind is float:
            out.append(str(item))
        elif kind is str:
            out.append(escape_xml(item))
        elif kind is Secret:
            out.append(escape_xml(item.reveal()))
        elif isinstance(item, Mapping):
            _xml_fields(item, out)
        elif isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, list | tuple):  # repeated elements repeat once, no deeper
            raise InvalidRequestError(f"{key}: a list inside a list has no XML form")
        elif item is not None:
            out.append(escape_xml(str(item)))
        out.append(close_tag)


# --- parsing --------------------------------------------------------------------------------


def parse(body: bytes, fmt: Format, *, endpoint: str = "") -> dict[str, Any]:
    """Parse a reply (or request) body into plain data: a dict at the top.

    XML elements become dicts (repeated children become lists), text stays text and empty
    elements become None; the typing is left to :func:`structure`. Raises :class:`DecodeError`.
    """
    body = without_bom(body)
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
        root = ET.fromstring(body) if len(body) <= _WHOLE_XML else _parse_bounded(body)
        plain = _element(root, 0)
    except ET.ParseError as exc:
        message = f"invalid XML: {exc}"
        raise DecodeError(message, endpoint=endpoint, excerpt=excerpt(body)) from None
    except _TooBig as exc:
        raise DecodeError(
            str(exc), endpoint=endpoint, excerpt=excerpt(body), transient=False
        ) from None
    return plain if isinstance(plain, dict) else None


#: Bodies up to this size are parsed whole (the fast path: every real reply); a tree built
#: from them stays within a few MiB whatever its shape. Larger ones are parsed incrementally.
_WHOLE_XML = 64 * 1024
#: Most elements in one reply; Altcraft's largest (a sender's queue by ISP) hold thousands.
MAX_ELEMENTS = 100_000
_FEED = 64 * 1024


def _parse_bounded(body: bytes) -> ET.Element:
    """Parse ``body`` in slices, refusing it as soon as it nests deeper than MAX_DEPTH or holds
    more than MAX_ELEMENTS elements: memory stays bounded and the event loop is not held for
    seconds by a hostile reply (8 MiB of nesting costs ~780 MiB parsed whole)."""
    import xml.etree.ElementTree as ET

    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    root: ET.Element | None = None
    depth = elements = 0
    last = len(body) // _FEED + 1
    for step in range(last + 1):
        if step < last:
            parser.feed(body[step * _FEED : (step + 1) * _FEED])
        else:
            parser.close()  # the end of the document: raises if it is cut short
        for event, element in cast("Iterator[tuple[str, ET.Element]]", parser.read_events()):
            if event == "end":
                depth -= 1
                continue
            root = element if root is None else root
            depth += 1
            elements += 1
            if depth > MAX_DEPTH + 1:  # the root is depth 0
                raise _TooBig(f"XML nested deeper than {MAX_DEPTH} levels")
            if elements > MAX_ELEMENTS:
                raise _TooBig(f"XML with more than {MAX_ELEMENTS} elements")
    assert root is not None  # close() raised ParseError for a document without one
    return root


class _TooBig(Exception):
    """A reply past ``MAX_DEPTH`` or ``MAX_ELEMENTS``; turned into a DecodeError with an excerpt."""


def _element(element: ET.Element, depth: int) -> Any:
    """Plain data of ``element`` (at ``depth``, the root being 0); deeper than MAX_DEPTH raises.

    Repeated children become a list (no other value here is a list, so a list always means
    repetition); a leaf's text is kept as sent, and blank text counts as empty (None).
    """
    if len(element) == 0:
        return _leaf(element.text)
    if depth >= MAX_DEPTH:  # its children would be too deep
        raise _TooBig(f"XML nested deeper than {MAX_DEPTH} levels")
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
#
# The tolerant reader (DESIGN.md): what the docs document is typed and checked; what they leave
# open is read leniently; an informational field never costs the whole reply. In both formats:
# null, a missing key and an empty value are the same for list, map, model and string fields
# (Go marshals a nil slice or map as null); numbers may come as numeric strings where only a
# measure is meant (progress, sums); booleans as true/false/1/0. XML, which has no types, also
# gives integers as text and a one-item list as a single element. Strict where leniency would
# lie: an integer that is not exact or does not fit in 64 bits, text where a JSON integer is
# documented, a non-text task id.

#: Integers are 64-bit on the platform (Go's int64): anything outside is refused, not wrapped.
_INT_LIMIT = 2**63


def _fail(value: object, kind: str) -> ValueError:
    return ValueError(f"expected {kind}, got {type(value).__name__} {str(value)[:40]!r}")


def _in_range(value: int, original: object) -> int:
    if -_INT_LIMIT <= value < _INT_LIMIT:
        return value
    raise _fail(original, "an integer within 64 bits")


def _json_int(value: Any, _: type) -> int:
    if type(value) is int and -_INT_LIMIT <= value < _INT_LIMIT:  # the usual case, inline
        return value
    if type(value) is float and value.is_integer():  # 209.0 is exact; 209.5 is not
        return _in_range(int(value), value)
    raise _fail(value, "an integer within 64 bits")


_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _xml_int(value: Any, _: type) -> int:
    # Plain ASCII digits (the usual case) skip the strip and the regex; ``isdigit`` alone
    # would also accept other Unicode digits, hence ``isascii``. At most 19 digits: no huge
    # int(), and 19 nines is the only overflow left for the range check.
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 19:
        return _in_range(int(value), value)
    if type(value) is int:
        return _in_range(value, value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(text := value.strip()):
        return _in_range(int(text), value)
    raise _fail(value, "an integer within 64 bits")


def _float(value: Any, _: type) -> float:
    """A measure (progress, a sum): a number, or a numeric string in either format."""
    if type(value) in (int, float):
        return float(value)
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(text := value.strip()):
        return float(text)
    raise _fail(value, "a number")


def _str(value: Any, _: type) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise _fail(value, "a string")


_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _bool(value: Any, _: type) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _BOOLS:
            return _BOOLS[word]
    raise _fail(value, "a boolean")


def _is_empty(value: Any) -> bool:
    """Null, or an empty value (``""``): what a missing list, map or object may arrive as."""
    return value is None or value == ""


#: Go's zero ``time.Time``: what a Go server sends for a timestamp it does not have.
_ZERO_YEAR = 1


def _datetime(value: Any, _: type) -> datetime:
    """An RFC 3339 / ISO 8601 timestamp: any offset (none means UTC), 0-9 fraction digits
    (beyond microseconds they are cut), ``T``/``Z`` in either case."""
    if not isinstance(value, str):
        raise _fail(value, "an ISO 8601 timestamp")
    parsed = datetime.fromisoformat(value.strip().upper())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _optional_datetime(value: Any, _: Any) -> datetime | None:
    """An optional timestamp: empty, blank or Go's zero time is None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parsed = _datetime(value, datetime)
    return None if parsed.year == _ZERO_YEAR else parsed


def _props(value: Any, _: type) -> dict[str, Any]:
    if _is_empty(value):
        return {}
    if not isinstance(value, dict):
        raise _fail(value, "an object")
    return {key: _prop(item) for key, item in value.items()}


def _prop(value: Any) -> Any:
    if isinstance(value, dict) and "sum" in value:
        top = value.get("top")
        total = value["sum"]
        if isinstance(total, str):  # XML or a quoted number: whole numbers stay int
            text = total.strip()
            total = int(text) if _INT_TEXT.fullmatch(text) else _float(text, float)
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


def _sequence_hook(converter: cattrs.Converter, xml: bool) -> Callable[[Any], Any]:
    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        item_type = get_args(tp)[0]
        as_tuple = get_origin(tp) is tuple
        item_hook = converter.get_structure_hook(item_type)

        def hook(value: Any, _: Any) -> Any:
            if not isinstance(value, list):
                if _is_empty(value):
                    value = []
                elif xml and isinstance(value, dict | str):  # a one-item list in XML
                    value = [value]
                else:
                    raise _fail(value, "a list")
            items = [item_hook(item, item_type) for item in value]
            return tuple(items) if as_tuple else items

        return hook

    return factory


def _is_optional(tp: Any) -> bool:
    args = get_args(tp)
    return len(args) == 2 and NoneType in args and get_origin(tp) in (Union, UnionType)


def _optional_hook(converter: cattrs.Converter) -> Callable[[Any], Any]:
    """``X | None``: null or an empty value is None, anything else goes to X's hook, resolved
    once (cattrs's own optional handling looks X's hook up on every value)."""

    def factory(tp: Any) -> Callable[[Any, Any], Any]:
        inner = get_args(tp)[0] if get_args(tp)[1] is NoneType else get_args(tp)[1]
        if inner is datetime:
            return _optional_datetime
        inner_hook = converter.get_structure_hook(inner)

        def hook(value: Any, _: Any) -> Any:
            return None if _is_empty(value) else inner_hook(value, inner)

        return hook

    return factory


def _tolerant(hook: Callable[[Any, Any], Any], default: Any) -> Callable[[Any, Any], Any]:
    """``hook``, but a value it cannot read is ``default``: for informational fields."""

    def read(value: Any, tp: Any) -> Any:
        try:
            return hook(value, tp)
        except Exception:  # whatever the hook refuses, an informational field is not worth it
            return default

    return read


def _model_hook(converter: cattrs.Converter, xml: bool) -> Callable[[Any], Any]:
    """Structure attrs models from dicts; null or an empty value is an empty model (its
    defaults), and informational fields (``models._meta``) are read tolerantly.

    A plain model gets a decoder generated for it (:func:`_generated_decoder`); any other
    (validators, converters, a post-init, generics) cattrs's ``make_dict_structure_fn``."""
    from cattrs.gen import make_dict_structure_fn, override  # lazy: see the imports above

    def factory(cls: Any) -> Callable[[Any, Any], Any]:
        attrs.resolve_types(cls)
        generated = _generated_decoder(converter, cls, xml)
        if generated is not None:
            return generated
        overrides = {
            item.name: override(
                struct_hook=_tolerant(converter.get_structure_hook(item.type), item.default)
            )
            for item in attrs.fields(cls)
            if item.metadata.get(INFORMATIONAL)
        }
        fields_hook = make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]

        def hook(value: Any, _: Any) -> Any:
            if type(value) is not dict:  # the usual case skips both checks
                if not _is_empty(value):
                    raise _fail(value, f"an object for {cls.__name__}")
                value = {}
            return fields_hook(value, cls)

        return hook

    return factory


# --- generated decoders ---------------------------------------------------------------------
#
# What cattrs's make_dict_structure_fn does for a model, with the same hooks, rules, order and
# errors, but cheaper: the instance is made with object.__new__ and its fields set through
# their slots' own setters (a frozen attrs __init__ goes through object.__setattr__), and the
# usual field types (str, int, int | None) are read inline, their hook called only for a value
# off the usual path. As in cattrs's code, the fields with a default are read first (missing:
# the default), then the required ones (missing: KeyError).


def _plain_model(cls: Any) -> bool:
    """Whether an instance of ``cls`` is exactly its fields: no validator, converter, pre- or
    post-init, cached hash, init=False field, alias or default that depends on the instance
    (what __init__ would do and the generated decoder does not)."""
    if getattr(cls, "__parameters__", ()) or get_origin(cls) is not None:
        return False
    return _plain_fields(cls)


def _plain_fields(cls: Any) -> bool:
    """:func:`_plain_model` but for generics (whose field types the caller knows)."""
    if hasattr(cls, "__attrs_post_init__") or hasattr(cls, "__attrs_pre_init__"):
        return False
    if "__attrs_cached_hash" in getattr(cls, "__slots__", ()):
        return False
    return all(
        isinstance(vars(cls).get(item.name), MemberDescriptorType)  # a slot of its own
        and item.init
        and item.validator is None
        and item.converter is None
        and item.alias == item.name
        and item.name.isidentifier()
        and not (isinstance(item.default, attrs.Factory) and item.default.takes_self)  # type: ignore[arg-type]
        for item in attrs.fields(cls)
    )


def _inline(
    tp: Any, xml: bool, hook: Callable[[Any, Any], Any], converter: cattrs.Converter
) -> str | None:
    """An expression reading ``v`` as ``tp`` exactly as ``hook`` does, for the usual field
    types; None for the others (the hook is called)."""
    if tp is str and hook is _str:
        return "v if type(v) is str else _str(v, str)"
    optional = _is_optional(tp) and int in get_args(tp)
    if tp is not int and not optional:
        return None
    if converter.get_structure_hook(int) is not (_xml_int if xml else _json_int):
        return None
    if xml:  # up to 18 ASCII digits always fit in 64 bits: no range check
        read = (
            "int(v) if type(v) is str and len(v) <= 18 and v.isascii() and v.isdigit()"
            " else _xml_int(v, int)"
        )
    else:
        usual = "type(v) is int and -_INT_LIMIT <= v < _INT_LIMIT"
        if optional:  # the usual int tested first: an int is neither null nor empty
            return f"v if {usual} else (None if v is None or v == '' else _json_int(v, int))"
        read = f"v if {usual} else _json_int(v, int)"
    return f"None if v is None or v == '' else ({read})" if optional else read


def default_expression(namespace: dict[str, Any], number: int, default: Any) -> str:
    """The expression a generated decoder writes for field ``number``'s attrs default (put in
    ``namespace``): a call of its factory, or the value itself."""
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        namespace[f"default{number}"] = default.factory
        return f"default{number}()"
    namespace[f"default{number}"] = default
    return f"default{number}"


def _generated_decoder(
    converter: cattrs.Converter, cls: Any, xml: bool
) -> Callable[[Any, Any], Any] | None:
    """The decoder of a plain model (:func:`_plain_model`), or None for cattrs to make one."""
    if not _plain_model(cls):
        return None
    namespace: dict[str, Any] = {
        "cls": cls,
        "_new": object.__new__,
        "_is_empty": _is_empty,
        "_fail": _fail,
        "_str": _str,
        "_json_int": _json_int,
        "_xml_int": _xml_int,
        "_INT_LIMIT": _INT_LIMIT,
        "what": f"an object for {cls.__name__}",
    }
    lines = [
        "def decode(value, _):",
        "    if type(value) is not dict:",
        "        if not _is_empty(value):",
        "            raise _fail(value, what)",
        "        value = {}",
        "    self = _new(cls)",
    ]
    fields = attrs.fields(cls)
    with_default = [item for item in fields if item.default is not attrs.NOTHING]
    required = [item for item in fields if item.default is attrs.NOTHING]
    for number, item in enumerate([*with_default, *required]):
        name = item.name
        hook = converter.get_structure_hook(item.type)
        expression = None
        if item.metadata.get(INFORMATIONAL):
            hook = _tolerant(hook, item.default)
        else:
            expression = _inline(item.type, xml, hook, converter)
        namespace[f"hook{number}"], namespace[f"type{number}"] = hook, item.type
        # the slot's own setter: cheaper than object.__setattr__ (what a frozen __init__ uses)
        namespace[f"set{number}"] = vars(cls)[name].__set__
        expression = expression or f"hook{number}(v, type{number})"
        # ``in`` and a subscript rather than dict.get: no call for a field the reply omits
        if item.default is attrs.NOTHING:
            lines += [f"    if {name!r} not in value:", f"        raise KeyError({name!r})"]
            lines += [f"    v = value[{name!r}]", f"    set{number}(self, {expression})"]
            continue
        missing = default_expression(namespace, number, item.default)
        lines += [
            f"    if {name!r} in value:",
            f"        v = value[{name!r}]",
            f"        set{number}(self, {expression})",
            "    else:",
            f"        set{number}(self, {missing})",
        ]
    lines.append("    return self")
    exec("\n".join(lines), namespace)  # our own code, made from the model's fields
    decoder: Callable[[Any, Any], Any] = namespace["decode"]
    return decoder


def _is_task_status(cls: Any) -> bool:
    return cls is TaskStatus or get_origin(cls) is TaskStatus


def _task_status_hook(
    converter: cattrs.Converter,
) -> Callable[[Any], Callable[[Any, Any], TaskStatus[Any]]]:
    """A status reply in two steps: the status and progress first; the result only when the
    task succeeded, as the type the status is asked as (``TaskStatus[R]``: a task kind's
    result; ``TaskStatus``: counters). A running task's ``result`` is never read (whatever it
    holds, it must not end a wait); a failed task's is kept as sent for
    :class:`TaskFailedError`."""
    status_hook = converter.get_structure_hook(str)
    progress_hook = _tolerant(converter.get_structure_hook(float | None), None)
    setters = _status_setters()
    set_status, set_progress, set_result, set_failure = setters or (_no_setter,) * 4
    _new = object.__new__
    #: Each status text seen and what it normalises to (bounded: a platform inventing a
    #: status per reply cannot grow it), when ``status_hook`` is the plain text one
    normals: dict[str, str] = {}
    normals_limit = _NORMALS_LIMIT if status_hook is _str else 0

    def factory(cls: Any) -> Callable[[Any, Any], TaskStatus[Any]]:
        args = get_args(cls)
        result_type = args[0] if args else CountersResult
        result_hook = converter.get_structure_hook(result_type)
        empty = _empty_result(result_type)

        def hook(value: Any, _: Any) -> TaskStatus[Any]:
            if not isinstance(value, dict):
                raise _fail(value, "an object for TaskStatus")
            sent = value.get("status")
            # a status seen before skips its hook and normalising (a poll sees the same few)
            status = normals.get(sent) if type(sent) is str else None
            if status is None:
                status = normalize_status(status_hook(sent, str))
                if type(sent) is str and len(normals) < normals_limit:
                    normals[sent] = status
            if not status:
                raise ValueError("the reply has no task status")
            # a JSON number (the usual progress) is read inline, as its hook would
            sent = value.get("progress")
            if type(sent) is float:
                progress: float | None = sent
            elif type(sent) is int:
                progress = float(sent)
            else:
                progress = progress_hook(sent, float | None)
            failure_result = None
            if status in SUCCESS_STATUSES:
                result = result_hook(value.get("result"), result_type)
            else:
                result = empty
                if status in FAILURE_STATUSES:
                    failure_result = value.get("result")
            if setters is None:
                return TaskStatus(status, progress, result, failure_result)
            made: TaskStatus[Any] = _new(TaskStatus)
            set_status(made, status)
            set_progress(made, progress)
            set_result(made, result)
            set_failure(made, failure_result)
            return made

        return hook

    return factory


#: Most status texts a status hook remembers with their normal form.
_NORMALS_LIMIT = 256


def _no_setter(instance: Any, value: Any) -> None:
    """What stands for TaskStatus's setters when its __init__ makes it (never called)."""
    raise AssertionError("TaskStatus is made by its __init__")


def _status_setters() -> tuple[Callable[[Any, Any], None], ...] | None:
    """The setters of ``TaskStatus``'s four slots (``status``, ``progress``, ``result``,
    ``failure_result``), to make one without its frozen __init__ as the generated decoders
    make models; None when its fields are not exactly these (then __init__ makes it)."""
    names = ("status", "progress", "result", "failure_result")
    if tuple(item.name for item in attrs.fields(TaskStatus)) != names or not _plain_fields(
        TaskStatus
    ):
        return None
    return tuple(vars(TaskStatus)[name].__set__ for name in names)


def _status_maker() -> Callable[..., TaskStatus[Any]]:
    """``TaskStatus(status, progress, result, failure_result)`` made by its slots' setters
    (:func:`_status_setters`), or its __init__ when they do not fit (for ``_xmlread``)."""
    setters = _status_setters()
    if setters is None:
        return TaskStatus
    set_status, set_progress, set_result, set_failure = setters

    def new_status(
        status: str, progress: float | None, result: Any, failure_result: Any = None
    ) -> TaskStatus[Any]:
        made: TaskStatus[Any] = object.__new__(TaskStatus)
        set_status(made, status)
        set_progress(made, progress)
        set_result(made, result)
        set_failure(made, failure_result)
        return made

    return new_status


def _empty_result(result_type: Any) -> Any:
    """What a status that has no result yet holds: an empty tuple or list for a sequence
    result (counters: ``()``), None for anything else."""
    origin = get_origin(result_type) or result_type
    if origin is tuple:
        return ()
    if origin is list:
        return []
    return None


def _make_converter(fmt: Format) -> cattrs.Converter:
    import cattrs  # lazy: see the imports above

    xml = fmt == "xml"
    converter = cattrs.Converter(detailed_validation=False)
    converter.register_structure_hook(int, _xml_int if xml else _json_int)
    converter.register_structure_hook(float, _float)
    converter.register_structure_hook(str, _str)
    converter.register_structure_hook(bool, _bool)
    converter.register_structure_hook(datetime, _datetime)
    converter.register_structure_hook_func(_is_props, _props)
    converter.register_structure_hook_factory(_is_sequence, _sequence_hook(converter, xml))
    converter.register_structure_hook_factory(_is_optional, _optional_hook(converter))
    converter.register_structure_hook_factory(attrs.has, _model_hook(converter, xml))
    # after the generic factories: a direct registration wins over them
    converter.register_structure_hook_factory(_is_task_status, _task_status_hook(converter))
    converter.register_unstructure_hook(datetime, _unstructure_datetime)
    converter.register_unstructure_hook(NumericProperty, _unstructure_numeric)
    converter.register_unstructure_hook_func(_is_task_status, _unstructure_status(converter))
    return converter


def _unstructure_status(
    converter: cattrs.Converter,
) -> Callable[[TaskStatus[Any]], dict[str, Any]]:
    """A status in the wire's shape: a failed task's ``result`` is what it sent as one."""

    def plain(status: TaskStatus[Any]) -> dict[str, Any]:
        result = status.failure_result if status.failed else converter.unstructure(status.result)
        return {"status": status.status, "progress": status.progress, "result": result}

    return plain


def _unstructure_datetime(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _unstructure_numeric(value: NumericProperty) -> dict[str, Any]:
    return {"top": dict(value.top), "sum": value.sum}


#: The converters by format, built on first use (see the imports above).
_CONVERTERS: dict[str, cattrs.Converter] = {}
#: Structure hooks by (format, type): skips the converter's dispatch on every reply.
_HOOKS: dict[tuple[str, Any], Callable[[Any, Any], Any]] = {}


def _converter(fmt: Format) -> cattrs.Converter:
    converter = _CONVERTERS.get(fmt)
    if converter is None:
        converter = _CONVERTERS[fmt] = _make_converter(fmt)
    return converter


def structure_hook(cls: Any, fmt: Format) -> Callable[[Any, Any], Any]:
    """The hook :func:`structure` types ``cls`` with (``hook(data, cls)``), for a caller that
    keeps it: it raises whatever the hook raises, where :func:`structure` raises DecodeError."""
    hook = _HOOKS.get((fmt, cls))
    if hook is None:
        hook = _HOOKS[fmt, cls] = _converter(fmt).get_structure_hook(cls)
    return hook


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
        result: T = structure_hook(cls, fmt)(data, cls)
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


def to_builtins(value: Any) -> Any:
    """Any model, or list, tuple or dict of models, as JSON-ready builtins (dicts, lists,
    str, int, float, bool, None) with the wire's field names and ISO 8601 timestamps.

    What a web framework can return as JSON, a cache can store, or a queue can carry;
    :func:`from_builtins` reads it back. A failed :class:`TaskStatus` carries its
    ``failure_result`` as ``result``, as the wire did.
    """
    return unstructure(value)


def from_builtins(cls: type[T], data: Any) -> T:
    """Read builtins (as :func:`to_builtins` makes, or a JSON reply's ``data``) back as
    ``cls``: a model class or e.g. ``list[ChannelCounters]``, by the same tolerant rules as a
    reply. Raises :class:`DecodeError` when the data does not fit."""
    return structure(data, cls, "json", endpoint="from_builtins")
