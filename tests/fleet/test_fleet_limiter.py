"""RedisRateLimiter against a real redis-server and clients against the fake: one rate for the
whole account, measured where it matters, at the server (the fake's request times)."""

from __future__ import annotations

import signal
import time

import anyio
import pytest
import redis.asyncio as aioredis

from altcraft_async import AltcraftClient, InvalidRequestError, RateLimiterProtocol
from altcraft_async.fleet import RedisRateLimiter
from altcraft_async.fleet._keys import rate_key
from altcraft_async.testing import FakeAltcraft, Fault, seeded_platform

from .fleet_helpers import child, expect, go, measuring, peak

pytestmark = pytest.mark.anyio

PATH = "segments/get_counters"


def fake() -> FakeAltcraft:
    return FakeAltcraft(seeded_platform(profiles=50, segments=2, resources=1))


async def counters(client: AltcraftClient) -> None:
    await client.segments.get_counters(segment_id=1, resource_id=1, database_id=1)


async def burst(client: AltcraftClient, n: int) -> None:
    async with anyio.create_task_group() as group:
        for _ in range(n):
            group.start_soon(counters, client)


async def only_documented_keys(redis: aioredis.Redis) -> None:
    keys = await redis.keys("*")
    assert keys == [rate_key("acme").encode()]
    assert await redis.pttl(keys[0]) > 0  # it expires by itself


async def test_clients_of_several_processes_share_one_rate(redis_url: str) -> None:
    rate, per_client = 40.0, 40
    async with fake() as server, aioredis.Redis.from_url(redis_url) as redis:
        async with child(
            "requests", redis_url, server.url, server.token, "40", str(per_client)
        ) as other:
            await expect(other, "ready")
            limiters = [RedisRateLimiter(redis, rate=rate, account="acme") for _ in range(2)]
            clients = [
                AltcraftClient(server.url, token=server.token, rate_limiter=limiter)
                for limiter in limiters
            ]
            async with clients[0], clients[1], measuring() as lag:
                await go(other)
                async with anyio.create_task_group() as group:
                    for client in clients:
                        group.start_soon(burst, client, per_client)
                await expect(other, "done")
        times = [r.at for r in server.requests if r.path == PATH and r.http_status == 200]
        assert len(times) == 3 * per_client
        # three unshared limiters would send these 120 in 1 s; one shared rate needs 3 s (the
        # fake stamps arrivals when its loop, this test's, gets to them: up to lag.worst late)
        assert peak(times, 1.0) <= rate * (1.1 + lag.worst) + 2, f"loop lag {lag.worst:.3f} s"
        assert peak(times, 2.0) <= rate * (2.2 + lag.worst) + 2
        span = max(times) - min(times)
        assert span >= (len(times) - 1) / rate * 0.9
        assert span <= (len(times) - 1) / rate * 2  # and it does not starve
        await only_documented_keys(redis)


async def test_a_429_halves_the_rate_of_every_process_once_per_burst(redis_url: str) -> None:
    rate = 20.0
    async with fake() as server, aioredis.Redis.from_url(redis_url) as redis:
        first, second = (RedisRateLimiter(redis, rate=rate, account="acme") for _ in range(2))
        async with (
            AltcraftClient(server.url, token=server.token, rate_limiter=first) as a,
            AltcraftClient(server.url, token=server.token, rate_limiter=second) as b,
        ):
            # five requests paced at the full rate all get 429: one burst, one cut
            server.faults.next(PATH, Fault.rate_limited(retry_after=0.01), times=5)
            await burst(a, 5)
            assert [r.http_status for r in server.requests].count(429) == 5
            # halved once, not five times (1/32); the retries that succeeded before the last
            # one asked for its slot may have won back 5 % each
            cut = await second.shared_rate()
            assert rate / 2 <= cut <= rate / 2 * 1.05**4 + 1e-6

            # the other client (another process, as far as Redis can tell) is paced at rate/2
            server.reset()
            async with measuring() as lag:
                await burst(b, 10)
            times = sorted(r.at for r in server.requests)
            assert len(times) == 10
            assert times[-1] - times[0] >= 9 / cut * 0.9 - lag.worst, f"loop lag {lag.worst:.3f} s"
            assert peak(times, 1.0) <= cut * (1.1 + lag.worst) + 1

            # each of those 10 successes wins back 5 %, applied with b's next request
            await counters(b)
            assert await first.shared_rate() == pytest.approx(cut * 1.05**10, rel=1e-3)
        await only_documented_keys(redis)


async def test_a_killed_worker_wastes_at_most_the_horizon(redis_url: str) -> None:
    rate, horizon = 10.0, 0.5
    async with aioredis.Redis.from_url(redis_url) as redis:
        async with child("hold", redis_url, str(rate), str(horizon), "50") as holder:
            await expect(holder, "ready")
            await go(holder)
            await expect(holder, "slot")  # 50 waiters, slots reserved up to the horizon
            holder.send_signal(signal.SIGKILL)
            await holder.wait()
        tat = int(await redis.hget(rate_key("acme"), "tat"))
        seconds, micros = await redis.time()
        ahead = (tat - (seconds * 1_000_000 + micros)) / 1e6
        # the dead worker held no slot further ahead than the horizon (plus the one past it)
        assert ahead <= horizon + 1 / rate
        # so a survivor's next request waits no longer than that. Its own horizon covers what
        # the dead one can hold, so it is never refused (a refusal re-asks after a sleep, which
        # the recording sleep below does not do): it is paced right behind the dead worker's
        # slots, and its one wait is measured from Redis' clock, after the reading above.
        survivor = RedisRateLimiter(redis, rate=rate, horizon=horizon + 1 / rate, account="acme")
        waits: list[float] = []

        async def record(seconds: float) -> None:
            waits.append(seconds)

        await survivor.acquire(record)
        assert len(waits) <= 1
        assert sum(waits) <= ahead
        await only_documented_keys(redis)


async def test_a_slot_taken_ahead_but_spent_late_is_not_spent(redis_url: str) -> None:
    # The fleet takes a start's slot, then claims the pair in Redis, then sends. If that claim
    # comes back late (a busy event loop), sending on the old slot would bunch requests into
    # the next second (the benchmark's 566/s at 500/s): the late-wake rule applies to it too.
    rate, tolerance = 10.0, 0.05
    async with aioredis.Redis.from_url(redis_url) as redis:
        limiter = RedisRateLimiter(redis, rate=rate, late_tolerance=tolerance, account="acme")
        async with limiter.slot():
            # on time: the request inside the block spends the slot taken ahead
            await limiter.acquire(anyio.sleep)
        assert int(await redis.hget(rate_key("acme"), "granted")) == 1
        async with limiter.slot():
            time.sleep(4 * tolerance)  # the event loop is blocked: the claim's reply is late
            await limiter.acquire(anyio.sleep)
        # the late request took a slot of its own instead
        assert int(await redis.hget(rate_key("acme"), "granted")) == 3


async def test_it_plugs_into_the_client_and_checks_its_options(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        limiter = RedisRateLimiter(redis, rate=5, account="acme")
        assert isinstance(limiter, RateLimiterProtocol)
        assert "acme" in repr(limiter)
        for bad in ({"rate": 0}, {"rate": 5, "horizon": -1}, {"rate": 5, "account": "a:b"}):
            with pytest.raises(InvalidRequestError):
                RedisRateLimiter(redis, **bad)  # type: ignore[arg-type]
