"""``altcraft-async fleet start|status|results|unknown``: a fleet run (``altcraft_async.fleet``)
from a terminal.

These commands talk to the fleet's Redis only (``--redis`` or ``$REDIS_URL``), never to
Altcraft: the workers do that. ``altcraft_async.fleet`` (and so redis-py) is imported when a
fleet command runs, never by the core CLI; without the ``[fleet]`` extra they fail with one
line saying what to install.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ..models import SegmentRef
from ._output import (
    COUNTER_COLUMNS,
    EXIT_ERROR,
    EXIT_OK,
    UsageError,
    format_table,
    snapshot_rows,
    to_json,
)
from ._remote import _open_input, read_refs

if TYPE_CHECKING:
    from ..fleet import Fleet, PairOutcome

__all__ = [
    "fleet_arguments",
    "fleet_results",
    "fleet_start",
    "fleet_start_arguments",
    "fleet_status",
    "fleet_unknown",
]


def fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every fleet command shares, and the run id."""
    parser.add_argument("run_id", metavar="RUN", help="the run's id")
    _connection(parser)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", help="the fleet's Redis URL (default: $REDIS_URL)")
    parser.add_argument("--account", default="default", help="the fleet's account name")
    parser.add_argument("--json", action="store_true", help="print JSON")


def fleet_start_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", help="CSV of segment refs, - for stdin")
    parser.add_argument("--run-id", required=True, help="the run's id (re-attaches when known)")
    parser.add_argument(
        "--engine", choices=("arq", "none"), default="arq", help="enqueue its batches on"
    )
    parser.add_argument("--batch-size", type=int, default=200, help="pairs per batch job")
    _connection(parser)


@asynccontextmanager
async def _fleet(args: argparse.Namespace) -> AsyncIterator[Fleet]:
    url = args.redis or os.environ.get("REDIS_URL")
    if not url:
        raise UsageError("give the fleet's Redis with --redis or $REDIS_URL")
    try:
        from ..fleet import Fleet
    except ImportError:  # pragma: no cover - the [fleet] extra is in dev
        raise UsageError("fleet commands need: pip install 'altcraft-async[fleet]'") from None
    async with Fleet(url, account=args.account) as fleet:
        yield fleet


async def fleet_start(args: argparse.Namespace) -> int:
    """Start (or re-attach to) a run over the refs of a CSV file and enqueue its batches."""
    refs = read_refs(_open_input(args.file), SegmentRef)
    engine = None
    if args.engine == "arq":
        from ..fleet.arq import ArqEngine

        engine = ArqEngine()
    async with _fleet(args) as fleet:
        run = await fleet.start(args.run_id, refs, engine=engine, batch_size=args.batch_size)
        progress = await run.progress()
    if args.json:
        print(to_json(_progress_record(progress)))
    else:
        print(f"run {args.run_id}: {progress.total} pairs, {progress.finished} finished")
    return EXIT_OK


async def fleet_status(args: argparse.Namespace) -> int:
    """A run's counters: started, done, failed, unknown, in flight."""
    async with _fleet(args) as fleet:
        progress = await fleet.run(args.run_id).progress()
    record = _progress_record(progress)
    if args.json:
        print(to_json(record))
    else:
        print(format_table(list(record), [list(record.values())]))
    return EXIT_OK


async def fleet_results(args: argparse.Namespace) -> int:
    """Every finished pair of a run: its counters, or why it has none."""
    async with _fleet(args) as fleet:
        outcomes = [outcome async for outcome in fleet.run(args.run_id).results()]
    if args.json:
        print(to_json([_outcome_record(outcome) for outcome in outcomes]))
        return EXIT_OK
    rows: list[list[Any]] = []
    for outcome in outcomes:
        ref = outcome.ref
        prefix = [ref.segment_id, ref.resource_id, ref.database_id]
        if outcome.result is not None:
            rows.extend(snapshot_rows(outcome.result, *prefix))
        else:
            rows.append(
                [*prefix, f"{outcome.state}: {outcome.detail}", *([None] * len(COUNTER_COLUMNS))]
            )
    headers = ["segment", "resource", "database", "channel", *COUNTER_COLUMNS]
    print(format_table(headers, rows))
    return EXIT_OK


async def fleet_unknown(args: argparse.Namespace) -> int:
    """The pairs whose start may have gone out unrecorded; exit code 1 when there are any."""
    async with _fleet(args) as fleet:
        unknown = await fleet.run(args.run_id).unknown()
    if args.json:
        print(to_json([_outcome_record(outcome) for outcome in unknown]))
    elif unknown:
        rows = [[o.ref.segment_id, o.ref.resource_id, o.ref.database_id, o.detail] for o in unknown]
        print(format_table(["segment", "resource", "database", "why"], rows))
    else:
        print("no unknown pairs", file=sys.stderr)
    return EXIT_ERROR if unknown else EXIT_OK


def _progress_record(progress: Any) -> dict[str, Any]:
    return {
        "run": progress.run,
        "total": progress.total,
        "started": progress.started,
        "done": progress.done,
        "failed": progress.failed,
        "unknown": progress.unknown,
        "in_flight": progress.in_flight,
    }


def _outcome_record(outcome: PairOutcome) -> dict[str, Any]:
    return {
        "ref": outcome.ref,
        "state": outcome.state,
        "result": outcome.result,
        "detail": outcome.detail,
        "task_id": outcome.task_id,
    }
