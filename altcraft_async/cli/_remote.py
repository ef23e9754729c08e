"""The commands against a real account: segment, resource, database and relation counters,
tasks, the sender queue, and refreshing many segments or databases from a CSV file.

Each command is two functions, a row of the table in :mod:`altcraft_async.cli`: one adds its
options to its parser (starting with :func:`connection_options` or :func:`waiting_options`),
the other, a handler made a runner by :func:`api_command`, gets an open client and returns a
:class:`Reply`, printed as a table or as JSON.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple, TextIO, TypeVar

import attrs

from .._client import AltcraftClient
from .._codec import unstructure
from .._errors import InvalidRequestError
from .._fanout import FanOut
from ..models import DatabaseRef, Feedback, Match, SegmentRef, TaskStatus
from ._output import (
    COUNTER_COLUMNS,
    EXIT_ERROR,
    EXIT_OK,
    ProgressBar,
    Runner,
    UsageError,
    cell,
    channel_rows,
    format_table,
    outcome_record,
    snapshot_rows,
    to_json,
)

__all__ = [
    "Reply",
    "admin_sender_queue",
    "api_command",
    "connection_options",
    "database_counters",
    "database_counters_arguments",
    "database_refresh",
    "database_refresh_arguments",
    "database_refresh_many",
    "read_refs",
    "read_segment_refs",
    "refresh_many",
    "refresh_many_arguments",
    "refresh_many_command",
    "relation_counter",
    "relation_counter_arguments",
    "resource_refresh",
    "resource_refresh_arguments",
    "segment_counters",
    "segment_counters_arguments",
    "segment_refresh",
    "segment_refresh_arguments",
    "sender_queue_arguments",
    "task_resume",
    "task_resume_arguments",
    "task_status",
    "task_status_arguments",
    "task_wait",
    "task_wait_arguments",
    "waiting_options",
]


class Reply(NamedTuple):
    """What a command found: ``data`` for ``--json``, ``text`` for a terminal, and the exit code."""

    data: Any
    text: str
    exit_code: int = EXIT_OK


Handler = Callable[[AltcraftClient, argparse.Namespace], Awaitable[Reply]]
RefT = TypeVar("RefT")


def api_command(handler: Handler) -> Runner:
    """The runner of a handler: a client from the connection options, the handler's reply
    printed, its exit code returned."""

    @functools.wraps(handler)
    async def run(args: argparse.Namespace) -> int:
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
            reply = await handler(client, args)
        print(to_json(reply.data) if args.json else reply.text)
        return reply.exit_code

    return run


# --- options every command here shares --------------------------------------------------------


def connection_options(parser: argparse.ArgumentParser) -> None:
    """The connection options; ``main`` fills in the tokens from the environment."""
    group = parser.add_argument_group("connection")
    group.add_argument("--url", help="platform URL (default: $ALTCRAFT_URL)")
    group.add_argument("--token", help="API token (default: $ALTCRAFT_TOKEN)")
    group.add_argument("--admin-token", help="admin API token (default: $ALTCRAFT_ADMIN_TOKEN)")
    group.add_argument("--format", choices=("json", "xml"), default="json", help="wire format")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    group.add_argument("--json", action="store_true", help="print JSON instead of a table")


def waiting_options(parser: argparse.ArgumentParser) -> None:
    """The connection options and how long to wait for a task."""
    connection_options(parser)
    parser.add_argument(
        "--wait-timeout", type=float, default=600.0, help="seconds to wait for a task"
    )


# --- segments, resources and databases ---------------------------------------------------------


def segment_counters_arguments(parser: argparse.ArgumentParser) -> None:
    connection_options(parser)
    _segment_pair(parser)


def segment_refresh_arguments(parser: argparse.ArgumentParser) -> None:
    waiting_options(parser)
    _segment_pair(parser)
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True)


def _segment_pair(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segment-id", type=int, required=True)
    parser.add_argument("--resource-id", type=int, required=True)
    parser.add_argument("--database-id", type=int)


def resource_refresh_arguments(parser: argparse.ArgumentParser) -> None:
    waiting_options(parser)
    parser.add_argument("--resource-id", type=int, required=True)
    parser.add_argument("--database-id", type=int, required=True)
    parser.add_argument("--feedback-url", help="URL the platform POSTs the result to")
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True)


def database_counters_arguments(parser: argparse.ArgumentParser) -> None:
    connection_options(parser)
    parser.add_argument("--database-id", type=int, required=True)
    parser.add_argument("--resource-id", type=int, required=True)


def database_refresh_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``resources refresh``: a database refresh names the same pair."""
    resource_refresh_arguments(parser)


@api_command
async def segment_counters(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    channels = await client.segments.get_counters(
        segment_id=args.segment_id, resource_id=args.resource_id, database_id=args.database_id
    )
    return Reply(channels, format_table(("channel", *COUNTER_COLUMNS), channel_rows(channels)))


@api_command
async def segment_refresh(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    task = await client.segments.refresh_counters(
        segment_id=args.segment_id, resource_id=args.resource_id, database_id=args.database_id
    )
    return await _finish_refresh(task, args)


@api_command
async def resource_refresh(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    feedback = Feedback(url=args.feedback_url) if args.feedback_url else None
    task = await client.resources.refresh_counters(
        resource_id=args.resource_id, database_id=args.database_id, feedback=feedback
    )
    return await _finish_refresh(task, args)


@api_command
async def database_counters(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    channels = await client.databases.get_counters(
        database_id=args.database_id, resource_id=args.resource_id
    )
    return Reply(channels, format_table(("channel", *COUNTER_COLUMNS), channel_rows(channels)))


@api_command
async def database_refresh(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    feedback = Feedback(url=args.feedback_url) if args.feedback_url else None
    task = await client.databases.refresh_counters(
        database_id=args.database_id, resource_id=args.resource_id, feedback=feedback
    )
    return await _finish_refresh(task, args)


async def _finish_refresh(task: Any, args: argparse.Namespace) -> Reply:
    if not args.wait:
        data = {"task_id": task.task_id, "resume_token": task.resume_token()}
        return Reply(data, f"task_id       {task.task_id}\nresume_token  {task.resume_token()}")
    return await _wait(task, args)


async def _wait(task: Any, args: argparse.Namespace) -> Reply:
    bar = ProgressBar(100, sys.stderr, label=f"task {task.task_id} ")

    def on_progress(status: TaskStatus) -> None:
        bar.update(percent=status.progress if status.progress is not None else 0.0)

    try:
        snapshots = await task.wait(timeout=args.wait_timeout, on_progress=on_progress)
    finally:
        bar.close()
    return Reply(snapshots, format_table(("channel", *COUNTER_COLUMNS), snapshot_rows(snapshots)))


# --- tasks ------------------------------------------------------------------------------------


def task_status_arguments(parser: argparse.ArgumentParser) -> None:
    connection_options(parser)
    parser.add_argument("task_id")


def task_wait_arguments(parser: argparse.ArgumentParser) -> None:
    waiting_options(parser)
    parser.add_argument("task_id")


def task_resume_arguments(parser: argparse.ArgumentParser) -> None:
    waiting_options(parser)
    parser.add_argument("resume_token")


@api_command
async def task_status(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    status = await client.tasks.status(args.task_id)
    text = f"status    {status.status}\nprogress  {cell(status.progress)}"
    if status.result:
        table = format_table(("channel", *COUNTER_COLUMNS), snapshot_rows(status.result))
        text += "\n\n" + table
    return Reply(status, text)


@api_command
async def task_wait(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    return await _wait(client.tasks.task(args.task_id), args)


@api_command
async def task_resume(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    return await _wait(client.tasks.resume(args.resume_token), args)


# --- admin and relations ----------------------------------------------------------------------


def sender_queue_arguments(parser: argparse.ArgumentParser) -> None:
    connection_options(parser)
    parser.add_argument("--sender-id", type=int, required=True)
    parser.add_argument("--account-id", type=int)
    parser.add_argument("--campaign-id", type=int)
    parser.add_argument("--isp")
    parser.add_argument("--group", choices=("account", "account_campaign", "isp", "total"))


@api_command
async def admin_sender_queue(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    rows = await client.admin.sender_queue_stats(
        sender_id=args.sender_id,
        account_id=args.account_id,
        campaign_id=args.campaign_id,
        isp=args.isp,
        group=args.group,
    )
    headers = ("account_id", "campaign_id", "isp", "hold", "new", "proc", "retry", "total")
    return Reply(rows, format_table(headers, [[getattr(row, h) for h in headers] for row in rows]))


def relation_counter_arguments(parser: argparse.ArgumentParser) -> None:
    connection_options(parser)
    parser.add_argument("--relation-id", type=int, required=True)
    parser.add_argument("--resource-id", type=int)
    parser.add_argument("--email")
    parser.add_argument("--email-profile", metavar="EMAIL")
    parser.add_argument("--phone")
    parser.add_argument("--profile-id")
    parser.add_argument("--custom", metavar="FIELD=VALUE")


@api_command
async def relation_counter(client: AltcraftClient, args: argparse.Namespace) -> Reply:
    info = await client.relations.get_counter(
        relation_id=args.relation_id, match=_match_from(args), resource_id=args.resource_id
    )
    lines = [f"profile_id   {info.profile_id}", f"profile_xxh  {info.profile_xxh}"]
    plain_props = unstructure(info).get("props", {})
    lines += [f"props.{name}  {json.dumps(value)}" for name, value in plain_props.items()]
    return Reply(info, "\n".join(lines))


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


# --- many segments or databases at once ------------------------------------------------------


def refresh_many_arguments(parser: argparse.ArgumentParser) -> None:
    waiting_options(parser)
    parser.add_argument("file", nargs="?", default="-", help="CSV file, or - for stdin (default)")
    parser.add_argument("--concurrency", type=int, default=50, help="refreshes in flight")


#: Starts the fan-out of a ``refresh-many`` command: the client, the refs, the parsed options.
StartMany = Callable[[AltcraftClient, list[RefT], argparse.Namespace], FanOut[RefT]]


def refresh_many_command(ref_type: type[RefT], start: StartMany[RefT]) -> Runner:
    """The runner of a ``refresh-many`` command: refs of ``ref_type`` read from CSV rows (see
    :func:`read_refs`), refreshed by the fan-out ``start`` begins, one table row per channel
    of each, exit code 1 when any failed."""

    async def refresh(client: AltcraftClient, args: argparse.Namespace) -> Reply:
        refs = read_refs(_open_input(args.file), ref_type)
        bar = ProgressBar(len(refs), sys.stderr, label="refresh ")
        outcomes = []
        try:
            async with start(client, refs, args) as results:
                async for outcome in results:
                    outcomes.append(outcome)
                    bar.update(len(outcomes))
        finally:
            bar.close()
        shown = _ref_columns(ref_type)[0]
        rows: list[list[Any]] = []
        for outcome in outcomes:
            prefix = [getattr(outcome.ref, name) for name in shown]
            if outcome.result is not None:
                rows.extend(snapshot_rows(outcome.result, *prefix))
            else:
                rows.append([*prefix, f"error: {outcome.error}", *([None] * len(COUNTER_COLUMNS))])
        failed = sum(1 for outcome in outcomes if outcome.error is not None)
        headers = (*(name.removesuffix("_id") for name in shown), "channel", *COUNTER_COLUMNS)
        summary = f"\n{len(outcomes) - failed} refreshed, {failed} failed"
        data = [outcome_record(outcome) for outcome in outcomes]
        return Reply(data, format_table(headers, rows) + summary, EXIT_ERROR if failed else EXIT_OK)

    return api_command(refresh)


refresh_many = refresh_many_command(
    SegmentRef,
    lambda client, refs, args: client.segments.refresh_many(
        refs, concurrency=args.concurrency, timeout=args.wait_timeout
    ),
)
database_refresh_many = refresh_many_command(
    DatabaseRef,
    lambda client, refs, args: client.databases.refresh_many(
        refs, concurrency=args.concurrency, timeout=args.wait_timeout
    ),
)


def _open_input(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _ref_columns(ref_type: type[Any]) -> tuple[list[str], list[str]]:
    """A ref's fields in order, as (the ones a row must give, the ones it may leave out)."""
    fields: Iterable[attrs.Attribute[Any]] = attrs.fields(ref_type)
    required = [f.name for f in fields if f.default is attrs.NOTHING]
    optional = [f.name for f in fields if f.default is not attrs.NOTHING]
    return required, optional


def read_refs(stream: TextIO, ref_type: type[RefT]) -> list[RefT]:
    """Refs from CSV rows of ``ref_type``'s fields in order, those with a default optional
    (``segment_id,resource_id[,database_id]`` for :class:`SegmentRef`); a header row, blank
    rows and ``#`` comments are skipped."""
    required, optional = _ref_columns(ref_type)
    expected = ",".join(required) + "".join(f"[,{name}]" for name in optional)
    with stream:
        text = stream.read()
    refs: list[RefT] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [value.strip() for value in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and not any(value.isdigit() for value in cells):
            continue  # a header row
        fits = len(required) <= len(cells) <= len(required) + len(optional)
        if not fits or not all(cells[: len(required)]) or not all(map(_digits, cells)):
            raise UsageError(f"line {number}: expected {expected}")
        try:
            refs.append(ref_type(*(int(value) if value else None for value in cells)))
        except InvalidRequestError as exc:
            raise UsageError(f"line {number}: {exc}") from None
    if not refs:
        raise UsageError("no refs in the input")
    return refs


def _digits(cell: str) -> bool:
    return not cell or cell.isdigit()


def read_segment_refs(stream: TextIO) -> list[SegmentRef]:
    """Segment refs from CSV rows ``segment_id,resource_id[,database_id]`` (header optional)."""
    return read_refs(stream, SegmentRef)
