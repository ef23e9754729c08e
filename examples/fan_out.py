"""Fan-out: refresh many segments at once and handle each outcome as it completes.

At most ``concurrency`` refreshes are in flight; one failure never stops the rest.

    python examples/fan_out.py
"""

import asyncio
import time

from altcraft_async import SegmentRef
from altcraft_async.testing import client_from_env

# On a real platform, list your own (segment, resource, database) ids here.
REFS = [SegmentRef(segment, resource, 1) for segment in range(1, 21) for resource in (1, 2, 3)]


async def main() -> None:
    async with client_from_env(segments=20) as client:
        started = time.perf_counter()
        done = failed = 0
        async with client.segments.refresh_many(REFS, concurrency=50, timeout=120) as outcomes:
            async for outcome in outcomes:
                if outcome.error is not None:
                    failed += 1
                    print(f"segment {outcome.ref.segment_id}: {outcome.error}")
                    continue
                done += 1
                email = outcome.result[0].channel("email") if outcome.result else None
                sendable = email.status.subscribed_sendable if email else None
                print(
                    f"segment {outcome.ref.segment_id:3} resource {outcome.ref.resource_id}: "
                    f"email sendable={sendable}"
                )
        elapsed = time.perf_counter() - started
        print(f"{done} refreshed, {failed} failed in {elapsed:.1f}s")


if __name__ == "__main__":
    asyncio.run(main())
