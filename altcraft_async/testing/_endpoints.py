"""The served endpoints: validate wire parameters, then act on the platform and the task book.

Two tables say everything: :data:`TASK_KINDS` (a kind of refresh task: the endpoint that starts
it, how that endpoint's parameters name its target, whether it takes a feedback webhook, and what
its completion computes) and :data:`ENDPOINTS` (path -> handler; the starting endpoints come from
the kinds table). Adding a kind or an endpoint is a row and, at most, a small function.

Parameter names are the wire names of the documentation, drift included (``list_id`` for
``segments/get_counters``, ``db_id`` for ``segments/refresh_counters``, ``id`` + ``list_id`` for
``resources/refresh_counters``). Integers may arrive as JSON numbers or as digit strings (XML
has no numbers). Any problem raises :class:`ApiError`; unknown ids are errors 400 naming the id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from attrs import frozen

from ._clock import Clock
from ._platform import GROUPS, Platform, PlatformError, Segment, Snapshot
from ._tasks import TaskBook, TaskRecord

__all__ = [
    "ENDPOINTS",
    "TASK_KINDS",
    "ApiError",
    "Context",
    "Endpoint",
    "TaskKindSpec",
    "TaskTarget",
    "serve",
]

_MATCHING_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "email_profile": ("email",),
    "phone": ("phone",),
    "profile_id": ("profile_id",),
    "custom": ("field_name", "field_value"),
}


class ApiError(Exception):
    """An envelope error: ``error`` = ``code``, ``error_text`` = ``text``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


@frozen
class Context:
    platform: Platform
    tasks: TaskBook
    clock: Clock


@frozen
class Endpoint:
    """How to serve one path; ``admin`` endpoints need the admin token."""

    handler: Callable[[Context, Mapping[str, Any]], Any]
    admin: bool = False
    starts_task: bool = False


def _int(params: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"{name} is required")
        return None
    if isinstance(value, bool):
        raise ApiError(400, f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ApiError(400, f"{name} must be an integer, got {value!r}")


def _req_int(params: Mapping[str, Any], name: str) -> int:
    value = _int(params, name)
    assert value is not None  # required=True never returns None
    return value


def _str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(400, f"{name} must be a string, got {value!r}")
    return str(value)


def _segment_ref(
    platform: Platform, params: Mapping[str, Any], database_param: str
) -> tuple[Segment, int, int]:
    """The segment, resource and database a segment call names (``database_param`` is the
    wire name of its database, which differs between endpoints), checked against the data."""
    segment_id = _req_int(params, "id")
    resource_id = _req_int(params, "resource_id")
    database_id = _int(params, database_param, required=False)
    segment = platform.segment(segment_id)
    if database_id is None:
        if segment.dynamic:
            raise ApiError(400, f"{database_param} is required for dynamic segment {segment_id}")
        database_id = segment.database_id
    elif database_id != segment.database_id:
        raise ApiError(400, f"segment {segment_id} does not belong to database {database_id}")
    platform.check_link(resource_id, database_id)
    return segment, resource_id, database_id


def get_counters(ctx: Context, params: Mapping[str, Any]) -> Any:
    segment, resource_id, _ = _segment_ref(ctx.platform, params, "list_id")
    at = ctx.clock.wall(ctx.clock.now())
    return ctx.platform.last_snapshot(segment.id, resource_id, at).sendable_wire()


def database_counters(ctx: Context, params: Mapping[str, Any]) -> Any:
    target = _database_target(ctx.platform, params)
    at = ctx.clock.wall(ctx.clock.now())
    snapshot = ctx.platform.last_database_snapshot(target.database_id, target.resource_id, at)
    return snapshot.sendable_wire()


# --- task kinds -------------------------------------------------------------------------------


@frozen
class TaskTarget:
    """What a task start names, checked against the platform's data."""

    resource_id: int
    database_id: int
    segment_id: int | None = None


@frozen
class TaskKindSpec:
    """One kind of refresh task.

    ``path`` is the endpoint that starts it; ``target`` reads that endpoint's parameters (or
    raises); ``complete`` computes (and stores, where a reading endpoint answers it) the snapshot
    of a successful task; ``feedback`` says whether the start takes a ``feedback`` webhook.
    """

    path: str
    target: Callable[[Platform, Mapping[str, Any]], TaskTarget]
    complete: Callable[[Platform, TaskRecord, datetime], Snapshot]
    feedback: bool = False


def _segment_target(platform: Platform, params: Mapping[str, Any]) -> TaskTarget:
    segment, resource_id, database_id = _segment_ref(platform, params, "db_id")
    return TaskTarget(resource_id, database_id, segment.id)


def _resource_target(platform: Platform, params: Mapping[str, Any]) -> TaskTarget:
    resource_id = _req_int(params, "id")
    database_id = _req_int(params, "list_id")
    platform.check_link(resource_id, database_id)
    return TaskTarget(resource_id, database_id)


def _database_target(platform: Platform, params: Mapping[str, Any]) -> TaskTarget:
    database_id = _req_int(params, "id")
    resource_id = _req_int(params, "resource_id")
    platform.database(database_id)  # the object the path names is reported first when unknown
    platform.check_link(resource_id, database_id)
    return TaskTarget(resource_id, database_id)


def _complete_segment(platform: Platform, record: TaskRecord, at: datetime) -> Snapshot:
    assert record.segment_id is not None  # a segment task always names its segment
    return platform.refresh_segment(record.segment_id, record.resource_id, at)


def _complete_resource(platform: Platform, record: TaskRecord, at: datetime) -> Snapshot:
    return platform.refresh_resource(record.resource_id, record.database_id, at)


def _complete_database(platform: Platform, record: TaskRecord, at: datetime) -> Snapshot:
    return platform.refresh_database(record.database_id, record.resource_id, at)


#: Every kind of refresh task, by the name its records carry (``TaskRecord.kind``).
TASK_KINDS: Mapping[str, TaskKindSpec] = {
    "segment": TaskKindSpec("segments/refresh_counters", _segment_target, _complete_segment),
    "resource": TaskKindSpec(
        "resources/refresh_counters", _resource_target, _complete_resource, feedback=True
    ),
    "database": TaskKindSpec(
        "databases/refresh_counters", _database_target, _complete_database, feedback=True
    ),
}


def _feedback(params: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The webhook ``(url, type)`` of a start's ``feedback`` parameter; (None, None) without."""
    feedback = params.get("feedback")
    if feedback is None:
        return None, None
    if not isinstance(feedback, Mapping):
        raise ApiError(400, "feedback must be an object with type and url")
    url = _str(feedback, "url")
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(400, f"feedback.url must be an absolute http(s) URL, got {url!r}")
    return url, _str(feedback, "type") or "JSON"


def _task_starter(kind: str) -> Callable[[Context, Mapping[str, Any]], Any]:
    """The handler of the endpoint that starts tasks of ``kind``."""
    spec = TASK_KINDS[kind]

    def start(ctx: Context, params: Mapping[str, Any]) -> Any:
        target = spec.target(ctx.platform, params)
        url, feedback_type = _feedback(params) if spec.feedback else (None, None)
        record = ctx.tasks.create(
            kind,
            resource_id=target.resource_id,
            database_id=target.database_id,
            segment_id=target.segment_id,
            feedback_url=url,
            feedback_type=feedback_type,
        )
        return {"task_id": record.task_id}

    return start


# --- the other endpoints ----------------------------------------------------------------------


def task_status(ctx: Context, params: Mapping[str, Any]) -> Any:
    task_id = _str(params, "task_id")
    if task_id is None:
        raise ApiError(400, "task_id is required")
    try:
        return ctx.tasks.poll(task_id)
    except KeyError:
        raise ApiError(400, f"task {task_id} not found") from None


def relation_counter(ctx: Context, params: Mapping[str, Any]) -> Any:
    relation = ctx.platform.relation(_req_int(params, "rel_id"))
    matching = _str(params, "matching") or _implied_matching(params)
    wanted = _MATCHING_FIELDS.get(matching)
    if wanted is None:
        raise ApiError(400, f"matching must be one of {sorted(_MATCHING_FIELDS)}, got {matching!r}")
    values = {name: _str(params, name) for name in wanted}
    for name, value in values.items():
        if value is None:
            raise ApiError(400, f"{name} is required for matching {matching!r}")
    resource_id = _int(params, "resource_id", required=False)
    if resource_id is not None:
        ctx.platform.resource(resource_id)
    database_id = relation.database_id
    if matching == "custom":
        profile_id = ctx.platform.find_by_field(
            database_id, cast(str, values["field_name"]), cast(str, values["field_value"])
        )
    else:
        by = cast(Literal["email", "phone", "profile_id"], wanted[0])
        profile_id = ctx.platform.find_profile(database_id, by=by, value=cast(str, values[by]))
    if profile_id is None:
        raise ApiError(400, f"profile not found in database {database_id}")
    return ctx.platform.relation_info(relation.id, profile_id)


def _implied_matching(params: Mapping[str, Any]) -> str:
    """Without ``matching``, the field sent decides (the documented example sends only
    ``profile_id``); the documented default, ``email``, applies when none is sent."""
    for mode in ("profile_id", "phone", "custom"):
        if params.get(_MATCHING_FIELDS[mode][0]) is not None:
            return mode
    return "email"


def queue_stats(ctx: Context, params: Mapping[str, Any]) -> Any:
    sender_id = _req_int(params, "id")
    group = _str(params, "group") or "total"
    if group not in GROUPS:
        raise ApiError(400, f"group must be one of {list(GROUPS)}, got {group!r}")
    return ctx.platform.queue_stats(
        sender_id,
        account_id=_int(params, "account_id", required=False) or None,
        campaign_id=_int(params, "campaign_id", required=False) or None,
        isp=_str(params, "isp"),
        group=group,
    )


def database_list(ctx: Context, params: Mapping[str, Any]) -> Any:
    """``databases/list``: the platform's databases, by id. The SDK does not model this call
    (``client.request`` reaches it); the real platform's rows carry more fields, the fake's
    only the two its tests and the README example read: ``id`` and ``name``."""
    return [
        {"id": db.id, "name": db.name}
        for db in sorted(ctx.platform.databases.values(), key=lambda db: db.id)
    ]


#: Served paths, exactly as documented (``admin/senders/queue/stats/`` keeps its slash; the
#: ``databases/`` ones are inferred from their siblings, see ``api/_specs.py``).
ENDPOINTS: dict[str, Endpoint] = {
    "segments/get_counters": Endpoint(get_counters),
    "databases/get_counters": Endpoint(database_counters),
    "databases/list": Endpoint(database_list),
    "tasks/status": Endpoint(task_status),
    "relations/get_counter": Endpoint(relation_counter),
    "admin/senders/queue/stats/": Endpoint(queue_stats, admin=True),
    **{
        spec.path: Endpoint(_task_starter(kind), starts_task=True)
        for kind, spec in TASK_KINDS.items()
    },
}


def serve(endpoint: Endpoint, ctx: Context, params: Mapping[str, Any]) -> Any:
    """Run a handler; platform lookups that fail become error 400."""
    try:
        return endpoint.handler(ctx, params)
    except PlatformError as exc:
        raise ApiError(400, str(exc)) from None
