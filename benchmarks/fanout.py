"""Fan-out efficiency: many refreshes waited on at once against FakeAltcraft in another process.

Each run starts a fresh fake (``benchmarks._fake``; same seed, so the same task durations drawn
uniformly from 0.5-5 s) and refreshes ``tasks`` segments through the client's fan-out
(``client._fan_out``, the engine of ``refresh_many``) with ``concurrency=tasks``: every task is
started with ``segments.refresh_counters`` and awaited with ``Task.wait(policy=...)``.

- ``wall_s``: first refresh request to last ``wait()`` return; ``longest_task_s``: the longest
  planned task; their ratio is the fan-out's efficiency (1.0 is perfect).
- ``polls_per_task``: ``tasks/status`` requests the fake served, per task (mean);
  ``requests_per_task``: every request (starts included) per task.
- policy ``push``: resource refreshes with a ``FeedbackReceiver``: the fake's webhook races
  the safety poller, so the notice comes by push and polling is nearly gone.
- ``notice_p50_s`` / ``notice_p95_s``: from the moment the task was done on the server to its
  ``wait()`` returning in the client (``time.time()`` in both processes, same machine).
- ``peak_connections``: most client connections in use at once (sampled every 10 ms);
  ``server_max_concurrent``: most requests the fake was serving at once.
- ``client_cpu_s`` / ``server_cpu_s``: CPU time of each process during the run;
  ``client_cpu_ms_per_task``: the client's CPU time per task (``time.process_time``, the main
  figure of a large row: wall clock on a shared machine says little), and
  ``client_utilisation``: client CPU over wall (1.0: the client's core was the limit).
- ``*_gc_tuned`` (the ``default`` row at ``gc_tuned_from`` tasks and more): the same run again
  in a fresh fake with the client's collector tuned as docs/guides/fan-out.md suggests
  (``gc.freeze()`` after start-up, ``gc.set_threshold(50_000, 20, 20)``): its CPU per task,
  utilisation, polls per task and wall. The main figures are the untuned ones.
- ``request_rate``: requests per second over the run, ``peak_request_rate`` the busiest second;
  with ``raw_probe`` also ``raw_rps``: what raw aiohttp (100 connections) pushes through the
  same fake's ``tasks/status``, the ceiling the SDK can be compared with.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import aiohttp
import orjson

from altcraft_async import (
    AltcraftClient,
    Backoff,
    CountersSnapshot,
    FeedbackReceiver,
    PollPolicy,
    SegmentRef,
)

from ._fake import TOKEN
from ._proc import get_json, spawn

__all__ = ["POLICIES", "run_fanout"]

#: ``push``: resource refreshes whose webhook races a safety poller (every 30 s).
POLICIES: dict[str, PollPolicy | None] = {
    "default": PollPolicy(),
    "fixed-1s": PollPolicy(
        backoff=Backoff(initial=1, factor=1, max_interval=1, jitter=0), progress_aware=False
    ),
    "exponential": PollPolicy(progress_aware=False),
    "push": None,
}

SEED = 20240419
#: The collector setting the ``*_gc_tuned`` figures use (the first generation's threshold).
GC_TUNED_THRESHOLD = (50_000, 20, 20)


@contextmanager
def _gc_tuned() -> Iterator[None]:
    """The collector as docs/guides/fan-out.md suggests for a process fanning out tens of
    thousands: what lives now frozen out of its reach, a high first threshold; then undone."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_TUNED_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _refs(count: int) -> list[SegmentRef]:
    # The seeded fake has 50 segments, 3 resources and database 1.
    return [SegmentRef(1 + i % 50, 1 + (i // 50) % 3, 1) for i in range(count)]


async def _raw_probe(base_url: str, task_id: str, duration: float) -> float:
    """Requests per second raw aiohttp gets from the fake's ``tasks/status`` (100 in flight)."""
    body = orjson.dumps({"token": TOKEN, "task_id": task_id, "format": "json"})
    url = base_url + "/api/v1.1/tasks/status"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    done = 0
    stop = False
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while not stop:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                done += 1

        t0 = time.perf_counter()
        workers = [asyncio.ensure_future(worker()) for _ in range(100)]
        await asyncio.sleep(duration)
        stop = True
        await asyncio.gather(*workers)
        return done / (time.perf_counter() - t0)


async def _fan_out(base_url: str, tasks: int, policy: PollPolicy | None) -> dict[str, Any]:
    """Refresh ``tasks`` segments polling with ``policy``; with None, refresh resources and
    race the feedback webhook (a FeedbackReceiver in this process) against a safety poller."""
    returned: dict[str, float] = {}
    peak = 0
    errors = 0
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            AltcraftClient(base_url, token=TOKEN, coalesce=False)
        )
        receiver = None
        if policy is None:
            receiver = await stack.enter_async_context(FeedbackReceiver())

        async def run_one(ref: SegmentRef) -> list[CountersSnapshot]:
            if receiver is not None:
                task = await client.resources.refresh_counters(
                    resource_id=ref.resource_id, database_id=1, feedback=receiver
                )
            else:
                task = await client.segments.refresh_counters(
                    segment_id=ref.segment_id,
                    resource_id=ref.resource_id,
                    database_id=ref.database_id,
                )
            result = await task.wait(policy=policy)
            returned[task.task_id] = time.time()
            return result

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, client.connections_in_use())
                await asyncio.sleep(0.01)

        sampler = asyncio.ensure_future(sample())
        cpu0 = time.process_time()
        t0 = time.time()
        async with client._fan_out(  # the engine of refresh_many, with a run_one of our own
            _refs(tasks), run_one, concurrency=tasks, fail_fast=False
        ) as outcomes:
            async for outcome in outcomes:
                if not outcome.ok:
                    errors += 1
        wall = time.time() - t0
        cpu = time.process_time() - cpu0
        sampler.cancel()
    return {
        "t0": t0,
        "wall": wall,
        "cpu": cpu,
        "returned": returned,
        "peak": peak,
        "errors": errors,
    }


def _one_run(
    tasks: int,
    name: str,
    policy: PollPolicy | None,
    raw_probe: float | None,
    duration_scale: float,
    gc_tuned: bool = False,
) -> dict[str, Any]:
    args = ["--seed", str(SEED), "--duration-scale", str(duration_scale)]
    with spawn("benchmarks._fake", args) as fake:
        control = fake.url("CONTROL")
        before = get_json(control + "/stats")
        if gc_tuned:
            with _gc_tuned():
                run = asyncio.run(_fan_out(fake.base_url, tasks, policy))
        else:
            run = asyncio.run(_fan_out(fake.base_url, tasks, policy))
        after = get_json(control + "/stats")
        records = {row["task_id"]: row for row in get_json(control + "/tasks")}
        raw_rps = None
        if raw_probe:
            any_id = next(iter(run["returned"]), next(iter(records)))
            raw_rps = asyncio.run(_raw_probe(fake.base_url, any_id, raw_probe))
    mine = [records[task_id] for task_id in run["returned"] if task_id in records]
    notices = [run["returned"][row["task_id"]] - row["done"] for row in mine if row["done"]]
    served = [row["served"] - row["done"] for row in mine if row["done"] and row["served"]]
    polls = [len(row["polls"]) for row in mine]
    times = [row["created"] for row in mine] + [at for row in mine for at in row["polls"]]
    busiest = max(Counter(int(at) for at in times).values()) if times else 0
    wall = run["wall"]
    longest = max((row["seconds"] for row in mine), default=0.0)
    row: dict[str, Any] = {
        "tasks": tasks,
        "policy": name,
        "wall_s": round(wall, 3),
        "longest_task_s": round(longest, 3),
        "wall_over_longest": round(wall / longest, 3) if longest else None,
        "polls_per_task": round(statistics.fmean(polls), 3) if polls else None,
        "notice_p50_s": round(_percentile(notices, 50), 3) if notices else None,
        "notice_p95_s": round(_percentile(notices, 95), 3) if notices else None,
        "server_notice_p95_s": round(_percentile(served, 95), 3) if served else None,
        "completed": len(run["returned"]),
        "errors": run["errors"],
        "peak_connections": run["peak"],
        "server_max_concurrent": after["max_concurrent"],
        "client_cpu_s": round(run["cpu"], 3),
        "client_cpu_ms_per_task": round(run["cpu"] * 1000 / tasks, 3),
        "client_utilisation": round(run["cpu"] / wall, 3) if wall else None,
        "server_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
        "requests": after["requests"] - before["requests"],
        "requests_per_task": round((after["requests"] - before["requests"]) / tasks, 3),
        "request_rate": round((after["requests"] - before["requests"]) / wall, 1),
        "peak_request_rate": busiest,
    }
    if raw_rps is not None:
        row["raw_rps"] = round(raw_rps, 1)
    return row


def _versus_fixed(rows: list[dict[str, Any]]) -> None:
    """Add each row's ratios to the ``fixed-1s`` row of the same size."""
    fixed = {row["tasks"]: row for row in rows if row["policy"] == "fixed-1s"}
    for row in rows:
        base = fixed.get(row["tasks"])
        if base is None:
            continue
        polls, base_polls = row["polls_per_task"], base["polls_per_task"]
        p95, base_p95 = row["notice_p95_s"], base["notice_p95_s"]
        row["fewer_polls_vs_fixed"] = round(base_polls / polls, 3) if polls else None
        row["p95_vs_fixed"] = round(p95 / base_p95, 3) if p95 is not None and base_p95 else None


def run_fanout(
    *,
    sizes: tuple[int, ...],
    raw_probe_from: int = 10_000,
    raw_probe_s: float = 2.0,
    duration_scale: float = 1.0,
    gc_tuned_from: int = 10_000,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The ``fanout`` rows: one per (size, policy), each policy in a fresh fake process; the
    ``default`` row of ``gc_tuned_from`` tasks or more also with the collector tuned."""
    rows: list[dict[str, Any]] = []
    for tasks in sizes:
        for name, policy in POLICIES.items():
            probe = raw_probe_s if tasks >= raw_probe_from else None
            row = _one_run(tasks, name, policy, probe, duration_scale)
            log(
                f"  fanout {tasks:>6} {name:11} wall {row['wall_s']:6.2f}s "
                f"(longest {row['longest_task_s']:.2f}s) polls/task {row['polls_per_task']} "
                f"notice p50 {row['notice_p50_s']}s p95 {row['notice_p95_s']}s "
                f"client {row['client_cpu_ms_per_task']} ms CPU/task "
                f"({row['client_utilisation']} of a core)"
            )
            if name == "default" and tasks >= gc_tuned_from:
                tuned = _one_run(tasks, name, policy, None, duration_scale, gc_tuned=True)
                for key in (
                    "client_cpu_ms_per_task",
                    "client_utilisation",
                    "polls_per_task",
                    "wall_s",
                ):
                    row[f"{key}_gc_tuned"] = tuned[key]
                log(
                    f"  fanout {tasks:>6} {name:11} gc tuned: "
                    f"client {tuned['client_cpu_ms_per_task']} ms CPU/task "
                    f"({tuned['client_utilisation']} of a core), polls/task "
                    f"{tuned['polls_per_task']}, wall {tuned['wall_s']:.2f}s"
                )
            rows.append(row)
    _versus_fixed(rows)
    return rows
