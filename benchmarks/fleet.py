"""The fleet row (``python -m benchmarks --fleet``): a run of N pairs refreshed by 4 arq worker
processes against FakeAltcraft, paced by one rate in Redis.

The fake runs in its own process (``python -m benchmarks.fleet --fake``, answering its task
table and request times on a control port), each worker in its own (``python -m
benchmarks.fleet worker``), redis-server in its own (started on a Unix socket and stopped by
PID); this process only enqueues and watches. Reported: wall time against the ideal
``requests / rate``, Redis commands per pair (``total_commands_processed``, arq's included; a
Lua script counts as one), duplicates (pairs with more than one task in the fake's table: must
be 0), unknowns, and the peak requests in any 1 s window twice: as the clients sent them (a
request hook stamps every try: the rate the limiter kept) and as the fake received them (its
own event loop's delays included), with the fake's CPU share (near 1.0: it is the bottleneck).
The driver supervises the run (``FleetRun.supervise``): every SUPERVISE_EVERY seconds it
enqueues again any batch arq gave up on (past its ``job_timeout``) or lost, and reports how
many it revived. The account's cap on server-side tasks in flight (``max_in_flight``) is
reported with the most seen at once (``peak_in_flight``, sampled every 2 s).

Why one fake process, not several: a run's tasks are polled by whichever worker resumes them,
so every worker must see one task table. A fake sharing its loop with the driver bunched
arrivals (a measured 889/s "peak" at 500/s, while the clients sent at most the limit).
"""

from __future__ import annotations

import argparse
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

from ._proc import ServerProcess, get_json, serve_until_stdin_closes, spawn

#: pairs, workers, rate (requests/s) per mode.
SIZES = {"full": (20_000, 4, 500.0), "quick": (2_000, 4, 500.0), "smoke": (200, 4, 200.0)}
SLICE = 30.0
TOKEN = "bench-token"
DEADLINE = 1800.0
#: Seconds between the supervisor's revivals (``FleetRun.supervise``); the ledger makes
#: them safe.
SUPERVISE_EVERY = 20.0
#: The account's cap on server-side tasks in flight (the design's example figure).
MAX_IN_FLIGHT = 2_000


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


def _stamps(directory: Path) -> list[float]:
    """Every try's send time, from the workers' stamp files."""
    return [float(x) for path in directory.glob("stamps-*.txt") for x in path.read_text().split()]


async def _run(
    pairs: int, workers: int, rate: float, redis_url: str, fake: ServerProcess, log: Any
) -> dict[str, Any]:
    from redis.asyncio import Redis

    from altcraft_async import SegmentRef
    from altcraft_async.fleet import Fleet, RunProgress
    from altcraft_async.fleet.arq import ArqEngine

    refs = [SegmentRef(segment, 1, 1) for segment in range(1, pairs + 1)]
    directory = Path(tempfile.mkdtemp(prefix="altcraft-fleet-bench-"))
    async with Fleet(redis_url) as fleet:
        redis: Redis = fleet.redis
        before = int((await redis.info("stats"))["total_commands_processed"])
        calls_before = _calls(await redis.info("commandstats"))
        command = [sys.executable, "-m", "benchmarks.fleet", "worker", redis_url, fake.base_url]
        processes = [
            subprocess.Popen(
                [*command, TOKEN, str(rate), str(directory / f"stamps-{index}.txt")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for index in range(workers)
        ]
        cpu_before = get_json(fake.url("CONTROL") + "/stats")["cpu_s"]
        try:
            began = time.monotonic()
            engine = ArqEngine()
            run = await fleet.start("bench", refs, engine=engine, batch_size=200)
            in_flight: list[int] = []

            def report(progress: RunProgress) -> None:
                in_flight.append(progress.in_flight)
                log(f"  fleet: {progress.finished}/{progress.total} finished")

            supervision = await run.supervise(
                engine,
                every=SUPERVISE_EVERY,
                check_every=2.0,
                timeout=DEADLINE,
                on_progress=report,
            )
            progress = supervision.progress
            wall = time.monotonic() - began
        finally:
            for process in processes:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        after = int((await redis.info("stats"))["total_commands_processed"])
        calls = _calls(await redis.info("commandstats")) - calls_before
        unknown = await run.unknown()  # after the count: reading them is not the run's work
        stats = get_json(fake.url("CONTROL") + "/stats")
        starts = Counter(get_json(fake.url("CONTROL") + "/starts"))
        arrived = get_json(fake.url("CONTROL") + "/arrivals")
        sent = _stamps(directory)
        shutil.rmtree(directory)
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
            # which commands those are: the most called, per pair (arq's own included)
            "redis_cmds_top": {
                name: round(count / pairs, 1) for name, count in calls.most_common(5)
            },
            "duplicates": sum(count > 1 for count in starts.values()),
            "batches_revived": supervision.revived,
            "max_in_flight": MAX_IN_FLIGHT,
            "peak_in_flight": max(in_flight),
            "unknown": progress.unknown,
            # of those, how many starts the fake did get (the rest were never sent), and why
            "unknown_started": sum(starts[str(o.ref.segment_id)] > 0 for o in unknown),
            "unknown_why": dict(Counter(o.detail[:120] for o in unknown)),
            "done": progress.done,
            "peak_sent_1s": _peak(sent),
            "peak_arrived_1s": _peak(arrived),
            "fake_cpu_share": round((stats["cpu_s"] - cpu_before) / wall, 2),
        }


def _calls(commandstats: dict[str, Any]) -> Counter[str]:
    """Calls per command from Redis' ``INFO commandstats`` (``cmdstat_evalsha``: evalsha)."""
    return Counter(
        {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in commandstats.items()}
    )


def run_fleet(mode: str, log: Any) -> dict[str, Any]:
    pairs, workers, rate = SIZES[mode]
    log(f"fleet: {pairs} pairs, {workers} arq workers, {rate:g} requests/s")
    with (
        tempfile.TemporaryDirectory() as directory,
        spawn("benchmarks.fleet", ["--fake", "--pairs", str(pairs)]) as fake,
    ):
        server, url = _redis_server(Path(directory))
        try:
            return asyncio.run(_run(pairs, workers, rate, url, fake, log))
        finally:
            server.terminate()
            server.wait(timeout=10)


def main(mode: str, json_path: Path | None) -> int:
    """The fleet row, printed as a table (and written to ``json_path``)."""
    row = run_fleet(mode, lambda line: print(line, file=sys.stderr, flush=True))
    why, top = row["unknown_why"], row["redis_cmds_top"]
    columns = [column for column in row if column not in ("unknown_why", "redis_cmds_top")]
    cells = [str(row[column]) for column in columns]
    widths = [max(len(c), len(v)) for c, v in zip(columns, cells, strict=True)]
    print("Fleet: arq workers against FakeAltcraft, one rate in Redis")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join(v.rjust(w) for v, w in zip(cells, widths, strict=True)))
    print(
        "  Redis commands per pair, the most called: "
        + ", ".join(f"{name} {per_pair}" for name, per_pair in top.items())
    )
    for detail, count in why.items():
        print(f"  unknown x{count}: {detail}")
    if json_path is not None:
        json_path.write_text(json.dumps({"fleet": row}, indent=2) + "\n")
    return 0


def _worker(redis_url: str, fake_url: str, token: str, rate: str, stamps: str) -> None:
    """A worker of the fleet, as a user runs it, plus a request hook stamping every try."""
    from arq.worker import run_worker

    from altcraft_async import AltcraftClient, RateLimiterProtocol
    from altcraft_async.fleet.arq import worker_settings

    log = open(stamps, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def stamp(_request: Any) -> None:
        log.write(f"{time.time():.6f}\n")

    def client(limiter: RateLimiterProtocol) -> AltcraftClient:
        return AltcraftClient(
            fake_url, token=token, rate_limiter=limiter, event_hooks={"request": [stamp]}
        )

    settings = worker_settings(
        redis_url=redis_url,
        client=client,
        rate_limit=float(rate),
        max_in_flight=MAX_IN_FLIGHT,
        max_jobs=50,
        slice_s=SLICE,
        send_lease=10.0,
    )
    run_worker(settings, poll_delay=0.1)


def _fake_app(fake: Any) -> Any:
    """The fake's control port: starts per segment and request arrival times."""
    from aiohttp import web

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({"cpu_s": time.process_time()})

    async def starts(_request: web.Request) -> web.Response:
        return web.json_response(Counter(str(task.segment_id) for task in fake.tasks.values()))

    async def arrivals(_request: web.Request) -> web.Response:
        to_wall = time.time() - fake.clock.now()  # on the clients' clock, to line them up
        return web.json_response([request.at + to_wall for request in fake.requests])

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/starts", starts)
    app.router.add_get("/arrivals", arrivals)
    return app


async def _fake(port: int, pairs: int) -> None:
    """FakeAltcraft with ``pairs`` segments (tasks of 0.5-5 s) on ``port``, until stdin closes."""
    from altcraft_async.testing import FakeAltcraft, TaskPlan, seeded_platform

    platform = seeded_platform(profiles=20, segments=pairs, resources=1)
    plan = lambda draw: TaskPlan.after_seconds(draw.uniform(0.5, 5.0))  # noqa: E731
    async with FakeAltcraft(platform, token=TOKEN, task_plan=plan, port=port) as fake:
        fake_port = int(fake.url.rsplit(":", 1)[1])
        await serve_until_stdin_closes(
            _fake_app(fake), "127.0.0.1", 0, name="CONTROL", then={"PORT": fake_port}
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        _worker(*sys.argv[2:])
    elif "--fake" in sys.argv:
        arguments = argparse.ArgumentParser()
        arguments.add_argument("--fake", action="store_true")
        arguments.add_argument("--port", type=int, default=0)
        arguments.add_argument("--pairs", type=int, required=True)
        options = arguments.parse_args()
        asyncio.run(_fake(options.port, options.pairs))
