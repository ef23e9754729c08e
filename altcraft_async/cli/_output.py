"""What every command shares: exit codes, the usage error, tables, JSON, the progress bar, and
redaction of the tokens from whatever reaches the terminal.

The commands import this module; it imports none of them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TextIO

import attrs

from .._codec import unstructure
from .._fanout import Outcome
from ..models import ChannelCounters, CountersSnapshot

__all__ = [
    "COUNTER_COLUMNS",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ProgressBar",
    "Runner",
    "UsageError",
    "cell",
    "channel_rows",
    "format_table",
    "outcome_record",
    "redact",
    "snapshot_rows",
    "to_json",
]

#: What a row of the command table runs: the parsed arguments in, the exit code out.
Runner = Callable[[argparse.Namespace], Awaitable[int]]

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT

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


# --- tables -----------------------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain text table with right-aligned numbers."""
    cells = [[cell(value) for value in row] for row in rows]
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


def cell(value: Any) -> str:
    """One value as table text: ``-`` for a missing one."""
    return "-" if value is None else str(value)


def _numeric(value: str) -> bool:
    return value.replace(".", "", 1).isdigit()


def channel_rows(channels: Iterable[ChannelCounters], *prefix: Any) -> list[list[Any]]:
    """One table row per channel: ``prefix``, the channel, then :data:`COUNTER_COLUMNS`."""
    return [
        [*prefix, item.channel, *(getattr(item.status, name) for name in COUNTER_COLUMNS)]
        for item in channels
    ]


def snapshot_rows(snapshots: Iterable[CountersSnapshot], *prefix: Any) -> list[list[Any]]:
    """The channel rows of every snapshot, in order."""
    rows: list[list[Any]] = []
    for snapshot in snapshots:
        rows.extend(channel_rows(snapshot.channels, *prefix))
    return rows


# --- JSON -------------------------------------------------------------------------------------


def to_json(data: Any) -> str:
    """``--json`` output: models as their plain data, indented."""
    return json.dumps(unstructure(data), indent=2, default=str)


def outcome_record(outcome: Outcome[Any]) -> dict[str, Any]:
    """One refresh outcome as plain data for ``--json``: the ref's fields, result and error."""
    return {
        **attrs.asdict(outcome.ref),
        "result": outcome.result,
        "error": str(outcome.error) if outcome.error else None,
    }


# --- progress ---------------------------------------------------------------------------------


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


# --- secrets ----------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text``, also as escaped by ``repr`` or JSON (belt and braces:
    no message should hold one)."""
    forms = {form for secret in secrets if secret for form in _escaped_forms(secret)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _escaped_forms(secret: str) -> tuple[str, ...]:
    return (secret, repr(secret)[1:-1], json.dumps(secret)[1:-1])
