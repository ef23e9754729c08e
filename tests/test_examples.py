"""Every example runs to completion against the embedded fake (its clock sped up 20x)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "after   email"),
        ("fan_out.py", "60 refreshed, 0 failed"),
        ("web_app.py", "GET /segments/1/counters -> 200"),
        ("worker.py", "all jobs done; pending tokens left: 0"),
        ("test_with_fake.py", "3 passed"),
    ],
)
def test_example_runs(script: str, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTCRAFT_")}
    env["ALTCRAFT_FAKE_TIME_SCALE"] = "20"
    result = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout
    assert "test-token" not in result.stdout + result.stderr
