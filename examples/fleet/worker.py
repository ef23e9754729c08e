"""A fleet worker: run as many as you like, on any machines, with ``arq worker.WorkerSettings``.

Environment: ``REDIS_URL`` (the fleet's Redis), ``ALTCRAFT_URL`` and ``ALTCRAFT_TOKEN``. Every
worker's client is paced by one shared rate for the account (polls included), and each pair of
a run is started at most once whoever dies (the start ledger in Redis).
"""

from __future__ import annotations

import os

from altcraft_async import AltcraftClient, RateLimiterProtocol
from altcraft_async.fleet.arq import worker_settings


def client(limiter: RateLimiterProtocol) -> AltcraftClient:
    return AltcraftClient(os.environ["ALTCRAFT_URL"], rate_limiter=limiter)  # token from env


WorkerSettings = worker_settings(
    redis_url=os.environ["REDIS_URL"],
    client=client,
    account="acme",  # the same name in the producer and every worker
    rate_limit=50,  # requests/s for the whole account, all workers together
    max_in_flight=2_000,  # server-side tasks running at once, account-wide
    max_jobs=20,  # batches per worker
    slice_s=240,  # a batch waits at most this long, then re-schedules itself
)
