"""The commands that run on this machine with the embedded fake: ``demo`` and ``fake-server``.

They import :mod:`altcraft_async.testing` when they run, so the rest of the command line
(and the core package) never loads the fake.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from attrs import asdict

from .._client import AltcraftClient
from .._fanout import Outcome
from ..models import CountersSnapshot, SegmentRef
from ._output import ProgressBar, UsageError, format_table, outcome_record, to_json

__all__ = ["DEMO_DESCRIPTION", "demo", "demo_arguments", "fake_server"]

DEMO_DESCRIPTION = (
    "Start the embedded fake Altcraft platform with seeded data, refresh the counters of "
    "every segment at once through the SDK's awaiter, and print the counters and a summary."
)


def fake_server(argv: list[str]) -> int:
    """``altcraft-async fake-server [options]``: ``python -m altcraft_async.testing``, whose own
    parser reads the options (its usage line named after this command)."""
    from ..testing.__main__ import main

    return main(argv, prog="altcraft-async fake-server")


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("json", "xml"), default="json", help="wire format")
    parser.add_argument("--profiles", type=_at_least(1), default=30_000)
    parser.add_argument("--segments", type=_at_least(1), default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--concurrency", type=_at_least(1), default=1000, help="refreshes in flight"
    )
    parser.add_argument(
        "--min-task", type=_seconds, default=0.5, help="shortest task duration (seconds)"
    )
    parser.add_argument("--max-task", type=_seconds, default=5.0, help="longest task duration")
    parser.add_argument(
        "--rows", type=_at_least(0), default=15, help="table rows to print (0: all)"
    )
    parser.add_argument(
        "--dialect",
        metavar="NAME[,NAME]",
        help="how the fake fills in what the docs leave open (default: $ALTCRAFT_FAKE_DIALECT, "
        "else plain; see `altcraft-async fake-server --help`)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an int >= ``low`` (argparse turns the ValueError into a usage error)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value: 'x'"
    return parse


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


async def demo(args: argparse.Namespace) -> int:
    """Refresh every segment of a seeded fake through the SDK; print counters and a summary."""
    from ..testing import Dialect, FakeAltcraft, TaskPlan

    if not 0 < args.min_task <= args.max_task:
        raise UsageError("need 0 < --min-task <= --max-task")
    try:
        dialect = Dialect.from_env() if args.dialect is None else Dialect.named(args.dialect)
    except ValueError as exc:
        where = "" if args.dialect is None else "--dialect: "
        raise UsageError(f"{where}{exc}") from None
    low, high = args.min_task, args.max_task

    def plan(rng: random.Random) -> TaskPlan:
        return TaskPlan.after_seconds(rng.uniform(low, high))

    out = sys.stderr
    built = time.perf_counter()
    fake = FakeAltcraft.seeded(
        profiles=args.profiles,
        segments=args.segments,
        seed=args.seed,
        task_plan=plan,
        dialect=dialect,
    )
    print(
        f"fake platform: {args.profiles} profiles, {len(fake.platform.segments)} segments, "
        f"built in {time.perf_counter() - built:.2f}s",
        file=out,
    )
    async with fake:
        refs = [SegmentRef(s, r, d) for s, r, d in fake.platform.segment_refs()]
        outcomes: list[Outcome[SegmentRef]] = []
        bar = ProgressBar(len(refs), out, label="refreshing ")
        started = time.perf_counter()
        async with AltcraftClient(fake.url, token=fake.token, format=args.format) as client:
            async with client.segments.refresh_many(refs, concurrency=args.concurrency) as run:
                async for outcome in run:
                    outcomes.append(outcome)
                    bar.update(len(outcomes))
            bar.close()
            wall = time.perf_counter() - started
        stats = fake.stats
        tasks = list(fake.tasks.values())
        durations = [t.done_at - t.created_at for t in tasks if t.done_at is not None]
        latencies = [t.notice_latency for t in tasks if t.notice_latency is not None]
        verified = sum(1 for o in outcomes if o.result and _matches(fake, o.ref, o.result))
    failed = [o for o in outcomes if o.error is not None]
    polls = stats.by_endpoint.get("tasks/status", 0)
    summary = {
        "format": args.format,
        "tasks": len(refs),
        "succeeded": len(outcomes) - len(failed),
        "failed": len(failed),
        "verified_against_fake": verified,
        "wall_s": round(wall, 3),
        "longest_task_s": round(max(durations, default=0.0), 3),
        "requests": stats.requests,
        "status_polls_per_task": round(polls / max(len(refs), 1), 2),
        "notice_latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "max_tasks_in_flight": stats.max_tasks_in_flight,
    }
    if args.json:
        rows = [outcome_record(o) for o in sorted(outcomes, key=_order)]
        print(to_json({"summary": summary, "segments": rows}))
    else:
        headers = ("segment", "resource", "database", "channel", "all", "subscribed_sendable")
        table_rows: list[list[Any]] = []
        shown = sorted(outcomes, key=_order)
        if args.rows:
            shown = shown[: args.rows]
        for outcome in shown:
            ref = outcome.ref
            for snapshot in outcome.result or ():
                for channel in snapshot.channels:
                    table_rows.append(
                        [
                            ref.segment_id,
                            ref.resource_id,
                            ref.database_id,
                            channel.channel,
                            channel.status.all,
                            channel.status.subscribed_sendable,
                        ]
                    )
        print(format_table(headers, table_rows))
        if args.rows and len(outcomes) > args.rows:
            print(f"... {len(outcomes) - args.rows} more refreshes (--rows 0 shows all)")
        print()
        print(format_table(("summary", "value"), list(summary.items())))
    for outcome in failed[:5]:
        print(f"failed: {outcome.ref}: {outcome.error}", file=out)
    return 1 if failed else 0


def _order(outcome: Outcome[SegmentRef]) -> tuple[int, int]:
    return outcome.ref.segment_id, outcome.ref.resource_id


def _matches(fake: Any, ref: SegmentRef, result: list[CountersSnapshot]) -> bool:
    """Whether the SDK's decoded counters equal what the fake computes from its data."""
    expected = fake.platform.segment_counters(ref.segment_id, ref.resource_id)
    got = {
        channel.channel: {
            name: value
            for name, value in asdict(channel.status).items()
            if value is not None and name in expected.get(channel.channel, {})
        }
        for snapshot in result
        for channel in snapshot.channels
    }
    return bool(got) and got == expected
