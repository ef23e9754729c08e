"""The producer (a nightly cron job): start tonight's run, or re-attach to it after a crash,
then supervise it (watch it, and enqueue again any batch the engine gave up on or lost) and
save the results. ``python producer.py refs.csv [RUN_ID]`` (rows
``segment_id,resource_id[,database_id]``; the run id defaults to tonight's date);
``REDIS_URL`` names the fleet's Redis.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import os
import sys
from functools import partial

from altcraft_async import SegmentRef
from altcraft_async.fleet import Fleet
from altcraft_async.fleet.arq import ArqEngine


async def main(path: str, run_id: str | None = None) -> None:
    with open(path, encoding="utf-8") as rows:
        refs = [SegmentRef(*(int(cell) for cell in row)) for row in csv.reader(rows) if row]
    run_id = run_id or f"nightly-{datetime.date.today().isoformat()}"
    async with Fleet(os.environ["REDIS_URL"], account="acme") as fleet:
        engine = ArqEngine()
        run = await fleet.start(run_id, refs, engine=engine, batch_size=200)
        report = partial(print, file=sys.stderr)
        supervision = await run.supervise(
            engine, every=60, check_every=10, timeout=6 * 3600, on_progress=report
        )
        print(f"batches revived: {supervision.revived}", file=sys.stderr)
        async for outcome in run.results():
            print(outcome.ref, outcome.state, outcome.result or outcome.detail)
        for outcome in await run.unknown():  # see README: "unknown" pairs
            print("UNKNOWN", outcome.ref, outcome.detail, file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
