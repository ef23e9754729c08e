"""The codec: docs examples, round trips, XML quirks, malformed replies, XML hardening.

Everything goes through ``decode_reply(spec, 200, {}, body, fmt)`` (or the codec functions
directly), synchronously: no event loop, no I/O.
"""

from __future__ import annotations

import codecs
import json
import tracemalloc
from datetime import UTC, datetime

import attrs
import docs_examples as docs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altcraft_async import (
    ChannelCounters,
    CountersSnapshot,
    CounterStatus,
    DecodeError,
    NumericProperty,
    RelationInfo,
    SenderQueueStats,
    TaskRef,
    TaskStatus,
    from_builtins,
    to_builtins,
)
from altcraft_async._codec import MAX_DEPTH, encode, excerpt, parse, structure, unstructure
from altcraft_async._sansio import decode_reply
from altcraft_async.api._specs import (
    ADMIN_SENDER_QUEUE_STATS,
    RELATIONS_GET_COUNTER,
    RESOURCES_REFRESH_COUNTERS,
    SEGMENTS_GET_COUNTERS,
    SEGMENTS_REFRESH_COUNTERS,
    TASKS_STATUS,
)
from altcraft_async.models.tasks import FAILURE_STATUSES, SUCCESS_STATUSES, normalize_status

FORMATS = ("json", "xml")

# --- the docs examples, decoded to explicit expected models -------------------------------


def _sendable(subscribed: int, unconfirmed: int = 0) -> CounterStatus:
    return CounterStatus(subscribed_sendable=subscribed, unconfirmed_sendable=unconfirmed)


def _full(*, hardbounced: int = 0, subscribed: int = 0, unsubscribed: int = 0) -> CounterStatus:
    return CounterStatus(
        all=1336,
        complained=0,
        hardbounced=hardbounced,
        invalid=0,
        subscribed=subscribed,
        subscribed_sendable=subscribed,
        suspended=0,
        unconfirmed=0,
        unconfirmed_sendable=0,
        unsubscribed=unsubscribed,
    )


EXPECTED_GET_COUNTERS = [
    ChannelCounters("email", _sendable(209)),
    ChannelCounters("push", _sendable(0)),
    ChannelCounters("sms", _sendable(108)),
]

EXPECTED_SEGMENT_TASK = TaskStatus(
    status="completed",
    progress=100,
    result=(
        CountersSnapshot(
            channels=(
                ChannelCounters("email", _sendable(209)),
                ChannelCounters("push", _sendable(0)),
                ChannelCounters("sms", _sendable(0)),
            ),
            in_progress=False,
            list_id=1,
            resource_id=27,
            refresh_task_id="",
            last_count_time="",
            updated=datetime(2024, 4, 20, 9, 30, 1, 583000, tzinfo=UTC),
        ),
    ),
)

EXPECTED_RESOURCE_TASK = TaskStatus(
    status="completed",
    progress=100,
    result=(
        CountersSnapshot(
            channels=(
                ChannelCounters("sms", _full()),
                ChannelCounters("push", _full()),
                ChannelCounters("email", _full(hardbounced=434, subscribed=842, unsubscribed=60)),
            ),
            in_progress=False,
            list_id=1,
            resource_id=None,
            refresh_task_id="",
            last_count_time="counted at 2024-04-19T13:31:08Z in 231.374251ms",
            updated=datetime(2024, 4, 19, 13, 31, 8, 927000, tzinfo=UTC),
        ),
    ),
)

EXPECTED_QUEUE = [
    SenderQueueStats(
        account_id=306, campaign_id=4591, hold=0, isp="", new=100, proc=100, retry=0, total=200
    ),
    SenderQueueStats(
        account_id=306, campaign_id=4914, hold=80, isp="", new=10, proc=10, retry=40, total=140
    ),
]

EXPECTED_RELATION = RelationInfo(
    profile_id="669e6968ebf4ac52b623a997", profile_xxh="5af1023c84f66195", props={}
)

DOCS_CASES = [
    ("segments.get_counters", SEGMENTS_GET_COUNTERS, EXPECTED_GET_COUNTERS),
    (
        "segments.refresh_counters",
        SEGMENTS_REFRESH_COUNTERS,
        TaskRef("55a345c8-3d79-47ef-b03e-b84ce8e0c126"),
    ),
    ("segment tasks.status", TASKS_STATUS, EXPECTED_SEGMENT_TASK),
    (
        "resources.refresh_counters",
        RESOURCES_REFRESH_COUNTERS,
        TaskRef("c9c3ec48-1bef-4969-9c1a-df39f0c179bb"),
    ),
    ("resource tasks.status", TASKS_STATUS, EXPECTED_RESOURCE_TASK),
    ("admin.sender_queue_stats", ADMIN_SENDER_QUEUE_STATS, EXPECTED_QUEUE),
    ("relations.get_counter", RELATIONS_GET_COUNTER, EXPECTED_RELATION),
]


def test_every_docs_response_pair_is_covered():
    assert sorted(name for name, _, _ in DOCS_CASES) == sorted(docs.RESPONSE_PAIRS)


def test_resource_task_xml_example_keeps_its_leading_space():
    assert docs.RESOURCE_TASKS_STATUS_RESPONSE_XML.startswith(b" <xml>\n<data>")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("name", "spec", "expected"), DOCS_CASES, ids=[c[0] for c in DOCS_CASES])
def test_docs_response_decodes_to_documented_values(name, spec, expected, fmt):
    body = docs.RESPONSE_PAIRS[name][0 if fmt == "json" else 1]
    assert decode_reply(spec, 200, {}, body, fmt) == expected


@pytest.mark.parametrize(("name", "spec", "expected"), DOCS_CASES, ids=[c[0] for c in DOCS_CASES])
def test_docs_json_and_xml_twins_decode_equal(name, spec, expected):
    json_body, xml_body = docs.RESPONSE_PAIRS[name]
    from_json = decode_reply(spec, 200, {}, json_body, "json")
    from_xml = decode_reply(spec, 200, {}, xml_body, "xml")
    assert from_json == from_xml
    assert unstructure(from_json) == unstructure(from_xml)


@pytest.mark.parametrize("fmt", FORMATS)
def test_resource_task_example_field_values_and_types(fmt):
    body = docs.RESPONSE_PAIRS["resource tasks.status"][0 if fmt == "json" else 1]
    task = decode_reply(TASKS_STATUS, 200, {}, body, fmt)
    assert task.succeeded and task.done and not task.failed
    assert task.progress == 100
    (snap,) = task.result
    assert type(snap.in_progress) is bool and snap.in_progress is False
    assert snap.refresh_task_id == ""
    assert type(snap.list_id) is int and snap.list_id == 1
    assert snap.resource_id is None
    assert snap.updated == datetime(2024, 4, 19, 13, 31, 8, 927000, tzinfo=UTC)
    assert snap.updated.utcoffset().total_seconds() == 0
    assert [c.channel for c in snap.channels] == ["sms", "push", "email"]
    email = snap.channel("email").status
    assert (email.hardbounced, email.subscribed, email.unsubscribed) == (434, 842, 60)
    assert type(email.subscribed) is int
    assert type(snap.channels) is tuple


@pytest.mark.parametrize("fmt", FORMATS)
def test_segment_task_example_leaves_absent_counters_none(fmt):
    body = docs.RESPONSE_PAIRS["segment tasks.status"][0 if fmt == "json" else 1]
    (snap,) = decode_reply(TASKS_STATUS, 200, {}, body, fmt).result
    email = snap.channel("email").status
    assert email.subscribed_sendable == 209
    assert email.all is None and email.subscribed is None and email.hardbounced is None
    assert snap.last_count_time == ""
    assert snap.resource_id == 27


@pytest.mark.parametrize("fmt", FORMATS)
def test_queue_and_relation_examples_empty_values(fmt):
    queue = decode_reply(
        ADMIN_SENDER_QUEUE_STATS,
        200,
        {},
        docs.RESPONSE_PAIRS["admin.sender_queue_stats"][fmt == "xml"],
        fmt,
    )
    assert [row.isp for row in queue] == ["", ""]
    assert type(queue) is list
    relation = decode_reply(
        RELATIONS_GET_COUNTER,
        200,
        {},
        docs.RESPONSE_PAIRS["relations.get_counter"][fmt == "xml"],
        fmt,
    )
    assert relation.props == {}


# --- round trips: model -> unstructure -> encode -> decode_reply -> same model -------------
#
# XML has no types, no null and no arrays, so three things cannot round-trip through it and the
# XML strategies leave them out (the JSON strategies keep them):
#   * blank text: an element holding only whitespace reads back as empty;
#   * XML 1.0 cannot carry control characters, surrogates or non-characters.
# (Empty lists do round-trip here: every list/tuple field and list reply defaults to empty.)
# Props keys become element names in XML, so they are restricted to identifier-like names,
# and XML prop values come back as text (only non-empty text values are generated).

_INT = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_OPT_INT = st.none() | _INT
_FLOAT = st.floats(allow_nan=False, allow_infinity=False)
_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
# year 1 is Go's zero time, which the reader takes as "no timestamp"
_DATETIME = st.datetimes(min_value=datetime(2, 1, 1), timezones=st.just(UTC))


def _text(fmt: str, *, min_size: int = 0) -> st.SearchStrategy[str]:
    if fmt == "json":
        return st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=min_size)
    chars = st.characters(blacklist_categories=("Cc", "Cs", "Cn", "Co"))
    stripped = st.text(alphabet=chars, max_size=30).map(str.strip)
    return stripped.filter(lambda s: len(s) >= min_size)


def _strategies(fmt: str) -> dict[str, st.SearchStrategy]:
    text = _text(fmt)
    counter_status = st.builds(CounterStatus, **{name: _OPT_INT for name in _counter_names()})
    channel = st.builds(ChannelCounters, channel=text, status=counter_status)
    snapshot = st.builds(
        CountersSnapshot,
        channels=st.lists(channel, max_size=3).map(tuple),
        in_progress=st.booleans(),
        list_id=_OPT_INT,
        resource_id=_OPT_INT,
        refresh_task_id=text,
        last_count_time=text,
        updated=st.none() | _DATETIME,
    )
    # A status is read trimmed and case-folded, and a result only with a success status
    status = st.sampled_from(sorted(SUCCESS_STATUSES | FAILURE_STATUSES)) | text.filter(
        lambda word: word and normalize_status(word) == word
    )
    task_status = st.builds(
        TaskStatus,
        status=status,
        progress=st.none() | _FLOAT,
        result=st.lists(snapshot, max_size=2).map(tuple),
    ).map(lambda task: task if task.succeeded else attrs.evolve(task, result=()))
    queue_row = st.builds(
        SenderQueueStats,
        account_id=_OPT_INT,
        campaign_id=_OPT_INT,
        isp=text,
        hold=_INT,
        new=_INT,
        proc=_INT,
        retry=_INT,
        total=_INT,
    )
    top = st.dictionaries(_KEY, _text(fmt, min_size=1), max_size=3)
    numeric = st.builds(NumericProperty, top=top, sum=_FLOAT)
    relation = st.builds(
        RelationInfo,
        profile_id=text,
        profile_xxh=text,
        props=st.dictionaries(_KEY, numeric | _text(fmt, min_size=1), max_size=3),
    )
    return {
        "channels": st.lists(channel, max_size=4),
        "task_ref": st.builds(TaskRef, task_id=text.filter(str.strip)),
        "task_status": task_status,
        "queue": st.lists(queue_row, max_size=3),
        "relation": relation,
    }


def _counter_names() -> list[str]:
    import attrs

    return list(attrs.fields_dict(CounterStatus))


ROUND_TRIP_SPECS = {
    "channels": SEGMENTS_GET_COUNTERS,
    "task_ref": SEGMENTS_REFRESH_COUNTERS,
    "task_status": TASKS_STATUS,
    "queue": ADMIN_SENDER_QUEUE_STATS,
    "relation": RELATIONS_GET_COUNTER,
}

_RT_SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _round_trip(value, spec, fmt):
    document = {"data": unstructure(value), "error": 0, "error_text": "ok"}
    return decode_reply(spec, 200, {}, encode(document, fmt), fmt)


def _round_trip_case(kind: str, fmt: str):
    @_RT_SETTINGS
    @given(value=_strategies(fmt)[kind])
    def check(value):
        assert _round_trip(value, ROUND_TRIP_SPECS[kind], fmt) == value

    return check


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", sorted(ROUND_TRIP_SPECS))
def test_round_trip(kind, fmt):
    _round_trip_case(kind, fmt)()


@pytest.mark.parametrize("kind", sorted(ROUND_TRIP_SPECS))
def test_to_builtins_is_json_ready_and_from_builtins_reads_it_back(kind):
    cls = ROUND_TRIP_SPECS[kind].response

    @_RT_SETTINGS
    @given(value=_strategies("json")[kind])
    def check(value):
        plain = to_builtins(value)
        again = json.loads(json.dumps(plain))  # only builtins: the stdlib encodes it as is
        assert again == plain
        assert from_builtins(cls, again) == value

    check()


def test_to_builtins_uses_the_wire_shape():
    stamp = datetime(2024, 4, 20, 9, 30, 1, 583000, tzinfo=UTC)
    snapshot = CountersSnapshot(channels=(ChannelCounters("email"),), updated=stamp)
    assert to_builtins([snapshot])[0]["updated"] == "2024-04-20T09:30:01.583000Z"
    failed = TaskStatus("failed", 40.0, failure_result={"reason": "db down"})
    assert to_builtins(failed) == {
        "status": "failed",
        "progress": 40.0,
        "result": {"reason": "db down"},
    }
    assert from_builtins(TaskStatus, to_builtins(failed)).failure_result == {"reason": "db down"}
    with pytest.raises(DecodeError, match="from_builtins"):
        from_builtins(list[ChannelCounters], [{"status": {}}])


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_single_item_lists(fmt):
    # One-item lists are exactly the XML ambiguity (one <data> looks like an object).
    rows = [SenderQueueStats(account_id=1, isp="Gmail", total=3)]
    assert _round_trip(rows, ADMIN_SENDER_QUEUE_STATS, fmt) == rows
    task = TaskStatus("completed", 12.5, (CountersSnapshot(channels=(ChannelCounters("email"),)),))
    assert _round_trip(task, TASKS_STATUS, fmt) == task


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_numeric_props(fmt):
    info = RelationInfo("p", "x", {"orders": NumericProperty(top={"a": "1"}, sum=12.5), "s": "v"})
    decoded = _round_trip(info, RELATIONS_GET_COUNTER, fmt)
    assert decoded == info
    assert isinstance(decoded.props["orders"], NumericProperty)


def test_unstructure_datetime_uses_z():
    snap = CountersSnapshot(updated=datetime(2024, 4, 19, 13, 31, 8, 927000, tzinfo=UTC))
    assert unstructure(snap)["updated"] == "2024-04-19T13:31:08.927000Z"


# --- encode / parse ----------------------------------------------------------------------


def test_encode_xml_shapes():
    document = {
        "token": "a<b&c>",
        "flag": True,
        "off": False,
        "none": None,
        "n": 5,
        "items": [{"x": 1}, {"x": 2}],
        "feedback": {"type": "JSON", "url": "http://example.com/r?a=1&b=2"},
    }
    assert encode(document, "xml") == (
        b"<xml><token>a&lt;b&amp;c&gt;</token><flag>true</flag><off>false</off><none></none>"
        b"<n>5</n><items><x>1</x></items><items><x>2</x></items>"
        b"<feedback><type>JSON</type><url>http://example.com/r?a=1&amp;b=2</url></feedback></xml>"
    )
    assert parse(encode(document, "xml"), "xml") == {
        "token": "a<b&c>",
        "flag": "true",
        "off": "false",
        "none": None,
        "n": "5",
        "items": [{"x": "1"}, {"x": "2"}],
        "feedback": {"type": "JSON", "url": "http://example.com/r?a=1&b=2"},
    }


def test_encode_json_round_trips_through_parse():
    document = {"token": "t", "id": 7, "feedback": {"type": "JSON", "url": "http://x"}}
    assert encode(document, "json") == (
        b'{"token":"t","id":7,"feedback":{"type":"JSON","url":"http://x"}}'
    )
    assert parse(encode(document, "json"), "json") == document


def test_excerpt_is_short_and_printable():
    assert excerpt(b"x" * 500) == "x" * 80
    assert excerpt(b"\xff\xfeabc") == "\ufffd\ufffdabc"


def test_structure_direct():
    assert structure({"task_id": "t"}, TaskRef, "json") == TaskRef("t")
    with pytest.raises(DecodeError, match="TaskRef"):
        structure({"task_id": 5}, TaskRef, "json", endpoint="e")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("task_id", [None, "", "  "])
def test_a_task_ref_without_an_id_is_a_decode_error(fmt, task_id):
    # a task that cannot be polled is no task: refused at the start, not at the first poll
    with pytest.raises(DecodeError, match="TaskRef"):
        structure({"task_id": task_id}, TaskRef, fmt)


# --- XML quirks --------------------------------------------------------------------------


def _xml(data: str, error: str = "0") -> bytes:
    return f"<xml>{data}<error>{error}</error><error_text>ok</error_text></xml>".encode()


def _json(data: str) -> bytes:
    return f'{{"data": {data}, "error": 0, "error_text": "ok"}}'.encode()


def test_xml_single_data_element_is_a_one_item_list():
    body = _xml("<data><channel>email</channel><status><subscribed>3</subscribed></status></data>")
    result = decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, "xml")
    assert result == [ChannelCounters("email", CounterStatus(subscribed=3))]
    assert type(result) is list


def test_xml_single_channels_element_is_a_one_item_tuple():
    body = _xml(
        "<data><status>completed</status><progress>100</progress><result>"
        "<channels><channel>sms</channel><status><all>5</all></status></channels>"
        "<in_progress>false</in_progress></result></data>"
    )
    task = decode_reply(TASKS_STATUS, 200, {}, body, "xml")
    assert task.result == (
        CountersSnapshot(channels=(ChannelCounters("sms", CounterStatus(all=5)),)),
    )
    assert type(task.result) is tuple and type(task.result[0].channels) is tuple


def test_xml_no_data_elements_is_an_empty_list():
    assert decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, _xml(""), "xml") == []


def test_xml_numbers_as_text_are_converted():
    body = _xml(
        "<data><status>completed</status><progress>42.5</progress><result>"
        "<list_id>17</list_id><resource_id>-3</resource_id>"
        "<channels><channel>email</channel><status><all>1336</all></status></channels>"
        "</result></data>"
    )
    task = decode_reply(TASKS_STATUS, 200, {}, body, "xml")
    assert task.progress == 42.5 and type(task.progress) is float
    snap = task.result[0]
    assert (snap.list_id, snap.resource_id) == (17, -3)
    assert snap.channels[0].status.all == 1336 and type(snap.channels[0].status.all) is int


@pytest.mark.parametrize(
    ("text", "expected"),
    [("false", False), ("true", True), ("0", False), ("1", True), ("False", False), ("TRUE", True)],
)
def test_xml_booleans(text, expected):
    body = _xml(
        f"<data><status>completed</status><result><in_progress>{text}</in_progress></result></data>"
    )
    (snap,) = decode_reply(TASKS_STATUS, 200, {}, body, "xml").result
    assert snap.in_progress is expected


@pytest.mark.parametrize("text", ["yes", "2", "maybe", "<x>1</x>", ""])
def test_xml_garbage_informational_boolean_is_left_at_its_default(text):
    # in_progress only describes the snapshot: it never costs the counters beside it
    body = _xml(
        "<data><status>completed</status><result><in_progress>"
        f"{text}</in_progress><channels><channel>email</channel><status><all>5</all></status>"
        "</channels></result></data>"
    )
    (snap,) = decode_reply(TASKS_STATUS, 200, {}, body, "xml").result
    assert snap.in_progress is False
    assert snap.channels == (ChannelCounters("email", CounterStatus(all=5)),)


def test_xml_empty_refresh_task_id_is_empty_string():
    body = _xml(
        "<data><status>completed</status><result><refresh_task_id></refresh_task_id></result></data>"
    )
    assert decode_reply(TASKS_STATUS, 200, {}, body, "xml").result[0].refresh_task_id == ""


@pytest.mark.parametrize("isp", ["<isp></isp>", "<isp/>", "<isp>\n</isp>"])
def test_xml_empty_isp_is_empty_string(isp):
    body = _xml(f"<data><account_id>1</account_id>{isp}<total>2</total></data>")
    assert decode_reply(ADMIN_SENDER_QUEUE_STATS, 200, {}, body, "xml") == [
        SenderQueueStats(account_id=1, isp="", total=2)
    ]


@pytest.mark.parametrize("empty", ["<account_id></account_id>", "<account_id/>"])
def test_xml_empty_optional_int_is_none(empty):
    body = _xml(f"<data>{empty}<campaign_id/><total>2</total></data>")
    (row,) = decode_reply(ADMIN_SENDER_QUEUE_STATS, 200, {}, body, "xml")
    assert row.account_id is None and row.campaign_id is None and row.total == 2


@pytest.mark.parametrize("props", ["<props/>", "<props></props>", "<props>\n</props>", ""])
def test_xml_empty_props_is_empty_dict(props):
    body = _xml(f"<data><profile_id>p</profile_id><profile_xxh>x</profile_xxh>{props}</data>")
    info = decode_reply(RELATIONS_GET_COUNTER, 200, {}, body, "xml")
    assert info == RelationInfo("p", "x", {})
    assert info.props == {}


def test_xml_numeric_props():
    body = _xml(
        "<data><profile_id>p</profile_id><props><orders><top><a>1</a></top><sum>12.5</sum>"
        "</orders><note>text</note></props></data>"
    )
    info = decode_reply(RELATIONS_GET_COUNTER, 200, {}, body, "xml")
    assert info.props == {"orders": NumericProperty(top={"a": "1"}, sum=12.5), "note": "text"}


@pytest.mark.parametrize(("text", "expected"), [("787", 787), ("-3", -3), ("12.5", 12.5)])
def test_xml_numeric_sum_has_the_type_json_gives_it(text: str, expected: float) -> None:
    body = _xml(f"<data><profile_id>p</profile_id><props><o><sum>{text}</sum></o></props></data>")
    info = decode_reply(RELATIONS_GET_COUNTER, 200, {}, body, "xml")
    total = info.props["o"].sum
    assert total == expected and type(total) is type(expected)


def test_json_numeric_props():
    body = _json('{"profile_id": "p", "props": {"orders": {"top": {"a": 1}, "sum": 3}, "n": 5}}')
    info = decode_reply(RELATIONS_GET_COUNTER, 200, {}, body, "json")
    assert info.props == {"orders": NumericProperty(top={"a": 1}, sum=3), "n": 5}


@pytest.mark.parametrize(
    "prefix",
    [
        b'<?xml version="1.0" encoding="UTF-8"?>',
        b'<?xml version="1.0" encoding="UTF-8"?>\n',
        b"\n\t  ",
        b'  \n<?xml version="1.0"?>\n',
        b"\xef\xbb\xbf",
    ],
    ids=["prolog", "prolog-newline", "whitespace", "whitespace-prolog", "utf8-bom"],
)
def test_xml_prolog_and_leading_whitespace_accepted(prefix):
    body = prefix + docs.SEGMENTS_REFRESH_COUNTERS_RESPONSE_XML
    assert decode_reply(SEGMENTS_REFRESH_COUNTERS, 200, {}, body, "xml") == TaskRef(
        "55a345c8-3d79-47ef-b03e-b84ce8e0c126"
    )


def test_xml_non_ascii_text():
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<xml><data><task_id>задача-1 ✓</task_id></data><error>0</error></xml>"
    )
    assert decode_reply(SEGMENTS_REFRESH_COUNTERS, 200, {}, body.encode(), "xml") == TaskRef(
        "задача-1 ✓"
    )


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        (
            "json",
            _json(
                '[{"channel": "email", "status": {"subscribed": 1, "brand_new": 9}, "extra": [1]}]'
            ),
        ),
        (
            "xml",
            _xml(
                "<data><channel>email</channel><status><subscribed>1</subscribed>"
                "<brand_new>9</brand_new></status><extra><a>1</a></extra></data>"
            ),
        ),
    ],
)
def test_unknown_fields_are_ignored(fmt, body):
    assert decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, fmt) == [
        ChannelCounters("email", CounterStatus(subscribed=1))
    ]


def test_unknown_envelope_fields_are_ignored():
    body = b'{"data": {"task_id": "t"}, "error": 0, "error_text": "ok", "request_id": "r"}'
    assert decode_reply(SEGMENTS_REFRESH_COUNTERS, 200, {}, body, "json") == TaskRef("t")


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        ("json", _json('[{"channel": "telegram_bot", "status": {"subscribed": 4}}]')),
        (
            "xml",
            _xml(
                "<data><channel>telegram_bot</channel><status><subscribed>4</subscribed></status></data>"
            ),
        ),
    ],
)
def test_unknown_custom_channel_names_are_kept(fmt, body):
    (channel,) = decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, fmt)
    assert channel == ChannelCounters("telegram_bot", CounterStatus(subscribed=4))


def test_xml_numeric_looking_strings_stay_strings():
    body = _xml("<data><task_id>12345</task_id></data>")
    ref = decode_reply(SEGMENTS_REFRESH_COUNTERS, 200, {}, body, "xml")
    assert ref == TaskRef("12345") and type(ref.task_id) is str


def test_naive_timestamp_is_taken_as_utc():
    body = _json('{"status": "completed", "result": [{"updated": "2024-04-19T13:31:08"}]}')
    (snap,) = decode_reply(TASKS_STATUS, 200, {}, body, "json").result
    assert snap.updated == datetime(2024, 4, 19, 13, 31, 8, tzinfo=UTC)
    assert snap.updated.tzinfo is not None


def test_offset_timestamp_keeps_its_instant():
    body = _json('{"status": "completed", "result": [{"updated": "2024-04-19T16:31:08+03:00"}]}')
    (snap,) = decode_reply(TASKS_STATUS, 200, {}, body, "json").result
    assert snap.updated == datetime(2024, 4, 19, 13, 31, 8, tzinfo=UTC)


# --- malformed replies -> DecodeError ------------------------------------------------------

_DEEP = (
    b"<xml>"
    + b"<a>" * (MAX_DEPTH + 5)
    + b"1"
    + b"</a>" * (MAX_DEPTH + 5)
    + b"<error>0</error></xml>"
)

MALFORMED = [
    ("not-json", SEGMENTS_GET_COUNTERS, "json", b"hello, world"),
    ("not-xml", SEGMENTS_GET_COUNTERS, "xml", b"hello, world"),
    ("empty-json", SEGMENTS_GET_COUNTERS, "json", b""),
    ("empty-xml", SEGMENTS_GET_COUNTERS, "xml", b"   "),
    ("html-as-xml", TASKS_STATUS, "xml", b"<html><body><p>oops</body></html>"),
    (
        "truncated-json",
        TASKS_STATUS,
        "json",
        docs.RESOURCE_TASKS_STATUS_RESPONSE_JSON[
            : len(docs.RESOURCE_TASKS_STATUS_RESPONSE_JSON) // 2
        ],
    ),
    (
        "truncated-xml",
        TASKS_STATUS,
        "xml",
        docs.RESOURCE_TASKS_STATUS_RESPONSE_XML[
            : len(docs.RESOURCE_TASKS_STATUS_RESPONSE_XML) // 2
        ],
    ),
    ("json-array-top", SEGMENTS_GET_COUNTERS, "json", b'[{"data": [], "error": 0}]'),
    ("json-string-top", SEGMENTS_GET_COUNTERS, "json", b'"ok"'),
    ("json-invalid-utf8", TASKS_STATUS, "json", b'{"data": {"status": "\xff"}, "error": 0}'),
    (
        "json-str-for-int",
        SEGMENTS_GET_COUNTERS,
        "json",
        _json('[{"channel": "email", "status": {"subscribed_sendable": "5"}}]'),
    ),
    (
        "json-bool-for-int",
        SEGMENTS_GET_COUNTERS,
        "json",
        _json('[{"channel": "email", "status": {"subscribed_sendable": true}}]'),
    ),
    (
        "json-float-for-int",
        SEGMENTS_GET_COUNTERS,
        "json",
        _json('[{"channel": "email", "status": {"subscribed_sendable": 5.5}}]'),
    ),
    ("json-int-for-str", SEGMENTS_REFRESH_COUNTERS, "json", _json('{"task_id": 12345}')),
    (
        "xml-word-for-int",
        SEGMENTS_GET_COUNTERS,
        "xml",
        _xml("<data><channel>email</channel><status><all>many</all></status></data>"),
    ),
    (
        "xml-bool-for-int",
        ADMIN_SENDER_QUEUE_STATS,
        "xml",
        _xml("<data><total>true</total></data>"),
    ),
    (
        "xml-element-for-str",
        SEGMENTS_REFRESH_COUNTERS,
        "xml",
        _xml("<data><task_id><a>1</a></task_id></data>"),
    ),
    ("json-task-without-status", TASKS_STATUS, "json", _json('{"progress": 100, "result": []}')),
    (
        "xml-task-without-status",
        TASKS_STATUS,
        "xml",
        _xml("<data><progress>100</progress></data>"),
    ),
    (
        "json-channel-without-channel",
        SEGMENTS_GET_COUNTERS,
        "json",
        _json('[{"status": {"subscribed": 1}}]'),
    ),
    (
        "xml-channel-without-channel",
        SEGMENTS_GET_COUNTERS,
        "xml",
        _xml("<data><status><subscribed>1</subscribed></status></data>"),
    ),
    ("json-task-ref-without-id", SEGMENTS_REFRESH_COUNTERS, "json", _json("{}")),
    ("xml-task-ref-no-data", SEGMENTS_REFRESH_COUNTERS, "xml", _xml("")),
    (
        "json-object-for-list",
        SEGMENTS_GET_COUNTERS,
        "json",
        _json('{"channel": "email", "status": {}}'),
    ),
    ("json-list-for-object", SEGMENTS_REFRESH_COUNTERS, "json", _json('[{"task_id": "t"}]')),
    ("json-string-for-object", RELATIONS_GET_COUNTER, "json", _json('"nope"')),
    (
        "json-object-for-channels",
        TASKS_STATUS,
        "json",
        _json('{"status": "completed", "result": [{"channels": {"channel": "email"}}]}'),
    ),
    ("json-list-for-props", RELATIONS_GET_COUNTER, "json", _json('{"props": [1, 2]}')),
    (
        "json-bad-numeric-prop",
        RELATIONS_GET_COUNTER,
        "json",
        _json('{"props": {"orders": {"sum": [1]}}}'),
    ),
    (
        "xml-repeated-object",
        SEGMENTS_REFRESH_COUNTERS,
        "xml",
        _xml("<data><task_id>a</task_id></data><data><task_id>b</task_id></data>"),
    ),
    ("xml-too-deep", SEGMENTS_GET_COUNTERS, "xml", _DEEP),
    (
        "json-huge-int",
        SEGMENTS_GET_COUNTERS,
        "json",
        _json('[{"channel": "email", "status": {"all": 123456789012345678901234567890}}]'),
    ),
    (
        "json-huge-negative-int",
        ADMIN_SENDER_QUEUE_STATS,
        "json",
        _json('[{"total": -99999999999999999999999}]'),
    ),
    (
        "xml-huge-int",
        ADMIN_SENDER_QUEUE_STATS,
        "xml",
        _xml("<data><total>" + "9" * 5000 + "</total></data>"),
    ),
    ("json-no-error-code", SEGMENTS_REFRESH_COUNTERS, "json", b'{"data": {"task_id": "t"}}'),
    (
        "xml-no-error-code",
        SEGMENTS_REFRESH_COUNTERS,
        "xml",
        b"<xml><data><task_id>t</task_id></data></xml>",
    ),
    (
        "json-huge-error-code",
        SEGMENTS_REFRESH_COUNTERS,
        "json",
        b'{"data": {"task_id": "t"}, "error": 123456789012345678901234567890}',
    ),
    (
        "xml-word-error-code",
        SEGMENTS_REFRESH_COUNTERS,
        "xml",
        _xml("<data><task_id>t</task_id></data>", "none"),
    ),
]


@pytest.mark.parametrize(
    ("spec", "fmt", "body"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_reply_is_a_decode_error(spec, fmt, body):
    with pytest.raises(DecodeError) as info:
        decode_reply(spec, 200, {}, body, fmt)
    exc = info.value
    assert type(exc) is DecodeError
    assert exc.endpoint == spec.name
    assert str(exc).startswith(f"{spec.name}: ")
    if body.strip():
        assert exc.excerpt, "the error carries the start of the body"
        shown = body.decode("utf-8", "replace").strip()
        assert shown.startswith(exc.excerpt.strip())
        assert repr(exc.excerpt)[:20] in str(exc)


# --- the tolerant reader: what the docs leave open ------------------------------------------
# (id, spec, format, body, expected). The same platform state, sent the ways real servers do.

_SNAP = '{"channels": [{"channel": "email", "status": {"all": 5}}], "list_id": 1}'
_EMAIL5 = (ChannelCounters("email", CounterStatus(all=5)),)
_X_SNAP = "<channels><channel>email</channel><status><all>5</all></status></channels>"


def _done(**fields) -> TaskStatus:
    snap = CountersSnapshot(channels=_EMAIL5, **fields)
    return TaskStatus("completed", 100.0, (snap,))


TOLERATED = [
    # null, a missing key and an empty value are the same for lists, maps, models, strings
    ("json-null-for-list", SEGMENTS_GET_COUNTERS, "json", _json("null"), []),
    ("json-empty-str-for-list", SEGMENTS_GET_COUNTERS, "json", _json('""'), []),
    ("json-no-data-for-list", SEGMENTS_GET_COUNTERS, "json", b'{"error": 0}', []),
    (
        "json-null-status-object",
        SEGMENTS_GET_COUNTERS,
        "json",
        _json('[{"channel": "sms", "status": null}]'),
        [ChannelCounters("sms")],
    ),
    (
        "json-null-channels-and-strings",
        TASKS_STATUS,
        "json",
        _json(
            '{"status": "completed", "progress": 100, "result": [{"channels": null,'
            ' "refresh_task_id": null, "last_count_time": null, "updated": null}]}'
        ),
        TaskStatus("completed", 100.0, (CountersSnapshot(),)),
    ),
    ("json-null-props", RELATIONS_GET_COUNTER, "json", _json('{"props": null}'), RelationInfo()),
    ("json-empty-str-props", RELATIONS_GET_COUNTER, "json", _json('{"props": ""}'), RelationInfo()),
    (
        "json-null-isp",
        ADMIN_SENDER_QUEUE_STATS,
        "json",
        _json('[{"isp": null, "total": 2}]'),
        [SenderQueueStats(total=2)],
    ),
    # statuses trimmed and case-folded; progress a number, a numeric string or absent
    (
        "json-status-case-and-space",
        TASKS_STATUS,
        "json",
        _json('{"status": " Completed ", "progress": 100, "result": [' + _SNAP + "]}"),
        _done(list_id=1),
    ),
    (
        "json-legacy-success",
        TASKS_STATUS,
        "json",
        _json('{"status": "SUCCESS"}'),
        TaskStatus("success"),
    ),
    (
        "json-str-for-float",
        TASKS_STATUS,
        "json",
        _json('{"status": "running", "progress": "5"}'),
        TaskStatus("running", 5.0),
    ),
    (
        "json-no-progress",
        TASKS_STATUS,
        "json",
        _json('{"status": "pending"}'),
        TaskStatus("pending"),
    ),
    (
        "json-garbage-progress",
        TASKS_STATUS,
        "json",
        _json('{"status": "pending", "progress": "soon"}'),
        TaskStatus("pending"),
    ),
    (
        "xml-status-case",
        TASKS_STATUS,
        "xml",
        _xml("<data><status>\n  IN_PROGRESS </status><progress> 8 </progress></data>"),
        TaskStatus("in_progress", 8.0),
    ),
    # a running task's result is never read, whatever it holds
    (
        "json-running-null-result",
        TASKS_STATUS,
        "json",
        _json('{"status": "in_progress", "progress": 8, "result": null}'),
        TaskStatus("in_progress", 8.0),
    ),
    (
        "json-running-garbage-result",
        TASKS_STATUS,
        "json",
        _json('{"status": "processing", "result": [{"channels": 5, "list_id": 1.5}]}'),
        TaskStatus("processing"),
    ),
    (
        "json-running-partial-result",
        TASKS_STATUS,
        "json",
        _json('{"status": "processing", "result": [' + _SNAP + "]}"),
        TaskStatus("processing"),
    ),
    (
        "xml-running-result-text",
        TASKS_STATUS,
        "xml",
        _xml("<data><status>processing</status><result>none yet</result></data>"),
        TaskStatus("processing"),
    ),
    # optional timestamps: empty, blank or Go's zero time is None; RFC 3339 in its variants
    (
        "json-empty-updated",
        TASKS_STATUS,
        "json",
        _json(
            '{"status": "completed", "progress": 100, "result": [{"updated": "",'
            ' "channels": [{"channel": "email", "status": {"all": 5}}]}]}'
        ),
        _done(),
    ),
    (
        "json-zero-time",
        TASKS_STATUS,
        "json",
        _json(
            '{"status": "completed", "progress": 100, "result": [{"updated":'
            ' "0001-01-01T00:00:00Z", "channels": [{"channel": "email", "status": {"all": 5}}]}]}'
        ),
        _done(),
    ),
    (
        "xml-nanoseconds-and-offset",
        TASKS_STATUS,
        "xml",
        _xml(
            "<data><status>completed</status><progress>100</progress><result>"
            + _X_SNAP
            + "<updated>2024-04-20T12:30:01.583123456+03:00</updated></result></data>"
        ),
        _done(updated=datetime(2024, 4, 20, 9, 30, 1, 583123, tzinfo=UTC)),
    ),
    (
        "json-no-fraction-lowercase",
        TASKS_STATUS,
        "json",
        _json(
            '{"status": "completed", "progress": 100, "result": [{"updated":'
            ' "2024-04-20t09:30:01z", "channels": [{"channel": "email", "status": {"all": 5}}]}]}'
        ),
        _done(updated=datetime(2024, 4, 20, 9, 30, 1, tzinfo=UTC)),
    ),
    # an informational field never costs the whole reply
    (
        "json-bad-timestamp",
        TASKS_STATUS,
        "json",
        _json(
            '{"status": "completed", "progress": 100, "result": [{"updated": "yesterday",'
            ' "channels": [{"channel": "email", "status": {"all": 5}}]}]}'
        ),
        _done(),
    ),
    (
        "json-str-for-bool",
        TASKS_STATUS,
        "json",
        _json(
            '{"status": "completed", "progress": 100, "result": [{"in_progress": "true",'
            ' "channels": [{"channel": "email", "status": {"all": 5}}]}]}'
        ),
        _done(in_progress=True),
    ),
    (
        "json-bad-list-id",
        TASKS_STATUS,
        "json",
        _json(
            '{"status": "completed", "progress": 100, "result": [{"list_id": "first",'
            ' "resource_id": 1.5, "channels": [{"channel": "email", "status": {"all": 5}}]}]}'
        ),
        _done(),
    ),
    # an exact integer sent as a float is that integer
    (
        "json-exact-float-for-int",
        SEGMENTS_GET_COUNTERS,
        "json",
        _json('[{"channel": "email", "status": {"all": 5.0}}]'),
        list(_EMAIL5),
    ),
    # a byte-order mark before the body
    (
        "json-bom",
        SEGMENTS_GET_COUNTERS,
        "json",
        codecs.BOM_UTF8 + _json('[{"channel": "email", "status": {"all": 5}}]'),
        list(_EMAIL5),
    ),
    (
        "xml-bom-prolog-indent",
        SEGMENTS_GET_COUNTERS,
        "xml",
        codecs.BOM_UTF8 + b'<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n  <data>\n    '
        b"<channel>email</channel>\n    <status>\n      <all>5</all>\n    </status>\n  </data>\n"
        b"  <error>0</error>\n  <error_text>ok</error_text>\n</xml>\n",
        list(_EMAIL5),
    ),
]


@pytest.mark.parametrize(
    ("spec", "fmt", "body", "expected"), [c[1:] for c in TOLERATED], ids=[c[0] for c in TOLERATED]
)
def test_tolerated_reply(spec, fmt, body, expected):
    assert decode_reply(spec, 200, {}, body, fmt) == expected


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("result", [None, "quota exceeded", {"reason": "db down", "code": "7"}])
@pytest.mark.parametrize("status", ["failed", " ERROR", "Cancelled", "canceled"])
def test_a_failed_status_keeps_whatever_result_it_holds(fmt, result, status):
    data = {"status": status, "progress": 40}
    if result is not None:
        data["result"] = result
    body = encode({"data": data, "error": 0, "error_text": "ok"}, fmt)
    decoded = decode_reply(TASKS_STATUS, 200, {}, body, fmt)
    assert decoded.failed and decoded.status == normalize_status(status)
    assert (decoded.progress, decoded.result, decoded.failure_result) == (40.0, (), result)


STILL_REFUSED = [
    (
        "json-2**64",
        _json('[{"channel": "email", "status": {"all": 18446744073709551616}}]'),
        "json",
    ),
    ("json-2**63", _json('[{"channel": "email", "status": {"all": 9223372036854775808}}]'), "json"),
    ("json-half", _json('[{"channel": "email", "status": {"all": 209.5}}]'), "json"),
    ("json-str-int", _json('[{"channel": "email", "status": {"all": "209"}}]'), "json"),
    (
        "xml-2**64",
        _xml("<data><channel>e</channel><status><all>18446744073709551616</all></status></data>"),
        "xml",
    ),
    ("xml-half", _xml("<data><channel>e</channel><status><all>209.5</all></status></data>"), "xml"),
    ("json-no-error", b'\xef\xbb\xbf{"data": []}', "json"),
    ("neither", b"\xef\xbb\xbfOK", "json"),
]


@pytest.mark.parametrize(
    ("body", "fmt"), [c[1:] for c in STILL_REFUSED], ids=[c[0] for c in STILL_REFUSED]
)
def test_a_documented_counter_is_never_guessed(body, fmt):
    with pytest.raises(DecodeError):
        decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, fmt)


def test_a_completed_status_with_an_unreadable_result_is_a_decode_error():
    body = _json('{"status": "completed", "result": [{"channels": [{"status": {"all": 1.5}}]}]}')
    with pytest.raises(DecodeError, match="TaskStatus"):
        decode_reply(TASKS_STATUS, 200, {}, body, "json")


def test_json_max_64_bit_ints_still_decode():
    body = _json('[{"total": 9223372036854775807, "hold": -9223372036854775808}]')
    (row,) = decode_reply(ADMIN_SENDER_QUEUE_STATS, 200, {}, body, "json")
    assert (row.total, row.hold) == (2**63 - 1, -(2**63))


def _peak_bytes(action) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        # 8 MiB of nesting, inside the default max_response_size: ~780 MiB if parsed whole
        (b"<xml>" + b"<a>" * (8 * 2**20 // 3), "nested deeper"),
        # 8 MiB of siblings: a million elements
        (b"<xml><data>" + b"<a/>" * (2 * 2**20) + b"</data><error>0</error></xml>", "elements"),
    ],
    ids=["deep", "wide"],
)
def test_hostile_xml_is_refused_while_parsing_with_bounded_memory(body, reason):
    def decode():
        with pytest.raises(DecodeError, match=reason) as caught:
            decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, "xml")
        assert not caught.value.transient

    assert _peak_bytes(decode) < 64 * 2**20


@pytest.mark.parametrize("depth_over", [0, 1])
def test_a_large_reply_is_held_to_the_same_depth_limit(depth_over):
    depth = MAX_DEPTH - 1 + depth_over
    padding = b"<pad>" + b"x" * (100 * 1024) + b"</pad>"  # past the whole-parse size
    body = (
        b"<xml>"
        + padding
        + b"<data>"
        + b"<a>" * depth
        + b"1"
        + b"</a>" * depth
        + b"</data><error>0</error></xml>"
    )
    if depth_over:
        with pytest.raises(DecodeError, match="nested deeper"):
            parse(body, "xml")
    else:
        assert parse(body, "xml")["pad"] == "x" * (100 * 1024)


def test_a_large_legitimate_xml_reply_decodes_like_a_small_one():
    rows = [SenderQueueStats(account_id=n, isp=f"isp{n}.example", total=n) for n in range(1, 3001)]
    body = encode({"data": [unstructure(row) for row in rows], "error": 0, "error_text": ""}, "xml")
    assert len(body) > 64 * 1024  # the incremental path
    assert decode_reply(ADMIN_SENDER_QUEUE_STATS, 200, {}, body, "xml") == rows
    with pytest.raises(DecodeError, match="invalid XML"):
        decode_reply(ADMIN_SENDER_QUEUE_STATS, 200, {}, body[:-10], "xml")


def test_xml_at_max_depth_is_accepted():
    # <xml> is depth 0; a chain of MAX_DEPTH - 1 <a> under <data> puts the leaf at MAX_DEPTH.
    depth = MAX_DEPTH - 1
    body = (
        b"<xml><data>" + b"<a>" * depth + b"1" + b"</a>" * depth + b"</data><error>0</error></xml>"
    )
    document = parse(body, "xml")
    node = document["data"]
    for _ in range(depth - 1):
        node = node["a"]
    assert node == {"a": "1"}


# --- XML hardening -----------------------------------------------------------------------

_LOL = "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol0 "lol">' + _LOL + "]>"
    "<xml><data><task_id>&lol9;</task_id></data><error>0</error></xml>"
)
QUADRATIC = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "' + "A" * 50_000 + '">]>'
    "<xml><data><task_id>" + "&a;" * 5_000 + "</task_id></data><error>0</error></xml>"
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><data><task_id>&xxe;</task_id></data><error>0</error></xml>"
)
PARAMETER_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % ext SYSTEM "http://127.0.0.1:9/x.dtd"> %ext;]>'
    "<xml><data><task_id>t</task_id></data><error>0</error></xml>"
)
EXTERNAL_DTD = (
    '<?xml version="1.0"?><!DOCTYPE xml SYSTEM "file:///etc/passwd">'
    "<xml><data><task_id>t</task_id></data><error>0</error></xml>"
)
UNDECLARED_ENTITY = "<xml><data><task_id>&xxe;</task_id></data><error>0</error></xml>"
# Small enough for expat's own amplification limits to let through: only the DTD refusal stops it.
SMALL_ENTITY = (
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY e "expanded">]>'
    "<xml><data><task_id>&e;</task_id></data><error>0</error></xml>"
)

HOSTILE = [
    ("billion-laughs", BILLION_LAUGHS.encode()),
    ("quadratic-blowup", QUADRATIC.encode()),
    ("external-entity", EXTERNAL.encode()),
    ("parameter-entity", PARAMETER_ENTITY.encode()),
    ("external-dtd", EXTERNAL_DTD.encode()),
    ("undeclared-entity", UNDECLARED_ENTITY.encode()),
    ("billion-laughs-utf16", BILLION_LAUGHS.replace("?>", ' encoding="UTF-16"?>').encode("utf-16")),
    ("external-entity-utf16", EXTERNAL.encode("utf-16")),
    ("billion-laughs-utf16-le", BILLION_LAUGHS.encode("utf-16-le")),
    ("doctype-after-whitespace", b"\n  " + BILLION_LAUGHS.encode()),
    ("small-entity-utf8", SMALL_ENTITY.replace(' encoding="UTF-16"', "").encode()),
    ("small-entity-utf16", SMALL_ENTITY.encode("utf-16")),
    ("small-entity-utf16-be", SMALL_ENTITY.encode("utf-16-be")),
    ("small-entity-utf32", SMALL_ENTITY.replace("UTF-16", "UTF-32").encode("utf-32")),
]


@pytest.mark.parametrize("body", [c[1] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_xml_is_refused(body):
    with pytest.raises(DecodeError) as info:
        decode_reply(SEGMENTS_REFRESH_COUNTERS, 200, {}, body, "xml")
    assert "segments.refresh_counters" in str(info.value)
    assert "root:" not in str(info.value)  # nothing from /etc/passwd leaks into the message
    with pytest.raises(DecodeError):
        parse(body, "xml")


def test_benign_entities_still_work():
    body = b"<xml><data><task_id>a&amp;b&lt;c&#62;&#x41;</task_id></data><error>0</error></xml>"
    assert decode_reply(SEGMENTS_REFRESH_COUNTERS, 200, {}, body, "xml") == TaskRef("a&b<c>A")


def test_cdata_is_text():
    body = b"<xml><data><task_id><![CDATA[<not-a-tag>]]></task_id></data><error>0</error></xml>"
    assert decode_reply(SEGMENTS_REFRESH_COUNTERS, 200, {}, body, "xml") == TaskRef("<not-a-tag>")


def test_xml_text_is_kept_as_sent_and_blank_text_is_empty():
    body = (
        b"<xml><data><profile_id> p 1 </profile_id><profile_xxh>  </profile_xxh></data>"
        b"<error>0</error><error_text>ok</error_text></xml>"
    )
    info = decode_reply(RELATIONS_GET_COUNTER, 200, {}, body, "xml")
    assert info.profile_id == " p 1 "
    assert info.profile_xxh == ""
