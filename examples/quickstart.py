"""Quickstart: read a segment's counters, refresh them and wait for the new ones.

Runs against an embedded fake platform, or against yours when ALTCRAFT_URL and ALTCRAFT_TOKEN
are set (then set ALTCRAFT_SEGMENT_ID / ALTCRAFT_RESOURCE_ID / ALTCRAFT_DATABASE_ID too).

    python examples/quickstart.py
"""

import asyncio
import os

from altcraft_async.testing import client_from_env

SEGMENT_ID = int(os.environ.get("ALTCRAFT_SEGMENT_ID", "1"))
RESOURCE_ID = int(os.environ.get("ALTCRAFT_RESOURCE_ID", "1"))
DATABASE_ID = int(os.environ.get("ALTCRAFT_DATABASE_ID", "1"))


async def main() -> None:
    async with client_from_env() as client:
        channels = await client.segments.get_counters(
            segment_id=SEGMENT_ID, resource_id=RESOURCE_ID, database_id=DATABASE_ID
        )
        for item in channels:
            print(f"before  {item.channel:6} sendable={item.status.subscribed_sendable}")

        task = await client.segments.refresh_counters(
            segment_id=SEGMENT_ID, resource_id=RESOURCE_ID, database_id=DATABASE_ID
        )
        print(f"refresh task {task.task_id} started")
        snapshots = await task.wait(
            timeout=60, on_progress=lambda s: print(f"  {s.status} {s.progress}%")
        )
        for snapshot in snapshots:
            for item in snapshot.channels:
                status = item.status
                print(
                    f"after   {item.channel:6} all={status.all} "
                    f"sendable={status.subscribed_sendable} unsubscribed={status.unsubscribed}"
                )


if __name__ == "__main__":
    asyncio.run(main())
