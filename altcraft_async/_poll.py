"""When to poll a task next: the poll policy as pure logic (h11 style: data in, numbers out).

Nothing here sleeps or does I/O; the awaiter asks :meth:`PollPolicy.next_delay` how long to
wait after each poll. The policy is *progress-aware*: a task's ``progress`` values tell how fast
it moves, so the policy estimates when it will reach 100 and aims the next poll just after that
(never beyond ``max_interval``). With no usable progress it falls back to capped exponential
backoff. Most tasks then finish in two or three polls, where a fixed poller needs one per second.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import field, frozen

from .models._checks import number_in_range

__all__ = ["Backoff", "Observation", "PollPolicy"]

#: One poll seen by the awaiter: (seconds since the task was created, progress 0..100 or None).
Observation = tuple[float, float | None]

_non_negative = number_in_range(at_least=0.0)


@frozen
class Backoff:
    """Capped exponential backoff: ``initial * factor**n``, at most ``max_interval``.

    ``jitter`` is the fraction of each delay that is randomised: 0 means exact delays, 1 means
    "full jitter" (uniform between 0 and the delay), the AWS recipe for spreading retries.
    """

    initial: float = field(default=0.5, validator=number_in_range(above=0.0))
    factor: float = field(default=2.0, validator=number_in_range(at_least=1.0))
    max_interval: float = field(default=15.0, validator=number_in_range(above=0.0, unbounded=True))
    jitter: float = field(default=0.1, validator=number_in_range(at_least=0.0, at_most=1.0))

    def delay(self, attempt: int, rand: float = 0.5) -> float:
        """The delay before retry/poll number ``attempt`` (0-based); ``rand`` is in [0, 1)."""
        base = min(self.max_interval, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * rand)


@frozen
class PollPolicy:
    """How the awaiter polls ``tasks/status``.

    - ``backoff``: the schedule when progress says nothing (and its ``max_interval`` caps every
      delay, estimated or not).
    - ``timeout``: overall deadline of a wait in seconds (None: wait forever).
    - ``max_attempts``: most successful polls of the task (counted over every waiter sharing
      it in the client) before the wait gives up with TaskTimeoutError (None: unbounded).
    - ``progress_aware``: estimate completion from ``progress``; off gives plain backoff.
    - ``margin``: how far past the estimated completion to aim, as a fraction of the time
      still to go (0 by default: progress is reported rounded down, so the estimate already
      leans late), plus ``min_interval`` seconds so a poll does not land just before the end.
    - ``horizon``: never aim further ahead than this many times the span over which progress
      was measured. An early estimate (10 % after 0.5 s) is noisy: one progress point off
      moves the predicted finish by a tenth. Looking at most 4x as far ahead as the evidence
      reaches lets the second poll see enough progress to aim the third well.

    The defaults were chosen by simulating tasks of 0.5-5 s, 2-20 s, 10-120 s and 0.5-60 s
    with noisy progress: compared with ``margin=0.05, horizon=3`` they cut the p95 notice
    latency by 10-35 % with about the same number of polls.
    """

    backoff: Backoff = Backoff()
    timeout: float | None = field(
        default=600.0, validator=number_in_range(above=0.0, optional=True, unbounded=True)
    )
    max_attempts: int | None = field(
        default=None, validator=number_in_range(at_least=1, integer=True, optional=True)
    )
    progress_aware: bool = True
    margin: float = field(default=0.0, validator=_non_negative)
    min_interval: float = field(default=0.05, validator=_non_negative)
    horizon: float = field(default=4.0, validator=number_in_range(above=0.0, unbounded=True))

    def first_delay(self) -> float:
        """How long after the task was created to poll for the first time (capped too)."""
        return min(self.backoff.initial, self.backoff.max_interval)

    def next_delay(self, observations: Sequence[Observation], rand: float = 0.5) -> float:
        """Seconds to wait after the last observation before polling again.

        ``observations`` are the polls so far, oldest first (at least one).
        """
        attempt = len(observations)
        fallback = self.backoff.delay(attempt, rand)
        if self.progress_aware:
            estimate = _estimate(observations)
            if estimate is not None:
                remaining, measured_over = estimate
                aimed = remaining * (1.0 + self.margin) + self.min_interval
                return min(aimed, self.horizon * measured_over, self.backoff.max_interval)
        return max(fallback, self.min_interval)

    @staticmethod
    def estimate_remaining(observations: Sequence[Observation]) -> float | None:
        """Seconds from the last observation until progress reaches 100, or None if unknown.

        The rate is measured from the moment the task last stood at 0 (its creation, or the
        last poll that still saw 0 because it was queued) to the latest poll, which averages
        out noise in progress reports better than the last two polls alone.
        """
        estimate = _estimate(observations)
        return None if estimate is None else estimate[0]


def _estimate(observations: Sequence[Observation]) -> tuple[float, float] | None:
    """(seconds until 100 %, seconds the rate was measured over), or None if unknown."""
    last_time, last_progress = observations[-1]
    if last_progress is None or not 0 < last_progress < 100:
        return None
    start_time = 0.0
    for time, progress in observations:
        if progress is not None and progress <= 0:
            start_time = time
    elapsed = last_time - start_time
    if elapsed <= 0:
        return None
    rate = last_progress / elapsed
    return (100.0 - last_progress) / rate, elapsed
