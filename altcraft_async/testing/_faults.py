"""Fault injection: scripted per endpoint and call number, or seeded random chaos.

A fault either replaces the reply *before* the request is processed (the default for HTTP
errors, 429, dropped connections and envelope errors: like a proxy or overloaded front end
refusing the call, so a task-start call creates no task) or damages the reply *after*
processing (the default for truncated and malformed bodies, and available for any fault with
``after_processing=True``: the task exists although the client never learns its id). This split
is what lets tests assert "no duplicate task starts" under chaos.

Call numbers are 1-based per endpoint path and count every request, faulted or not, since the
last ``FakeAltcraft.reset()``. Priority: a queued :meth:`Faults.next` fault, then a
:meth:`Faults.script` rule, then chaos.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from http import HTTPStatus
from typing import Literal

from attrs import define, frozen

__all__ = ["ANY_PATH", "Decision", "Fault", "FaultKind", "Faults"]

FaultKind = Literal["http", "rate_limited", "drop", "delay", "truncated", "malformed", "api_error"]
#: Matches every endpoint in :meth:`Faults.script` and :meth:`Faults.next`.
ANY_PATH = "*"


@frozen
class Fault:
    """One way a reply goes wrong; build it with the class methods."""

    kind: FaultKind
    status: int = 200
    body: bytes = b""
    retry_after: float | None = None
    seconds: float = 0.0
    code: int = 0
    error_text: str = ""
    after_processing: bool = False

    @classmethod
    def http(
        cls, status: int = 503, body: bytes | None = None, *, after_processing: bool = False
    ) -> Fault:
        """A bare HTTP error with a non-envelope body (``Bad Gateway``, an HTML page...)."""
        if body is None:
            body = HTTPStatus(status).phrase.encode()
        return cls("http", status=status, body=body, after_processing=after_processing)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0) -> Fault:
        """HTTP 429 with ``Retry-After: <seconds>`` (omitted when None; fractions allowed)."""
        return cls("rate_limited", status=429, body=b"Too Many Requests", retry_after=retry_after)

    @classmethod
    def drop(cls, *, after_processing: bool = False) -> Fault:
        """Close the connection without a reply (the client sees a disconnect)."""
        return cls("drop", after_processing=after_processing)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """A slow reply: wait ``seconds`` (real time) before processing, then answer normally."""
        return cls("delay", seconds=seconds)

    @classmethod
    def truncated(cls, *, after_processing: bool = True) -> Fault:
        """Announce the full Content-Length, send half the body, close the connection."""
        return cls("truncated", after_processing=after_processing)

    @classmethod
    def malformed(
        cls, body: bytes = b"<html>oops: not JSON or XML", *, after_processing: bool = True
    ) -> Fault:
        """HTTP 200 with a body that is neither JSON nor XML (the declared type is kept)."""
        return cls("malformed", body=body, after_processing=after_processing)

    @classmethod
    def api_error(cls, code: int, error_text: str) -> Fault:
        """An envelope error (400, 401, 402, 403 or any code) instead of processing."""
        return cls("api_error", code=code, error_text=error_text)

    def describe(self) -> str:
        """A short label for recordings (``http 503``, ``rate_limited retry_after=1``...)."""
        detail = {
            "http": f" {self.status}",
            "rate_limited": f" retry_after={self.retry_after}",
            "delay": f" {self.seconds}s",
            "api_error": f" {self.code}",
        }.get(self.kind, "")
        return f"{self.kind}{detail}" + (" after processing" if self.after_processing else "")


@frozen
class Decision:
    """What happens to one call: a real delay first, then at most one fault.

    ``label`` names what was applied, for the request recording.
    """

    delay: float = 0.0
    fault: Fault | None = None
    label: str | None = None


@define
class _Chaos:
    rng: random.Random
    weights: list[tuple[float, Fault]]
    latency: tuple[float, float]
    paths: frozenset[str] | None


_HTTP_5XX = (500, 502, 503, 504)


class Faults:
    """The fault schedule of one fake (``fake.faults``)."""

    def __init__(self) -> None:
        self._queued: dict[str, deque[Fault]] = {}
        self._scripted: list[tuple[str, frozenset[int] | None, Fault]] = []
        self._chaos: _Chaos | None = None

    def script(self, path: str, fault: Fault, *, calls: Iterable[int] | None = None) -> None:
        """Apply ``fault`` to the given 1-based call numbers of ``path`` (every call if None)."""
        numbers = None if calls is None else frozenset(calls)
        if numbers is not None and min(numbers, default=1) < 1:
            raise ValueError("call numbers are 1-based")
        self._scripted.append((path, numbers, fault))

    def next(self, path: str, fault: Fault, *, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` calls of ``path``."""
        self._queued.setdefault(path, deque()).extend([fault] * times)

    def chaos(
        self,
        *,
        seed: int = 1,
        http_5xx: float = 0.0,
        drop: float = 0.0,
        rate_limited: float = 0.0,
        malformed: float = 0.0,
        truncated: float = 0.0,
        latency: tuple[float, float] = (0.0, 0.0),
        retry_after: float = 0.05,
        paths: Iterable[str] | None = None,
    ) -> None:
        """Random faults with the given per-call probabilities, drawn from ``Random(seed)``.

        Every call of a chosen path draws once, in arrival order, so a sequential client sees
        the same faults for the same seed. ``latency`` is a uniform real delay added to calls.
        """
        weights = [
            (http_5xx, Fault.http(503)),
            (drop, Fault.drop()),
            (rate_limited, Fault.rate_limited(retry_after)),
            (malformed, Fault.malformed()),
            (truncated, Fault.truncated()),
        ]
        if sum(probability for probability, _ in weights) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        self._chaos = _Chaos(
            random.Random(seed),
            [item for item in weights if item[0] > 0],
            latency,
            None if paths is None else frozenset(paths),
        )

    def clear(self) -> None:
        """Remove every scripted, queued and chaos fault."""
        self._queued.clear()
        self._scripted.clear()
        self._chaos = None

    def decide(self, path: str, call: int) -> Decision:
        """The fate of call number ``call`` of ``path``."""
        for key in (path, ANY_PATH):
            queue = self._queued.get(key)
            if queue:
                return _as_decision(queue.popleft())
        for scripted_path, numbers, fault in self._scripted:
            if scripted_path in (path, ANY_PATH) and (numbers is None or call in numbers):
                return _as_decision(fault)
        chaos = self._chaos
        if chaos is None or (chaos.paths is not None and path not in chaos.paths):
            return Decision()
        delay = chaos.rng.uniform(*chaos.latency) if chaos.latency[1] > 0 else 0.0
        draw = chaos.rng.random()
        for probability, fault in chaos.weights:
            if draw < probability:
                return Decision(delay, fault, fault.describe())
            draw -= probability
        return Decision(delay)


def _as_decision(fault: Fault) -> Decision:
    if fault.kind == "delay":
        return Decision(delay=fault.seconds, label=fault.describe())
    return Decision(fault=fault, label=fault.describe())
