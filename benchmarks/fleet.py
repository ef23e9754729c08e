"""The fleet row (``python -m benchmarks --fleet``): a run of N pairs refreshed by 4 arq worker
processes against FakeAltcraft, paced by one rate in Redis.

The fake runs in this process, each worker in its own (``python -m benchmarks.fleet worker``),
redis-server in its own (started on a Unix socket and stopped by PID). Reported: wall time
against the ideal ``requests / rate``, Redis commands per pair (``total_commands_processed``,
arq's included; a Lua script counts as one), duplicates (pairs with more than one task in the
fake's table: must be 0), unknowns, and the peak requests in any 1 s at the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

#: pairs, workers, rate (requests/s) per mode.
SIZES = {"full": (20_000, 4, 500.0), "quick": (2_000, 4, 500.0), "smoke": (200, 4, 200.0)}
SLICE = 30.0
DEADLINE = 1800.0


def _peak(times: list[float], window: float = 1.0) -> int:
    ordered, best, start = sorted(times), 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _redis_server(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the fleet benchmark needs redis-server (apt-get install redis-server)")
    socket = directory / "redis.sock"
    process = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(socket), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not socket.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)
    return process, f"unix://{socket}"


async def _run(pairs: int, workers: int, rate: float, redis_url: str, log: Any) -> dict[str, Any]:
    from redis.asyncio import Redis

    from altcraft_async import SegmentRef
    from altcraft_async.fleet import Fleet
    from altcraft_async.fleet.arq import ArqEngine
    from altcraft_async.testing import FakeAltcraft, TaskPlan, seeded_platform

    platform = seeded_platform(profiles=20, segments=pairs, resources=1)
    refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
    plan = lambda draw: TaskPlan.after_seconds(draw.uniform(0.5, 5.0))  # noqa: E731
    async with FakeAltcraft(platform, task_plan=plan) as fake, Fleet(redis_url) as fleet:
        redis: Redis = fleet.redis
        before = int((await redis.info("stats"))["total_commands_processed"])
        command = [sys.executable, "-m", "benchmarks.fleet", "worker", redis_url, fake.url]
        processes = [
            subprocess.Popen(
                [*command, fake.token, str(rate)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        try:
            began = time.monotonic()
            run = await fleet.start("bench", refs, engine=ArqEngine(), batch_size=200)
            async for progress in run.watch(every=2.0, timeout=DEADLINE):
                log(f"  fleet: {progress.finished}/{progress.total} finished")
            wall = time.monotonic() - began
        finally:
            for process in processes:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        after = int((await redis.info("stats"))["total_commands_processed"])
        starts = Counter(task.segment_id for task in fake.tasks.values())
        arrived = [request.at for request in fake.requests]
        return {
            "pairs": pairs,
            "workers": workers,
            "rate_limit": rate,
            "requests": len(arrived),
            "requests_per_pair": round(len(arrived) / pairs, 2),
            "wall_s": round(wall, 1),
            "ideal_s": round(len(arrived) / rate, 1),
            "wall_over_ideal": round(wall / (len(arrived) / rate), 2),
            "redis_cmds_per_pair": round((after - before) / pairs, 1),
            "duplicates": sum(count > 1 for count in starts.values()),
            "unknown": progress.unknown,
            "done": progress.done,
            "peak_rate_1s": _peak(arrived),
        }


def run_fleet(mode: str, log: Any) -> dict[str, Any]:
    pairs, workers, rate = SIZES[mode]
    log(f"fleet: {pairs} pairs, {workers} arq workers, {rate:g} requests/s")
    with tempfile.TemporaryDirectory() as directory:
        server, url = _redis_server(Path(directory))
        try:
            return asyncio.run(_run(pairs, workers, rate, url, log))
        finally:
            server.terminate()
            server.wait(timeout=10)


def main(mode: str, json_path: Path | None) -> int:
    """The fleet row, printed as a table (and written to ``json_path``)."""
    row = run_fleet(mode, lambda line: print(line, file=sys.stderr, flush=True))
    columns = list(row)
    cells = [str(row[column]) for column in columns]
    widths = [max(len(c), len(v)) for c, v in zip(columns, cells, strict=True)]
    print("Fleet: arq workers against FakeAltcraft, one rate in Redis")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join(v.rjust(w) for v, w in zip(cells, widths, strict=True)))
    if json_path is not None:
        json_path.write_text(json.dumps({"fleet": row}, indent=2) + "\n")
    return 0


def _worker(redis_url: str, fake_url: str, token: str, rate: str) -> None:
    from arq.worker import run_worker

    from altcraft_async import AltcraftClient, RateLimiterProtocol
    from altcraft_async.fleet.arq import worker_settings

    def client(limiter: RateLimiterProtocol) -> AltcraftClient:
        return AltcraftClient(fake_url, token=token, rate_limiter=limiter)

    settings = worker_settings(
        redis_url=redis_url,
        client=client,
        rate_limit=float(rate),
        max_jobs=50,
        slice_s=SLICE,
        send_lease=10.0,
    )
    run_worker(settings, poll_delay=0.1)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(*sys.argv[2:])
