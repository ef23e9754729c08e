"""``client_from_env``: a real platform when the environment names one, the fake otherwise.

Examples and scripts use it so that they run anywhere: with ``ALTCRAFT_URL`` and
``ALTCRAFT_TOKEN`` (and optionally ``ALTCRAFT_ADMIN_TOKEN``) set they talk to that platform;
without, they start an embedded seeded :class:`FakeAltcraft` and talk to it.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .._client import AltcraftClient
from ._server import FakeAltcraft
from ._tasks import TaskPlan

__all__ = ["client_from_env", "realistic_plan"]


def realistic_plan(rng: random.Random) -> TaskPlan:
    """Tasks that take 0.5-5 s, like refreshes of mid-sized segments on a real platform."""
    return TaskPlan.after_seconds(rng.uniform(0.5, 5.0))


@asynccontextmanager
async def client_from_env(
    *,
    profiles: int = 5_000,
    segments: int = 20,
    seed: int = 1,
    fake_options: dict[str, Any] | None = None,
    **client_options: Any,
) -> AsyncIterator[AltcraftClient]:
    """Yield a client for ``$ALTCRAFT_URL``, or for an embedded seeded fake when it is unset.

    ``profiles``, ``segments``, ``seed`` and ``fake_options`` shape the fake (its tasks take
    0.5-5 s unless ``fake_options`` gives another ``task_plan``; ``$ALTCRAFT_FAKE_TIME_SCALE``
    speeds its clock up, e.g. ``10`` for tests); ``client_options`` go to
    :class:`AltcraftClient` either way.
    """
    url = os.environ.get("ALTCRAFT_URL")
    if url:
        token = os.environ.get("ALTCRAFT_TOKEN", "")
        admin_token = os.environ.get("ALTCRAFT_ADMIN_TOKEN") or None
        async with AltcraftClient(
            url, token=token, admin_token=admin_token, **client_options
        ) as client:
            yield client
        return
    options: dict[str, Any] = {"task_plan": realistic_plan, **(fake_options or {})}
    time_scale = os.environ.get("ALTCRAFT_FAKE_TIME_SCALE")
    if time_scale:
        options.setdefault("time_scale", float(time_scale))
    fake = FakeAltcraft.seeded(profiles=profiles, segments=segments, seed=seed, **options)
    async with (
        fake,
        AltcraftClient(
            fake.url, token=fake.token, admin_token=fake.admin_token, **client_options
        ) as client,
    ):
        yield client
