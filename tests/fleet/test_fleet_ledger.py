"""StartLedger against a real redis-server: a pair is started at most once, whoever claims it
and whenever they die; a fenced-out owner never writes; a crash inside the start window is
reported ``unknown`` and restarted only on request."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis
from attrs import asdict

from altcraft_async import AltcraftClient, CountersSnapshot, InvalidRequestError, SegmentRef
from altcraft_async.fleet import StartLedger, pair_id, run_pair
from altcraft_async.fleet._batch import CRASH_ENV
from altcraft_async.fleet._keys import PREFIX
from altcraft_async.testing import FakeAltcraft, seeded_platform

from .fleet_helpers import child, expect, go, read_line

pytestmark = pytest.mark.anyio

#: A send lease or hold that has run out by the next claim (0 ms on Redis' clock).
EXPIRED = 1e-6


async def keys_all_expire(redis: aioredis.Redis) -> set[str]:
    """Every key is the fleet's and has a TTL; returns their names without the prefix."""
    keys = {key.decode() for key in await redis.keys("*")}
    for key in keys:
        assert key.startswith(f"{PREFIX}:acme:"), key
        assert await redis.pttl(key) > 0, key
    return {key.removeprefix(f"{PREFIX}:acme:") for key in keys}


async def test_many_claimers_in_several_processes_start_each_pair_once(redis_url: str) -> None:
    pairs, per_process = 20, 50
    async with aioredis.Redis.from_url(redis_url) as redis:
        ledger = StartLedger(redis, account="acme", run="r1")
        starts: Counter[str] = Counter()

        async def claimer(index: int) -> None:
            for number in range(pairs):
                if (await ledger.claim(f"p{number}", f"parent-{index}")).action == "start":
                    starts[f"p{number}"] += 1

        async with (
            child("claim", redis_url, "r1", str(pairs), str(per_process)) as a,
            child("claim", redis_url, "r1", str(pairs), str(per_process)) as b,
        ):
            await expect(a, "ready")
            await expect(b, "ready")
            await go(a)
            await go(b)
            async with anyio.create_task_group() as group:
                for index in range(per_process):
                    group.start_soon(claimer, index)
            for process in (a, b):
                while (line := await read_line(process)) != "done":
                    starts[line.removeprefix("start ")] += 1
        assert starts == {f"p{number}": 1 for number in range(pairs)}
        assert await ledger.in_flight() == pairs
        assert await keys_all_expire(redis) == {
            "in_flight",
            *(f"run:r1:pair:p{number}" for number in range(pairs)),
        }


async def test_a_fenced_out_owner_cannot_write(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        ledger = StartLedger(redis, account="acme", run="r1", send_lease=EXPIRED, hold=EXPIRED)
        restarting = StartLedger(redis, account="acme", run="r1", on_unknown="restart")
        first = await ledger.claim("p", "a")
        assert first.action == "start"
        # a's lease ran out while sending: the next claimer cannot know, so the pair is unknown
        unknown = await ledger.claim("p", "b")
        assert unknown.action == "unknown" and "sent by a" in unknown.detail
        assert await ledger.unknown() == ["p"]
        # a restart (on opt-in) fences a out
        second = await restarting.claim("p", "b")
        assert (second.action, second.fence) == ("start", first.fence + 1)
        assert not await ledger.started("p", "a", first.fence, "token-a")
        assert not await ledger.finish("p", "a", first.fence)
        assert not await ledger.release("p", "a", first.fence)
        assert await ledger.started("p", "b", second.fence, "token-b")
        # b's hold runs out: c resumes b's task, and b can no longer finish it
        third = await ledger.claim("p", "c")
        assert (third.action, third.token, third.fence) == ("resume", "token-b", second.fence + 1)
        assert not await ledger.finish("p", "b", second.fence)
        assert not await ledger.renew("p", "b", second.fence)
        assert await ledger.finish("p", "c", third.fence)
        assert not await ledger.finish("p", "c", third.fence)  # once
        assert (await ledger.claim("p", "d")).action == "done"
        assert await ledger.counts() == {
            "started": 1,
            "done": 1,
            "failed": 0,
            "unknown": 0,
            "restarted": 1,
        }
        assert await ledger.in_flight() == 0
        assert (await ledger.pair("p")).state == "done"


async def test_a_zombies_late_started_resolves_unknown(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        ledger = StartLedger(redis, account="acme", run="r1", send_lease=EXPIRED)
        first = await ledger.claim("p", "a")
        assert (await ledger.claim("p", "b")).action == "unknown"
        assert await ledger.in_flight() == 0
        assert await ledger.started("p", "a", first.fence, "token-a")  # its reply came after all
        assert await ledger.unknown() == []
        assert (await ledger.counts())["unknown"] == 0
        assert await ledger.in_flight() == 1
        assert (await ledger.pair("p")).token == "token-a"


async def test_the_in_flight_cap_holds_claims_until_a_pair_finishes(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        ledger = StartLedger(redis, account="acme", run="r1", max_in_flight=2)
        a, b = await ledger.claim("p1", "w"), await ledger.claim("p2", "w")
        assert (a.action, b.action) == ("start", "start")
        assert (await ledger.claim("p3", "w")).action == "full"
        assert await ledger.release("p1", "w", a.fence)  # never sent: startable again
        assert (await ledger.claim("p3", "w")).action == "start"
        assert (await ledger.claim("p1", "w")).action == "full"
        assert await ledger.finish("p2", "w", b.fence, failed=True, detail="refused")
        assert (await ledger.claim("p1", "w")).action == "start"
        assert (await ledger.claim("p2", "w")).detail == "refused"


async def test_bad_options_are_refused(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        for bad in (
            {"run": ""},
            {"run": "a:b"},
            {"run": "r", "send_lease": 0},
            {"run": "r", "max_in_flight": 0},
            {"run": "r", "on_unknown": "guess"},
        ):
            with pytest.raises(InvalidRequestError):
                StartLedger(redis, account="acme", **bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError):
            await StartLedger(redis, account="acme", run="r").claim("p", "x:y")


def counters_of(fake: FakeAltcraft, segment: int) -> dict[str, dict[str, Any]]:
    return fake.platform.segment_counters(segment, 1)


def as_counters(result: list[CountersSnapshot] | None) -> dict[str, dict[str, Any]]:
    """The counters of a wait's result, as the fake's platform computes them."""
    assert result is not None
    return {
        item.channel: {
            name: value for name, value in asdict(item.status).items() if value is not None
        }
        for snapshot in result
        for item in snapshot.channels
    }


def starts_of(fake: FakeAltcraft, segment: int) -> int:
    return sum(task.segment_id == segment for task in fake.tasks.values())


async def test_a_crash_inside_the_start_window_is_unknown_and_not_restarted(
    redis_url: str,
) -> None:
    ref = SegmentRef(1, 1, 1)
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        env = {CRASH_ENV: pair_id(ref)}
        async with child("pair", redis_url, fake.url, fake.token, "r1", "1", env=env) as dying:
            await expect(dying, "ready")
            await go(dying)
            assert await dying.wait() == -9  # SIGKILLed itself after the start reply
        assert starts_of(fake, 1) == 1

        ledger = StartLedger(redis, account="acme", run="r1")
        outcome = await run_pair(client, ledger, ref, "survivor")
        assert outcome.state == "unknown" and "task id never stored" in outcome.detail
        assert starts_of(fake, 1) == 1  # not restarted
        assert await ledger.unknown() == [pair_id(ref)]
        assert (await run_pair(client, ledger, ref, "another")).state == "unknown"

        restarting = StartLedger(redis, account="acme", run="r1", on_unknown="restart")
        outcome = await run_pair(client, restarting, ref, "restarter")
        assert outcome.state == "done"
        assert starts_of(fake, 1) == 2  # the one duplicate the user opted into
        assert as_counters(outcome.result) == counters_of(fake, 1)
        assert await ledger.counts() == {
            "started": 1,
            "done": 1,
            "failed": 0,
            "unknown": 0,
            "restarted": 1,
        }


async def test_a_pair_done_by_one_worker_is_not_started_by_the_next(redis_url: str) -> None:
    ref = SegmentRef(2, 1, 1)
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1)) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        ledger = StartLedger(redis, account="acme", run="r1")
        async with child("pair", redis_url, fake.url, fake.token, "r1", "2") as worker:
            await expect(worker, "ready")
            await go(worker)
            await expect(worker, "done")
        assert starts_of(fake, 2) == 1
        again = await run_pair(client, ledger, ref, "second")
        assert again.state == "done" and again.result is None
        assert starts_of(fake, 2) == 1
        assert await keys_all_expire(redis) == {
            "in_flight",
            "run:r1:counts",
            f"run:r1:pair:{pair_id(ref)}",
        }
