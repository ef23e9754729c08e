"""The tests run on the loop they claim: uvloop's with ``ALTCRAFT_TEST_UVLOOP=1``, else asyncio's.

CI runs the integration tests a second time on uvloop (the ``uvloop`` session of noxfile.py,
which includes this file); these checks make sure that run cannot silently fall back to the
default loop, neither in anyio's runner nor in the loops tests make themselves.
"""

from __future__ import annotations

import asyncio
import threading

import anyio
import pytest
from conftest import UVLOOP
from helpers import FakeThread

from altcraft_async.testing import FakeAltcraft

EXPECTED = "uvloop" if UVLOOP else "asyncio"


def library(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` for uvloop's loop, ``asyncio`` for the standard library's."""
    return type(loop).__module__.partition(".")[0]


async def running_library() -> str:
    return library(asyncio.get_running_loop())


@pytest.mark.anyio
async def test_anyio_runs_the_tests_on_the_expected_loop() -> None:
    assert await running_library() == EXPECTED


def test_asyncio_run_uses_the_expected_loop() -> None:
    assert asyncio.run(running_library()) == EXPECTED


def test_new_event_loop_is_the_expected_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert library(loop) == EXPECTED
    finally:
        loop.close()


def test_anyio_run_uses_the_expected_loop() -> None:
    assert anyio.run(running_library) == EXPECTED


def test_a_loop_in_another_thread_is_the_expected_loop() -> None:
    found: list[str] = []
    thread = threading.Thread(target=lambda: found.append(asyncio.run(running_library())))
    thread.start()
    thread.join(30)
    assert found == [EXPECTED]


def test_the_threaded_fake_runs_on_the_expected_loop() -> None:
    with FakeThread(FakeAltcraft()) as served:
        assert served.call(lambda: library(asyncio.get_running_loop())) == EXPECTED


@pytest.mark.anyio
async def test_the_loop_is_uvloop_exactly_in_uvloop_mode() -> None:
    uvloop = pytest.importorskip("uvloop")  # in the dev extra; uvloop mode cannot start without it
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop) is UVLOOP
