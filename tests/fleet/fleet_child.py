"""A child process of the fleet tests (``python fleet_child.py COMMAND ...``): another worker of
the fleet, with its own event loop, Redis connections and HTTP client.

It prints ``ready`` once connected and waits for a ``go`` line on stdin, so the parent can
line every worker up before measuring; then it prints one line per result and exits 0.

- ``requests REDIS FAKE TOKEN RATE N``: N ``get_counters`` calls at once through an
  AltcraftClient paced by the account's RedisRateLimiter.
- ``claim REDIS RUN PAIRS N``: N coroutines each claim every one of PAIRS pairs of RUN,
  printing ``start PAIR`` for each claim that said start.
- ``pair REDIS FAKE TOKEN RUN SEGMENT``: run_pair on one segment with a send lease that runs
  out at once (with $ALTCRAFT_FLEET_CRASH_AFTER_SEND set, it dies inside the start window).
- ``hold REDIS RATE HORIZON N``: N acquires at once on the limiter, printing ``slot`` after
  the first; the parent kills the process while it holds the rest.
"""

from __future__ import annotations

import os
import sys

import anyio
from redis.asyncio import Redis

from altcraft_async import AltcraftClient, SegmentRef
from altcraft_async.fleet import RedisRateLimiter, StartLedger, run_pair


async def _go() -> None:
    print("ready", flush=True)
    line = await anyio.to_thread.run_sync(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected 'go', got {line!r}")


async def requests(redis_url: str, fake_url: str, token: str, rate: str, n: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        limiter = RedisRateLimiter(redis, rate=float(rate), account="acme")
        async with AltcraftClient(fake_url, token=token, rate_limiter=limiter) as client:
            await _go()
            async with anyio.create_task_group() as group:
                for _ in range(int(n)):
                    group.start_soon(
                        lambda: client.segments.get_counters(
                            segment_id=1, resource_id=1, database_id=1
                        )
                    )
        print("done", flush=True)
    finally:
        await redis.aclose()


async def hold(redis_url: str, rate: str, horizon: str, n: str) -> None:
    redis = Redis.from_url(redis_url)
    limiter = RedisRateLimiter(redis, rate=float(rate), horizon=float(horizon), account="acme")
    await _go()
    first = anyio.Event()

    async def one() -> None:
        await limiter.acquire(anyio.sleep)
        if not first.is_set():
            first.set()
            print("slot", flush=True)

    async with anyio.create_task_group() as group:
        for _ in range(int(n)):
            group.start_soon(one)


async def claim(redis_url: str, run: str, pairs: str, n: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        ledger = StartLedger(redis, account="acme", run=run)
        await _go()
        started: list[str] = []

        async def one(index: int) -> None:
            for number in range(int(pairs)):
                claimed = await ledger.claim(f"p{number}", f"child{os.getpid()}-{index}")
                if claimed.action == "start":
                    started.append(f"p{number}")

        async with anyio.create_task_group() as group:
            for index in range(int(n)):
                group.start_soon(one, index)
        for pair in started:
            print("start", pair, flush=True)
        print("done", flush=True)
    finally:
        await redis.aclose()


async def pair(redis_url: str, fake_url: str, token: str, run: str, segment: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        ledger = StartLedger(redis, account="acme", run=run, send_lease=1e-6)
        async with AltcraftClient(fake_url, token=token) as client:
            await _go()
            ref = SegmentRef(int(segment), 1, 1)
            # a lease that runs out at once (the next claimer sees it), a start given time
            outcome = await run_pair(client, ledger, ref, f"child{os.getpid()}", start_timeout=30)
            print(outcome.state, flush=True)
    finally:
        await redis.aclose()


COMMANDS = {"requests": requests, "hold": hold, "claim": claim, "pair": pair}

if __name__ == "__main__":
    anyio.run(COMMANDS[sys.argv[1]], *sys.argv[2:])
