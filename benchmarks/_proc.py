"""Start a benchmark server in a separate process and talk to its control endpoint."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["ServerProcess", "get_json", "serve_until_stdin_closes", "spawn"]

_ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """A running server subprocess: its ``port``, ``base_url`` and other announced ports."""

    def __init__(self, process: subprocess.Popen[str], port: int, ports: dict[str, int]) -> None:
        self.process = process
        self.port = port
        self.ports = ports
        self.base_url = f"http://127.0.0.1:{port}"

    def url(self, name: str) -> str:
        """The base URL of another port the server announced (e.g. ``CONTROL``)."""
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def pid(self) -> int:
        return self.process.pid


@contextmanager
def spawn(module: str, args: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """Run ``python -m module --port 0 *args``; it must print ``PORT <n>`` when ready.

    Lines ``NAME <n>`` printed before that announce other ports (``server.ports[NAME]``).

    The server exits when its stdin closes, which happens here on exit (and if we die).
    """
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=_ROOT,
    )
    try:
        assert process.stdout is not None
        ports: dict[str, int] = {}
        while "PORT" not in ports:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{module} exited before printing its port")
            name, _, value = line.strip().partition(" ")
            if value.isdigit():
                ports[name] = int(value)
        yield ServerProcess(process, ports["PORT"], ports)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def get_json(url: str, timeout: float = 30.0) -> Any:
    """A blocking GET of a JSON document (control endpoints only, never in a timed section)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


async def serve_until_stdin_closes(
    app: web.Application,
    host: str,
    port: int,
    *,
    name: str = "PORT",
    then: dict[str, int] | None = None,
) -> None:
    """The server side of :func:`spawn`: serve ``app``, print ``NAME <port>`` and then the
    ``then`` lines (``PORT`` last: the parent reads until it), and stop when stdin closes,
    so that no server outlives the benchmark that started it."""
    from aiohttp import web  # only server processes need it

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
        print(f"{name} {runner.addresses[0][1]}", flush=True)
        for other, number in (then or {}).items():
            print(f"{other} {number}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()
