"""Sans-I/O requests and replies: the endpoint specs on the wire, validation, envelope rules."""

from __future__ import annotations

import docs_examples as docs
import pytest

from altcraft_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    DecodeError,
    Feedback,
    HTTPStatusError,
    InvalidRequestError,
    Match,
    PermissionDeniedError,
    TariffLimitError,
    TaskRef,
)
from altcraft_async._codec import parse
from altcraft_async._sansio import API_PREFIX, PreparedRequest, build_request, decode_reply
from altcraft_async.api._specs import (
    ADMIN_SENDER_QUEUE_STATS,
    ALL_SPECS,
    RELATIONS_GET_COUNTER,
    RESOURCES_REFRESH_COUNTERS,
    SEGMENTS_GET_COUNTERS,
    SEGMENTS_REFRESH_COUNTERS,
    TASKS_STATUS,
)

FORMATS = ("json", "xml")
TOKEN = "abcdefghijklmnqrstuvwxyz"
SECRET = "s3cr3t-T0KEN-never-shown"


def _xml_text(document):
    """What a JSON request document looks like once it went through XML (all text)."""
    if isinstance(document, dict):
        return {key: _xml_text(value) for key, value in document.items()}
    if isinstance(document, bool):
        return "true" if document else "false"
    return str(document)


# --- paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        (SEGMENTS_GET_COUNTERS, "/api/v1.1/segments/get_counters"),
        (SEGMENTS_REFRESH_COUNTERS, "/api/v1.1/segments/refresh_counters"),
        (RESOURCES_REFRESH_COUNTERS, "/api/v1.1/resources/refresh_counters"),
        (TASKS_STATUS, "/api/v1.1/tasks/status"),
        (ADMIN_SENDER_QUEUE_STATS, "/api/v1.1/admin/senders/queue/stats/"),
        (RELATIONS_GET_COUNTER, "/api/v1.1/relations/get_counter"),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_spec_paths(spec, path):
    assert spec.url_path == path
    assert API_PREFIX + spec.path == path


def test_spec_flags():
    assert len(ALL_SPECS) == 8
    assert len({spec.name for spec in ALL_SPECS}) == 8
    assert {spec.name for spec in ALL_SPECS if spec.starts_task} == {
        "segments.refresh_counters",
        "resources.refresh_counters",
        "databases.refresh_counters",
    }
    assert {spec.name for spec in ALL_SPECS if spec.admin} == {"admin.sender_queue_stats"}


# --- wire names --------------------------------------------------------------------------

WIRE_CASES = [
    (
        "segments.get_counters",
        SEGMENTS_GET_COUNTERS,
        {"segment_id": 7, "resource_id": 24, "database_id": 1},
        {"id": 7, "resource_id": 24, "list_id": 1},
    ),
    (
        "segments.get_counters-static",
        SEGMENTS_GET_COUNTERS,
        {"segment_id": 7, "resource_id": 24},
        {"id": 7, "resource_id": 24},
    ),
    (
        "segments.get_counters-none-db",
        SEGMENTS_GET_COUNTERS,
        {"segment_id": 7, "resource_id": 24, "database_id": None},
        {"id": 7, "resource_id": 24},
    ),
    (
        "segments.refresh_counters",
        SEGMENTS_REFRESH_COUNTERS,
        {"segment_id": 7, "resource_id": 24, "database_id": 1},
        {"id": 7, "resource_id": 24, "db_id": 1},
    ),
    (
        "resources.refresh_counters",
        RESOURCES_REFRESH_COUNTERS,
        {"resource_id": 24, "database_id": 1, "feedback": Feedback("http://example.com/receiver")},
        {
            "id": 24,
            "list_id": 1,
            "feedback": {"type": "JSON", "url": "http://example.com/receiver"},
        },
    ),
    (
        "resources.refresh_counters-no-feedback",
        RESOURCES_REFRESH_COUNTERS,
        {"resource_id": 24, "database_id": 1},
        {"id": 24, "list_id": 1},
    ),
    (
        "tasks.status",
        TASKS_STATUS,
        {"task_id": "c9c3ec48-1bef-4969-9c1a-df39f0c179bb"},
        {"task_id": "c9c3ec48-1bef-4969-9c1a-df39f0c179bb"},
    ),
    (
        "admin",
        ADMIN_SENDER_QUEUE_STATS,
        {"sender_id": 119},
        {"id": 119},
    ),
    (
        "admin-all-params",
        ADMIN_SENDER_QUEUE_STATS,
        {"sender_id": 119, "account_id": 12, "campaign_id": 4591, "isp": "Gmail", "group": "isp"},
        {"id": 119, "account_id": 12, "campaign_id": 4591, "isp": "Gmail", "group": "isp"},
    ),
    (
        "relations-email",
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.email("john@example.com"), "resource_id": 24},
        {"rel_id": 3, "matching": "email", "email": "john@example.com", "resource_id": 24},
    ),
    (
        "relations-email_profile",
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.email_profile("john@example.com")},
        {"rel_id": 3, "matching": "email_profile", "email": "john@example.com"},
    ),
    (
        "relations-phone",
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.phone("+79000000000"), "resource_id": 24},
        {"rel_id": 3, "matching": "phone", "phone": "+79000000000", "resource_id": 24},
    ),
    (
        "relations-profile_id",
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.profile_id("5d63dbdb439e7306b596c5d0")},
        {"rel_id": 3, "matching": "profile_id", "profile_id": "5d63dbdb439e7306b596c5d0"},
    ),
    (
        "relations-custom",
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.custom("CRM_ID", 123420)},
        {"rel_id": 3, "matching": "custom", "field_name": "CRM_ID", "field_value": 123420},
    ),
    (
        "relations-custom-tags",
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.custom("tags", "tag-1, tag-2"), "resource_id": 24},
        {
            "rel_id": 3,
            "matching": "custom",
            "field_name": "tags",
            "field_value": "tag-1, tag-2",
            "resource_id": 24,
        },
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("spec", "args", "wire"), [c[1:] for c in WIRE_CASES], ids=[c[0] for c in WIRE_CASES]
)
def test_spec_wire_names(spec, args, wire, fmt):
    request = build_request(spec, args, token=TOKEN, fmt=fmt)
    expected = {"token": TOKEN, **wire, "format": fmt}
    if fmt == "xml":
        expected = _xml_text(expected)
    assert parse(request.body, fmt) == expected
    assert request.path == spec.url_path
    assert request.endpoint == spec.name


def test_json_request_keeps_int_types():
    request = build_request(
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.custom("CRM_ID", 7)},
        token=TOKEN,
        fmt="json",
    )
    document = parse(request.body, "json")
    assert type(document["rel_id"]) is int and type(document["field_value"]) is int


# The docs' request examples, built from the SDK's explicit names: the same document on the wire.
DOCS_REQUESTS = [
    (
        "segments.get_counters",
        SEGMENTS_GET_COUNTERS,
        {"segment_id": 7, "resource_id": 24, "database_id": 1},
    ),
    (
        "segments.refresh_counters",
        SEGMENTS_REFRESH_COUNTERS,
        {"segment_id": 7, "resource_id": 24, "database_id": 1},
    ),
    (
        "resources.refresh_counters",
        RESOURCES_REFRESH_COUNTERS,
        {"resource_id": 24, "database_id": 1, "feedback": Feedback("http://example.com/receiver")},
    ),
    (
        "segment tasks.status",
        TASKS_STATUS,
        {"task_id": "930bfdb0-a5a8-4207-a77d-6b989bdea326"},
    ),
    (
        "resource tasks.status",
        TASKS_STATUS,
        {"task_id": "c9c3ec48-1bef-4969-9c1a-df39f0c179bb"},
    ),
    ("admin.sender_queue_stats", ADMIN_SENDER_QUEUE_STATS, {"sender_id": 119}),
    (
        "relations.get_counter",
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.profile_id("5d63dbdb439e7306b596c5d0")},
    ),
]


def test_every_docs_request_pair_is_covered():
    assert sorted(name for name, _, _ in DOCS_REQUESTS) == sorted(docs.REQUEST_PAIRS)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("name", "spec", "args"), DOCS_REQUESTS, ids=[c[0] for c in DOCS_REQUESTS])
def test_built_request_matches_docs_example(name, spec, args, fmt):
    documented = parse(docs.REQUEST_PAIRS[name][0 if fmt == "json" else 1], fmt)
    built = parse(build_request(spec, args, token=TOKEN, fmt=fmt).body, fmt)
    assert built.pop("format") == fmt
    documented.pop("format", None)  # the docs' XML examples even say <format>json</format>
    if spec is RELATIONS_GET_COUNTER:
        # The docs example relies on the default matching; the SDK always says which one.
        assert built.pop("matching") == "profile_id"
    assert built == documented


def test_json_and_xml_requests_carry_the_same_fields():
    args = {"resource_id": 24, "database_id": 1, "feedback": Feedback("https://example.com/r")}
    as_json = parse(
        build_request(RESOURCES_REFRESH_COUNTERS, args, token=TOKEN, fmt="json").body, "json"
    )
    as_xml = parse(
        build_request(RESOURCES_REFRESH_COUNTERS, args, token=TOKEN, fmt="xml").body, "xml"
    )
    as_json.pop("format")
    as_xml.pop("format")
    assert _xml_text(as_json) == as_xml


# --- token, headers, repr ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_in_body_by_default(fmt):
    request = build_request(TASKS_STATUS, {"task_id": "t-1"}, token=SECRET, fmt=fmt)
    assert parse(request.body, fmt)["token"] == SECRET
    assert "Authorization" not in request.headers
    assert SECRET not in request.path
    assert all(SECRET not in value for value in request.headers.values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_bearer_token_goes_in_header_only(fmt):
    request = build_request(TASKS_STATUS, {"task_id": "t-1"}, token=SECRET, fmt=fmt, bearer=True)
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert "token" not in parse(request.body, fmt)
    assert SECRET.encode() not in request.body
    assert parse(request.body, fmt) == {"task_id": "t-1", "format": fmt}


@pytest.mark.parametrize("bearer", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
def test_repr_hides_the_token(fmt, bearer):
    request = build_request(TASKS_STATUS, {"task_id": "t-1"}, token=SECRET, fmt=fmt, bearer=bearer)
    assert isinstance(request, PreparedRequest)
    for text in (repr(request), str(request), f"{request}", f"{request!r}"):
        assert SECRET not in text
        assert "tasks.status" in text and "<hidden>" in text


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("json", "application/json"), ("xml", "application/xml")]
)
def test_content_type_per_format(fmt, content_type):
    request = build_request(TASKS_STATUS, {"task_id": "t-1"}, token=TOKEN, fmt=fmt)
    assert request.headers["Content-Type"] == content_type
    assert request.body.startswith(b"{" if fmt == "json" else b"<xml>")


def test_xml_request_escapes_values():
    request = build_request(
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": Match.custom("note", "a<b & c>d")},
        token="tok<&>",
        fmt="xml",
    )
    document = parse(request.body, "xml")
    assert document["field_value"] == "a<b & c>d"
    assert document["token"] == "tok<&>"


# --- bad input -> InvalidRequestError before anything is built ----------------------------

BAD_INPUT = [
    ("missing-segment", SEGMENTS_GET_COUNTERS, {"resource_id": 24}, TOKEN),
    ("missing-resource", SEGMENTS_REFRESH_COUNTERS, {"segment_id": 7}, TOKEN),
    ("missing-db-for-resource", RESOURCES_REFRESH_COUNTERS, {"resource_id": 24}, TOKEN),
    ("missing-task", TASKS_STATUS, {}, TOKEN),
    ("missing-match", RELATIONS_GET_COUNTER, {"relation_id": 3}, TOKEN),
    ("required-none", SEGMENTS_GET_COUNTERS, {"segment_id": None, "resource_id": 24}, TOKEN),
    ("unknown-arg", SEGMENTS_GET_COUNTERS, {"segment_id": 7, "resource_id": 24, "db_id": 1}, TOKEN),
    ("wire-name-as-arg", SEGMENTS_GET_COUNTERS, {"id": 7, "resource_id": 24}, TOKEN),
    ("str-id", SEGMENTS_GET_COUNTERS, {"segment_id": "7", "resource_id": 24}, TOKEN),
    ("bool-id", SEGMENTS_GET_COUNTERS, {"segment_id": True, "resource_id": 24}, TOKEN),
    ("float-id", SEGMENTS_GET_COUNTERS, {"segment_id": 7.0, "resource_id": 24}, TOKEN),
    ("zero-id", SEGMENTS_GET_COUNTERS, {"segment_id": 0, "resource_id": 24}, TOKEN),
    ("negative-id", SEGMENTS_GET_COUNTERS, {"segment_id": -7, "resource_id": 24}, TOKEN),
    (
        "negative-db",
        SEGMENTS_GET_COUNTERS,
        {"segment_id": 7, "resource_id": 24, "database_id": -1},
        TOKEN,
    ),
    ("huge-id", SEGMENTS_GET_COUNTERS, {"segment_id": 2**64, "resource_id": 24}, TOKEN),
    ("bool-sender", ADMIN_SENDER_QUEUE_STATS, {"sender_id": False}, TOKEN),
    ("empty-token", TASKS_STATUS, {"task_id": "t"}, ""),
    ("none-token", TASKS_STATUS, {"task_id": "t"}, None),
    ("bytes-token", TASKS_STATUS, {"task_id": "t"}, b"tok"),
    ("empty-task-id", TASKS_STATUS, {"task_id": ""}, TOKEN),
    ("blank-task-id", TASKS_STATUS, {"task_id": "   "}, TOKEN),
    ("int-task-id", TASKS_STATUS, {"task_id": 5}, TOKEN),
    ("invalid-group", ADMIN_SENDER_QUEUE_STATS, {"sender_id": 1, "group": "weekly"}, TOKEN),
    ("group-case", ADMIN_SENDER_QUEUE_STATS, {"sender_id": 1, "group": "Total"}, TOKEN),
    ("group-list", ADMIN_SENDER_QUEUE_STATS, {"sender_id": 1, "group": ["total"]}, TOKEN),
    ("empty-isp", ADMIN_SENDER_QUEUE_STATS, {"sender_id": 1, "isp": ""}, TOKEN),
    ("match-str", RELATIONS_GET_COUNTER, {"relation_id": 3, "match": "john@example.com"}, TOKEN),
    (
        "match-dict",
        RELATIONS_GET_COUNTER,
        {"relation_id": 3, "match": {"matching": "email", "email": "a@b.c"}},
        TOKEN,
    ),
    (
        "feedback-str",
        RESOURCES_REFRESH_COUNTERS,
        {"resource_id": 24, "database_id": 1, "feedback": "http://example.com/receiver"},
        TOKEN,
    ),
    (
        "feedback-dict",
        RESOURCES_REFRESH_COUNTERS,
        {"resource_id": 24, "database_id": 1, "feedback": {"type": "JSON", "url": "http://x.y"}},
        TOKEN,
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("spec", "args", "token"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_refused_before_building(spec, args, token, fmt):
    with pytest.raises(InvalidRequestError) as info:
        build_request(spec, args, token=token, fmt=fmt)
    assert isinstance(info.value, ValueError)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/receiver", "example.com/receiver", "http://", "file:///etc/passwd"]
)
def test_feedback_url_must_be_http(url):
    with pytest.raises(InvalidRequestError):
        build_request(
            RESOURCES_REFRESH_COUNTERS,
            {"resource_id": 24, "database_id": 1, "feedback": Feedback(url)},
            token=TOKEN,
            fmt="json",
        )


@pytest.mark.parametrize("group", ["account", "account_campaign", "isp", "total"])
def test_every_documented_group_is_accepted(group):
    request = build_request(
        ADMIN_SENDER_QUEUE_STATS, {"sender_id": 1, "group": group}, token=TOKEN, fmt="json"
    )
    assert parse(request.body, "json")["group"] == group


def test_max_64_bit_id_is_accepted():
    request = build_request(
        SEGMENTS_GET_COUNTERS, {"segment_id": 2**63 - 1, "resource_id": 1}, token=TOKEN, fmt="json"
    )
    assert parse(request.body, "json")["id"] == 2**63 - 1


# --- envelope rules ----------------------------------------------------------------------

API_ERRORS = [
    (400, BadRequestError),
    (401, AuthenticationError),
    (402, TariffLimitError),
    (403, PermissionDeniedError),
    (999, APIError),
    (1, APIError),
]


def _error_body(code, text: str, fmt: str) -> bytes:
    if fmt == "json":
        return f'{{"data": null, "error": {code}, "error_text": "{text}"}}'.encode()
    return f"<xml><data/><error>{code}</error><error_text>{text}</error_text></xml>".encode()


@pytest.mark.parametrize("status", [200, 500, 403])
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("code", "cls"), API_ERRORS, ids=[str(c[0]) for c in API_ERRORS])
def test_envelope_error_raises_the_right_api_error(code, cls, fmt, status):
    body = _error_body(code, "Token invalid", fmt)
    headers = {"X-Request-Id": "r-1"}
    with pytest.raises(APIError) as info:
        decode_reply(TASKS_STATUS, status, headers, body, fmt)
    exc = info.value
    assert type(exc) is cls
    assert (exc.code, exc.error_text, exc.http_status) == (code, "Token invalid", status)
    assert exc.endpoint == "tasks.status"
    assert dict(exc.headers) == headers
    assert str(exc) == f"tasks.status: error {code}: Token invalid"


def test_api_error_without_error_text_keeps_the_code():
    with pytest.raises(APIError) as info:
        decode_reply(TASKS_STATUS, 200, {}, b'{"error": 777}', "json")
    assert type(info.value) is APIError
    assert (info.value.code, info.value.error_text) == (777, "")


def test_xml_error_code_sent_as_string():
    body = b"<xml>\n<error> 401 </error>\n<error_text>Token required</error_text>\n</xml>"
    with pytest.raises(AuthenticationError) as info:
        decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, "xml")
    assert (info.value.code, info.value.error_text) == (401, "Token required")


def test_api_error_wins_over_bad_data():
    # The envelope decides first: the data is never typed when error != 0.
    body = b'{"data": "garbage", "error": 400, "error_text": "Bad id"}'
    with pytest.raises(BadRequestError):
        decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, "json")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, b"Bad Gateway"),
        (503, b"<html><body>Service Unavailable</body></html>"),
        (500, b""),
        (429, b'{"message": "slow down"}'),
        (404, b"<xml><message>no such endpoint</message></xml>"),
    ],
    ids=["text", "html", "empty", "json-no-envelope", "xml-no-envelope"],
)
def test_non_2xx_without_envelope_is_http_status_error(status, body, fmt):
    headers = {"Retry-After": "7", "Content-Type": "text/plain"}
    with pytest.raises(HTTPStatusError) as info:
        decode_reply(SEGMENTS_GET_COUNTERS, status, headers, body, fmt)
    exc = info.value
    assert exc.status == status
    assert exc.headers["Retry-After"] == "7"
    assert exc.endpoint == "segments.get_counters"
    assert str(exc) == f"segments.get_counters: HTTP {status}"
    assert exc.excerpt == body.decode()[:80]


@pytest.mark.parametrize("status", [200, 401])
@pytest.mark.parametrize("asked", FORMATS)
def test_an_error_envelope_in_the_other_format_keeps_its_code(asked, status):
    """E.g. a JSON error to an XML request (a gateway, or the platform's own auth check)."""
    sent = "xml" if asked == "json" else "json"
    body = _error_body(401, "Token invalid", sent)
    with pytest.raises(AuthenticationError) as info:
        decode_reply(TASKS_STATUS, status, {}, b"  " + body, asked)
    assert (info.value.code, info.value.error_text, info.value.http_status) == (
        401,
        "Token invalid",
        status,
    )


@pytest.mark.parametrize("asked", FORMATS)
def test_a_success_reply_in_the_other_format_decodes(asked):
    sent = "xml" if asked == "json" else "json"
    body = docs.RESPONSE_PAIRS["segments.get_counters"][sent == "xml"]
    expected = decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, sent)
    assert decode_reply(SEGMENTS_GET_COUNTERS, 200, {}, body, asked) == expected


def test_a_2xx_html_page_is_still_a_damaged_reply_not_an_envelope():
    body = b"<html><body>proxy says hi</body></html>"
    with pytest.raises(DecodeError) as info:
        decode_reply(TASKS_STATUS, 200, {}, body, "json")
    assert info.value.transient  # retried, as a damaged body is
    assert "invalid JSON" in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_2xx_with_success_envelope_is_http_status_error(fmt):
    body = docs.RESPONSE_PAIRS["segments.refresh_counters"][fmt == "xml"]
    with pytest.raises(HTTPStatusError) as info:
        decode_reply(SEGMENTS_REFRESH_COUNTERS, 503, {}, body, fmt)
    assert info.value.status == 503


@pytest.mark.parametrize("status", [200, 201, 204, 299])
@pytest.mark.parametrize("fmt", FORMATS)
def test_2xx_with_garbage_is_decode_error(fmt, status):
    with pytest.raises(DecodeError) as info:
        decode_reply(TASKS_STATUS, status, {}, b"Bad Gateway", fmt)
    assert type(info.value) is DecodeError
    assert info.value.endpoint == "tasks.status"
    assert info.value.excerpt == "Bad Gateway"


@pytest.mark.parametrize("status", [200, 201, 299])
@pytest.mark.parametrize("fmt", FORMATS)
def test_2xx_success_decodes(fmt, status):
    body = docs.RESPONSE_PAIRS["segments.refresh_counters"][fmt == "xml"]
    assert decode_reply(SEGMENTS_REFRESH_COUNTERS, status, {}, body, fmt) == TaskRef(
        "55a345c8-3d79-47ef-b03e-b84ce8e0c126"
    )
