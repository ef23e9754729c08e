"""An arq worker of the fleet, as a user runs it, for the end-to-end test
(``python fleet_worker.py REDIS FAKE TOKEN RATE SLICE STAMPS``).

Its client is paced by the account's shared RedisRateLimiter; a request hook appends the time
of every HTTP try to STAMPS (one line each, flushed), so the test measures the rate the clients
kept as well as the rate the fake received. ``$ALTCRAFT_FLEET_CRASH_AFTER_SEND`` (see
``altcraft_async.fleet._batch``) makes it die inside the start window of one pair.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from arq.worker import run_worker

from altcraft_async import AltcraftClient, Backoff, PollPolicy, RateLimiterProtocol
from altcraft_async.fleet.arq import worker_settings

#: Polls a little faster than the default, so the run is short; still progress-aware.
POLL = PollPolicy(backoff=Backoff(initial=0.4, max_interval=1.0, jitter=0.1))


def main(redis_url: str, fake_url: str, token: str, rate: str, slice_s: str, stamps: str) -> None:
    log = open(stamps, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def stamp(_request: Any) -> None:
        log.write(f"{time.time():.6f}\n")

    def client(limiter: RateLimiterProtocol) -> AltcraftClient:
        return AltcraftClient(
            fake_url,
            token=token,
            rate_limiter=limiter,
            poll=POLL,
            event_hooks={"request": [stamp]},
        )

    settings = worker_settings(
        redis_url=redis_url,
        client=client,
        rate_limit=float(rate),
        account="acme",
        max_jobs=8,
        slice_s=float(slice_s),
        send_lease=float(slice_s),
        defer_s=0.2,
        job_margin=2.0,
    )
    run_worker(settings, poll_delay=0.05)


if __name__ == "__main__":
    main(*sys.argv[1:])
