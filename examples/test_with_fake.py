"""Testing your own code against the fake platform with the ``altcraft_fake`` pytest fixture.

Installing altcraft-async registers a pytest plugin with two fixtures: ``altcraft_fake`` (a
started FakeAltcraft) and ``altcraft_client`` (an AltcraftClient bound to it). Configure the
fake per test with ``@pytest.mark.altcraft_fake(...)``.

    python examples/test_with_fake.py     # or: pytest examples/test_with_fake.py
"""

import subprocess
import sys

import pytest

from altcraft_async import AltcraftClient, TaskFailedError
from altcraft_async.testing import FakeAltcraft, TaskPlan


# --- the code under test: your application's function -------------------------------------
async def sendable_emails(client: AltcraftClient, segment_id: int) -> int:
    """Refresh a segment and return how many profiles can receive email."""
    snapshots = await client.segments.refresh_and_wait(
        segment_id=segment_id, resource_id=1, database_id=1, timeout=10
    )
    email = snapshots[0].channel("email")
    return email.status.subscribed_sendable or 0 if email else 0


# --- its tests -------------------------------------------------------------------------------
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.altcraft_fake(seeded=True, profiles=2_000, segments=5)
async def test_counts_sendable_profiles(
    altcraft_client: AltcraftClient, altcraft_fake: FakeAltcraft
) -> None:
    expected = altcraft_fake.platform.segment_counters(3, 1)["email"]["subscribed_sendable"]
    assert await sendable_emails(altcraft_client, 3) == expected


@pytest.mark.anyio
@pytest.mark.altcraft_fake(seeded=True, profiles=2_000, segments=5)
async def test_sees_a_new_subscriber(
    altcraft_client: AltcraftClient, altcraft_fake: FakeAltcraft
) -> None:
    platform = altcraft_fake.platform
    segment = platform.add_static_segment(1, platform.profile_ids(1)[:100])
    before = await sendable_emails(altcraft_client, segment.id)
    profile_id = platform.add_profile(
        1, email="new@example.com", subscriptions={(1, "email"): "subscribed"}
    )
    segment.static = {*(segment.static or ()), profile_id}
    assert await sendable_emails(altcraft_client, segment.id) == before + 1


@pytest.mark.anyio
@pytest.mark.altcraft_fake(seeded=True, profiles=500, segments=2, task_plan=TaskPlan.fails())
async def test_reports_a_failed_refresh(altcraft_client: AltcraftClient) -> None:
    with pytest.raises(TaskFailedError):
        await sendable_emails(altcraft_client, 1)


if __name__ == "__main__":
    sys.exit(
        subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__])
    )
