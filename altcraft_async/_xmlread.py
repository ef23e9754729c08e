"""The usual XML reply read straight from its elements, without the plain-data step.

The exact path (``_codec.parse`` then ``_codec.structure``) turns the element tree into dicts,
lists and text, then types that by the reply model. :func:`read_reply` does both in one walk:
readers made once per type, from the same converter hooks, read the parsed elements directly
(a model's fields in the order and with the defaults of its generated decoder; strings, integers
and optional integers inline; lists by the XML rules, a single element being a one-item list).

A reader never decides anything the exact path would not: it returns what the exact path
returns, or gives up (:data:`UNUSUAL`) and the caller takes the exact path, which says what is
wrong. Everything off the usual path gives up: a body over the whole-parse size, a DTD or an
entity declaration (never parsed: see the parsing section), a byte-order mark or a NUL, text
around the root element, an ``error`` other than ``<error>0</error>``, a repeated single
field, and any value a hook refuses. A subtree no
reader reads is still walked by ``_codec._element`` when it has children, so a reply nested
deeper than ``MAX_DEPTH`` is never accepted here either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, get_args, get_origin

import attrs

from ._codec import (
    _WHOLE_XML,
    MAX_DEPTH,
    _converter,
    _element,
    _empty_result,
    _float,
    _is_optional,
    _is_sequence,
    _is_task_status,
    _leaf,
    _plain_model,
    _status_maker,
    _str,
    _tolerant,
    _xml_int,
    default_expression,
)
from .models._meta import INFORMATIONAL
from .models.tasks import FAILURE_STATUSES, SUCCESS_STATUSES, CountersResult, normalize_status

#: A field not (yet) seen in a reply.
_MISSING: Any = object()

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

__all__ = ["UNUSUAL", "read_reply", "reader"]

#: What :func:`read_reply` returns for a reply it leaves to the exact path.
UNUSUAL: Any = object()

#: A reader: the value at an element, or at the list of elements of a repeated tag, whose
#: depth is the second argument (the root being 0): the exact path's hook applied to
#: ``_element`` of it. Raises (anything) where it gives up.
Reader = Callable[[Any, int], Any]

_BOM = b"\xef\xbb\xbf"


class _GiveUp(Exception):
    """Raised inside a reader for a value it leaves to the exact path."""


def read_reply(body: bytes, cls: Any) -> Any:
    """``cls`` read from the ``data`` of an XML reply whose ``error`` is 0, or :data:`UNUSUAL`."""
    if len(body) > _WHOLE_XML:  # the exact path parses it bounded
        return UNUSUAL
    try:
        read = _READERS.get(cls) or reader(cls)
        # find(), not ``in``: bytes.__contains__ first tries its argument as an int
        root = _in_stream(body) if body.find(b"<?") < 0 else _alone(body)
        if root is None:
            return UNUSUAL
        data: Any = _MISSING
        error: Any = _MISSING
        for child in root:
            tag = child.tag
            if tag == "data":
                data = child if data is _MISSING else _more(data, child)
            elif tag == "error":
                if error is not _MISSING:
                    return UNUSUAL
                error = child
            elif len(child):
                _element(child, 1)  # walked for its depth only
        if error is _MISSING or error.text != "0" or len(error) or data is _MISSING:
            return UNUSUAL
        return read(data, 1)
    except Exception:  # whatever it is, the exact path reads it again and says what
        return UNUSUAL


def _more(previous: Any, element: ET.Element) -> list[ET.Element]:
    """The elements of a repeated tag so far, ``element`` added (a list means repetition)."""
    if type(previous) is list:
        previous.append(element)
        return previous
    return [previous, element]


def _plain(value: Any, depth: int) -> Any:
    """What the exact path makes of an element, or of the elements of a repeated tag."""
    if type(value) is list:
        return [_element(item, depth) for item in value]
    return _element(value, depth)


def _slow(value: Any, depth: int, hook: Callable[[Any, Any], Any], tp: Any) -> Any:
    return hook(_plain(value, depth), tp)


# --- readers by type ------------------------------------------------------------------------

_READERS: dict[Any, Reader] = {}
_BUILDING: set[Any] = set()


def reader(tp: Any) -> Reader:
    """The reader of ``tp``, made on first use."""
    made = _READERS.get(tp)
    if made is None:
        if tp in _BUILDING:  # a model that holds itself: the exact hook for the inner one
            return _generic(tp)
        _BUILDING.add(tp)
        try:
            made = _READERS[tp] = _make_reader(tp)
        finally:
            _BUILDING.discard(tp)
    return made


def _make_reader(tp: Any) -> Reader:
    if _is_task_status(tp):
        return _status_reader(tp)
    if _is_sequence(tp):
        return _sequence_reader(tp)
    if attrs.has(tp) and _plain_model(tp):
        return _model_reader(tp)
    return _generic(tp)


def _generic(tp: Any) -> Reader:
    """The exact path for one value: its plain data, then the converter's hook."""
    hook = _converter("xml").get_structure_hook(tp)

    def read(value: Any, depth: int) -> Any:
        return hook(_plain(value, depth), tp)

    return read


def _sequence_reader(tp: Any) -> Reader:
    """``list[X]`` or ``tuple[X, ...]``: the elements of a repeated tag, one element (a
    one-item list), or an empty element (an empty list), as ``_codec``'s sequence hook."""
    item_type = get_args(tp)[0]
    as_tuple = get_origin(tp) is tuple
    item = reader(item_type)

    def read(value: Any, depth: int) -> Any:
        if type(value) is list:
            items = [item(element, depth) for element in value]
        elif not len(value) and _leaf(value.text) is None:
            items = []
        else:
            items = [item(value, depth)]
        return tuple(items) if as_tuple else items

    return read


def _status_reader(tp: Any) -> Reader:
    """``TaskStatus[R]`` as ``_codec._task_status_hook`` reads it: status and progress, then
    the result only for a finished task (a running task's result is walked for depth only)."""
    converter = _converter("xml")
    hook = converter.get_structure_hook(tp)
    if converter.get_structure_hook(str) is not _str:
        return _generic(tp)
    progress_hook = _tolerant(converter.get_structure_hook(float | None), None)
    digits = converter.get_structure_hook(float) is _float  # plain digits may skip the hook
    args = get_args(tp)
    result_type = args[0] if args else CountersResult
    read_result = reader(result_type)
    empty = _empty_result(result_type)
    new_status = _status_maker()

    def read(value: Any, depth: int) -> Any:
        if type(value) is list or not len(value) or depth >= MAX_DEPTH:
            return _slow(value, depth, hook, tp)
        status: Any = _MISSING
        progress: Any = _MISSING
        result: Any = _MISSING
        for child in value:
            tag = child.tag
            if tag == "status":
                if status is not _MISSING or len(child):
                    raise _GiveUp
                status = child
            elif tag == "progress":
                progress = child if progress is _MISSING else _more(progress, child)
            elif tag == "result":
                result = child if result is _MISSING else _more(result, child)
            elif len(child):
                _element(child, depth + 1)
        text = None if status is _MISSING else status.text
        state = normalize_status(text) if text else ""  # _leaf(text) or "", then normalized
        if not state:
            raise _GiveUp
        if progress is _MISSING:
            ratio = None
        elif digits and type(progress) is not list and not len(progress):
            text = progress.text
            ratio = (
                float(text)  # plain digits: what _codec._float makes of them
                if text and text.isascii() and text.isdigit()
                else progress_hook(_leaf(text), float | None)
            )
        else:
            ratio = progress_hook(_plain(progress, depth + 1), float | None)
        if state in SUCCESS_STATUSES:
            made = (
                read_result(result, depth + 1)
                if result is not _MISSING
                else converter.get_structure_hook(result_type)(None, result_type)
            )
            return new_status(state, ratio, made)
        if state in FAILURE_STATUSES:
            sent = None if result is _MISSING else _plain(result, depth + 1)
            return new_status(state, ratio, empty, sent)
        if result is not _MISSING and (type(result) is list or len(result)):
            _plain(result, depth + 1)  # a running task's result: walked for its depth only
        return new_status(state, ratio, empty)

    return read


def _field_expression(tp: Any, hook: Callable[[Any, Any], Any], number: int) -> str:
    """An expression reading the element ``x`` (never a list: a single field's repetition
    gives up) as ``tp`` exactly as ``hook`` reads its plain data, for strings and integers;
    any other type goes through its reader ``read{number}``."""
    slow = f"_slow(x, d + 1, hook{number}, type{number}) if len(x) else "
    digits = "int(t) if (t := x.text) and len(t) <= 18 and t.isascii() and t.isdigit() else "
    if tp is str and hook is _str:
        return slow + '("" if not (t := x.text) or t.isspace() else t)'
    if _converter("xml").get_structure_hook(int) is not _xml_int:
        return f"read{number}(x, d + 1)"
    if tp is int:
        return slow + f"({digits}_xml_int(_leaf(t), int))"
    if _is_optional(tp) and int in get_args(tp):
        return slow + f"({digits}(None if not t or t.isspace() else _xml_int(t, int)))"
    return f"read{number}(x, d + 1)"


def _single(tp: Any, informational: bool) -> bool:
    """Whether a repeated tag of a field of ``tp`` gives up (it is no list and the exact path
    would refuse the list): strings, integers and plain models, unless informational."""
    if informational:
        return False
    if tp in (str, int) or (_is_optional(tp) and int in get_args(tp)):
        return True
    return attrs.has(tp) and _plain_model(tp)


def _model_reader(cls: Any) -> Reader:
    """A plain model (``_codec._plain_model``) read as its generated decoder reads a dict:
    the same hooks, defaults and order, made without its frozen ``__init__``."""
    converter = _converter("xml")
    hook = converter.get_structure_hook(cls)
    namespace: dict[str, Any] = {
        "cls": cls,
        "hook": hook,
        "_new": object.__new__,
        "_MISSING": _MISSING,
        "MAX_DEPTH": MAX_DEPTH,
        "_GiveUp": _GiveUp,
        "_element": _element,
        "_leaf": _leaf,
        "_more": _more,
        "_plain": _plain,
        "_slow": _slow,
        "_xml_int": _xml_int,
    }
    fields = attrs.fields(cls)
    order = [item for item in fields if item.default is not attrs.NOTHING]
    order += [item for item in fields if item.default is attrs.NOTHING]
    scan: list[str] = []
    read: list[str] = []
    for number, item in enumerate(order):
        informational = bool(item.metadata.get(INFORMATIONAL))
        field_hook = converter.get_structure_hook(item.type)
        if informational:
            field_hook = _tolerant(field_hook, item.default)
            expression = f"hook{number}(_plain(x, d + 1), type{number})"
        else:
            expression = _field_expression(item.type, field_hook, number)
        if "read" in expression:
            namespace[f"read{number}"] = reader(item.type)
        namespace[f"hook{number}"], namespace[f"type{number}"] = field_hook, item.type
        namespace[f"set{number}"] = vars(cls)[item.name].__set__
        keyword = "if" if not scan else "elif"
        scan.append(f"        {keyword} t == {item.name!r}:")
        if _single(item.type, informational):
            scan += [f"            if f{number} is not _MISSING:", "                raise _GiveUp"]
            scan.append(f"            f{number} = c")
        else:
            repeated = f"_more(f{number}, c)"
            scan.append(f"            f{number} = c if f{number} is _MISSING else {repeated}")
        read.append(f"    x = f{number}")
        if item.default is attrs.NOTHING:
            read += ["    if x is _MISSING:", "        raise _GiveUp"]
            read.append(f"    set{number}(self, {expression})")
            continue
        missing = default_expression(namespace, number, item.default)
        read.append(f"    set{number}(self, {missing} if x is _MISSING else {expression})")
    lines = [
        "def read(v, d):",
        "    if type(v) is list or not len(v) or d >= MAX_DEPTH:",
        "        return _slow(v, d, hook, cls)",
        *(f"    f{number} = _MISSING" for number in range(len(order))),
        "    for c in v:",
        "        t = c.tag",
        *scan,
        f"        {'elif' if scan else 'if'} len(c):",
        "            _element(c, d + 1)",
        "    self = _new(cls)",
        *read,
        "    return self",
    ]
    exec("\n".join(lines), namespace)  # our own code, made from the model's fields
    made: Reader = namespace["read"]
    return made


# --- parsing -------------------------------------------------------------------------------
#
# Making an expat parser costs as much as parsing a status reply with it, and it cannot be
# reset. So replies are parsed in one stream kept open across them: ``<r>``, then each body
# followed by a sentinel ``<_/>``. The body was exactly one whole element, with nothing but
# whitespace around it, when ``<r>`` then holds exactly two children, the second an empty
# ``_``: a body with more elements, an unclosed one or a closing ``</r>`` leaves anything
# else, and any error drops the stream. Inside the stream's element a DTD or an entity
# declaration is a syntax error, so is a NUL byte, and the encoding is UTF-8 whatever the
# body's bytes (UTF-16 is an error; a byte-order mark is text before the element, refused).
# An element taken is the tree ET.fromstring makes of
# the body (the same expat and TreeBuilder, the same UTF-8 default); a body with ``<?`` (an
# XML declaration may name another encoding, and may only come first) gets a parser of its
# own. The names expat and the parser keep grow with the input, so a stream is replaced after
# _STREAM_BYTES. Streams are taken from _STREAMS and given back (list.pop and append are
# atomic): a thread never feeds a stream another one is using.

_SENTINEL = b"<_/>"
_STREAM_BYTES = 1 << 20
_XML_SPACE = " \t\r\n"
#: Idle streams; each: [parser, <r>, the last sentinel (its tail: text before the next
#: body), bytes fed].
_STREAMS: list[list[Any]] = []


def _in_stream(body: bytes) -> ET.Element | None:
    """The element ``body`` is, parsed in an open stream; None when it is anything else."""
    try:
        stream = _STREAMS.pop()
    except IndexError:
        stream = _new_stream()
    parser, wrapper, previous, fed = stream
    try:
        parser.feed(body + _SENTINEL)
    except Exception:  # the stream is dropped; the exact path says what is wrong
        return None
    if len(wrapper) != 2:
        return None
    element, sentinel = wrapper
    if sentinel.tag != "_" or len(sentinel):
        return None
    # only whitespace around the element, as XML allows (the text before it went to the
    # previous sentinel's tail, or to the wrapper's text in a new stream)
    after, before = element.tail, wrapper.text if previous is None else previous.tail
    if (after and after.strip(_XML_SPACE)) or (before and before.strip(_XML_SPACE)):
        return None
    wrapper.clear()
    fed += len(body)
    if fed < _STREAM_BYTES and len(_STREAMS) < 4:
        stream[2], stream[3] = sentinel, fed
        _STREAMS.append(stream)
    made: ET.Element = element
    return made


def _new_stream() -> list[Any]:
    import xml.etree.ElementTree as ET  # lazy, like _codec's

    events: list[tuple[str, ET.Element]] = []
    parser = ET.XMLParser()
    parser._setevents(events, ("start",))  # type: ignore[attr-defined]  # the C parser's own
    parser.feed(b"<r>")
    wrapper = events[0][1]
    parser._setevents(events, ())  # type: ignore[attr-defined]  # and no more events
    return [parser, wrapper, None, 0]


def _alone(body: bytes) -> ET.Element | None:
    """``body`` parsed by a parser of its own, as ``_codec`` parses it; None for what
    ``_codec`` refuses or strips first (a DTD, NUL bytes, a byte-order mark)."""
    import xml.etree.ElementTree as ET

    if body.find(b"<!") >= 0 or body.find(b"\x00") >= 0 or body[:3] == _BOM:
        return None
    return ET.fromstring(body.lstrip())
