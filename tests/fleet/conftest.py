"""A real redis-server for the fleet tests: started once per session on a Unix socket, stopped
by its PID.

``redis-server`` comes from the distribution's packages (``apt-get install redis-server``;
.ci/run installs it when missing). Without it (or without the ``redis`` package, the
``[fleet]`` extra) the fleet tests are skipped on a developer's machine but fail when ``$CI``
is set, so CI can never pass by not running them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: How long redis-server may take to answer its first PING.
START_DEADLINE = 20.0


def _missing(what: str) -> None:
    message = f"the fleet tests need {what}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: failing instead of skipping)", pytrace=False)
    pytest.skip(message)


def _ping(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL (``unix://...``) of a redis-server private to this test session."""
    try:
        import redis  # noqa: F401
    except ImportError:
        _missing("the redis package (pip install -e '.[fleet]')")
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server (apt-get install redis-server)")
        raise AssertionError("unreachable")
    directory: Path = tmp_path_factory.mktemp("redis")
    socket = directory / "redis.sock"
    url = f"unix://{socket}"
    process = subprocess.Popen(
        [
            binary,
            "--port", "0",
            "--unixsocket", str(socket),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--databases", "16",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not (socket.exists() and _ping(url)):
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer PING in {START_DEADLINE} s")
            time.sleep(0.02)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's redis-server, emptied before each test."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server
