"""The endpoint specs of every documented call, as data (see ``_sansio.EndpointSpec``).

Python names are explicit (``segment_id``, ``database_id``); the wire names drift between
endpoints exactly as the Altcraft docs show, and this table is the one place that knows them.
"""

from __future__ import annotations

import functools
from typing import Any

from attrs import evolve

from .._kinds import COUNTERS, TaskKind
from .._sansio import EndpointSpec, choice_param, feedback_param, id_param, match_param, str_param
from ..models import ChannelCounters, RelationInfo, SenderQueueStats, TaskRef, TaskStatus

__all__ = [
    "ADMIN_SENDER_QUEUE_STATS",
    "ALL_SPECS",
    "DATABASES_GET_COUNTERS",
    "DATABASES_REFRESH_COUNTERS",
    "DATABASE_COUNTERS",
    "KINDS",
    "RELATIONS_GET_COUNTER",
    "RESOURCES_REFRESH_COUNTERS",
    "RESOURCE_COUNTERS",
    "SEGMENTS_GET_COUNTERS",
    "SEGMENTS_REFRESH_COUNTERS",
    "SEGMENT_COUNTERS",
    "TASKS_STATUS",
    "kind_named",
    "status_spec",
]

SEGMENTS_GET_COUNTERS = EndpointSpec(
    name="segments.get_counters",
    path="segments/get_counters",
    params=(
        id_param("segment_id", "id"),
        id_param("resource_id", "resource_id"),
        id_param("database_id", "list_id", required=False),
    ),
    response=list[ChannelCounters],
)

SEGMENTS_REFRESH_COUNTERS = EndpointSpec(
    name="segments.refresh_counters",
    path="segments/refresh_counters",
    params=(
        id_param("segment_id", "id"),
        id_param("resource_id", "resource_id"),
        id_param("database_id", "db_id", required=False),
    ),
    response=TaskRef,
    starts_task=True,
)

RESOURCES_REFRESH_COUNTERS = EndpointSpec(
    name="resources.refresh_counters",
    path="resources/refresh_counters",
    params=(
        id_param("resource_id", "id"),
        id_param("database_id", "list_id"),
        feedback_param(),
    ),
    response=TaskRef,
    starts_task=True,
)

# The docs (../shared/altcraft-docs) have no page for the two databases rows: their wire shape
# is inferred from their siblings, the parameters from resources/refresh_counters (``id`` is
# the object the path names, ``resource_id`` as segments/get_counters spells it, the optional
# ``feedback``), the replies from segments/get_counters and resources/refresh_counters (the
# task's result: one CountersSnapshot with list_id = the database, resource_id = the resource).
DATABASES_GET_COUNTERS = EndpointSpec(
    name="databases.get_counters",
    path="databases/get_counters",
    params=(
        id_param("database_id", "id"),
        id_param("resource_id", "resource_id"),
    ),
    response=list[ChannelCounters],
)

DATABASES_REFRESH_COUNTERS = EndpointSpec(
    name="databases.refresh_counters",
    path="databases/refresh_counters",
    params=(
        id_param("database_id", "id"),
        id_param("resource_id", "resource_id"),
        feedback_param(),
    ),
    response=TaskRef,
    starts_task=True,
)

TASKS_STATUS = EndpointSpec(
    name="tasks.status",
    path="tasks/status",
    params=(str_param("task_id", "task_id"),),
    response=TaskStatus,
)

ADMIN_SENDER_QUEUE_STATS = EndpointSpec(
    name="admin.sender_queue_stats",
    path="admin/senders/queue/stats/",
    params=(
        id_param("sender_id", "id"),
        id_param("account_id", "account_id", required=False),
        id_param("campaign_id", "campaign_id", required=False),
        str_param("isp", "isp", required=False),
        choice_param(
            "group", "group", ("account", "account_campaign", "isp", "total"), required=False
        ),
    ),
    response=list[SenderQueueStats],
    admin=True,
)

RELATIONS_GET_COUNTER = EndpointSpec(
    name="relations.get_counter",
    path="relations/get_counter",
    params=(
        id_param("relation_id", "rel_id"),
        match_param(),
        id_param("resource_id", "resource_id", required=False),
    ),
    response=RelationInfo,
)

ALL_SPECS = (
    SEGMENTS_GET_COUNTERS,
    SEGMENTS_REFRESH_COUNTERS,
    RESOURCES_REFRESH_COUNTERS,
    DATABASES_GET_COUNTERS,
    DATABASES_REFRESH_COUNTERS,
    TASKS_STATUS,
    ADMIN_SENDER_QUEUE_STATS,
    RELATIONS_GET_COUNTER,
)

#: The kinds of task the refresh calls start (their results are counters).
SEGMENT_COUNTERS = TaskKind("segment", SEGMENTS_REFRESH_COUNTERS)
RESOURCE_COUNTERS = TaskKind("resource", RESOURCES_REFRESH_COUNTERS)
DATABASE_COUNTERS = TaskKind("database", DATABASES_REFRESH_COUNTERS)

#: Every kind by the name resume tokens keep.
KINDS: dict[str, TaskKind[Any, Any]] = {
    kind.name: kind for kind in (COUNTERS, SEGMENT_COUNTERS, RESOURCE_COUNTERS, DATABASE_COUNTERS)
}


def kind_named(name: str) -> TaskKind[Any, Any]:
    """The kind a resume token names; a name this SDK does not know is read as counters (a
    token from a newer version, or a kind of the user's own: ``tasks.resume(kind=...)``)."""
    return KINDS.get(name, COUNTERS)


@functools.cache
def status_spec(result_type: Any) -> EndpointSpec:
    """``tasks/status`` asking for the result as ``result_type`` (one spec per type)."""
    if result_type is COUNTERS.result_type:
        return TASKS_STATUS
    return evolve(TASKS_STATUS, response=TaskStatus[result_type])
