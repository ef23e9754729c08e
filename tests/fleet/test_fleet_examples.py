"""``examples/fleet/`` run as a user runs them, end to end: two ``arq worker`` processes, the
producer, and another process awaiting one pair (started before the run exists), against the
fake over loopback and the session's redis-server. The fake's task table and the ledger are the
oracle: every pair done once, the producer's report and the awaiting process's answer equal to
the ledger's, the results equal to the fake's own counters, no process left."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from arq.constants import default_queue_name, in_progress_key_prefix

from altcraft_async import SegmentRef
from altcraft_async.fleet import Fleet
from altcraft_async.testing import FakeAltcraft, TaskPlan, seeded_platform

from .test_fleet_ledger import as_counters, counters_of

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parents[2] / "examples" / "fleet"
PAIRS, WORKERS, RUN = 24, 2, "example-run"
#: A bound on each process (never reached when all is well): the run is ~2 requests per pair
#: at the example's 50 requests/s, plus the producer's 10 s watch interval.
DEADLINE = 60.0


@asynccontextmanager
async def example(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = EXAMPLES
) -> AsyncIterator[Process]:
    """One example process, its output in ``log``; SIGKILLed by its PID (if still running)
    and reaped when the block ends."""
    with log.open("wb") as output:
        process = await anyio.open_process(
            [sys.executable, *args], cwd=cwd, env=env, stdout=output, stderr=output
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                os.kill(process.pid, signal.SIGKILL)
            with anyio.fail_after(DEADLINE):
                await process.wait()
            await process.aclose()


async def finish(process: Process, log: Path) -> str:
    """Wait for ``process`` (bounded), assert it exited 0, and return its output."""
    with anyio.fail_after(DEADLINE):
        code = await process.wait()
    output = log.read_text()
    assert code == 0, output
    return output


async def jobs_recorded(fleet: Fleet) -> None:
    """Until arq has recorded every job's result (it keeps a job queued, and its in-progress
    key, until then). The run is complete a step before that: a SIGTERM then cancels a job
    still recording its result, and arq's Worker.close raises the job's CancelledError,
    skipping on_shutdown (the client is left open) and failing the worker's exit. Each check
    is a round trip to Redis; 60 s at most."""
    with anyio.fail_after(DEADLINE):
        while await fleet.redis.zcard(default_queue_name) or await fleet.redis.keys(
            in_progress_key_prefix + "*"
        ):
            pass


async def test_the_fleet_examples_refresh_a_run_and_another_process_awaits_a_pair(
    redis_url: str, tmp_path: Path
) -> None:
    platform = seeded_platform(profiles=30, segments=PAIRS, resources=1, seed=16)
    refs = [SegmentRef(segment, 1, 1) for segment in sorted(platform.segments)]
    watched = refs[-1]
    (tmp_path / "refs.csv").write_text("".join(f"{r.segment_id},1,1\n" for r in refs))

    async with (
        FakeAltcraft(
            platform, task_plan=lambda draw: TaskPlan.after_seconds(draw.uniform(0.2, 1.5))
        ) as fake,
        Fleet(redis_url, account="acme") as fleet,
    ):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ALTCRAFT_")},
            "REDIS_URL": redis_url,
            "ALTCRAFT_URL": fake.url,
            "ALTCRAFT_TOKEN": fake.token,
        }
        workers: list[Process] = []
        async with AsyncExitStack() as stack:
            for index in range(WORKERS):
                worker = await stack.enter_async_context(
                    example(
                        ["-m", "arq", "worker.WorkerSettings"], env, tmp_path / f"worker-{index}"
                    )
                )
                workers.append(worker)
            pids = [worker.pid for worker in workers]
            waiter_log, producer_log = tmp_path / "await_pair.log", tmp_path / "producer.log"
            ids = [str(watched.segment_id), "1", "1"]
            async with (
                example(["await_pair.py", RUN, *ids], env, waiter_log) as waiter,
                example(
                    ["producer.py", str(tmp_path / "refs.csv"), RUN], env, producer_log
                ) as producer,
            ):
                pids += [waiter.pid, producer.pid]
                produced = await finish(producer, producer_log)
                awaited = await finish(waiter, waiter_log)
            await jobs_recorded(fleet)
            for worker in workers:  # arq shuts down cleanly on SIGTERM, closing the client
                worker.send_signal(signal.SIGTERM)
            for index, worker in enumerate(workers):
                await finish(worker, tmp_path / f"worker-{index}")

        # no process left: every PID was reaped and is gone
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)

        # every pair started once (the fake's task table) and done, with the fake's counters
        starts = Counter(task.segment_id for task in fake.tasks.values())
        assert starts == Counter(ref.segment_id for ref in refs)
        outcomes = {outcome.ref: outcome async for outcome in fleet.run(RUN).results()}
        assert set(outcomes) == set(refs)
        for ref, outcome in outcomes.items():
            assert outcome.state == "done", outcome
            assert as_counters(outcome.result) == counters_of(fake, ref.segment_id)

        # the producer printed every pair's outcome and no unknown
        lines = [f"{o.ref} {o.state} {o.result}" for o in outcomes.values()]
        assert [line for line in produced.splitlines() if line in lines] == lines
        assert "UNKNOWN" not in produced

        # the other process saw the pair's outcome from the ledger
        assert awaited.strip() == f"done {outcomes[watched].result}"
