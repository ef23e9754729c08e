"""``client.databases``: the endpoint pair added on the redesign's tables (a spec row each, a
task kind row, one namespace, the fake's rows), checked like its siblings: through the real
client against the fake over loopback, in both formats and every fake dialect under test."""

from __future__ import annotations

from typing import Any

import anyio
import attrs
import pytest

from altcraft_async import (
    AltcraftClient,
    Backoff,
    BadRequestError,
    ChannelCounters,
    DatabaseRef,
    FeedbackReceiver,
    InvalidRequestError,
    PollPolicy,
    TaskStatus,
)
from altcraft_async.testing import FakeAltcraft, TaskPlan

pytestmark = pytest.mark.anyio

FAST = PollPolicy(backoff=Backoff(initial=0.005, max_interval=0.01))


def pairs(fake: FakeAltcraft) -> list[DatabaseRef]:
    """Every (database, resource) pair the fake's resources are linked to."""
    return [
        DatabaseRef(database_id, resource.id)
        for resource in fake.platform.resources.values()
        for database_id in resource.database_ids
    ]


def as_counts(channels: tuple[ChannelCounters, ...] | list[ChannelCounters]) -> dict[str, Any]:
    return {
        item.channel: {k: v for k, v in attrs.asdict(item.status).items() if v is not None}
        for item in channels
    }


@pytest.fixture(params=["json", "xml"])
async def env(request: pytest.FixtureRequest) -> Any:
    fake = FakeAltcraft.seeded(profiles=300, segments=2, resources=2, databases=2)
    async with (
        fake,
        AltcraftClient(fake.url, token=fake.token, format=request.param, poll=FAST) as client,
    ):
        yield fake, client


async def test_get_counters_are_the_platforms_counters_of_the_whole_database(env: Any) -> None:
    fake, client = env
    for ref in pairs(fake):
        channels = await client.databases.get_counters(
            database_id=ref.database_id, resource_id=ref.resource_id
        )
        expected = fake.platform.resource_counters(ref.resource_id, ref.database_id)
        sendable = {
            channel: {
                "subscribed_sendable": values["subscribed_sendable"],
                "unconfirmed_sendable": values["unconfirmed_sendable"],
            }
            for channel, values in expected.items()
        }
        assert as_counts(channels) == sendable


async def test_refresh_and_wait_returns_the_recount_and_get_counters_then_shows_it(
    env: Any,
) -> None:
    fake, client = env
    ref = pairs(fake)[0]
    args = {"database_id": ref.database_id, "resource_id": ref.resource_id}
    before = await client.databases.get_counters(**args)
    profile = fake.platform.profile_ids(ref.database_id)[0]
    fake.platform.set_subscription(profile, ref.resource_id, "email", "unsubscribed")
    assert await client.databases.get_counters(**args) == before  # stale until a refresh
    seen: list[TaskStatus] = []
    with anyio.fail_after(10):
        (snapshot,) = await client.databases.refresh_and_wait(**args, on_progress=seen.append)
    assert (snapshot.list_id, snapshot.resource_id) == (ref.database_id, ref.resource_id)
    assert as_counts(snapshot.channels) == fake.platform.resource_counters(
        ref.resource_id, ref.database_id
    )
    assert seen[-1].succeeded
    after = await client.databases.get_counters(**args)
    assert after != before
    (record,) = fake.tasks.values()
    assert (record.kind, record.database_id, record.resource_id) == (
        "database",
        ref.database_id,
        ref.resource_id,
    )


async def test_refresh_many_refreshes_every_pair_once(env: Any) -> None:
    fake, client = env
    refs = pairs(fake)
    with anyio.fail_after(20):
        async with client.databases.refresh_many([*refs, "not a ref"], concurrency=3) as outcomes:  # type: ignore[list-item]
            by_ref = {outcome.ref: outcome async for outcome in outcomes}
    assert isinstance(by_ref["not a ref"].error, InvalidRequestError)
    assert "DatabaseRef" in str(by_ref["not a ref"].error)
    for ref in refs:
        outcome = by_ref[ref]
        assert outcome.error is None and outcome.result is not None
        (snapshot,) = outcome.result
        assert (snapshot.list_id, snapshot.resource_id) == (ref.database_id, ref.resource_id)
    assert sorted((r.database_id, r.resource_id) for r in fake.tasks.values()) == sorted(
        (r.database_id, r.resource_id) for r in refs
    )


async def test_a_database_refresh_races_its_webhook_against_polling(env: Any) -> None:
    fake, client = env
    ref = pairs(fake)[0]
    fake.plan_tasks(TaskPlan.after_seconds(0.2), kind="database")
    async with FeedbackReceiver(safety_poll_interval=30) as receiver:
        with anyio.fail_after(10):
            (snapshot,) = await client.databases.refresh_and_wait(
                database_id=ref.database_id, resource_id=ref.resource_id, feedback=receiver
            )
        assert receiver.received == 1
    assert fake.calls("tasks/status") == 0  # done by push alone
    assert (snapshot.list_id, snapshot.resource_id) == (ref.database_id, ref.resource_id)


async def test_bad_ids_are_refused_before_sending_and_unknown_ones_by_the_server(
    env: Any,
) -> None:
    fake, client = env
    with pytest.raises(InvalidRequestError):
        await client.databases.get_counters(database_id=0, resource_id=1)
    with pytest.raises(InvalidRequestError):
        DatabaseRef(1, -1)
    assert fake.calls("databases/get_counters") == 0
    with pytest.raises(BadRequestError):
        await client.databases.refresh_counters(database_id=999, resource_id=1)
