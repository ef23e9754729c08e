"""Call overhead: ``client.segments.get_counters`` through the SDK versus raw aiohttp.

Both clients send the same bytes (built once by the SDK's sans-I/O layer) to the same lean
server (``benchmarks._server``) running in another process, and both read the whole reply. The
raw client stops there; the SDK also validates arguments, encodes, checks the envelope and
types the reply into ``list[ChannelCounters]``.

A third client, ``floor``, is the least any SDK returning these frozen models must do: encode
the arguments, send, read, parse (orjson, or ElementTree for XML) and build the three
``ChannelCounters`` and ``CounterStatus`` by hand, with no validation, no error handling and
no layers. Its ratio to raw is the ceiling of the SDK's on the same machine.

Runs change the clients' order every round and the reported numbers are medians
over the rounds: the machine is noisy, and comparing neighbouring runs cancels slow drifts.
``sdk_to_floor`` (issue 17's goal: >= 0.95 at concurrency 10 and 100) is the median of the
SDK's per-round ratio to the floor, the two measured in the same rounds; ``sdk_to_floor_min``
and ``_max`` are the spread of those ratios.
``*_cpu_us`` is this process's CPU time per request.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from altcraft_async import AltcraftClient, ChannelCounters, CounterStatus
from altcraft_async._codec import Format
from altcraft_async._sansio import build_request
from altcraft_async.api._specs import SEGMENTS_GET_COUNTERS

from ._proc import spawn

__all__ = ["run_overhead"]

TOKEN = "abcdefghijklmnqrstuvwxyz"
ARGS = {"segment_id": 7, "resource_id": 24, "database_id": 1}

Call = Callable[[], Awaitable[Any]]


async def _drive(call: Call, concurrency: int, duration: float) -> tuple[int, float, float]:
    """Run ``concurrency`` workers calling ``call`` for ``duration`` seconds.

    Returns (requests done, wall seconds, CPU seconds of this process).
    """
    # Warm up: open the connections and fill the caches outside the timed section.
    await asyncio.gather(*(call() for _ in range(concurrency)))
    done = 0
    stop = False

    async def worker() -> None:
        nonlocal done
        while not stop:
            await call()
            done += 1

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    await asyncio.sleep(duration)
    stop = True
    await asyncio.gather(*workers)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return done, wall, cpu


async def _run_sdk(
    base_url: str, fmt: Format, concurrency: int, duration: float
) -> tuple[int, float, float]:
    async with AltcraftClient(base_url, token=TOKEN, format=fmt, max_connections=100) as client:
        segments = client.segments

        async def call() -> Any:
            return await segments.get_counters(segment_id=7, resource_id=24, database_id=1)

        return await _drive(call, concurrency, duration)


async def _run_raw(
    base_url: str, fmt: Format, concurrency: int, duration: float
) -> tuple[int, float, float]:
    request = build_request(SEGMENTS_GET_COUNTERS, ARGS, token=TOKEN, fmt=fmt)
    url = base_url + request.path
    body = request.body
    headers = dict(request.headers)
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> Any:
            async with session.post(url, data=body, headers=headers) as response:
                return await response.read()

        return await _drive(call, concurrency, duration)


async def _run_floor(
    base_url: str, fmt: Format, concurrency: int, duration: float
) -> tuple[int, float, float]:
    import xml.etree.ElementTree as ET

    url = base_url + SEGMENTS_GET_COUNTERS.url_path
    kind = "application/json" if fmt == "json" else "application/xml"
    headers = {"Content-Type": kind, "Accept": kind}
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> list[ChannelCounters]:
            if fmt == "json":
                document = {"token": TOKEN, "id": 7, "resource_id": 24, "list_id": 1}
                body = orjson.dumps({**document, "format": "json"})
            else:
                body = (
                    f"<xml><token>{TOKEN}</token><id>7</id><resource_id>24</resource_id>"
                    "<list_id>1</list_id><format>xml</format></xml>"
                ).encode()
            async with session.post(url, data=body, headers=headers) as response:
                reply = await response.read()
            if fmt == "json":
                return [
                    ChannelCounters(item["channel"], CounterStatus(**item["status"]))
                    for item in orjson.loads(reply)["data"]
                ]
            return [
                ChannelCounters(
                    item.findtext("channel", ""),
                    CounterStatus(
                        **{leaf.tag: int(leaf.text or 0) for leaf in item.iterfind("status/*")}
                    ),
                )
                for item in ET.fromstring(reply).iterfind("data")
            ]

        return await _drive(call, concurrency, duration)


#: The clients compared in each round.
_CLIENTS = {"sdk": _run_sdk, "raw": _run_raw, "floor": _run_floor}
#: Their orders, one per round in turn: over six rounds each client runs before each other
#: one three times, so whatever the order favours cancels out.
_ORDERS = list(itertools.permutations(_CLIENTS))


def _summary(runs: dict[str, list[tuple[int, float, float]]]) -> dict[str, float]:
    """Medians of each client's requests/s and CPU per request, of its per-round ratio to
    the raw client's requests/s, and of the SDK's to the floor's (issue 17's goal: >= 0.95)."""
    rps = {name: [n / wall for n, wall, _ in done] for name, done in runs.items()}

    def ratios(name: str, to: str) -> list[float]:
        return [mine / other for mine, other in zip(rps[name], rps[to], strict=True)]

    def ratio(name: str, to: str = "raw") -> float:
        return round(statistics.median(ratios(name, to)), 3)

    def cpu_us(name: str) -> float:
        return round(statistics.median(cpu / n * 1e6 for n, _, cpu in runs[name]), 1)

    return {
        "sdk_rps": round(statistics.median(rps["sdk"]), 1),
        "raw_rps": round(statistics.median(rps["raw"]), 1),
        "ratio": ratio("sdk"),
        "floor_rps": round(statistics.median(rps["floor"]), 1),
        "floor_ratio": ratio("floor"),
        "sdk_to_floor": ratio("sdk", "floor"),
        # the spread of the per-round ratios: on a shared machine it is the honest error bar
        "sdk_to_floor_min": round(min(ratios("sdk", "floor")), 3),
        "sdk_to_floor_max": round(max(ratios("sdk", "floor")), 3),
        "sdk_cpu_us": cpu_us("sdk"),
        "raw_cpu_us": cpu_us("raw"),
        "floor_cpu_us": cpu_us("floor"),
    }


async def _measure(
    base_url: str,
    formats: tuple[Format, ...],
    concurrencies: tuple[int, ...],
    rounds: int,
    duration: float,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for fmt in formats:
        for concurrency in concurrencies:
            runs: dict[str, list[tuple[int, float, float]]] = {name: [] for name in _CLIENTS}
            for round_no in range(rounds):
                for name in _ORDERS[round_no % len(_ORDERS)]:
                    runs[name].append(await _CLIENTS[name](base_url, fmt, concurrency, duration))
            row = {"format": fmt, "concurrency": concurrency, **_summary(runs), "rounds": rounds}
            log(
                f"  overhead {fmt:4} c={concurrency:<3} sdk {row['sdk_rps']:>8} rps  "
                f"raw {row['raw_rps']:>8} rps  ratio {row['ratio']:.3f}  "
                f"floor ratio {row['floor_ratio']:.3f}  sdk/floor {row['sdk_to_floor']:.3f} "
                f"({row['sdk_to_floor_min']:.3f}-{row['sdk_to_floor_max']:.3f})"
            )
            rows.append(row)
    return rows


def run_overhead(
    *,
    rounds: int,
    duration: float,
    concurrencies: tuple[int, ...] = (1, 10, 100),
    formats: tuple[Format, ...] = ("json", "xml"),
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The ``overhead`` rows: one per (format, concurrency)."""
    with spawn("benchmarks._server") as server:
        return asyncio.run(_measure(server.base_url, formats, concurrencies, rounds, duration, log))
