"""The poll policy and backoff as pure logic: table-driven, no event loop."""

from __future__ import annotations

import math
import random
import re

import pytest

from altcraft_async import Backoff, InvalidRequestError, PollPolicy, RetryPolicy


@pytest.mark.parametrize(
    ("backoff", "attempt", "rand", "expected"),
    [
        (Backoff(initial=0.5, factor=2.0, max_interval=15.0, jitter=0.0), 0, 0.9, 0.5),
        (Backoff(initial=0.5, factor=2.0, max_interval=15.0, jitter=0.0), 3, 0.9, 4.0),
        (Backoff(initial=0.5, factor=2.0, max_interval=15.0, jitter=0.0), 10, 0.9, 15.0),
        (Backoff(initial=0.5, factor=2.0, max_interval=15.0, jitter=0.0), 10_000, 0.0, 15.0),
        # full jitter: uniform between 0 and the delay
        (Backoff(initial=1.0, factor=2.0, max_interval=15.0, jitter=1.0), 2, 0.25, 3.0),
        (Backoff(initial=1.0, factor=2.0, max_interval=15.0, jitter=1.0), 2, 0.0, 4.0),
        # 10 % jitter only shortens a delay by up to a tenth
        (Backoff(initial=1.0, factor=3.0, max_interval=100.0, jitter=0.1), 1, 0.5, 2.85),
    ],
)
def test_backoff_delay(backoff: Backoff, attempt: int, rand: float, expected: float) -> None:
    assert backoff.delay(attempt, rand) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("settings", "kwargs", "message"),
    [
        (Backoff, {"initial": 0}, "initial must be greater than 0.0"),
        (Backoff, {"factor": 0.5}, "factor must be at least 1.0"),
        (Backoff, {"max_interval": 0}, "max_interval must be greater than 0.0"),
        (Backoff, {"jitter": 1.5}, "jitter must be at most 1.0"),
        (Backoff, {"jitter": -0.1}, "jitter must be at least 0.0"),
        (Backoff, {"initial": "1"}, "initial must be a finite number, got '1'"),
        (Backoff, {"initial": math.nan}, "initial must be a finite number"),
        (PollPolicy, {"timeout": 0}, "timeout must be greater than 0.0"),
        (PollPolicy, {"timeout": -1}, "timeout must be greater than 0.0"),
        (PollPolicy, {"timeout": math.nan}, "timeout must be a number or None, got nan"),
        (PollPolicy, {"timeout": -math.inf}, "timeout must be a number or None, got -inf"),
        (PollPolicy, {"margin": math.inf}, "margin must be a finite number, got inf"),
        (PollPolicy, {"max_attempts": 0}, "max_attempts must be at least 1"),
        (PollPolicy, {"max_attempts": 2.5}, "max_attempts must be an int or None"),
        (PollPolicy, {"max_attempts": True}, "max_attempts must be an int or None"),
        (PollPolicy, {"margin": -0.1}, "margin must be at least 0.0"),
        (PollPolicy, {"min_interval": None}, "min_interval must be a finite number, got None"),
        (PollPolicy, {"horizon": 0}, "horizon must be greater than 0.0"),
        (RetryPolicy, {"attempts": 0}, "attempts must be at least 1"),
        (RetryPolicy, {"attempts": 3.0}, "attempts must be an int"),
        (RetryPolicy, {"retry_after_cap": -1}, "retry_after_cap must be at least 0.0"),
        (RetryPolicy, {"deadline": 0}, "deadline must be greater than 0.0"),
    ],
)
def test_settings_reject_bad_values_with_a_typed_error(
    settings: type, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        settings(**kwargs)


@pytest.mark.parametrize(
    ("settings", "kwargs"),
    [
        (PollPolicy, {"timeout": None, "max_attempts": None}),
        (PollPolicy, {"timeout": 1, "max_attempts": 1, "margin": 0, "min_interval": 0}),
        (Backoff, {"initial": 0.01, "factor": 1, "jitter": 0}),
        (Backoff, {"jitter": 1}),
        (RetryPolicy, {"attempts": 1, "retry_after_cap": 0, "deadline": 0.5}),
        # infinity means "no limit" where a setting is a limit
        (PollPolicy, {"timeout": math.inf, "horizon": math.inf}),
        (Backoff, {"max_interval": math.inf}),
        (RetryPolicy, {"retry_after_cap": math.inf, "deadline": math.inf}),
    ],
)
def test_settings_accept_values_on_their_bounds(settings: type, kwargs: dict[str, object]) -> None:
    settings(**kwargs)


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        # 20 % after 1 s from creation: 80 % to go at 20 %/s
        ([(1.0, 20.0)], 4.0),
        # queued until 2 s, then 25 % in 1 s: the rate counts from the last 0
        ([(1.0, 0.0), (2.0, 0.0), (3.0, 25.0)], 3.0),
        ([(1.0, 10.0), (2.0, 50.0)], 2.0),
        # no information: not started, no progress field, already 100, nonsense
        ([(1.0, 0.0)], None),
        ([(1.0, None)], None),
        ([(1.0, 100.0)], None),
        ([(0.0, 30.0)], None),
    ],
)
def test_estimate_remaining(
    observations: list[tuple[float, float | None]], expected: float | None
) -> None:
    estimate = PollPolicy.estimate_remaining(observations)
    if expected is None:
        assert estimate is None
    else:
        assert estimate == pytest.approx(expected)


def test_progress_aware_delay_aims_just_after_estimated_completion() -> None:
    policy = PollPolicy(margin=0.05, min_interval=0.05)
    # 40 % after 2 s: done at 5 s, i.e. 3 s after the poll; aim 3 * 1.05 + 0.05 later
    assert policy.next_delay([(2.0, 40.0)]) == pytest.approx(3.2)


def test_an_early_estimate_looks_at_most_horizon_times_the_evidence_ahead() -> None:
    # 10 % after 0.5 s predicts 4.5 s more (aimed at 4.5 + min_interval 0.05); with horizon 3
    # the next poll comes 1.5 s later
    assert PollPolicy(horizon=3.0).next_delay([(0.5, 10.0)]) == pytest.approx(1.5)
    assert PollPolicy(horizon=100.0).next_delay([(0.5, 10.0)]) == pytest.approx(4.55)
    # the span counts from the last poll that still saw 0 (the task was queued until 2 s)
    assert PollPolicy(horizon=2.0).next_delay([(2.0, 0.0), (2.5, 10.0)]) == pytest.approx(1.0)


def test_progress_aware_delay_never_exceeds_max_interval() -> None:
    policy = PollPolicy(backoff=Backoff(max_interval=2.0))
    assert policy.next_delay([(1.0, 1.0)]) == 2.0


def test_without_progress_the_policy_backs_off_exponentially() -> None:
    policy = PollPolicy(backoff=Backoff(initial=0.5, factor=2.0, max_interval=3.0, jitter=0.0))
    delays = [policy.next_delay([(1.0, None)] * n) for n in range(1, 6)]
    assert delays == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_progress_awareness_can_be_switched_off() -> None:
    policy = PollPolicy(backoff=Backoff(initial=0.5, factor=2.0, jitter=0.0), progress_aware=False)
    assert policy.next_delay([(1.0, 20.0)]) == 1.0


def test_first_poll_comes_after_the_initial_delay() -> None:
    assert PollPolicy(backoff=Backoff(initial=0.3)).first_delay() == 0.3


@pytest.mark.parametrize(("horizon", "most_polls"), [(3.0, 3), (1000.0, 2)])
def test_linear_task_is_found_done_in_few_polls(horizon: float, most_polls: int) -> None:
    """A task whose progress grows linearly is noticed just after it ends, in few polls."""
    policy = PollPolicy(horizon=horizon)
    for duration in (0.7, 1.3, 2.0, 3.5, 5.0):
        clock = policy.first_delay()
        observations: list[tuple[float, float | None]] = []
        polls = 0
        while True:
            polls += 1
            progress = min(100.0, 100.0 * clock / duration)
            observations.append((clock, progress))
            if progress >= 100.0:
                break
            clock += policy.next_delay(observations)
        assert polls <= most_polls, duration
        assert clock - duration <= 0.05 * duration + policy.min_interval + 1e-9


def _simulate(policy: PollPolicy, durations: list[float], seed: int) -> tuple[float, list[float]]:
    """Poll tasks of the given durations whose progress is time-proportional plus ±3 points of
    noise, rounded down (as the fake reports it); returns (mean polls, notice delays)."""
    rng = random.Random(seed)
    polls = 0
    notices: list[float] = []
    for duration in durations:
        clock = policy.first_delay()
        observations: list[tuple[float, float | None]] = []
        progress = 0
        while True:
            polls += 1
            if clock >= duration:
                notices.append(clock - duration)
                break
            noisy = int(100 * clock / duration + rng.uniform(-3.0, 3.0))
            progress = max(progress, min(99, noisy))
            observations.append((clock, float(progress)))
            clock += policy.next_delay(observations, rng.random())
    return polls / len(durations), notices


def _p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * len(values)) - 1]


@pytest.mark.parametrize(("low", "high"), [(0.5, 5.0), (2.0, 20.0), (10.0, 120.0)])
def test_default_policy_notices_sooner_than_the_old_defaults_with_as_few_polls(
    low: float, high: float
) -> None:
    rng = random.Random(11)
    durations = [rng.uniform(low, high) for _ in range(2_000)]
    polls, notices = _simulate(PollPolicy(), durations, seed=3)
    old_polls, old_notices = _simulate(PollPolicy(margin=0.05, horizon=3.0), durations, seed=3)
    assert polls <= old_polls * 1.03
    assert _p95(notices) < 0.9 * _p95(old_notices)


def test_default_policy_meets_the_fan_out_targets_on_half_to_five_second_tasks() -> None:
    """The benchmark's load (0.5-5 s): at most 3 polls per task, and a p95 notice latency
    under half of what a fixed 1 s poller gets (~0.95 s)."""
    rng = random.Random(5)
    durations = [rng.uniform(0.5, 5.0) for _ in range(2_000)]
    polls, notices = _simulate(PollPolicy(), durations, seed=9)
    fixed = PollPolicy(
        backoff=Backoff(initial=1.0, factor=1.0, max_interval=1.0, jitter=0.0),
        progress_aware=False,
    )
    fixed_polls, fixed_notices = _simulate(fixed, durations, seed=9)
    assert polls <= 3.0
    assert fixed_polls > 3.0
    assert _p95(notices) < 0.5 * _p95(fixed_notices)
