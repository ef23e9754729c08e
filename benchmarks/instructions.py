"""Instructions per call, counted by valgrind: a figure that does not move with the machine's load.

For each client (raw aiohttp, ``floor``, the SDK: see ``_icount.py``), endpoint
(``get_counters``; ``poll``, a ``tasks/status`` of a running task) and format, the client
program runs twice under ``valgrind --tool=cachegrind --cache-sim=no``, with the same warm-up
and then ``short`` or ``long`` calls at concurrency 10; the figure is the difference of the two
counts divided by ``long - short``: start-up, warm-up and shutdown cancel out. Only the client
is counted; the server (``benchmarks._server``) runs natively in its own process. The runs are
children forked by one valgrind'd process after its imports, so start-up is paid once.

Wall-clock ratios on a shared 2-core machine scatter by 20-30 %; this count repeats to about
0.1 %, so CI can hold the SDK to a budget: :data:`BUDGETS`, in instructions per call over raw
aiohttp sending the same bytes (the issue's target, and a ratchet that fails a regression).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from attrs import frozen

from ._icount import CLIENTS, ENDPOINTS
from ._proc import spawn

__all__ = ["BUDGETS", "Budget", "Counts", "over_budget", "run_instructions", "to_target"]

FORMATS = ("json", "xml")


@frozen
class Budget:
    """What the SDK may spend over raw aiohttp on one figure, in instructions per call:
    ``target``, the goal of issue 17, and ``ratchet``, the figure last reached plus 5 %
    (rounded up to 1 k). The command fails above the ratchet (a regression) and reports how
    far each figure still is from its target; lower the ratchet as the figures come down."""

    target: int
    ratchet: int


#: By (endpoint, format). Ratchets from the quick run after the send path's third pass
#: (+96.1 k, +205.7 k, +39.4 k, +84.9 k).
BUDGETS: dict[tuple[str, str], Budget] = {
    ("get_counters", "json"): Budget(target=100_000, ratchet=100_000),
    ("get_counters", "xml"): Budget(target=260_000, ratchet=216_000),
    ("poll", "json"): Budget(target=50_000, ratchet=40_000),
    ("poll", "xml"): Budget(target=130_000, ratchet=90_000),
}


@frozen
class Counts:
    """How many calls each run makes: ``warmup`` first, then ``short`` or ``long``."""

    warmup: int
    short: int
    long: int


MODES = {
    "full": Counts(200, 200, 1_200),
    "quick": Counts(100, 100, 600),
    "smoke": Counts(20, 20, 60),
}

_ROOT = Path(__file__).resolve().parent.parent

#: The child's environment: a fixed hash seed (set and dict orders, hence instruction counts,
#: otherwise vary per run) and no CA store to load (aiohttp builds its TLS contexts at import,
#: ~0.5 G instructions under valgrind per run; every request here is plain HTTP).
_CHILD_ENV = {"PYTHONHASHSEED": "0", "SSL_CERT_FILE": os.devnull, "SSL_CERT_DIR": os.devnull}


def valgrind() -> str | None:
    """valgrind's path, or None when it is not installed."""
    return shutil.which("valgrind")


def _counts(
    valgrind_path: str,
    base_url: str,
    counts: Counts,
    figures: list[tuple[str, str, str]],
    jobs: int,
    log: Callable[[str], None],
) -> dict[tuple[str, str, str], float]:
    """Instructions per call of each figure: ``_icount`` forks a child per figure and count
    under one valgrind (its start-up is paid once); each child's count is in its own file."""
    with tempfile.TemporaryDirectory(prefix="icount-") as tmp:
        command = [
            valgrind_path,
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={tmp}/cg.%p",
            sys.executable,
            "-m",
            "benchmarks._icount",
            base_url,
            str(counts.warmup),
            str(jobs),
            f"{counts.short},{counts.long}",
            *(":".join(figure) for figure in figures),
        ]
        env = {**os.environ, **_CHILD_ENV}
        process = subprocess.Popen(
            command, cwd=_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        totals: dict[tuple[str, int], int] = {}
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:
            name, n, pid, code = line.split()
            if code != "0":
                continue
            totals[name, int(n)] = _summary(Path(tmp) / f"cg.{pid}")
            if (name, counts.short) in totals and (name, counts.long) in totals:
                per_call = (totals[name, counts.long] - totals[name, counts.short]) / (
                    counts.long - counts.short
                )
                log(f"  instructions {name.replace(':', ' '):24} {per_call / 1000:8.1f} k per call")
        errors = process.stderr.read()
        if process.wait() != 0:
            raise RuntimeError(f"the instruction count failed:\n{_without_valgrind(errors)}")
    return {
        figure: (totals[":".join(figure), counts.long] - totals[":".join(figure), counts.short])
        / (counts.long - counts.short)
        for figure in figures
    }


def _summary(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"{path}: no summary line from cachegrind")


def _without_valgrind(stderr: str) -> str:
    """The child's own error output, without valgrind's ``==PID==`` banner lines."""
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("=="))[-3000:]


def over_budget(rows: Iterable[dict[str, Any]]) -> list[str]:
    """One line per row whose SDK overhead over raw exceeds its ratchet (a regression)."""
    return [
        f"{row['endpoint']} {row['format']}: SDK +{row['sdk_over_raw'] / 1000:.1f} k "
        f"instructions per call over raw, ratchet +{row['ratchet'] / 1000:.0f} k"
        for row in rows
        if row.get("sdk_over_raw", 0) > row["ratchet"]
    ]


def to_target(rows: Iterable[dict[str, Any]]) -> list[str]:
    """One line per row: how far its SDK overhead is from the issue's target."""
    lines = []
    for row in rows:
        if "sdk_over_raw" not in row:
            continue
        gap = row["sdk_over_raw"] - row["target"]
        where = f"{gap / 1000:.1f} k over" if gap > 0 else f"{-gap / 1000:.1f} k under"
        target, ratchet = row["target"] / 1000, row["ratchet"] / 1000
        lines.append(
            f"{row['endpoint']} {row['format']}: SDK +{row['sdk_over_raw'] / 1000:.1f} k, "
            f"target +{target:.0f} k ({where}), ratchet +{ratchet:.0f} k"
        )
    return lines


def run_instructions(
    *,
    mode: str = "full",
    endpoints: Iterable[str] = tuple(ENDPOINTS),
    formats: Iterable[str] = FORMATS,
    clients: Iterable[str] = CLIENTS,
    jobs: int | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One row per (endpoint, format): instructions per call of each client, the overheads
    over raw and the SDK's budget. Raises RuntimeError when valgrind is missing."""
    valgrind_path = valgrind()
    if valgrind_path is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    counts = MODES[mode]
    endpoints, formats, clients = tuple(endpoints), tuple(formats), tuple(clients)
    if "raw" not in clients:
        clients = ("raw", *clients)
    figures = [(c, e, f) for e in endpoints for f in formats for c in clients]
    with spawn("benchmarks._server") as server:
        results = _counts(
            valgrind_path, server.base_url, counts, figures, jobs or os.cpu_count() or 1, log
        )
    rows: list[dict[str, Any]] = []
    for endpoint in endpoints:
        for fmt in formats:
            raw = results["raw", endpoint, fmt]
            row: dict[str, Any] = {"endpoint": endpoint, "format": fmt, "raw": round(raw)}
            for client in clients:
                if client != "raw":
                    mine = results[client, endpoint, fmt]
                    row[client] = round(mine)
                    row[f"{client}_over_raw"] = round(mine - raw)
            budget = BUDGETS[endpoint, fmt]
            row["target"], row["ratchet"] = budget.target, budget.ratchet
            row["calls"] = counts.long - counts.short
            rows.append(row)
    return rows
