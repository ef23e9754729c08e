"""A stateful fake Altcraft platform for tests, benchmarks and demos (think moto for AWS).

``FakeAltcraft`` serves the SDK's endpoints over real HTTP from an in-memory :class:`Platform`
whose counters are computed from profile data; refresh tasks follow a :class:`TaskPlan` on a
real, sped-up or manual clock; faults are scripted or random; every request is recorded. A
:class:`Dialect` (or ``$ALTCRAFT_FAKE_DIALECT``) makes it fill in what the docs leave open the
way another server would. :class:`ChaosProxy` sits between a client and the fake and breaks
the TCP stream itself (resets, truncation, stalls, dribbled bytes). The core package never
imports this one: it is only for tests and tooling.

    async with FakeAltcraft.seeded(profiles=10_000, clock="manual") as fake:
        ...  # point a client at fake.url with fake.token

The names load on first use (PEP 562): the pytest plugin, loaded into every pytest run of a
project that installs the SDK, imports this package, and must not pay for aiohttp.web and the
whole fake in runs that never use its fixtures.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports on first use
    from ._chaos import ChaosKind, ChaosMix, ChaosProxy, ChaosRecord, ChaosStats
    from ._clock import Clock, ManualClock, RealClock
    from ._dialects import Dialect
    from ._env import client_from_env, realistic_plan
    from ._faults import ANY_PATH, Fault, Faults
    from ._mock import MockTransport
    from ._platform import STATUSES, Platform, PlatformError, Profile, QueueRow, Rule, Snapshot
    from ._recording import RequestRecord, Stats
    from ._seed import seeded_platform
    from ._server import FakeAltcraft
    from ._tasks import TaskPlan, TaskRecord
    from ._webhooks import WebhookRecord

#: Each submodule and the public names it defines: the imports above, one row each.
_LAZY: dict[str, tuple[str, ...]] = {
    "._chaos": ("ChaosKind", "ChaosMix", "ChaosProxy", "ChaosRecord", "ChaosStats"),
    "._clock": ("Clock", "ManualClock", "RealClock"),
    "._dialects": ("Dialect",),
    "._env": ("client_from_env", "realistic_plan"),
    "._faults": ("ANY_PATH", "Fault", "Faults"),
    "._mock": ("MockTransport",),
    "._platform": (
        "STATUSES",
        "Platform",
        "PlatformError",
        "Profile",
        "QueueRow",
        "Rule",
        "Snapshot",
    ),
    "._recording": ("RequestRecord", "Stats"),
    "._seed": ("seeded_platform",),
    "._server": ("FakeAltcraft",),
    "._tasks": ("TaskPlan", "TaskRecord"),
    "._webhooks": ("WebhookRecord",),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}

__all__ = [
    "ANY_PATH",
    "STATUSES",
    "ChaosKind",
    "ChaosMix",
    "ChaosProxy",
    "ChaosRecord",
    "ChaosStats",
    "Clock",
    "Dialect",
    "FakeAltcraft",
    "Fault",
    "Faults",
    "ManualClock",
    "MockTransport",
    "Platform",
    "PlatformError",
    "Profile",
    "QueueRow",
    "RealClock",
    "RequestRecord",
    "Rule",
    "Snapshot",
    "Stats",
    "TaskPlan",
    "TaskRecord",
    "WebhookRecord",
    "client_from_env",
    "realistic_plan",
    "seeded_platform",
]


if not TYPE_CHECKING:  # hidden from type checkers, which would take any unknown name as Any

    def __getattr__(name: str) -> Any:
        """A public name, imported from its submodule on first use and kept here afterwards."""
        module = _MODULE_OF.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
