"""Shared test configuration: async tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

import asyncio
import os
import warnings
from typing import Any

import pytest

#: ``ALTCRAFT_TEST_UVLOOP=1`` runs the tests on uvloop's event loop: anyio's (the fixture below)
#: and, through uvloop's event loop policy, every loop a test makes itself (``asyncio.run``,
#: ``asyncio.new_event_loop``, ``anyio.run``, helpers.FakeThread). tests/test_event_loop.py
#: checks that the loops really are uvloop's. uvloop is in the dev extra.
UVLOOP = os.environ.get("ALTCRAFT_TEST_UVLOOP", "") not in ("", "0")

if UVLOOP:
    import uvloop

    with warnings.catch_warnings():  # the policy API is deprecated from Python 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "long: a full-size reliability run (tens of seconds); CI runs it, "
        "deselect with -m 'not long' for a quick local run",
    )


@pytest.fixture
def anyio_backend() -> str | tuple[str, dict[str, Any]]:
    if UVLOOP:
        return ("asyncio", {"use_uvloop": True})
    return "asyncio"


#: The integration modules run once per fake dialect (altcraft_async.testing.Dialect): the fake
#: fills in what the docs leave open the way another server would, and the client must read it.
#: ``ALTCRAFT_TEST_DIALECTS=plain`` (a comma-separated list) narrows the matrix: CI runs it whole
#: once and the other Pythons' runs on ``plain`` alone.
DIALECT_MODULES = frozenset(
    {"test_client", "test_awaiter", "test_fanout", "test_push", "test_databases"}
)
DIALECTS = tuple(
    name.strip()
    for name in os.environ.get("ALTCRAFT_TEST_DIALECTS", "plain,go,proxy,all").split(",")
    if name.strip()
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.path.stem in DIALECT_MODULES:
        # a test of timing alone (seconds of real time each) runs on one dialect
        one = metafunc.definition.get_closest_marker("one_dialect") is not None
        metafunc.parametrize("fake_dialect", DIALECTS[:1] if one else DIALECTS, indirect=True)


@pytest.fixture(autouse=True)
def fake_dialect(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The dialect every FakeAltcraft the test builds speaks, set as $ALTCRAFT_FAKE_DIALECT
    (process-wide, so fakes built in other threads speak it too); None outside
    DIALECT_MODULES, which keep whatever the environment says."""
    name: str | None = getattr(request, "param", None)
    if name is not None:
        monkeypatch.setenv("ALTCRAFT_FAKE_DIALECT", name)
    return name


@pytest.fixture(autouse=True)
def _no_account_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own ALTCRAFT_URL / ALTCRAFT_TOKEN / ALTCRAFT_ADMIN_TOKEN must not reach the
    clients tests build (the client reads them when an argument is omitted); a test that wants
    them sets them itself."""
    for name in ("ALTCRAFT_URL", "ALTCRAFT_TOKEN", "ALTCRAFT_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
