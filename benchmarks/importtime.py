"""Import time of ``altcraft_async`` versus ``aiohttp`` alone, each in a fresh interpreter.

Each sample is one new ``python -c`` process timing ``import <module>`` with
``time.perf_counter`` (interpreter start-up excluded). Samples of the two modules alternate and
the medians are reported; ``ratio`` is ``sdk_s / aiohttp_s``. ``testing_imported`` says whether
importing the SDK dragged in ``altcraft_async.testing`` (it must not).

Bytecode is cached in a private ``PYTHONPYCACHEPREFIX`` directory, written by one discarded
warm-up import of each module: both are then measured as installed packages are used (from
``.pyc``), whatever ``PYTHONDONTWRITEBYTECODE`` says and however stale the source tree's own
``__pycache__`` is, and nothing is written next to the sources.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_import"]

_ROOT = Path(__file__).resolve().parent.parent
_PROBE = (
    "import json, sys, time\n"
    "t, c = time.perf_counter(), time.process_time()\n"
    "import {module}\n"
    "elapsed, cpu = time.perf_counter() - t, time.process_time() - c\n"
    "testing = 'altcraft_async.testing' in sys.modules\n"
    "print(json.dumps({{'s': elapsed, 'cpu': cpu, 'testing': testing}}))\n"
)


def _sample(module: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        cwd=_ROOT,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_import(*, runs: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The ``import`` section."""
    sdk: list[float] = []
    base: list[float] = []
    sdk_cpu: list[float] = []
    base_cpu: list[float] = []
    testing = False
    with tempfile.TemporaryDirectory(prefix="altcraft-bench-pyc-") as cache:
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for module in ("aiohttp", "altcraft_async"):
            _sample(module, env)  # warm-up: compiles the bytecode into the cache
        for index in range(runs):
            order = ("altcraft_async", "aiohttp") if index % 2 else ("aiohttp", "altcraft_async")
            for module in order:
                sample = _sample(module, env)
                if module == "aiohttp":
                    base.append(sample["s"])
                    base_cpu.append(sample["cpu"])
                else:
                    sdk.append(sample["s"])
                    sdk_cpu.append(sample["cpu"])
                    testing = testing or bool(sample["testing"])
    sdk_s = statistics.median(sdk)
    aiohttp_s = statistics.median(base)
    result = {
        "sdk_s": round(sdk_s, 4),
        "aiohttp_s": round(aiohttp_s, 4),
        "ratio": round(sdk_s / aiohttp_s, 3),
        "sdk_cpu_s": round(statistics.median(sdk_cpu), 4),
        "aiohttp_cpu_s": round(statistics.median(base_cpu), 4),
        "cpu_ratio": round(statistics.median(sdk_cpu) / statistics.median(base_cpu), 3),
        "min_ratio": round(min(sdk) / min(base), 3),
        "runs": runs,
        "testing_imported": testing,
    }
    log(
        f"  import altcraft_async {result['sdk_s'] * 1000:.1f} ms, aiohttp "
        f"{result['aiohttp_s'] * 1000:.1f} ms, ratio {result['ratio']:.3f}"
    )
    return result
