"""Memory per pending awaited task: ``tasks`` waits parked at once on tasks that never finish.

Against the lean server (``benchmarks._server``, whose ``tasks/status`` always answers
``processing``), ``tasks`` handles are created with ``segments.refresh_counters`` and each one
is awaited by its own asyncio task calling ``Task.wait()``. The wait polls once 0.5 s after the
task was created, then parks in a long sleep (the policy's backoff jumps to 500 s), so the
measurement sees every wait parked with its first status kept. Memory is measured once every
wait has polled and no request is in flight:

- ``bytes_per_task``: Python heap growth (``tracemalloc``, traced since before the handles were
  created) divided by ``tasks``: the task handle, the asyncio task and its coroutine chain, the
  cancel scope, the timer, the shared poll state and its last status;
- ``peak_bytes_per_task``: the traced peak over the same span (replies being decoded, etc.);
- ``rss_bytes_per_task``: resident-set growth in a separate pass without tracemalloc (coarser:
  includes allocator slack and pages not given back);
- ``top_sites``: where the parked bytes were allocated (tracemalloc, by line).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import aiohttp

from altcraft_async import AltcraftClient, Backoff, PollPolicy, TaskTimeoutError
from altcraft_async._awaiter import Task

from ._proc import spawn

__all__ = ["run_memory"]

TOKEN = "bench-token"
#: Poll once 0.5 s after creation, then sleep 500 s: every wait ends up parked.
PARK = PollPolicy(
    backoff=Backoff(initial=0.5, factor=1000, max_interval=3600, jitter=0), timeout=None
)


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def _status_polls(session: aiohttp.ClientSession, base_url: str) -> int:
    async with session.get(base_url + "/_bench/stats") as response:
        stats = await response.json()
    return int(stats["requests"].get("tasks/status", 0))


async def _park(
    client: AltcraftClient, session: aiohttp.ClientSession, base_url: str, count: int
) -> tuple[list[Task], list[asyncio.Task[Any]]]:
    """Create ``count`` tasks, wait on each, return once all polled and nothing is in flight."""
    polled = await _status_polls(session, base_url)
    handles: list[Task] = []
    for start in range(0, count, 1000):
        handles += await asyncio.gather(
            *(
                client.segments.refresh_counters(segment_id=7, resource_id=24, database_id=1)
                for _ in range(min(1000, count - start))
            )
        )
    waits = [asyncio.ensure_future(handle.wait(policy=PARK)) for handle in handles]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if (
            await _status_polls(session, base_url) - polled >= count
            and client.connections_in_use() == 0
        ):
            break
    else:
        raise RuntimeError("the waits did not all park within 120 s")
    await asyncio.sleep(0.1)
    return handles, waits


async def _release(waits: list[asyncio.Task[Any]]) -> None:
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)


async def _measure(base_url: str, count: int, top: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        AltcraftClient(base_url, token=TOKEN, coalesce=False) as client,  # a task per handle
    ):
        # Warm up: connections, converters, code paths (a wait that times out).
        task = await client.segments.refresh_counters(segment_id=7, resource_id=24)
        with contextlib.suppress(TaskTimeoutError):
            await task.wait(timeout=0.6)

        # Pass 1: resident set size, no tracing.
        gc.collect()
        rss0 = _rss()
        handles, waits = await _park(client, session, base_url, count)
        gc.collect()
        rss = _rss() - rss0
        await _release(waits)
        del handles, waits
        gc.collect()

        # Pass 2: tracemalloc.
        tracemalloc.start(1)
        try:
            base = tracemalloc.take_snapshot()
            traced0 = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            handles, waits = await _park(client, session, base_url, count)
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            snapshot = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        await _release(waits)
        del handles, waits
    stats = snapshot.compare_to(base, "lineno")
    sites = [
        {
            "where": f"{stat.traceback[0].filename.rsplit('/', 2)[-1]}:{stat.traceback[0].lineno}",
            "bytes_per_task": round(stat.size_diff / count, 1),
        }
        for stat in stats[:top]
    ]
    return {
        "tasks": count,
        "bytes_per_task": round((current - traced0) / count, 1),
        "peak_bytes_per_task": round((peak - traced0) / count, 1),
        "rss_bytes_per_task": round(rss / count, 1),
        "top_sites": sites,
    }


def run_memory(*, tasks: int, top: int = 10, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The ``memory`` section."""
    with spawn("benchmarks._server") as server:
        result = asyncio.run(_measure(server.base_url, tasks, top))
    log(
        f"  memory {tasks} parked waits: {result['bytes_per_task']:.0f} B/task traced "
        f"(peak {result['peak_bytes_per_task']:.0f}), RSS {result['rss_bytes_per_task']:.0f} B/task"
    )
    return result
