"""The contract between the SDK's endpoint specs and the fake: every spec is served, both ways.

For every spec of ``api._specs.ALL_SPECS``, in JSON and in XML, in every dialect preset, a
request built by ``_sansio.build_request`` from the sample arguments below goes over real HTTP
to a started fake, which answers it with error 0, and ``_sansio.decode_reply`` reads the reply
as the spec's response type. A spec without a row in :data:`SAMPLES` fails here, so a new spec
cannot ship without the fake serving it. The tables agree too: every path the fake serves has a
spec and every spec a fake endpoint (same admin and task-starting flags), and every kind of
task in the fake's kinds table is started by a spec that says it starts a task.
"""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from attrs import frozen

from altcraft_async import CountersSnapshot, Feedback, Match, TaskRef, TaskStatus
from altcraft_async._codec import Format
from altcraft_async._sansio import EndpointSpec, build_request, decode_reply
from altcraft_async.api._specs import ALL_SPECS
from altcraft_async.testing import FakeAltcraft
from altcraft_async.testing._dialects import PRESETS
from altcraft_async.testing._endpoints import ENDPOINTS, TASK_KINDS

pytestmark = pytest.mark.anyio

FORMATS: tuple[Format, ...] = ("json", "xml")
SPECS_BY_NAME = {spec.name: spec for spec in ALL_SPECS}
SPECS_BY_PATH = {spec.path: spec for spec in ALL_SPECS}


@frozen
class Scene:
    """A started seeded fake and a way to call it through the specs (real HTTP)."""

    fake: FakeAltcraft
    session: aiohttp.ClientSession
    fmt: Format

    async def send(self, spec: EndpointSpec, args: dict[str, Any]) -> Any:
        """Build the request, POST it, decode the reply (or raise the SDK's error)."""
        token = self.fake.admin_token if spec.admin else self.fake.token
        assert token is not None
        request = build_request(spec, args, token=token, fmt=self.fmt)
        async with self.session.post(
            self.fake.url + request.path, data=request.body, headers=dict(request.headers)
        ) as response:
            body = await response.read()
            return decode_reply(spec, response.status, response.headers, body, self.fmt)

    def segment(self) -> dict[str, Any]:
        """A dynamic segment (its database is required on the wire) and a linked resource."""
        platform = self.fake.platform
        segment_id, resource_id, database_id = next(
            ref for ref in platform.segment_refs() if platform.segments[ref[0]].dynamic
        )
        return {"segment_id": segment_id, "resource_id": resource_id, "database_id": database_id}


#: Where the fake would POST a feedback webhook: never, the fake is told to lose them.
FEEDBACK = Feedback("http://127.0.0.1:9/hook")


async def _task_status(scene: Scene) -> dict[str, Any]:
    started = await scene.send(SPECS_BY_NAME["segments.refresh_counters"], scene.segment())
    return {"task_id": started.task_id}


async def _relation_counter(scene: Scene) -> dict[str, Any]:
    relation = scene.fake.platform.relations[1]
    profile_id = scene.fake.platform.profile_ids(relation.database_id)[0]
    return {"relation_id": relation.id, "match": Match.profile_id(profile_id), "resource_id": 1}


async def _value(args: dict[str, Any]) -> dict[str, Any]:
    return args


#: Valid arguments for every spec, by spec name (a function of the started scene).
SAMPLES: dict[str, Callable[[Scene], Awaitable[dict[str, Any]]]] = {
    "segments.get_counters": lambda scene: _value(scene.segment()),
    "segments.refresh_counters": lambda scene: _value(scene.segment()),
    "resources.refresh_counters": lambda scene: _value(
        {"resource_id": 1, "database_id": 1, "feedback": FEEDBACK}
    ),
    "databases.get_counters": lambda scene: _value({"database_id": 1, "resource_id": 1}),
    "databases.refresh_counters": lambda scene: _value(
        {"database_id": 1, "resource_id": 1, "feedback": FEEDBACK}
    ),
    "tasks.status": _task_status,
    "admin.sender_queue_stats": lambda scene: _value({"sender_id": 1, "group": "isp"}),
    "relations.get_counter": _relation_counter,
}


def _conforms(value: Any, expected: Any) -> bool:
    """Whether ``value`` is of the spec's response type (``list[X]``: a non-empty list of X)."""
    if typing.get_origin(expected) is list:
        (item,) = typing.get_args(expected)
        return isinstance(value, list) and bool(value) and all(isinstance(v, item) for v in value)
    return isinstance(value, expected)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _scene(session: aiohttp.ClientSession, dialect: str, fmt: Format) -> Scene:
    return Scene(
        FakeAltcraft.seeded(
            profiles=200,
            segments=4,
            resources=2,
            clock="manual",
            dialect=dialect,
            webhook_delivery="lost",
        ),
        session,
        fmt,
    )


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda spec: spec.name)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dialect", sorted(PRESETS))
async def test_every_spec_is_served_by_the_fake(
    session: aiohttp.ClientSession, dialect: str, fmt: Format, spec: EndpointSpec
) -> None:
    sample = SAMPLES.get(spec.name)
    assert sample is not None, f"{spec.name}: add a row of valid arguments to SAMPLES"
    scene = await _scene(session, dialect, fmt)
    async with scene.fake:
        result = await scene.send(spec, await sample(scene))
        assert _conforms(result, spec.response), (spec.name, result)
        # error 0, and the fake served this very spec's path in this format
        last = scene.fake.requests[-1]
        assert (last.path, last.error, last.format) == (spec.path, 0, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", sorted(TASK_KINDS))
async def test_every_task_kind_runs_to_its_snapshot(
    session: aiohttp.ClientSession, kind: str, fmt: Format
) -> None:
    start = SPECS_BY_PATH[TASK_KINDS[kind].path]
    scene = await _scene(session, "plain", fmt)
    async with scene.fake:
        args = await SAMPLES[start.name](scene)
        started = await scene.send(start, args)
        assert isinstance(started, TaskRef)
        assert scene.fake.tasks[started.task_id].kind == kind
        status = await scene.send(SPECS_BY_NAME["tasks.status"], {"task_id": started.task_id})
    assert isinstance(status, TaskStatus) and status.status == "completed"
    (snapshot,) = status.result
    assert isinstance(snapshot, CountersSnapshot)
    assert (snapshot.list_id, snapshot.resource_id) == (args["database_id"], args["resource_id"])


def test_every_sample_names_a_spec() -> None:
    assert set(SAMPLES) == set(SPECS_BY_NAME)


#: Served by the fake for ``client.request`` (README, tests/test_request.py), modelled by no spec.
UNMODELLED = {"databases/list"}


def test_the_fake_serves_exactly_the_specs() -> None:
    assert set(ENDPOINTS) == set(SPECS_BY_PATH) | UNMODELLED
    for path, endpoint in ENDPOINTS.items():
        if path in UNMODELLED:
            assert not (endpoint.admin or endpoint.starts_task), path
            continue
        spec = SPECS_BY_PATH[path]
        assert (endpoint.admin, endpoint.starts_task) == (spec.admin, spec.starts_task), path


def test_every_task_kind_is_started_by_a_task_starting_spec() -> None:
    starts = {kind.path for kind in TASK_KINDS.values()}
    assert len(starts) == len(TASK_KINDS)  # one endpoint per kind
    assert starts == {spec.path for spec in ALL_SPECS if spec.starts_task}
