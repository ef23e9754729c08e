"""The fleet-wide push receiver against a real redis-server and the fake's feedback webhooks:
a webhook's final status lands in the ledger whoever started the task (its worker may be
dead), any process's ``wait_pair`` hears it, and it resolves a pair left ``unknown``."""

from __future__ import annotations

import aiohttp
import anyio
import pytest
import redis.asyncio as aioredis

from altcraft_async import AltcraftClient, InvalidRequestError, SegmentRef
from altcraft_async.fleet import Fleet, FleetFeedbackReceiver, StartLedger, pair_id
from altcraft_async.fleet._keys import pair_key
from altcraft_async.testing import FakeAltcraft, TaskPlan, seeded_platform

from .fleet_helpers import subscribe
from .test_fleet_ledger import as_counters

pytestmark = pytest.mark.anyio

#: The bound on every wait here (a deadline, never reached when all is well).
DEADLINE = 30.0


async def test_a_webhook_finishes_a_pair_whose_worker_is_gone(redis_url: str) -> None:
    # The platform posts feedback for resources/databases refreshes; the receiver finishes the
    # pair its callback URL names, whatever started it.
    first, second = SegmentRef(1, 1, 1), SegmentRef(2, 1, 1)
    async with (
        FakeAltcraft(
            seeded_platform(profiles=50, segments=2, resources=1),
            task_plan=TaskPlan.after_seconds(0.2),
        ) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
        Fleet(redis_url, account="acme") as fleet,
        FleetFeedbackReceiver(redis, account="acme") as receiver,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        run = await fleet.start("nightly", [first, second])
        ledger = StartLedger(redis, account="acme", run="nightly")
        # the pairs' channels, where the ledger publishes each final state
        channels = redis.pubsub()
        await subscribe(
            channels, *(pair_key("acme", "nightly", pair_id(r)) for r in (first, second))
        )
        # a worker starts both, stores the first's token, loses the second's reply (unknown),
        # and dies: nobody polls either task from here on
        tasks = {}
        for ref in (first, second):
            claim = await ledger.claim(pair_id(ref), "worker-1")
            assert claim.action == "start"
            feedback = receiver.feedback_for("nightly", pair_id(ref))
            tasks[ref] = await client.resources.refresh_counters(
                resource_id=1, database_id=1, feedback=feedback
            )
            if ref == first:
                assert await ledger.started(
                    pair_id(ref), "worker-1", claim.fence, tasks[ref].resume_token()
                )
            else:
                assert await ledger.unsure(pair_id(ref), "worker-1", claim.fence, "reply lost")
        assert (await ledger.counts())["unknown"] == 1

        # another process's wait hears the webhook through the ledger
        outcome = await run.wait_pair(first, timeout=DEADLINE)
        assert outcome.state == "done"
        assert outcome.task_id == tasks[first].task_id
        assert as_counters(outcome.result) == fake.platform.resource_counters(1, 1)

        # the second's webhook resolves the unknown (published: done)
        published = []
        with anyio.fail_after(DEADLINE):
            while published.count(b"done") < 2:
                message = await channels.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    published.append(message["data"])
        await channels.aclose()
        resolved = await run.pair(second)
        assert resolved is not None and resolved.state == "done"
        assert as_counters(resolved.result) == fake.platform.resource_counters(1, 1)
        progress = await run.progress()
        assert (progress.done, progress.unknown, progress.in_flight) == (2, 0, 0)
        assert await ledger.unknown() == []
        # each task was started once, its webhook delivered once and stored once
        assert len(fake.tasks) == 2
        with anyio.fail_after(DEADLINE):  # the fake records a delivery once it read the answer
            await fake.wait_webhooks()
        assert [record.status for record in fake.webhooks] == [200, 200]
        # the dead worker's late finish (a zombie) changes nothing
        assert not await ledger.finish(pair_id(first), "worker-1", 1, result=[])


async def test_it_refuses_forged_or_unknown_calls(redis_url: str) -> None:
    async with (
        aioredis.Redis.from_url(redis_url) as redis,
        FleetFeedbackReceiver(redis, account="acme", secret="s3cret") as receiver,
    ):
        url = receiver.feedback_for("nightly", "segment.1.1.1").url
        async with aiohttp.ClientSession() as session:
            base = url.rsplit("/", 3)[0]
            forged = await session.post(base + "/wrong/nightly/segment.1.1.1", json=[])
            bad_path = await session.post(base + "/s3cret/nightly", json=[])
            not_started = await session.post(url, json={"status": "completed", "result": []})
            garbled = await session.post(url, data=b"{not json")
        assert [forged.status, bad_path.status, not_started.status, garbled.status] == [
            403,
            404,
            200,  # a final status for a pair never started: ignored, so nobody retries it
            400,
        ]
        assert receiver.stored == 0
        assert "s3cret" not in repr(receiver)
        with pytest.raises(InvalidRequestError):
            receiver.feedback_for("bad:run", "p")
