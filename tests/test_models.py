"""Models and the exception tree: pure values, no I/O."""

from __future__ import annotations

import attrs
import pytest

import altcraft_async
from altcraft_async import (
    AltcraftError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ChannelCounters,
    ClientClosedError,
    CountersSnapshot,
    CounterStatus,
    DecodeError,
    Feedback,
    HTTPStatusError,
    InvalidRequestError,
    Match,
    PermissionDeniedError,
    RequestTimeoutError,
    ResourceRef,
    SegmentRef,
    TariffLimitError,
    TaskFailedError,
    TaskStatus,
    TaskTimeoutError,
    TransportError,
    _errors,
)
from altcraft_async._sansio import build_request
from altcraft_async.api import _specs

TOKEN = "s3cr3t-T0KEN-abcdefghijklmnqrstuvwxyz"

# --- Match -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: Match.email("john@example.com"),
            {"matching": "email", "email": "john@example.com"},
        ),
        (
            lambda: Match.email_profile("john@example.com"),
            {"matching": "email_profile", "email": "john@example.com"},
        ),
        (lambda: Match.phone("+79000000000"), {"matching": "phone", "phone": "+79000000000"}),
        (
            lambda: Match.profile_id("5d63dbdb439e7306b596c5d0"),
            {"matching": "profile_id", "profile_id": "5d63dbdb439e7306b596c5d0"},
        ),
        (
            lambda: Match.custom("CRM_ID", "123420"),
            {"matching": "custom", "field_name": "CRM_ID", "field_value": "123420"},
        ),
        (
            lambda: Match.custom("CRM_ID", 123420),
            {"matching": "custom", "field_name": "CRM_ID", "field_value": 123420},
        ),
        (
            lambda: Match.custom("tags", "tag-1, tag-2"),
            {"matching": "custom", "field_name": "tags", "field_value": "tag-1, tag-2"},
        ),
    ],
    ids=["email", "email_profile", "phone", "profile_id", "custom-str", "custom-int", "tags"],
)
def test_match_wire_params(build, expected):
    match = build()
    assert match.wire_params() == expected
    assert match.mode == expected["matching"]


def test_match_custom_keeps_int_value_type():
    assert type(Match.custom("CRM_ID", 7).wire_params()["field_value"]) is int


def test_match_is_frozen_and_hashable():
    assert Match.email("a@b.c") == Match.email("a@b.c")
    assert hash(Match.email("a@b.c")) == hash(Match.email("a@b.c"))
    assert Match.email("a@b.c") != Match.email_profile("a@b.c")
    with pytest.raises(AttributeError):
        Match.email("a@b.c").mode = "phone"  # type: ignore[misc]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Match("email", ()),
        lambda: Match("phone", (("email", "x@y.z"),)),
        lambda: Match("email", (("email", "a@b.c"), ("phone", "+7900"))),
        lambda: Match("custom", (("field_name", "CRM_ID"),)),
        lambda: Match("custom", (("field_value", "1"), ("field_name", "CRM_ID"))),
        lambda: Match("fax", (("fax", "123"),)),
        lambda: Match("email", (("email", "nobody"),)),
        lambda: Match("custom", (("field_name", "CRM_ID"), ("field_value", ""))),
        lambda: Match("custom", (("field_name", "CRM_ID"), ("field_value", True))),
        lambda: Match("custom", (("field_name", ""), ("field_value", "1"))),
        lambda: Match("phone", (("phone", "   "),)),
        lambda: Match("email", "ab"),
        lambda: Match([], ()),
        lambda: Match.email("nobody.example.com"),
        lambda: Match.email(""),
        lambda: Match.email(None),
        lambda: Match.email_profile("no-at-sign"),
        lambda: Match.phone(""),
        lambda: Match.phone(True),
        lambda: Match.profile_id("   "),
        lambda: Match.profile_id(["x"]),
        lambda: Match.custom("CRM_ID", ""),
        lambda: Match.custom("CRM_ID", "   "),
        lambda: Match.custom("CRM_ID", True),
        lambda: Match.custom("CRM_ID", False),
        lambda: Match.custom("CRM_ID", 1.5),
        lambda: Match.custom("CRM_ID", None),
        lambda: Match.custom("", "123"),
        lambda: Match.custom(False, "123"),
    ],
    ids=[
        "email-no-fields",
        "phone-with-email-field",
        "email-and-phone",
        "custom-without-value",
        "custom-fields-swapped",
        "unknown-mode",
        "direct-email-without-at",
        "direct-custom-empty-value",
        "direct-custom-bool-value",
        "direct-custom-empty-name",
        "direct-blank-phone",
        "fields-not-pairs",
        "mode-not-str",
        "email-without-at",
        "email-empty",
        "email-none",
        "email-profile-without-at",
        "phone-empty",
        "phone-bool",
        "profile-id-blank",
        "profile-id-list",
        "custom-empty-value",
        "custom-blank-value",
        "custom-bool-true",
        "custom-bool-false",
        "custom-float",
        "custom-none",
        "custom-empty-name",
        "custom-bool-name",
    ],
)
def test_match_cannot_be_incomplete_or_contradictory(build):
    with pytest.raises(InvalidRequestError) as info:
        build()
    assert isinstance(info.value, ValueError)


# --- SegmentRef / ResourceRef / Feedback -------------------------------------------------


def test_segment_ref_values():
    ref = SegmentRef(7, 24, 1)
    assert (ref.segment_id, ref.resource_id, ref.database_id) == (7, 24, 1)
    assert SegmentRef(7, 24).database_id is None
    assert SegmentRef(segment_id=7, resource_id=24) == SegmentRef(7, 24, None)
    assert hash(SegmentRef(7, 24, 1)) == hash(SegmentRef(7, 24, 1))
    assert SegmentRef(2**63 - 1, 1).segment_id == 2**63 - 1


def test_resource_ref_values():
    ref = ResourceRef(24, 1)
    assert (ref.resource_id, ref.database_id) == (24, 1)
    assert ResourceRef(24, 1) == ResourceRef(resource_id=24, database_id=1)


@pytest.mark.parametrize(
    "build",
    [
        lambda: SegmentRef(0, 24, 1),
        lambda: SegmentRef(-7, 24, 1),
        lambda: SegmentRef(7, 0),
        lambda: SegmentRef(7, 24, 0),
        lambda: SegmentRef(7, 24, -1),
        lambda: SegmentRef("7", 24, 1),
        lambda: SegmentRef(7.0, 24, 1),
        lambda: SegmentRef(True, 24, 1),
        lambda: SegmentRef(7, None),
        lambda: SegmentRef(7, 24, "1"),
        lambda: ResourceRef(0, 1),
        lambda: ResourceRef(24, 0),
        lambda: ResourceRef(24, None),
        lambda: ResourceRef("24", 1),
        lambda: ResourceRef(24, True),
        lambda: ResourceRef(24, 1.5),
        lambda: SegmentRef(2**63, 24, 1),
        lambda: ResourceRef(24, 2**64),
    ],
    ids=[
        "seg-zero-id",
        "seg-negative-id",
        "seg-zero-resource",
        "seg-zero-db",
        "seg-negative-db",
        "seg-str-id",
        "seg-float-id",
        "seg-bool-id",
        "seg-none-resource",
        "seg-str-db",
        "res-zero-id",
        "res-zero-db",
        "res-none-db",
        "res-str-id",
        "res-bool-db",
        "res-float-db",
        "seg-huge-id",
        "res-huge-db",
    ],
)
def test_refs_reject_bad_ids(build):
    with pytest.raises(InvalidRequestError) as info:
        build()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AltcraftError)


def test_feedback_defaults_to_json_type():
    fb = Feedback("http://example.com/receiver")
    assert (fb.url, fb.type) == ("http://example.com/receiver", "JSON")
    assert Feedback("https://example.com/x", type="XML").type == "XML"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "example.com/receiver", "http://", "/receiver", "", 5, None],
)
def test_feedback_rejects_non_http_urls(url):
    with pytest.raises(InvalidRequestError):
        Feedback(url)


# --- CountersSnapshot / TaskStatus -------------------------------------------------------


def test_counters_snapshot_channel_lookup():
    email = ChannelCounters("email", CounterStatus(subscribed=842))
    custom = ChannelCounters("telegram_bot", CounterStatus(subscribed=1))
    snap = CountersSnapshot(channels=(ChannelCounters("sms"), email, custom))
    assert snap.channel("email") is email
    assert snap.channel("email").status.subscribed == 842
    assert snap.channel("telegram_bot") is custom
    assert snap.channel("viber") is None
    assert snap.channel("EMAIL") is None
    assert CountersSnapshot().channel("email") is None


def test_counter_status_defaults_are_none():
    status = CounterStatus()
    assert all(getattr(status, name) is None for name in attrs.fields_dict(CounterStatus))
    assert ChannelCounters("email").status == CounterStatus()


@pytest.mark.parametrize(
    ("status", "succeeded", "failed", "done"),
    [
        ("completed", True, False, True),
        ("success", True, False, True),
        ("COMPLETED", True, False, True),
        ("failed", False, True, True),
        ("error", False, True, True),
        ("cancelled", False, True, True),
        ("canceled", False, True, True),
        ("Failed", False, True, True),
        ("running", False, False, False),
        ("queued", False, False, False),
        ("in_progress", False, False, False),
        ("", False, False, False),
    ],
)
def test_task_status_terminal_states(status, succeeded, failed, done):
    task = TaskStatus(status=status, progress=50)
    assert task.succeeded is succeeded
    assert task.failed is failed
    assert task.done is done


def test_task_status_classification_holds_past_its_memo_bound():
    """Statuses are classified through a bounded memo: a platform sending a new status on
    every reply neither grows it without end nor gets a wrong answer once it is full."""
    for n in range(600):
        assert not TaskStatus(status=f"step {n}").done
    assert len(altcraft_async.models.tasks._ENDING) <= 256
    assert TaskStatus(status=" Completed ").succeeded
    assert TaskStatus(status="CANCELED\t").failed
    assert not TaskStatus(status="step 599").done


# --- error tree --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (TransportError, (AltcraftError,)),
        (RequestTimeoutError, (TransportError, TimeoutError, AltcraftError)),
        (HTTPStatusError, (AltcraftError,)),
        (APIError, (AltcraftError,)),
        (BadRequestError, (APIError,)),
        (AuthenticationError, (APIError,)),
        (TariffLimitError, (APIError,)),
        (PermissionDeniedError, (APIError,)),
        (DecodeError, (AltcraftError,)),
        (TaskFailedError, (AltcraftError,)),
        (TaskTimeoutError, (AltcraftError, TimeoutError)),
        (InvalidRequestError, (AltcraftError, ValueError)),
        (ClientClosedError, (AltcraftError,)),
    ],
)
def test_error_tree(cls, bases):
    for base in bases:
        assert issubclass(cls, base), (cls, base)


def test_error_tree_excludes_unrelated_bases():
    assert not issubclass(HTTPStatusError, TransportError)
    assert not issubclass(DecodeError, ValueError)
    assert not issubclass(TransportError, TimeoutError)
    assert not issubclass(APIError, HTTPStatusError)


def test_every_exported_exception_is_an_altcraft_error():
    exported = [getattr(_errors, name) for name in _errors.__all__]
    classes = [obj for obj in exported if isinstance(obj, type)]
    assert len(classes) == 14
    for cls in classes:
        assert issubclass(cls, AltcraftError), cls
        assert getattr(altcraft_async, cls.__name__) is cls


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, TariffLimitError),
        (403, PermissionDeniedError),
        (404, APIError),
        (999, APIError),
        (1, APIError),
    ],
)
def test_api_error_for(code, cls):
    exc = _errors.api_error_for(code, "Token invalid", endpoint="tasks.status", http_status=200)
    assert type(exc) is cls
    assert (exc.code, exc.error_text, exc.endpoint, exc.http_status) == (
        code,
        "Token invalid",
        "tasks.status",
        200,
    )
    assert str(exc) == f"tasks.status: error {code}: Token invalid"


def _constructed_errors():
    return [
        TransportError("connection reset", endpoint="tasks.status", sent=False),
        RequestTimeoutError("timed out after 5s", endpoint="tasks.status"),
        HTTPStatusError(
            "tasks.status: HTTP 502", endpoint="tasks.status", status=502, excerpt="Bad Gateway"
        ),
        _errors.api_error_for(401, "Token invalid", endpoint="tasks.status", http_status=200),
        DecodeError("invalid JSON", endpoint="tasks.status", excerpt='{"data": '),
        TaskFailedError("c9c3ec48", "failed", progress=40.0, raw={"status": "failed"}),
        TaskTimeoutError("c9c3ec48", timeout=600, last_status="running", progress=40.0),
        InvalidRequestError("segments.get_counters: segment_id is required"),
        ClientClosedError("client is closed"),
    ]


@pytest.mark.parametrize("exc", _constructed_errors(), ids=lambda e: type(e).__name__)
def test_error_messages_carry_no_token(exc):
    assert isinstance(exc, AltcraftError)
    assert TOKEN not in str(exc)
    assert TOKEN not in repr(exc)
    assert str(exc)


def test_error_attributes():
    transport = TransportError("reset", endpoint="e", sent=False)
    assert (transport.endpoint, transport.sent) == ("e", False)
    http = HTTPStatusError("x", status=503, headers={"Retry-After": "3"})
    assert (http.status, dict(http.headers)) == (503, {"Retry-After": "3"})
    decode = DecodeError("bad", endpoint="tasks.status", excerpt="<xml")
    assert str(decode) == "tasks.status: bad (body starts '<xml')"
    failed = TaskFailedError("t-1", "error", progress=10.0)
    assert (failed.task_id, failed.status, failed.progress) == ("t-1", "error", 10.0)
    assert "t-1" in str(failed) and "'error'" in str(failed)
    timeout = TaskTimeoutError("t-2", timeout=1.5, last_status="running", resume_token="r")
    assert (timeout.task_id, timeout.timeout, timeout.resume_token) == ("t-2", 1.5, "r")
    assert "1.5s" in str(timeout)


@pytest.mark.parametrize(
    ("spec", "args"),
    [
        (_specs.SEGMENTS_GET_COUNTERS, {"segment_id": "7", "resource_id": 24}),
        (_specs.SEGMENTS_GET_COUNTERS, {"resource_id": 24}),
        (_specs.SEGMENTS_GET_COUNTERS, {"segment_id": 7, "resource_id": 24, "token": TOKEN}),
        (_specs.TASKS_STATUS, {"task_id": ""}),
        (_specs.ADMIN_SENDER_QUEUE_STATS, {"sender_id": 1, "group": "weekly"}),
        (_specs.RELATIONS_GET_COUNTER, {"relation_id": 3, "match": "john@example.com"}),
    ],
    ids=[
        "wrong-type",
        "missing",
        "unknown-arg-named-token",
        "empty-task",
        "bad-group",
        "bad-match",
    ],
)
@pytest.mark.parametrize("bearer", [False, True])
def test_invalid_request_messages_carry_no_token(spec, args, bearer):
    with pytest.raises(InvalidRequestError) as info:
        build_request(spec, args, token=TOKEN, fmt="json", bearer=bearer)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert spec.name in str(info.value) or any(name in str(info.value) for name in args)
