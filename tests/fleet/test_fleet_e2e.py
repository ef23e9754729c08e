"""The fleet end to end: 3 arq worker processes refresh a run against the fake, paced by one
rate in Redis; one worker dies inside a start window (the test hook), another is SIGKILLed at a
seeded random time, and dead workers are replaced. The fake's task table and request log are
the oracle: no pair started twice, every pair done or reported unknown, every result equal to
the fake's own counters, the rate held at the clients and at the server, a bounded recovery,
no process left."""

from __future__ import annotations

import inspect
import math
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from altcraft_async import SegmentRef
from altcraft_async.fleet import Fleet, PairOutcome, RedisRateLimiter, pair_id
from altcraft_async.fleet._batch import CRASH_ENV
from altcraft_async.fleet.arq import ArqEngine
from altcraft_async.testing import FakeAltcraft, TaskPlan, seeded_platform

from .fleet_helpers import LoopLag, peak
from .test_fleet_ledger import as_counters, counters_of

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("fleet_worker.py")
SEED = int(os.environ.get("ALTCRAFT_FLEET_SEED", "16"))
PAIRS, RATE, SLICE, WORKERS, BATCH = 120, 40.0, 2.0, 3, 8
#: arq runs a dead worker's job again this long after it took it: job_timeout + 10 s, where
#: fleet_worker's job_timeout is slice + send lease (= slice) + its 2 s margin.
REDELIVERY = 2 * SLICE + 2 + 10
#: The workers' limiter settings: worker_settings keeps RedisRateLimiter's defaults.
MAX_LEAD, LATE_TOLERANCE = (
    inspect.signature(RedisRateLimiter).parameters[name].default
    for name in ("max_lead", "late_tolerance")
)
#: The bound on the whole run: every request at the rate, twice over (polls are guessed), plus
#: one redelivery and a slice.
DEADLINE = 90.0


class Fleetworkers:
    """WORKERS slots, each running a worker process and replacing it when it dies; every
    process is killed by its PID and reaped when the block ends."""

    def __init__(self, args: list[str], directory: Path, crash_pair: str) -> None:
        self.args, self.directory, self.crash_pair = args, directory, crash_pair
        self.alive: dict[int, Process] = {}
        self.pids: list[int] = []
        self.deaths: list[tuple[float, int, int | None]] = []  # (time, pid, returncode)
        self.stopping = False
        self.generation = 0

    async def slot(self, index: int) -> None:
        while not self.stopping:
            self.generation += 1
            stamps = self.directory / f"stamps-{index}-{self.generation}.txt"
            # every worker dies in the crash pair's start window, which the ledger lets one
            # worker open, once (a pair sending is never started again): one crash per run,
            # whichever worker, first or replacement, gets the pair's batch
            env = {**os.environ, CRASH_ENV: self.crash_pair}
            log = open(self.directory / f"worker-{index}-{self.generation}.log", "wb")  # noqa: SIM115
            try:
                process = await anyio.open_process(
                    [sys.executable, str(WORKER), *self.args, str(stamps)],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
                self.alive[index] = process
                self.pids.append(process.pid)
                if self.stopping:  # stop() came while it was starting: it never saw it
                    os.kill(process.pid, signal.SIGKILL)
                try:
                    await process.wait()
                finally:
                    del self.alive[index]
                    if not self.stopping:
                        self.deaths.append((time.monotonic(), process.pid, process.returncode))
                    await process.aclose()
            finally:
                log.close()

    def kill_one(self, rng: random.Random) -> int:
        index = rng.choice(sorted(self.alive))
        pid = self.alive[index].pid
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        self.stopping = True
        for process in list(self.alive.values()):
            if process.returncode is None:
                os.kill(process.pid, signal.SIGKILL)


def stamps(directory: Path) -> list[float]:
    return [
        float(line)
        for path in directory.glob("stamps-*.txt")
        for line in path.read_text().split()
        if line
    ]


async def test_three_workers_refresh_a_run_with_a_kill_and_a_crash_in_the_window(
    redis_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    platform = seeded_platform(profiles=50, segments=PAIRS, resources=1, seed=SEED)
    refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
    crash = refs[rng.randrange(PAIRS // 2)]
    watched = refs[-1]

    async with (
        FakeAltcraft(
            platform, task_plan=lambda draw: TaskPlan.after_seconds(draw.uniform(0.5, 3.0))
        ) as fake,
        Fleet(redis_url, account="acme") as fleet,
    ):
        workers = Fleetworkers(
            [redis_url, fake.url, fake.token, str(RATE), str(SLICE)], tmp_path, pair_id(crash)
        )
        waited: list[PairOutcome] = []
        lag = LoopLag()
        try:
            async with anyio.create_task_group() as group:
                probe = anyio.CancelScope()

                async def measure_lag() -> None:
                    with probe:
                        await lag.measure()

                group.start_soon(measure_lag)
                for index in range(WORKERS):
                    group.start_soon(workers.slot, index)
                began = time.monotonic()
                run = await fleet.start("nightly", refs, engine=ArqEngine(), batch_size=BATCH)

                async def wait_watched() -> None:
                    waited.append(await run.wait_pair(watched, timeout=DEADLINE))

                group.start_soon(wait_watched)
                await anyio.sleep(rng.uniform(2.0, 5.0))  # the seeded moment of the kill
                killed = workers.kill_one(rng)
                reports = [p async for p in run.watch(every=0.25, timeout=DEADLINE)]
                finished = time.monotonic()
                probe.cancel()
                workers.stop()
        finally:
            workers.stop()

        # no process left: every PID was reaped and is gone
        for pid in workers.pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        died = {pid: code for _, pid, code in workers.deaths}
        assert died[killed] == -signal.SIGKILL
        assert sum(code == -signal.SIGKILL for code in died.values()) == 2  # kill + crash

        # 0 pairs started twice, counted from the fake's task table
        starts = Counter(task.segment_id for task in fake.tasks.values())
        assert max(starts.values()) == 1, starts.most_common(3)

        # every pair done or reported unknown; the crash is unknown and was not restarted
        final = reports[-1]
        assert final.complete and final.failed == 0, final
        outcomes = {outcome.ref: outcome async for outcome in run.results()}
        assert len(outcomes) == PAIRS
        unknown = {ref for ref, outcome in outcomes.items() if outcome.state == "unknown"}
        assert crash in unknown and starts[crash.segment_id] == 1
        # the crash, and the starts the random kill cut inside their sending window: the
        # window is the claim lead (at most max_lead), the lateness a slot may have
        # (late_tolerance) and the start's round trip, and the account hands out one slot per
        # 1/RATE, so at most RATE x (max_lead + late_tolerance) + 1 starts are in it at once.
        # Nothing else may be unknown: a start that waited for a slot or was cancelled before
        # it left is given back (released), never unknown.
        in_window = math.ceil(RATE * (MAX_LEAD + LATE_TOLERANCE)) + 1
        assert len(unknown) <= 1 + in_window, sorted(pair_id(ref) for ref in unknown)
        never_sent = sum(starts[ref.segment_id] == 0 for ref in unknown)
        for ref, outcome in outcomes.items():
            if outcome.state == "done":
                assert starts[ref.segment_id] == 1
                assert as_counters(outcome.result) == counters_of(fake, ref.segment_id)
        (watched_outcome,) = waited
        assert watched_outcome == outcomes[watched]

        # the rate held at the clients (the limiter) and at the server (the fake's log, whose
        # stamps its loop may take late by up to lag.worst: a second of stamps is at most
        # 1 + lag.worst seconds of arrivals)
        sent = stamps(tmp_path)
        arrived = [request.at for request in fake.requests]
        client_peak, server_peak = peak(sent, 1.0), peak(arrived, 1.0)
        assert client_peak <= RATE * 1.1 + 2
        assert server_peak <= RATE * (1.1 + lag.worst) + 2, f"fake's loop lag {lag.worst:.3f} s"
        assert peak(arrived, 5.0) <= RATE * (5 + lag.worst) + 2

        # a bounded recovery: the run ends within one redelivery and a slice of the ideal
        wall = finished - began
        ideal = len(arrived) / RATE
        recovery = finished - max(at for at, _, _ in workers.deaths)
        assert wall <= ideal + REDELIVERY + SLICE + 15, (wall, ideal, recovery, workers.deaths)
        print(
            f"\nfleet e2e seed={SEED}: {PAIRS} pairs, {len(arrived)} requests, wall {wall:.1f} s "
            f"(ideal {ideal:.1f} s), duplicates 0, unknown {len(unknown)} "
            f"({never_sent} never sent), peak {client_peak}/s "
            f"at the clients and {server_peak}/s at the server (limit {RATE:g}/s), "
            f"recovery {recovery:.1f} s after the last death (redelivery {REDELIVERY:g} s), "
            f"the fake's loop at most {lag.worst * 1000:.0f} ms late"
        )
