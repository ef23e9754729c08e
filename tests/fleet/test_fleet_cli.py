"""``altcraft-async fleet start|status|results|unknown`` against a real redis-server: a run
started from a CSV, worked by run_pair against the fake (one start's reply lost), then read
back by the commands; the core CLI never imports redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from altcraft_async import AltcraftClient, SegmentRef
from altcraft_async.cli import main
from altcraft_async.fleet import StartLedger, run_pair
from altcraft_async.testing import FakeAltcraft, Fault, seeded_platform

from .test_fleet_ledger import counters_of

REFS = [SegmentRef(1, 1, 1), SegmentRef(2, 1, 1), SegmentRef(3, 1, 1)]


async def work(redis_url: str) -> dict[int, dict[str, dict[str, int]]]:
    """Run the pairs as a worker would; the first start's reply is lost (unknown)."""
    async with (
        FakeAltcraft(seeded_platform(profiles=50, segments=3, resources=1)) as fake,
        aioredis.Redis.from_url(redis_url) as redis,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        fake.faults.next("segments/refresh_counters", Fault.http(502, after_processing=True))
        ledger = StartLedger(redis, account="acme", run="r1")
        for ref in REFS:
            await run_pair(client, ledger, ref, "worker")
        return {ref.segment_id: counters_of(fake, ref.segment_id) for ref in REFS}


def fleet(redis_url: str, *words: str) -> list[str]:
    return ["fleet", *words, "--redis", redis_url, "--account", "acme"]


def test_fleet_commands(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refs = tmp_path / "refs.csv"
    refs.write_text("segment_id,resource_id,database_id\n1,1,1\n2,1,1\n3,1,1\n")
    assert main(fleet(redis_url, "start", str(refs), "--run-id", "r1", "--engine", "none")) == 0
    assert capsys.readouterr().out == "run r1: 3 pairs, 0 finished\n"
    counters = asyncio.run(work(redis_url))

    assert main(fleet(redis_url, "status", "r1", "--json")) == 0
    status = json.loads(capsys.readouterr().out)
    assert status == {
        "run": "r1",
        "total": 3,
        "started": 2,
        "done": 2,
        "failed": 0,
        "unknown": 1,
        "in_flight": 0,
    }
    assert main(fleet(redis_url, "status", "r1")) == 0
    assert "unknown" in capsys.readouterr().out

    assert main(fleet(redis_url, "results", "r1", "--json")) == 0
    results = json.loads(capsys.readouterr().out)
    assert [row["state"] for row in results] == ["unknown", "done", "done"]
    for row in results[1:]:
        segment = row["ref"]["segment_id"]
        channels = {item["channel"] for item in row["result"][0]["channels"]}
        assert channels == set(counters[segment])
    assert main(fleet(redis_url, "results", "r1")) == 0
    table = capsys.readouterr().out
    assert "unknown: " in table and "may have gone out" in table

    assert main(fleet(redis_url, "unknown", "r1")) == 1  # there is one: exit 1
    assert "may have gone out" in capsys.readouterr().out


def test_fleet_commands_need_a_redis_and_a_known_run(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["fleet", "status", "r1"]) == 2
    assert "--redis" in capsys.readouterr().err
    assert main(fleet(redis_url, "status", "nope")) == 1
    assert "no run 'nope'" in capsys.readouterr().err


def test_the_core_cli_does_not_import_redis() -> None:
    code = (
        "import sys, altcraft_async.cli as cli; cli.build_parser(); "
        "print(sorted(m for m in ('redis', 'arq', 'altcraft_async.fleet') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
