"""Call overhead: ``client.segments.get_counters`` through the SDK versus raw aiohttp.

Both clients send the same bytes (built once by the SDK's sans-I/O layer) to the same lean
server (``benchmarks._server``) running in another process, and both read the whole reply. The
raw client stops there; the SDK also validates arguments, encodes, checks the envelope and
types the reply into ``list[ChannelCounters]``. Runs alternate SDK/raw (the order flips every
round) and the reported numbers are medians over the rounds: the machine is noisy, and pairing
neighbouring runs cancels slow drifts. ``*_cpu_us`` is this process's CPU time per request.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from altcraft_async import AltcraftClient
from altcraft_async._codec import Format
from altcraft_async._sansio import build_request
from altcraft_async.api._specs import SEGMENTS_GET_COUNTERS

from ._proc import spawn

__all__ = ["run_overhead"]

TOKEN = "abcdefghijklmnqrstuvwxyz"
ARGS = {"segment_id": 7, "resource_id": 24, "database_id": 1}

Call = Callable[[], Awaitable[Any]]


async def _drive(call: Call, concurrency: int, duration: float) -> tuple[int, float, float]:
    """Run ``concurrency`` workers calling ``call`` for ``duration`` seconds.

    Returns (requests done, wall seconds, CPU seconds of this process).
    """
    # Warm up: open the connections and fill the caches outside the timed section.
    await asyncio.gather(*(call() for _ in range(concurrency)))
    done = 0
    stop = False

    async def worker() -> None:
        nonlocal done
        while not stop:
            await call()
            done += 1

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    await asyncio.sleep(duration)
    stop = True
    await asyncio.gather(*workers)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return done, wall, cpu


async def _run_sdk(
    base_url: str, fmt: Format, concurrency: int, duration: float
) -> tuple[int, float, float]:
    async with AltcraftClient(base_url, token=TOKEN, format=fmt, max_connections=100) as client:
        segments = client.segments

        async def call() -> Any:
            return await segments.get_counters(segment_id=7, resource_id=24, database_id=1)

        return await _drive(call, concurrency, duration)


async def _run_raw(
    base_url: str, fmt: Format, concurrency: int, duration: float
) -> tuple[int, float, float]:
    request = build_request(SEGMENTS_GET_COUNTERS, ARGS, token=TOKEN, fmt=fmt)
    url = base_url + request.path
    body = request.body
    headers = dict(request.headers)
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> Any:
            async with session.post(url, data=body, headers=headers) as response:
                return await response.read()

        return await _drive(call, concurrency, duration)


async def _measure(
    base_url: str,
    formats: tuple[Format, ...],
    concurrencies: tuple[int, ...],
    rounds: int,
    duration: float,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for fmt in formats:
        for concurrency in concurrencies:
            sdk: list[tuple[int, float, float]] = []
            raw: list[tuple[int, float, float]] = []
            for round_no in range(rounds):
                runners = [(_run_sdk, sdk), (_run_raw, raw)]
                if round_no % 2:
                    runners.reverse()
                for runner, into in runners:
                    into.append(await runner(base_url, fmt, concurrency, duration))
            sdk_rps = [n / wall for n, wall, _ in sdk]
            raw_rps = [n / wall for n, wall, _ in raw]
            ratios = [s / r for s, r in zip(sdk_rps, raw_rps, strict=True)]
            row = {
                "format": fmt,
                "concurrency": concurrency,
                "sdk_rps": round(statistics.median(sdk_rps), 1),
                "raw_rps": round(statistics.median(raw_rps), 1),
                "ratio": round(statistics.median(ratios), 3),
                "sdk_cpu_us": round(statistics.median(cpu / n * 1e6 for n, _, cpu in sdk), 1),
                "raw_cpu_us": round(statistics.median(cpu / n * 1e6 for n, _, cpu in raw), 1),
                "rounds": rounds,
            }
            log(
                f"  overhead {fmt:4} c={concurrency:<3} sdk {row['sdk_rps']:>8} rps  "
                f"raw {row['raw_rps']:>8} rps  ratio {row['ratio']:.3f}"
            )
            rows.append(row)
    return rows


def run_overhead(
    *,
    rounds: int,
    duration: float,
    concurrencies: tuple[int, ...] = (1, 10, 100),
    formats: tuple[Format, ...] = ("json", "xml"),
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The ``overhead`` rows: one per (format, concurrency)."""
    with spawn("benchmarks._server") as server:
        return asyncio.run(_measure(server.base_url, formats, concurrencies, rounds, duration, log))
