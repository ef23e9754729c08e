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
"""

from ._chaos import ChaosKind, ChaosMix, ChaosProxy, ChaosRecord, ChaosStats
from ._clock import Clock, ManualClock, RealClock
from ._dialects import Dialect
from ._env import client_from_env, realistic_plan
from ._faults import ANY_PATH, Fault, Faults
from ._mock import MockTransport
from ._platform import STATUSES, Platform, PlatformError, Profile, QueueRow, Rule, Snapshot
from ._recording import RequestRecord, Stats
from ._server import FakeAltcraft
from ._tasks import TaskPlan, TaskRecord
from ._webhooks import WebhookRecord

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
]
