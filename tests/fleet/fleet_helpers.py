"""Shared pieces of the fleet tests: child processes and rates measured from recorded times."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio.abc import Process
from helpers import LoopLag as LoopLag  # re-exported: the fleet tests measure with it

CHILD = Path(__file__).with_name("fleet_child.py")
#: How long a child may take to start or to finish (a bound, never reached when all is well).
CHILD_DEADLINE = 60.0


@asynccontextmanager
async def child(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Process]:
    """A fleet_child.py process (``env`` added to ours), killed by its PID and reaped when the
    block ends."""
    environment = {**os.environ, **(env or {})}
    process = await anyio.open_process([sys.executable, str(CHILD), *args], env=environment)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        with anyio.fail_after(CHILD_DEADLINE):
            await process.wait()
        await process.aclose()


async def read_line(process: Process) -> str:
    """The child's next stdout line (bounded by CHILD_DEADLINE)."""
    assert process.stdout is not None
    line = b""
    with anyio.fail_after(CHILD_DEADLINE):
        while not line.endswith(b"\n"):
            chunk = await process.stdout.receive(1)
            line += chunk
    return line.decode().strip()


async def expect(process: Process, text: str) -> None:
    line = await read_line(process)
    assert line == text, f"child said {line!r}, expected {text!r}"


async def go(process: Process) -> None:
    assert process.stdin is not None
    await process.stdin.send(b"go\n")


def peak(times: Sequence[float], window: float) -> int:
    """The most of ``times`` that fall in any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
