"""pytest fixtures for the fake platform (registered as the ``altcraft_async`` pytest11 plugin).

The fixtures are async generators run by anyio's pytest plugin, so use them from tests marked
``@pytest.mark.anyio`` (with an ``anyio_backend`` fixture returning ``"asyncio"``: the fake is
built on aiohttp, which needs asyncio). Configure the fake per test with a marker whose keyword
arguments go to ``FakeAltcraft`` (or to ``FakeAltcraft.seeded`` when ``seeded=True``)::

    @pytest.mark.anyio
    @pytest.mark.altcraft_fake(clock="manual", task_plan=TaskPlan.after_polls(2))
    async def test_wait(altcraft_client, altcraft_fake): ...

pytest loads this module into every run of every project that installs the SDK, so it imports
the fake (aiohttp.web and all) only when a test asks for one of its fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .._client import AltcraftClient
    from ._server import FakeAltcraft

__all__ = ["altcraft_client", "altcraft_fake", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "altcraft_fake(seeded=False, **options): options for the altcraft_fake fixture "
        "(FakeAltcraft keyword arguments, or FakeAltcraft.seeded ones when seeded=True)",
    )


@pytest.fixture
async def altcraft_fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeAltcraft]:
    """A started :class:`FakeAltcraft`, stopped after the test."""
    from ._server import FakeAltcraft

    marker = request.node.get_closest_marker("altcraft_fake")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if options.pop("seeded", False):
        fake = FakeAltcraft.seeded(**options)
    else:
        fake = FakeAltcraft(**options)
    async with fake:
        yield fake


@pytest.fixture
async def altcraft_client(altcraft_fake: FakeAltcraft) -> AsyncIterator[AltcraftClient]:
    """An ``AltcraftClient`` pointed at ``altcraft_fake`` with its tokens, closed afterwards."""
    from .._client import AltcraftClient

    async with AltcraftClient(
        altcraft_fake.url, token=altcraft_fake.token, admin_token=altcraft_fake.admin_token
    ) as client:
        yield client
