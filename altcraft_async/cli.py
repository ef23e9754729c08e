"""The ``altcraft-async`` command line: the API from a terminal, the demo and the fake server.

Connection settings come from flags or ``ALTCRAFT_URL`` / ``ALTCRAFT_TOKEN`` /
``ALTCRAFT_ADMIN_TOKEN``. Results print as a table, or as JSON with ``--json``. Errors print
one line on stderr and exit non-zero, never with a traceback and never with the token.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TextIO

from . import __version__
from ._client import AltcraftClient
from ._codec import unstructure
from ._errors import AltcraftError, InvalidRequestError
from ._fanout import Outcome
from .models import ChannelCounters, CountersSnapshot, Feedback, Match, SegmentRef, TaskStatus

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

COUNTER_COLUMNS = (
    "all",
    "subscribed",
    "subscribed_sendable",
    "unconfirmed",
    "unconfirmed_sendable",
    "unsubscribed",
    "hardbounced",
    "complained",
    "suspended",
    "invalid",
)


class UsageError(Exception):
    """A command-line mistake the user can fix (exit code 2)."""


# --- output -----------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table with right-aligned numbers."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                value.rjust(w) if _numeric(value) else value.ljust(w)
                for value, w in zip(row, widths, strict=True)
            )
        )
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _numeric(value: str) -> bool:
    return value.replace(".", "", 1).isdigit()


def channel_rows(channels: Iterable[ChannelCounters], *prefix: Any) -> list[list[Any]]:
    return [
        [*prefix, item.channel, *(getattr(item.status, name) for name in COUNTER_COLUMNS)]
        for item in channels
    ]


def snapshot_rows(snapshots: Iterable[CountersSnapshot], *prefix: Any) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for snapshot in snapshots:
        rows.extend(channel_rows(snapshot.channels, *prefix))
    return rows


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not a TTY."""

    def __init__(self, total: int, stream: TextIO, label: str = "") -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.label = label
        self.enabled = stream.isatty()
        self.done = 0
        self._last_draw = 0.0

    def update(self, done: int | None = None, *, percent: float | None = None) -> None:
        if done is not None:
            self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        finished = self.done >= self.total or (percent is not None and percent >= 100)
        if now - self._last_draw < 0.1 and not finished:
            return
        self._last_draw = now
        fraction = percent / 100 if percent is not None else self.done / self.total
        filled = int(30 * min(fraction, 1.0))
        count = f"{percent:5.1f}%" if percent is not None else f"{self.done}/{self.total}"
        bar = "#" * filled + "." * (30 - filled)
        self.stream.write(f"\r{self.label}[{bar}] {count}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


# --- commands ---------------------------------------------------------------------------------

Handler = Callable[[AltcraftClient, argparse.Namespace], Coroutine[Any, Any, Any]]


async def cmd_segment_counters(client: AltcraftClient, args: argparse.Namespace) -> Any:
    channels = await client.segments.get_counters(
        segment_id=args.segment_id, resource_id=args.resource_id, database_id=args.database_id
    )
    return channels, format_table(("channel", *COUNTER_COLUMNS), channel_rows(channels))


async def cmd_segment_refresh(client: AltcraftClient, args: argparse.Namespace) -> Any:
    task = await client.segments.refresh_counters(
        segment_id=args.segment_id, resource_id=args.resource_id, database_id=args.database_id
    )
    return await _finish_refresh(task, args)


async def cmd_resource_refresh(client: AltcraftClient, args: argparse.Namespace) -> Any:
    feedback = Feedback(url=args.feedback_url) if args.feedback_url else None
    task = await client.resources.refresh_counters(
        resource_id=args.resource_id, database_id=args.database_id, feedback=feedback
    )
    return await _finish_refresh(task, args)


async def _finish_refresh(task: Any, args: argparse.Namespace) -> Any:
    if not args.wait:
        data = {"task_id": task.task_id, "resume_token": task.resume_token()}
        return data, f"task_id       {task.task_id}\nresume_token  {task.resume_token()}"
    return await _wait(task, args)


async def _wait(task: Any, args: argparse.Namespace) -> Any:
    bar = ProgressBar(100, sys.stderr, label=f"task {task.task_id} ")

    def on_progress(status: TaskStatus) -> None:
        bar.update(percent=status.progress if status.progress is not None else 0.0)

    try:
        snapshots = await task.wait(timeout=args.wait_timeout, on_progress=on_progress)
    finally:
        bar.close()
    table = format_table(("channel", *COUNTER_COLUMNS), snapshot_rows(snapshots))
    return snapshots, table


async def cmd_task_status(client: AltcraftClient, args: argparse.Namespace) -> Any:
    status = await client.tasks.status(args.task_id)
    text = f"status    {status.status}\nprogress  {_cell(status.progress)}"
    if status.result:
        table = format_table(("channel", *COUNTER_COLUMNS), snapshot_rows(status.result))
        text += "\n\n" + table
    return status, text


async def cmd_task_wait(client: AltcraftClient, args: argparse.Namespace) -> Any:
    return await _wait(client.tasks.task(args.task_id), args)


async def cmd_task_resume(client: AltcraftClient, args: argparse.Namespace) -> Any:
    return await _wait(client.tasks.resume(args.resume_token), args)


async def cmd_sender_queue(client: AltcraftClient, args: argparse.Namespace) -> Any:
    rows = await client.admin.sender_queue_stats(
        sender_id=args.sender_id,
        account_id=args.account_id,
        campaign_id=args.campaign_id,
        isp=args.isp,
        group=args.group,
    )
    headers = ("account_id", "campaign_id", "isp", "hold", "new", "proc", "retry", "total")
    table = format_table(headers, [[getattr(row, h) for h in headers] for row in rows])
    return rows, table


async def cmd_relation_counter(client: AltcraftClient, args: argparse.Namespace) -> Any:
    info = await client.relations.get_counter(
        relation_id=args.relation_id, match=_match_from(args), resource_id=args.resource_id
    )
    lines = [f"profile_id   {info.profile_id}", f"profile_xxh  {info.profile_xxh}"]
    plain_props = unstructure(info).get("props", {})
    lines += [f"props.{name}  {json.dumps(value)}" for name, value in plain_props.items()]
    return info, "\n".join(lines)


def _match_from(args: argparse.Namespace) -> Match:
    given = [
        (name, getattr(args, name))
        for name in ("email", "email_profile", "phone", "profile_id", "custom")
        if getattr(args, name) is not None
    ]
    if len(given) != 1:
        raise UsageError(
            "give exactly one of --email, --email-profile, --phone, --profile-id, --custom"
        )
    kind, value = given[0]
    if kind == "custom":
        name, sep, field_value = value.partition("=")
        if not sep:
            raise UsageError("--custom takes FIELD=VALUE")
        return Match.custom(name, field_value)
    factory: Callable[[str], Match] = getattr(Match, kind)
    return factory(value)


async def cmd_refresh_many(client: AltcraftClient, args: argparse.Namespace) -> Any:
    refs = read_segment_refs(_open_input(args.file))
    bar = ProgressBar(len(refs), sys.stderr, label="refresh ")
    outcomes = []
    try:
        async with client.segments.refresh_many(
            refs, concurrency=args.concurrency, timeout=args.wait_timeout
        ) as results:
            async for outcome in results:
                outcomes.append(outcome)
                bar.update(len(outcomes))
    finally:
        bar.close()
    rows: list[list[Any]] = []
    data = []
    for outcome in outcomes:
        ref = outcome.ref
        prefix = (ref.segment_id, ref.resource_id)
        if outcome.result is not None:
            rows.extend(snapshot_rows(outcome.result, *prefix))
        else:
            rows.append([*prefix, f"error: {outcome.error}", *([None] * len(COUNTER_COLUMNS))])
        data.append(outcome_record(outcome))
    failed = sum(1 for outcome in outcomes if outcome.error is not None)
    table = format_table(("segment", "resource", "channel", *COUNTER_COLUMNS), rows)
    summary = f"\n{len(outcomes) - failed} refreshed, {failed} failed"
    return data, table + summary, EXIT_ERROR if failed else EXIT_OK


def outcome_record(outcome: Outcome[SegmentRef]) -> dict[str, Any]:
    """One refresh outcome as plain data for ``--json``."""
    ref = outcome.ref
    return {
        "segment_id": ref.segment_id,
        "resource_id": ref.resource_id,
        "database_id": ref.database_id,
        "result": outcome.result,
        "error": str(outcome.error) if outcome.error else None,
    }


def _open_input(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def read_segment_refs(stream: TextIO) -> list[SegmentRef]:
    """Segment refs from CSV rows ``segment_id,resource_id[,database_id]`` (header optional)."""
    with stream:
        text = stream.read()
    refs: list[SegmentRef] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and not cells[0].isdigit():
            continue  # a header row
        if len(cells) not in (2, 3) or not all(cell.isdigit() for cell in cells if cell):
            raise UsageError(f"line {number}: expected segment_id,resource_id[,database_id]")
        database = int(cells[2]) if len(cells) == 3 and cells[2] else None
        try:
            refs.append(SegmentRef(int(cells[0]), int(cells[1]), database))
        except InvalidRequestError as exc:
            raise UsageError(f"line {number}: {exc}") from None
    if not refs:
        raise UsageError("no segment refs in the input")
    return refs


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="altcraft-async",
        description="Altcraft Platform API from the command line (asyncio SDK altcraft_async).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    group.add_argument("--url", help="platform URL (default: $ALTCRAFT_URL)")
    group.add_argument("--token", help="API token (default: $ALTCRAFT_TOKEN)")
    group.add_argument("--admin-token", help="admin API token (default: $ALTCRAFT_ADMIN_TOKEN)")
    group.add_argument("--format", choices=("json", "xml"), default="json", help="wire format")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    group.add_argument("--json", action="store_true", help="print JSON instead of a table")

    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--wait-timeout", type=float, default=600.0, help="seconds to wait for a task"
    )

    def add(
        target: Any, name: str, handler: Handler, help_text: str, *parents: Any
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = target.add_parser(
            name, help=help_text, description=help_text, parents=[connection, *parents]
        )
        sub.set_defaults(handler=handler)
        return sub

    segments = commands.add_parser("segments", help="segment counters").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    for name, handler, text in (
        ("counters", cmd_segment_counters, "last computed counters of a segment"),
        ("refresh", cmd_segment_refresh, "recount a segment (and wait, unless --no-wait)"),
    ):
        sub = add(segments, name, handler, text, waiting)
        sub.add_argument("--segment-id", type=int, required=True)
        sub.add_argument("--resource-id", type=int, required=True)
        sub.add_argument("--database-id", type=int)
        if name == "refresh":
            sub.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True)

    resources = commands.add_parser("resources", help="resource counters").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    sub = add(resources, "refresh", cmd_resource_refresh, "recount a resource", waiting)
    sub.add_argument("--resource-id", type=int, required=True)
    sub.add_argument("--database-id", type=int, required=True)
    sub.add_argument("--feedback-url", help="URL the platform POSTs the result to")
    sub.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True)

    tasks = commands.add_parser("tasks", help="background tasks").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    add(tasks, "status", cmd_task_status, "one status request").add_argument("task_id")
    add(tasks, "wait", cmd_task_wait, "wait for a task", waiting).add_argument("task_id")
    add(tasks, "resume", cmd_task_resume, "wait for a task by resume token", waiting).add_argument(
        "resume_token"
    )

    admin = commands.add_parser("admin", help="administrator API").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    sub = add(admin, "sender-queue", cmd_sender_queue, "sender queue statistics")
    sub.add_argument("--sender-id", type=int, required=True)
    sub.add_argument("--account-id", type=int)
    sub.add_argument("--campaign-id", type=int)
    sub.add_argument("--isp")
    sub.add_argument("--group", choices=("account", "account_campaign", "isp", "total"))

    relations = commands.add_parser("relations", help="profile relations").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    sub = add(relations, "counter", cmd_relation_counter, "relation info of one profile")
    sub.add_argument("--relation-id", type=int, required=True)
    sub.add_argument("--resource-id", type=int)
    sub.add_argument("--email")
    sub.add_argument("--email-profile", metavar="EMAIL")
    sub.add_argument("--phone")
    sub.add_argument("--profile-id")
    sub.add_argument("--custom", metavar="FIELD=VALUE")

    sub = add(
        commands,
        "refresh-many",
        cmd_refresh_many,
        "refresh many segments from CSV rows segment_id,resource_id[,database_id]",
        waiting,
    )
    sub.add_argument("file", nargs="?", default="-", help="CSV file, or - for stdin (default)")
    sub.add_argument("--concurrency", type=int, default=50, help="refreshes in flight")

    from ._cli_local import add_local_commands

    add_local_commands(commands)
    return parser


# --- running ----------------------------------------------------------------------------------


def _secrets(args: argparse.Namespace) -> list[str]:
    return [s for s in (getattr(args, "token", None), getattr(args, "admin_token", None)) if s]


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text``, also as escaped by ``repr`` or JSON (belt and braces:
    no message should hold one)."""
    forms = {form for secret in secrets if secret for form in _escaped_forms(secret)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _escaped_forms(secret: str) -> tuple[str, ...]:
    return (secret, repr(secret)[1:-1], json.dumps(secret)[1:-1])


def to_json(data: Any) -> str:
    return json.dumps(unstructure(data), indent=2, default=str)


async def run_api_command(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("ALTCRAFT_URL")
    if not url:
        raise UsageError("no platform URL: pass --url or set ALTCRAFT_URL")
    if not args.token:
        raise UsageError("no token: pass --token or set ALTCRAFT_TOKEN")
    async with AltcraftClient(
        url,
        token=args.token,
        admin_token=args.admin_token,
        format=args.format,
        timeout=args.timeout,
    ) as client:
        outcome = await args.handler(client, args)
    data, text, *code = outcome
    print(to_json(data) if args.json else text)
    return code[0] if code else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["fake-server"]:
        # its options belong to the fake's own parser (argparse cannot pass "--port" through)
        from ._cli_local import run_fake_server

        return run_fake_server(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    if hasattr(args, "token") and args.token is None:
        args.token = os.environ.get("ALTCRAFT_TOKEN")
    if hasattr(args, "admin_token") and args.admin_token is None:
        args.admin_token = os.environ.get("ALTCRAFT_ADMIN_TOKEN")
    secrets = _secrets(args)
    runner = getattr(args, "runner", None) or run_api_command
    try:
        return int(asyncio.run(runner(args)))
    except UsageError as exc:
        print(f"altcraft-async: usage error: {redact(str(exc), secrets)}", file=sys.stderr)
        return EXIT_USAGE
    except AltcraftError as exc:
        message = redact(f"{type(exc).__name__}: {exc}", secrets)
        print(f"altcraft-async: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("altcraft-async: interrupted", file=sys.stderr)
        return 130
