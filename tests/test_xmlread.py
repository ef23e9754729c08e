"""The XML fast path (``_xmlread.read_reply``) returns what the exact path returns, or gives up.

The exact path is ``_codec.parse`` then ``_codec.structure`` (what ``decode_reply`` falls back
to). For random replies shaped by each reply type (its fields, repeated or not, nested, empty,
with odd text and strangers), the fast path either gives up (``UNUSUAL``) or returns a value
equal to the exact path's, field by field and type by type; and whenever the exact path raises,
the fast path gives up. The documented replies do take the fast path, so the comparison is not
empty; and what the exact path refuses for its shape (deep nesting, a DTD) is refused on it too.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin
from xml.sax.saxutils import escape

import attrs
import docs_examples as docs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altcraft_async import DecodeError, TaskStatus, to_builtins
from altcraft_async._codec import MAX_DEPTH, encode, parse, structure
from altcraft_async._sansio import decode_reply
from altcraft_async._secret import Secret
from altcraft_async._xmlread import UNUSUAL, read_reply
from altcraft_async.api._specs import ALL_SPECS, KINDS, SEGMENTS_GET_COUNTERS, TASKS_STATUS
from altcraft_async.models.tasks import CountersResult

STATUSES = {TaskStatus[kind.result_type] for kind in KINDS.values()}
RESPONSES: list[Any] = sorted({spec.response for spec in ALL_SPECS} | STATUSES, key=repr)

ODD = ["", " ", "abc", "1.5", "a & b", "\uff11\uff12"]  # fullwidth digits: isdigit, not ASCII
INTS = ["0", "7", "209", "9" * 18, "9" * 19, "9" * 20, " 7 ", "-3", "+4"]
#: What a leaf of each type usually holds; any leaf may also hold an odd text.
TEXTS: dict[Any, list[str]] = {
    str: ["email", "sms", "7", " x "],
    int: INTS,
    int | None: INTS,
    float: ["0", "5", "1.5", " 2 ", "1e3"],
    float | None: ["0", "5", "1.5", " 2 ", "1e3"],
    bool: ["true", "false", "1", "0", " True "],
    "status": ["processing", " Completed ", "success", "failed", "canceled", "queued"],
}
TIMES = ["2024-04-19T13:31:08Z", "2024-04-19 13:31:08+03:00", "0001-01-01T00:00:00Z"]


def leaf(tp: Any) -> st.SearchStrategy[str]:
    usual = TEXTS.get(tp, TIMES if "datetime" in repr(tp) else ["x", "1"])
    return st.sampled_from(usual).map(escape) | st.sampled_from(ODD).map(escape)


stranger_tree = st.recursive(
    leaf(str),
    lambda inner: st.lists(
        st.tuples(st.sampled_from(["x", "top", "sum", "status"]), inner), max_size=3
    ).map(lambda kids: "".join(f"<{tag}>{body}</{tag}>" for tag, body in kids)),
    max_leaves=8,
)


def field_types(tp: Any) -> dict[str, Any]:
    """The fields of a model (or ``TaskStatus[R]``) and their types."""
    origin = get_origin(tp) or tp
    if origin is TaskStatus:
        args = get_args(tp)
        result = args[0] if args else CountersResult
        return {"status": "status", "progress": float | None, "result": result}
    attrs.resolve_types(origin)
    return {item.name: item.type for item in attrs.fields(origin)}


def occurrences(tp: Any, depth: int) -> st.SearchStrategy[list[str]]:
    """The contents of the elements of one field of type ``tp``: a list repeats its tag,
    anything else is mostly sent once."""
    if get_origin(tp) in (list, tuple):
        return st.lists(content(get_args(tp)[0], depth), max_size=3)
    once = content(tp, depth).map(lambda body: [body])
    return once | once | once | st.lists(content(tp, depth), min_size=2, max_size=2)


def content(tp: Any, depth: int) -> st.SearchStrategy[str]:
    """What one element of type ``tp`` may hold: mostly the right shape, sometimes not."""
    if depth > 3 or not attrs.has(get_origin(tp) or tp):
        scalar = leaf(tp)
        return scalar if depth > 3 else scalar | scalar | scalar | stranger_tree
    fields = field_types(tp)

    def element(name: str, bodies: list[str]) -> str:
        return "".join(f"<{name}>{body}</{name}>" for body in bodies)

    def children(names: list[str]) -> st.SearchStrategy[str]:
        parts = [occurrences(fields.get(name, str), depth + 1) for name in names]
        return st.tuples(*parts).map(lambda found: "".join(map(element, names, found)))

    names = st.lists(st.sampled_from([*fields, "x"]), unique=True).flatmap(st.permutations)
    shaped = names.flatmap(children)
    return shaped | shaped | shaped | leaf(str)


@st.composite
def replies(draw: st.DrawFn, tp: Any) -> bytes:
    data = draw(occurrences(tp, 0))
    tail = draw(st.sampled_from(["<error_text>ok</error_text>", "<x><y>1</y></x>", ""]))
    error = draw(st.sampled_from(["0"] * 6 + [" 0", "1", ""]))
    body = "".join(f"<data>{item}</data>" for item in data)
    return f"<xml>{body}<error>{error}</error>{tail}</xml>".encode()


def exact(body: bytes, tp: Any) -> Any:
    """The exact path's value of a success reply; raises what it raises."""
    envelope = parse(body, "xml")
    assert envelope.get("error") == "0"
    return structure(envelope.get("data"), tp, "xml")


def assert_same(fast: Any, slow: Any) -> None:
    assert fast == slow
    assert repr(fast) == repr(slow)  # also the types: 0 and 0.0 are equal
    assert to_builtins(fast) == to_builtins(slow)  # also a failed status's failure_result


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.parametrize("tp", RESPONSES, ids=repr)
@given(data=st.data())
def test_the_fast_path_returns_the_exact_paths_value_or_gives_up(
    tp: Any, data: st.DataObject
) -> None:
    body = data.draw(replies(tp))
    fast = read_reply(body, tp)
    if fast is UNUSUAL:
        return
    try:
        slow = exact(body, tp)
    except DecodeError as error:
        raise AssertionError(f"the fast path took what the exact path refuses: {error}") from None
    assert_same(fast, slow)


DOCUMENTED = [
    (SEGMENTS_GET_COUNTERS.response, docs.SEGMENTS_GET_COUNTERS_RESPONSE_XML),
    (TaskStatus, docs.SEGMENT_TASKS_STATUS_RESPONSE_XML),
    (TaskStatus, docs.RESOURCE_TASKS_STATUS_RESPONSE_XML),
]


@pytest.mark.parametrize(("tp", "body"), DOCUMENTED)
def test_documented_replies_take_the_fast_path(tp: Any, body: bytes) -> None:
    fast = read_reply(body, tp)
    assert fast is not UNUSUAL
    assert_same(fast, exact(body, tp))


STATUS = b"<status>processing</status><progress>5</progress>"
RUNNING = STATUS.decode()
DEEP = "<a>" * (MAX_DEPTH + 1) + "</a>" * (MAX_DEPTH + 1)
SHALLOW = "<a>" * (MAX_DEPTH - 3) + "</a>" * (MAX_DEPTH - 3)


@pytest.mark.parametrize(
    ("where", "body"),
    [
        ("envelope", f"<xml><data>{RUNNING}</data><error>0</error>{DEEP}</xml>"),
        ("model", f"<xml><data>{RUNNING}<x>{DEEP}</x></data><error>0</error></xml>"),
        ("result", f"<xml><data>{RUNNING}<result>{DEEP}</result></data><error>0</error></xml>"),
    ],
)
def test_nesting_too_deep_anywhere_is_refused_as_before(where: str, body: str) -> None:
    """Also in a part no model reads (a stranger, a running task's result)."""
    assert read_reply(body.encode(), TaskStatus) is UNUSUAL
    with pytest.raises(DecodeError, match="nested deeper"):
        decode_reply(TASKS_STATUS, 200, {}, body.encode(), "xml")


def test_nesting_within_the_limit_in_an_unread_part_is_read() -> None:
    body = f"<xml><data>{RUNNING}<result>{SHALLOW}</result></data><error>0</error></xml>"
    fast = read_reply(body.encode(), TaskStatus)
    assert fast == TaskStatus("processing", 5.0)
    assert_same(fast, exact(body.encode(), TaskStatus))


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE x [<!ENTITY a "b">]><xml><data>' + STATUS + b"</data><error>0</error></xml>",
        b"\xef\xbb\xbf<xml><data>" + STATUS + b"</data><error>0</error></xml>",
        b"<xml><data>" + STATUS + b"</data><error>3</error></xml>",
        b"<xml><data>" + STATUS + b"</data></xml>",
        b"<xml><data>" + STATUS + b"</data><error>0</error><error>0</error></xml>",
        b"<xml><data>" + STATUS + b"<status>done</status></data><error>0</error></xml>",
        b"<xml><data>" + STATUS + b"</data><error>0</error>" + b" " * 70_000 + b"</xml>",
        b"<xml><data>" + STATUS,
        b'<?xml version="1.0"?><!DOCTYPE x><xml><data>' + STATUS + b"</data><error>0</error></xml>",
        b'<?xml version="1.0" encoding="UTF-16"?>\x00<\x00x\x00m\x00l\x00/\x00>\x00',
    ],
    ids=[
        "dtd",
        "bom",
        "error",
        "no-error",
        "two-errors",
        "two-statuses",
        "large",
        "cut",
        "declared-dtd",
        "utf-16",
    ],
)
def test_unusual_replies_are_left_to_the_exact_path(body: bytes) -> None:
    assert read_reply(body, TaskStatus) is UNUSUAL


# --- the XML request encoding's one-value fast path ------------------------------------------

xml_texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
scalars = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | xml_texts
    | xml_texts.map(Secret)
    | st.booleans()
    | st.none()
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["token", "id", "task_id", "x"]), scalars, max_size=4))
def test_one_value_is_encoded_as_a_one_item_list_and_reads_back(document: dict[str, Any]) -> None:
    """A single value takes the fast branch, a one-item list the general one: same bytes."""
    body = encode(document, "xml")
    assert body == encode({key: [value] for key, value in document.items()}, "xml")
    expected = {}
    for key, value in document.items():
        text = value.reveal() if isinstance(value, Secret) else value
        if isinstance(text, bool):
            text = "true" if text else "false"
        elif text is not None:
            text = str(text)
        expected[key] = text if text and not text.isspace() else None
    assert parse(b"<xml><a>1</a>" + body[5:], "xml") == {"a": "1", **expected}


# --- the parsing stream ----------------------------------------------------------------------

AROUND = [
    "",
    " ",
    "\n\t",
    "junk",
    "\u00a0",
    "<_/>",
    "<_>",
    "</_>",
    "<r>",
    "</r>",
    "<a/>",
    "<a>",
    "</xml>",
    "<?xml version='1.0'?>",
    "<?pi x?>",
    "&amp;",
    "<",
    "<!-- c -->",
    "<![CDATA[x]]>",
    '<!DOCTYPE x [<!ENTITY a "b">]>',
    '<!ENTITY a "b">',
    "&a;",
    "\ufeff",
]
USUAL = (
    b"<xml><data><status>completed</status><progress>100</progress><result><channels>"
    b"<channel>email</channel><status><all>3</all></status></channels></result></data>"
    b"<error>0</error></xml>"
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(AROUND), max_size=3), st.lists(st.sampled_from(AROUND), max_size=3))
def test_text_around_a_reply_is_read_as_the_exact_path_reads_it(
    before: list[str], after: list[str]
) -> None:
    """Replies share one parsing stream: whatever comes before or after a reply's element (a
    second element, an unclosed one, the stream's own tags), the fast path reads it as the
    exact path does or gives up, and the next reply is read right."""
    body = "".join(before).encode() + USUAL + "".join(after).encode()
    fast = read_reply(body, TaskStatus)
    if fast is not UNUSUAL:
        assert_same(fast, exact(body, TaskStatus))
    again = read_reply(USUAL, TaskStatus)
    assert again is not UNUSUAL
    assert_same(again, exact(USUAL, TaskStatus))


def test_a_reply_cut_short_does_not_spill_into_the_next() -> None:
    assert read_reply(USUAL[:-10], TaskStatus) is UNUSUAL
    assert read_reply(USUAL[:40], TaskStatus) is UNUSUAL
    assert_same(read_reply(USUAL, TaskStatus), exact(USUAL, TaskStatus))


def test_a_reply_in_another_encoding_is_read_by_a_parser_of_its_own() -> None:
    body = '<?xml version="1.0" encoding="windows-1251"?>' + USUAL.decode().replace(
        "email", "почта"
    )
    fast = read_reply(body.encode("cp1251"), TaskStatus)
    assert fast is not UNUSUAL
    assert fast.result[0].channels[0].channel == "почта"
    assert_same(fast, exact(body.encode("cp1251"), TaskStatus))


@pytest.mark.parametrize("before", ["junk", "\u00a0", "&amp;", " x "])
def test_text_before_a_reply_on_a_fresh_stream_is_refused_as_before(before: str) -> None:
    """After a reply that drops the stream, the next one opens a new one: text before its
    element lands elsewhere there (the wrapper's text) and is still seen."""
    assert read_reply(b"<xml><", TaskStatus) is UNUSUAL  # an error: the stream is dropped
    body = before.encode() + USUAL
    assert read_reply(body, TaskStatus) is UNUSUAL
    with pytest.raises(DecodeError):
        exact(body, TaskStatus)
