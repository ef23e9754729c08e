"""The benchmark suite of altcraft_async: ``python -m benchmarks [--quick | --smoke]``.

Sections: call overhead against raw aiohttp (:mod:`.overhead`), fan-out efficiency against
FakeAltcraft (:mod:`.fanout`), memory per awaited task (:mod:`.memory`) and import time
(:mod:`.importtime`). Servers run in separate processes (:mod:`._server`, :mod:`._fake`).
See ``benchmarks/README.md`` for what each number means.
"""
