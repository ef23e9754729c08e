"""The ``altcraft-async`` command line: the API from a terminal, the demo and the fake server.

Connection settings come from flags or ``ALTCRAFT_URL`` / ``ALTCRAFT_TOKEN`` /
``ALTCRAFT_ADMIN_TOKEN``. Results print as a table, or as JSON with ``--json``. Errors print
one line on stderr and exit non-zero, never with a traceback and never with the token.

The commands are the rows of :data:`COMMANDS`; the parser is built from them. Imports flow one
way: this module -> the commands (``_remote``: a real account; ``_local``: the embedded fake;
``_fleet``: a fleet run in Redis, importing redis only when one runs)
-> ``_output``, and nothing imports this module back. A new command is one row here plus its
two functions (one adds its options, one runs it); a new group of commands also gets a line in
:data:`GROUPS`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._errors import AltcraftError
from .._version import __version__
from . import _fleet, _local, _remote
from ._output import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, Runner, UsageError, redact

__all__ = ["main"]


class Command(NamedTuple):
    """One command: ``name`` is ``"group action"`` or one word; ``add_arguments`` adds its
    options to its own parser; ``run`` gets the parsed arguments and returns the exit code."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Runner
    description: str | None = None  # the help text when None


class Passthrough(NamedTuple):
    """A command whose arguments go unparsed to ``run`` (a program with its own parser:
    argparse cannot hand an option such as ``--port`` through a subparser)."""

    name: str
    help: str
    run: Callable[[list[str]], int]


#: The groups of ``group action`` commands, with their help.
GROUPS = {
    "segments": "segment counters",
    "resources": "resource counters",
    "databases": "database counters",
    "tasks": "background tasks",
    "admin": "administrator API",
    "relations": "profile relations",
    "fleet": "a refresh run across a fleet of workers (extra [fleet])",
}

#: Every command, in the order ``--help`` lists them.
COMMANDS: tuple[Command | Passthrough, ...] = (
    Command(
        "segments counters",
        "last computed counters of a segment",
        _remote.segment_counters_arguments,
        _remote.segment_counters,
    ),
    Command(
        "segments refresh",
        "recount a segment (and wait, unless --no-wait)",
        _remote.segment_refresh_arguments,
        _remote.segment_refresh,
    ),
    Command(
        "resources refresh",
        "recount a resource",
        _remote.resource_refresh_arguments,
        _remote.resource_refresh,
    ),
    Command(
        "segments refresh-many",
        "refresh many segments from CSV rows segment_id,resource_id[,database_id]",
        _remote.refresh_many_arguments,
        _remote.refresh_many,
    ),
    Command(
        "databases counters",
        "last computed counters of a database on a resource",
        _remote.database_counters_arguments,
        _remote.database_counters,
    ),
    Command(
        "databases refresh",
        "recount a database on a resource (and wait, unless --no-wait)",
        _remote.database_refresh_arguments,
        _remote.database_refresh,
    ),
    Command(
        "databases refresh-many",
        "refresh many databases from CSV rows database_id,resource_id",
        _remote.refresh_many_arguments,
        _remote.database_refresh_many,
    ),
    Command(
        "tasks status", "one status request", _remote.task_status_arguments, _remote.task_status
    ),
    Command("tasks wait", "wait for a task", _remote.task_wait_arguments, _remote.task_wait),
    Command(
        "tasks resume",
        "wait for a task by resume token",
        _remote.task_resume_arguments,
        _remote.task_resume,
    ),
    Command(
        "admin sender-queue",
        "sender queue statistics",
        _remote.sender_queue_arguments,
        _remote.admin_sender_queue,
    ),
    Command(
        "relations counter",
        "relation info of one profile",
        _remote.relation_counter_arguments,
        _remote.relation_counter,
    ),
    Command(
        "refresh-many",
        "same as segments refresh-many",
        _remote.refresh_many_arguments,
        _remote.refresh_many,
    ),
    Command(
        "demo",
        "refresh every segment of a seeded fake platform, with no account needed",
        _local.demo_arguments,
        _local.demo,
        description=_local.DEMO_DESCRIPTION,
    ),
    Command(
        "fleet start",
        "start (or re-attach to) a fleet run over a CSV of segment refs",
        _fleet.fleet_start_arguments,
        _fleet.fleet_start,
    ),
    Command("fleet status", "a run's counters", _fleet.fleet_arguments, _fleet.fleet_status),
    Command(
        "fleet results", "a run's finished pairs", _fleet.fleet_arguments, _fleet.fleet_results
    ),
    Command(
        "fleet unknown",
        "pairs whose start may have gone out unrecorded (exit 1 if any)",
        _fleet.fleet_arguments,
        _fleet.fleet_unknown,
    ),
    Passthrough(
        "fake-server",
        "run the fake Altcraft platform standalone on a host/port (--help for options)",
        _local.fake_server,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in :data:`COMMANDS`; each sets ``run`` to its runner."""
    parser = argparse.ArgumentParser(
        prog="altcraft-async",
        description="Altcraft Platform API from the command line (asyncio SDK altcraft_async).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, Any] = {}
    for command in COMMANDS:
        group, _, action = command.name.rpartition(" ")
        if group and group not in groups:
            groups[group] = commands.add_parser(group, help=GROUPS[group]).add_subparsers(
                dest="action", metavar="ACTION", required=True
            )
        target = groups[group] if group else commands
        if isinstance(command, Passthrough):
            target.add_parser(action, help=command.help, add_help=False)
            continue
        sub: argparse.ArgumentParser = target.add_parser(
            action, help=command.help, description=command.description or command.help
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    for command in COMMANDS:
        words = command.name.split()
        if isinstance(command, Passthrough) and arguments[: len(words)] == words:
            return command.run(arguments[len(words) :])
    args = build_parser().parse_args(arguments)
    if hasattr(args, "token") and args.token is None:
        args.token = os.environ.get("ALTCRAFT_TOKEN")
    if hasattr(args, "admin_token") and args.admin_token is None:
        args.admin_token = os.environ.get("ALTCRAFT_ADMIN_TOKEN")
    secrets = [s for s in (getattr(args, "token", None), getattr(args, "admin_token", None)) if s]
    try:
        return int(asyncio.run(args.run(args)))
    except UsageError as exc:
        print(f"altcraft-async: usage error: {redact(str(exc), secrets)}", file=sys.stderr)
        return EXIT_USAGE
    except AltcraftError as exc:
        message = redact(f"{type(exc).__name__}: {exc}", secrets)
        print(f"altcraft-async: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("altcraft-async: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
