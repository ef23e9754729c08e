"""Any other process (a web handler, a report job): await one pair of a run that a worker
started, without a request to Altcraft (the ledger publishes each pair's final state).
``python await_pair.py RUN_ID SEGMENT RESOURCE [DATABASE]``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from altcraft_async import SegmentRef, TaskTimeoutError
from altcraft_async.fleet import Fleet


async def main(run_id: str, *ids: str) -> int:
    ref = SegmentRef(*(int(value) for value in ids))
    async with Fleet(os.environ["REDIS_URL"], account="acme") as fleet:
        try:
            outcome = await fleet.run(run_id).wait_pair(ref, timeout=600)
        except TaskTimeoutError as error:
            print(f"not finished yet: {error}", file=sys.stderr)
            return 1
    print(outcome.state, outcome.result or outcome.detail)
    return 0 if outcome.state == "done" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:])))
