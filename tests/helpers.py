"""Helpers shared by several test modules: a small hand-built platform, a threaded fake and a
probe of the event loop's lateness."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from altcraft_async.testing import FakeAltcraft, Platform, QueueRow, Rule

T = TypeVar("T")


def small_platform() -> Platform:
    """One database, resource 24 (email, sms), five profiles, a static and a rule segment."""
    platform = Platform()
    platform.add_database(1)
    platform.add_resource(24, database_ids=1, channels=("email", "sms"))
    statuses = ["subscribed", "subscribed", "unsubscribed", "unconfirmed", "hardbounced"]
    ids = [
        platform.add_profile(
            1,
            email=f"p{n}@example.com",
            phone=f"+7900000000{n}",
            fields={"age": 20 + 10 * n, "crm": f"C{n}"},
            subscriptions={(24, "email"): status, (24, "sms"): "subscribed"},
        )
        for n, status in enumerate(statuses)
    ]
    platform.add_static_segment(1, ids[:4], segment_id=7)
    platform.add_rule_segment(1, Rule.between("age", 30, 50), segment_id=8)
    relation = platform.add_relation(1, relation_id=3)
    platform.set_relation_props(
        relation.id, ids[0], {"orders": {"top": {"a1": 5, "b2": 3}, "sum": 8}, "store": "Omsk"}
    )
    sender = platform.add_sender(119)
    sender.rows += [
        QueueRow(306, 4591, "gmail.com", hold=0, new=100, proc=100),
        QueueRow(306, 4914, "mail.ru", hold=80, new=10, proc=10, retry=40),
        QueueRow(412, 4914, "gmail.com", new=5),
    ]
    return platform


class FakeThread:
    """A FakeAltcraft serving from its own thread and event loop."""

    def __init__(self, fake: FakeAltcraft) -> None:
        self.fake = fake
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.fake:
            self.url = self.fake.url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> FakeThread:
        self._thread.start()
        assert self._ready.wait(30), "the fake did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the fake's loop (its state is not thread-safe)."""
        assert self._loop is not None

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)


def sdk_tasks() -> set[asyncio.Task[Any]]:
    """asyncio tasks other than this test's own, the fake server's (its request handlers, and
    the loop's accept of a new connection: a fake that closes every connection accepts one per
    request) and the test runner's."""
    current = asyncio.current_task()
    return {
        task
        for task in asyncio.all_tasks()
        if task is not current
        and not getattr(task.get_coro(), "__qualname__", "").startswith(
            ("RequestHandler.", "TestRunner.", "BaseSelectorEventLoop._accept_connection")
        )
    }


class LoopLag:
    """How late this event loop runs what is due. On a loaded machine a timer fires late and
    a fake in the test's own process stamps a request when its loop gets to it, so a bound on
    real time allows ``worst``: the most lateness of a tick seen while the probe ran (requests
    stamped within one second were received within ``1 + worst`` seconds)."""

    TICK = 0.01

    def __init__(self) -> None:
        self.worst = 0.0

    async def measure(self) -> None:
        """Tick until cancelled, keeping the worst lateness of a tick (a probe, not a wait
        for a condition)."""
        while True:
            due = anyio.current_time() + self.TICK
            await anyio.sleep(self.TICK)
            self.worst = max(self.worst, anyio.current_time() - due)


def prints_in_a_subprocess(script: str, expected: str) -> None:
    """Run ``script`` in a fresh interpreter and check it printed ``expected``: for code that,
    when it regresses, spins forever; a subprocess fails it in 20 s instead of hanging the run."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20
    )
    assert done.stdout.strip() == expected, done.stderr
