"""FakeAltcraft in its own process for the fan-out benchmark, plus a small control endpoint.

``python -m benchmarks._fake --port 0 --seed N`` starts a seeded fake whose refresh tasks each
take ``uniform(0.5, 5)`` seconds (drawn from the fake's ``Random(seed)``, so the distribution is
fixed; ``--duration-scale`` multiplies them, for smoke runs) with the fake's realistic,
time-proportional progress. It prints ``CONTROL <port>`` and
then ``PORT <port>`` and serves until its stdin closes. The control app answers:

- ``GET /stats``: the fake's counters and this process's CPU seconds;
- ``GET /tasks``: per task: id, planned seconds, and creation / done / poll / first-terminal-
  served times converted to ``time.time()`` so the client process can line them up with its own.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from altcraft_async.testing import FakeAltcraft, TaskPlan

from ._proc import serve_until_stdin_closes

__all__ = ["TOKEN", "main"]

TOKEN = "bench-token"
MIN_SECONDS = 0.5
MAX_SECONDS = 5.0


def realistic(scale: float) -> Callable[[random.Random], TaskPlan]:
    """Tasks taking 0.5-5 s (times ``scale``), uniformly."""

    def plan(rng: random.Random) -> TaskPlan:
        return TaskPlan.after_seconds(rng.uniform(MIN_SECONDS, MAX_SECONDS) * scale)

    return plan


def _control_app(fake: FakeAltcraft) -> web.Application:
    def to_wall(at: float | None) -> float | None:
        # The fake's clock counts seconds (time_scale 1) since it started; map it to time.time().
        return None if at is None else at + (time.time() - fake.clock.now())

    async def stats(request: web.Request) -> web.Response:
        s = fake.stats
        payload = {
            "requests": s.requests,
            "by_endpoint": s.by_endpoint,
            "max_concurrent": s.max_concurrent,
            "tasks_started": s.tasks_started,
            "max_tasks_in_flight": s.max_tasks_in_flight,
            "cpu_s": time.process_time(),
        }
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def tasks(request: web.Request) -> web.Response:
        offset = time.time() - fake.clock.now()
        rows: list[dict[str, Any]] = []
        for record in fake.tasks.values():
            rows.append(
                {
                    "task_id": record.task_id,
                    "seconds": record.plan.seconds,
                    "created": record.created_at + offset,
                    "done": to_wall(record.done_at),
                    "served": to_wall(record.final_served_at),
                    "polls": [at + offset for at in record.polls],
                }
            )
        return web.Response(body=orjson.dumps(rows), content_type="application/json")

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/tasks", tasks)
    return app


async def serve(host: str, port: int, seed: int, profiles: int, scale: float) -> None:
    fake = FakeAltcraft.seeded(
        profiles=profiles,
        segments=50,
        resources=3,
        seed=seed,
        token=TOKEN,
        task_plan=realistic(scale),
        host=host,
        port=port,
    )
    async with fake:
        fake_port = int(fake.url.rsplit(":", 1)[1])
        await serve_until_stdin_closes(
            _control_app(fake), host, 0, name="CONTROL", then={"PORT": fake_port}
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profiles", type=int, default=2_000)
    parser.add_argument("--duration-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.seed, args.profiles, args.duration_scale))


if __name__ == "__main__":
    main()
