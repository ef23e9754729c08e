"""``python -m benchmarks [--quick | --smoke] [--json PATH] [--only SECTION ...]``,
``python -m benchmarks --instructions [--quick | --smoke] [--json PATH]``.

Runs the four sections (see ``benchmarks/README.md``), prints one table per section and, with
``--json``, writes ``{"overhead": [...], "fanout": [...], "memory": {...}, "import": {...},
"meta": {...}}``. ``--quick`` finishes in under a minute on two cores; ``--smoke`` shrinks
everything further (it only proves that every part runs).

``--instructions`` runs only the instruction count (``instructions.py``, valgrind): a table of
instructions per call for raw aiohttp, ``floor`` and the SDK, and exit status 1 when the SDK's
overhead over raw exceeds its ratchet in ``instructions.BUDGETS`` (and how far each figure is
from its target).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from .fanout import run_fanout
from .importtime import run_import
from .instructions import over_budget, run_instructions, to_target
from .memory import run_memory
from .overhead import run_overhead

SECTIONS = ("overhead", "fanout", "memory", "import")


@frozen
class Sizes:
    """How much each section does in one mode."""

    overhead_rounds: int
    overhead_seconds: float
    fanout_sizes: tuple[int, ...]
    fanout_duration_scale: float
    raw_probe_s: float
    memory_tasks: int
    import_runs: int


MODES = {
    "full": Sizes(6, 1.5, (1_000, 10_000), 1.0, 3.0, 10_000, 21),
    "quick": Sizes(3, 0.2, (200,), 1.0, 1.0, 2_000, 5),
    "smoke": Sizes(1, 0.1, (20,), 0.2, 0.3, 200, 1),
}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_fmt(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)
    ]
    lines = [title, "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def _in_thousands(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: f"{value / 1000:.1f}" if isinstance(value, int) and key != "calls" else value
        for key, value in row.items()
    }


def render(results: dict[str, Any]) -> str:
    """The human-readable tables of ``results`` (sections that ran)."""
    parts: list[str] = []
    if "overhead" in results:
        parts.append(
            _table(
                "Call overhead: segments.get_counters, SDK vs raw aiohttp (requests/s, medians)",
                results["overhead"],
                (
                    "format",
                    "concurrency",
                    "sdk_rps",
                    "raw_rps",
                    "ratio",
                    "floor_ratio",
                    "sdk_to_floor",
                    "sdk_to_floor_min",
                    "sdk_to_floor_max",
                    "sdk_cpu_us",
                    "raw_cpu_us",
                    "floor_cpu_us",
                ),
            )
        )
    if "fanout" in results:
        parts.append(
            _table(
                "Fan-out against FakeAltcraft (tasks of 0.5-5 s; ratios vs fixed-1s)",
                results["fanout"],
                (
                    "tasks",
                    "policy",
                    "client_cpu_ms_per_task",
                    "client_utilisation",
                    "client_cpu_ms_per_task_gc_tuned",
                    "wall_s",
                    "longest_task_s",
                    "wall_over_longest",
                    "polls_per_task",
                    "requests_per_task",
                    "fewer_polls_vs_fixed",
                    "notice_p50_s",
                    "notice_p95_s",
                    "p95_vs_fixed",
                    "peak_connections",
                    "client_cpu_s",
                    "server_cpu_s",
                    "request_rate",
                    "peak_request_rate",
                    "raw_rps",
                ),
            )
        )
    if "memory" in results:
        parts.append(
            _table(
                "Memory per pending awaited task (bytes)",
                [results["memory"]],
                ("tasks", "rss_bytes_per_task", "bytes_per_task", "peak_bytes_per_task"),
            )
        )
    if "instructions" in results:
        parts.append(
            _table(
                "Instructions per call (valgrind, client process only; thousands)",
                [_in_thousands(row) for row in results["instructions"]],
                (
                    "endpoint",
                    "format",
                    "raw",
                    "floor",
                    "sdk",
                    "floor_over_raw",
                    "sdk_over_raw",
                    "target",
                    "ratchet",
                    "calls",
                ),
            )
        )
    if "import" in results:
        parts.append(
            _table(
                "Import time in a fresh interpreter (seconds, medians)",
                [results["import"]],
                ("sdk_s", "aiohttp_s", "ratio", "runs", "testing_imported"),
            )
        )
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="under a minute on two cores")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes: only proves it runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="only the instruction count (valgrind); exit 1 when over a ratchet",
    )
    parser.add_argument(
        "--memory-tasks", type=int, metavar="N", help="parked waits of the memory row (e.g. 100000)"
    )
    parser.add_argument("--fleet", action="store_true", help="only the fleet row (arq, Redis)")
    args = parser.parse_args(argv)
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.fleet:
        from .fleet import main as fleet_main

        return fleet_main(name, args.json)
    sizes = MODES[name]
    sections = ("instructions",) if args.instructions else args.only or SECTIONS

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    results: dict[str, Any] = {}
    log(f"benchmarks ({name} mode): {', '.join(sections)}")
    if "instructions" in sections:
        results["instructions"] = run_instructions(mode=name, log=log)
    if "overhead" in sections:
        results["overhead"] = run_overhead(
            rounds=sizes.overhead_rounds, duration=sizes.overhead_seconds, log=log
        )
    if "fanout" in sections:
        results["fanout"] = run_fanout(
            sizes=sizes.fanout_sizes,
            raw_probe_from=max(sizes.fanout_sizes) if name != "quick" else 10**9,
            raw_probe_s=sizes.raw_probe_s,
            duration_scale=sizes.fanout_duration_scale,
            gc_tuned_from=max(sizes.fanout_sizes) if name != "quick" else 10**9,
            log=log,
        )
    if "memory" in sections:
        results["memory"] = run_memory(tasks=args.memory_tasks or sizes.memory_tasks, log=log)
    if "import" in sections:
        results["import"] = run_import(runs=sizes.import_runs, log=log)
    results["meta"] = {
        "mode": name,
        "seconds": round(time.perf_counter() - started, 1),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    print(render(results))
    meta = results["meta"]
    print(f"\n{name} run: {meta['seconds']} s on {meta['nproc']} x {meta['cpu']}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    for line in to_target(results.get("instructions", ())):
        print(f"to target: {line}", file=sys.stderr)
    over = over_budget(results.get("instructions", ()))
    for line in over:
        print(f"over the ratchet: {line}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
