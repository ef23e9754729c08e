"""The benchmark suite runs end to end (``python -m benchmarks --smoke``) and writes its JSON.

Benchmarks are not tests: nothing here checks a timing, only that every section ran, printed
its rows and produced the documented JSON shape.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

OVERHEAD_KEYS = {"format", "concurrency", "sdk_rps", "raw_rps", "ratio"}
FANOUT_KEYS = {
    "tasks",
    "policy",
    "wall_s",
    "longest_task_s",
    "polls_per_task",
    "notice_p50_s",
    "notice_p95_s",
}


def test_smoke_run_prints_every_row_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-W", "error", "-m", "benchmarks", "--smoke", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    text = completed.stdout

    results = json.loads(out.read_text())
    assert {"overhead", "fanout", "memory", "import"} <= set(results)

    overhead = results["overhead"]
    pairs = {(row["format"], row["concurrency"]) for row in overhead}
    assert pairs == {(fmt, c) for fmt in ("json", "xml") for c in (1, 10, 100)}
    for row in overhead:
        assert set(row) >= OVERHEAD_KEYS
        assert row["sdk_rps"] > 0 and row["raw_rps"] > 0 and row["ratio"] > 0
        assert row["floor_rps"] > 0 and row["floor_ratio"] > 0
        assert row["sdk_to_floor"] > 0  # issue 17's column: SDK over floor, same rounds

    fanout = results["fanout"]
    assert {row["policy"] for row in fanout} == {"default", "fixed-1s", "exponential", "push"}
    for row in fanout:
        assert set(row) >= FANOUT_KEYS
        assert row["completed"] == row["tasks"] and row["errors"] == 0
        assert row["requests_per_task"] >= 1 and row["notice_p95_s"] is not None
        if row["policy"] != "push":  # push is noticed by webhook: it may need no poll at all
            assert row["polls_per_task"] >= 1
    # the largest default row ran a second time with the collector tuned (docs/guides/fan-out.md)
    (tuned,) = [row for row in fanout if "client_cpu_ms_per_task_gc_tuned" in row]
    assert tuned["policy"] == "default" and tuned["client_cpu_ms_per_task_gc_tuned"] > 0
    assert tuned["polls_per_task_gc_tuned"] >= 1

    memory = results["memory"]
    assert {"tasks", "bytes_per_task"} <= set(memory) and memory["bytes_per_task"] > 0

    imports = results["import"]
    assert {"sdk_s", "aiohttp_s", "ratio"} <= set(imports)
    assert imports["testing_imported"] is False

    # Every row made it into the printed tables.
    for title in ("Call overhead", "Fan-out", "Memory per pending", "Import time"):
        assert title in text
    table_rows = [line.split() for line in text.splitlines()]
    for fmt in ("json", "xml"):
        for concurrency in ("1", "10", "100"):
            assert any(cells[:2] == [fmt, concurrency] for cells in table_rows), (fmt, concurrency)
    for policy in ("default", "fixed-1s", "exponential", "push"):
        assert any(len(cells) > 1 and cells[1] == policy for cells in table_rows), policy


def test_instruction_count_clients_all_run_natively() -> None:
    """The program ``--instructions`` counts under valgrind, run without it: every figure's
    child (each client, endpoint and format) makes its calls against the lean server and exits
    0, so what valgrind counts is a run that succeeded."""
    from benchmarks._icount import CLIENTS, ENDPOINTS
    from benchmarks._proc import spawn

    figures = [f"{c}:{e}:{f}" for c in CLIENTS for e in ENDPOINTS for f in ("json", "xml")]
    command = [sys.executable, "-W", "error", "-m", "benchmarks._icount"]
    with spawn("benchmarks._server") as server:
        completed = subprocess.run(
            [*command, server.base_url, "5", "2", "3,7", *figures],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = [line.split() for line in completed.stdout.splitlines()]
    assert sorted((name, n) for name, n, _, _ in lines) == sorted(
        (figure, n) for figure in figures for n in ("3", "7")
    )
    assert all(code == "0" for *_, code in lines)
