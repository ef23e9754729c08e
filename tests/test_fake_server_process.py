"""The standalone fake server as a real process: what it prints, what it serves, how it stops.

``altcraft-async fake-server`` (and ``python -m altcraft_async.testing``) runs as a child
process; the test reads its first line for the URL and tokens, makes real requests with an
AltcraftClient, then signals it. A process that ignored the signal would hang (the deadline
fails the test); one without a handler would end by the signal (returncode -15 or -2), not 0.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from altcraft_async import AltcraftClient
from altcraft_async.testing import seeded_platform

pytestmark = pytest.mark.anyio

CLI = ("-m", "altcraft_async", "fake-server")
MODULE = ("-m", "altcraft_async.testing")
BANNER = re.compile(
    r"FakeAltcraft listening on (?P<url>http://127\.0\.0\.1:\d+)  token=(?P<token>\S+)  "
    r"admin_token=(?P<admin_token>\S+)  \(test values, not secrets\)\n"
)
PROFILES = 300
DEADLINE = 60  # seconds for the child to start or to stop; it takes well under one


async def _first_line(process: Process) -> str:
    assert process.stdout is not None
    with anyio.fail_after(DEADLINE):
        line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 4096)
    return line.decode() + "\n"


async def _stop(process: Process, number: signal.Signals) -> tuple[int, str]:
    """Send ``number``; the exit code and everything on stderr."""
    assert process.stderr is not None
    process.send_signal(number)
    with anyio.fail_after(DEADLINE):
        code = await process.wait()
        err = b""
        async for chunk in process.stderr:
            err += chunk
    return code, err.decode()


@pytest.mark.parametrize(
    ("entry", "options", "tokens", "stop_signal"),
    [
        (CLI, (), ("test-token", "admin-token"), signal.SIGTERM),
        (CLI, ("--token", "tok-1", "--admin-token", "adm-2"), ("tok-1", "adm-2"), signal.SIGINT),
        (MODULE, ("--token", "tok-3"), ("tok-3", "admin-token"), signal.SIGTERM),
    ],
    ids=["cli-defaults-sigterm", "cli-tokens-sigint", "module-sigterm"],
)
async def test_prints_url_and_tokens_serves_them_and_stops_cleanly_on_a_signal(
    entry: tuple[str, ...],
    options: tuple[str, ...],
    tokens: tuple[str, str],
    stop_signal: signal.Signals,
) -> None:
    command = [sys.executable, "-W", "error", *entry, "--port", "0", "--profiles", str(PROFILES)]
    command += ["--plan", "immediate"]
    process = await anyio.open_process([*command, *options])
    try:
        banner = BANNER.fullmatch(await _first_line(process))
        assert banner is not None
        assert (banner["token"], banner["admin_token"]) == tokens
        async with AltcraftClient(
            banner["url"], token=banner["token"], admin_token=banner["admin_token"]
        ) as client:
            snapshots = await client.segments.refresh_and_wait(
                segment_id=1, resource_id=1, database_id=1, timeout=DEADLINE
            )
            queue = await client.admin.sender_queue_stats(sender_id=1)
        expected = seeded_platform(profiles=PROFILES, segments=50, seed=1)
        counts = {c.channel: c.status.all for c in snapshots[0].channels}
        assert counts == {
            name: values["all"] for name, values in expected.segment_counters(1, 1).items()
        }
        assert [row.total for row in queue] == [row["total"] for row in expected.queue_stats(1)]

        code, err = await _stop(process, stop_signal)
        assert code == 0  # a graceful stop, not death by the signal (-15 / -2)
        assert err == ""
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()


@pytest.mark.parametrize(
    ("entry", "prog"),
    [(CLI, "altcraft-async fake-server"), (MODULE, "python -m altcraft_async.testing")],
)
def test_help_names_the_command_and_shows_every_default(entry: tuple[str, ...], prog: str) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", *entry, "--help"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {prog} [-h]")
    options = re.findall(r"^  (--[a-z-]+)", result.stdout, flags=re.MULTILINE)
    assert options[:2] == ["--host", "--port"]  # "-h, --help" starts with "-h"
    text = " ".join(result.stdout.split())  # help lines wrap anywhere
    assert text.count("(default: ") == len(options) == 11
    for default in ("127.0.0.1", "8080", "test-token", "admin-token", "10000", "realistic"):
        assert f"(default: {default})" in text
    assert "not secrets" in text
