"""An asyncio worker: refresh jobs from a queue, resume tokens persisted, restarts survived.

Each job starts a refresh and stores the task's resume token (a small JSON string holding no
secret) before waiting on it. If the worker stops before a task finishes, the next worker
run finds the stored tokens and finishes those tasks first with ``client.tasks.resume``.

This script shows it in one process: worker 1 is stopped mid-way (a restart), worker 2 picks
the pending tasks up from the store and finishes them.

    python examples/worker.py
"""

import asyncio
import json
import tempfile
from pathlib import Path

from altcraft_async import AltcraftClient, AltcraftError, SegmentRef
from altcraft_async.testing import client_from_env


class TokenStore:
    """Pending resume tokens in a JSON file (use your database in production)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def put(self, key: str, token: str) -> None:
        self._save({**self.load(), key: token})

    def remove(self, key: str) -> None:
        pending = self.load()
        pending.pop(key, None)
        self._save(pending)

    def _save(self, pending: dict[str, str]) -> None:
        self.path.write_text(json.dumps(pending))


async def finish(client: AltcraftClient, store: TokenStore, key: str, token: str) -> None:
    try:
        snapshots = await client.tasks.resume(token).wait(timeout=60)
    except AltcraftError as exc:
        print(f"  {key}: failed: {exc}")
    else:
        email = snapshots[0].channel("email") if snapshots else None
        print(
            f"  {key}: done, email sendable={email.status.subscribed_sendable if email else None}"
        )
    store.remove(key)


async def worker(
    client: AltcraftClient,
    store: TokenStore,
    jobs: "asyncio.Queue[SegmentRef]",
    started: asyncio.Event | None = None,
) -> None:
    pending = store.load()
    if pending:
        print(f"resuming {len(pending)} task(s) left by the previous run")
        await asyncio.gather(*(finish(client, store, k, t) for k, t in pending.items()))
    while True:
        ref = await jobs.get()
        try:
            task = await client.segments.refresh_counters(
                segment_id=ref.segment_id,
                resource_id=ref.resource_id,
                database_id=ref.database_id,
            )
            key = f"segment {ref.segment_id}/resource {ref.resource_id}"
            store.put(key, task.resume_token())  # persisted before waiting
            print(f"  {key}: started task {task.task_id}")
            if started is not None:
                started.set()
            await finish(client, store, key, task.resume_token())
        finally:
            jobs.task_done()


async def main() -> None:
    store = TokenStore(Path(tempfile.mkdtemp()) / "pending-tasks.json")
    async with client_from_env() as client:
        jobs: asyncio.Queue[SegmentRef] = asyncio.Queue()
        for segment in (1, 2, 3):
            jobs.put_nowait(SegmentRef(segment, 1, 1))

        print("worker 1: starts, and is stopped before its task finishes")
        started = asyncio.Event()
        first = asyncio.create_task(worker(client, store, jobs, started))
        await started.wait()  # a task was started and its token stored: now "crash"
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        print(f"stopped with {len(store.load())} pending task(s) in {store.path.name}")

        print("worker 2: restarts, resumes the pending task, then takes the rest of the queue")
        second = asyncio.create_task(worker(client, store, jobs))
        await jobs.join()
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        print(f"all jobs done; pending tokens left: {len(store.load())}")


if __name__ == "__main__":
    asyncio.run(main())
