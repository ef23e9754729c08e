"""One meaning per keyword: every method that sends takes the same per-call options, and they
do what the README says (``timeout`` = the whole call, ``request_timeout`` = each HTTP try,
``retry`` = every request of the call, the polls of a wait included).

The table test reads the namespaces' signatures; the behaviour tests drive a real client
against FakeAltcraft and watch the tries through the client's own event hooks.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from helpers import small_platform

from altcraft_async import (
    DEFAULT,
    AltcraftClient,
    Backoff,
    HTTPStatusError,
    InvalidRequestError,
    PollPolicy,
    RequestEvent,
    RequestTimeoutError,
    RetryPolicy,
    SegmentRef,
)
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

pytestmark = pytest.mark.anyio

FAST = Backoff(initial=0.001, max_interval=0.005, jitter=1.0)
RETRY_TWICE = RetryPolicy(attempts=2, backoff=FAST)
NO_RETRY = RetryPolicy(attempts=1)
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.001, max_interval=0.01), timeout=10.0)
SEG = {"segment_id": 7, "resource_id": 24, "database_id": 1}
STATUS = "tasks/status"
SEG_GET = "segments/get_counters"
SEG_REFRESH = "segments/refresh_counters"

# --- the table: which options each method takes, and their defaults -------------------------

NAMESPACES = ("segments", "resources", "databases", "tasks", "admin", "relations")
#: Methods that build a handle and send nothing (checked to be plain functions below).
NO_IO = {"tasks.task", "tasks.resume"}
#: Every method that sends takes these, keyword-only, with these defaults.
COMMON = {"timeout", "request_timeout", "retry"}
#: The methods that start tasks, and those that wait for them.
STARTS = {"refresh_counters", "refresh_and_wait", "refresh_many"}
WAITS = {"refresh_and_wait", "refresh_many", "wait_counters"}
PROGRESS = {"refresh_and_wait", "wait_counters"}


def sending_methods() -> list[tuple[str, Callable[..., Any]]]:
    client = AltcraftClient("http://127.0.0.1:1", token="t")
    methods = []
    for namespace in NAMESPACES:
        api = getattr(client, namespace)
        for name, method in inspect.getmembers(api, inspect.ismethod):
            if not name.startswith("_") and f"{namespace}.{name}" not in NO_IO:
                methods.append((f"{namespace}.{name}", method))
    methods.append(("client.request", client.request))
    return methods


METHODS = sending_methods()


def test_the_table_covers_every_namespace_method() -> None:
    names = {name for name, _ in METHODS}
    assert len(names) == 16  # 15 namespace methods that send, and client.request
    for name in NO_IO:  # excluded because they send nothing: plain functions, no I/O
        namespace, method = name.split(".")
        function = getattr(AltcraftClient("http://127.0.0.1:1", token="t"), namespace)
        assert not inspect.iscoroutinefunction(getattr(function, method))


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[name for name, _ in METHODS])
def test_every_method_takes_the_same_per_call_options(
    name: str, method: Callable[..., Any]
) -> None:
    parameters = inspect.signature(method).parameters
    short = name.split(".")[1]
    wanted = set(COMMON)
    if short in STARTS:
        wanted.add("coalesce")
    if short in WAITS:
        wanted.add("policy")
    if short in PROGRESS:
        wanted.add("on_progress")
    for option in wanted:
        assert option in parameters, f"{name} lacks {option}="
        assert parameters[option].kind is inspect.Parameter.KEYWORD_ONLY, (name, option)
    waits = short in WAITS
    defaults = {
        "timeout": DEFAULT if waits else None,  # a wait's default: its poll policy's timeout
        "request_timeout": None,  # the client's timeout=
        "retry": None,  # the client's retry=
        "coalesce": None,  # the client's coalesce=
        "policy": None,  # the client's poll=
        "on_progress": None,
    }
    for option in wanted:
        assert parameters[option].default is defaults[option], (name, option)


# --- behaviour ---------------------------------------------------------------------------------


@asynccontextmanager
async def scene(
    **client_options: Any,
) -> AsyncIterator[tuple[FakeAltcraft, AltcraftClient, list[RequestEvent]]]:
    """A fake over the small platform and a client recording every try it makes."""
    tries: list[RequestEvent] = []

    def record(event: RequestEvent) -> None:
        tries.append(event)

    client_options.setdefault("retry", RETRY_TWICE)
    client_options.setdefault("poll", FAST_POLL)
    async with (
        FakeAltcraft(small_platform(), task_plan=TaskPlan.after_polls(2)) as fake,
        AltcraftClient(
            fake.url, token=fake.token, event_hooks={"request": [record]}, **client_options
        ) as client,
    ):
        yield fake, client, tries


def retried(tries: list[RequestEvent], endpoint: str) -> int:
    """How many tries of ``endpoint`` were retries (attempt > 1) of the same request."""
    return sum(1 for event in tries if event.endpoint == endpoint and event.attempt > 1)


WAITERS: dict[str, Callable[[AltcraftClient, RetryPolicy], Coroutine[Any, Any, Any]]] = {
    "segments.refresh_and_wait": lambda client, retry: client.segments.refresh_and_wait(
        **SEG, retry=retry
    ),
    "resources.refresh_and_wait": lambda client, retry: client.resources.refresh_and_wait(
        resource_id=24, database_id=1, retry=retry
    ),
    "databases.refresh_and_wait": lambda client, retry: client.databases.refresh_and_wait(
        database_id=1, resource_id=24, retry=retry
    ),
}


@pytest.mark.parametrize("name", list(WAITERS))
@pytest.mark.parametrize(("retry", "retries"), [(RETRY_TWICE, 1), (NO_RETRY, 0)])
async def test_refresh_and_waits_retry_is_used_for_its_polls(
    name: str, retry: RetryPolicy, retries: int
) -> None:
    # the client's own policy would retry; the call's decides
    async with scene(retry=RetryPolicy(attempts=5, backoff=FAST)) as (fake, client, tries):
        fake.faults.next(STATUS, Fault.http(503))
        snapshots = await WAITERS[name](client, retry)
        assert snapshots  # a poll failure without a retry is polled again by the awaiter
        assert retried(tries, "tasks.status") == retries


@pytest.mark.parametrize(("retry", "retries"), [(RETRY_TWICE, 1), (NO_RETRY, 0)])
async def test_refresh_manys_retry_is_used_for_its_polls(retry: RetryPolicy, retries: int) -> None:
    async with scene(retry=RetryPolicy(attempts=5, backoff=FAST)) as (fake, client, tries):
        fake.faults.next(STATUS, Fault.http(503))
        async with client.segments.refresh_many([SegmentRef(**SEG)], retry=retry) as outcomes:
            results = [outcome async for outcome in outcomes]
        assert [outcome.error for outcome in results] == [None]
        assert retried(tries, "tasks.status") == retries


async def test_tasks_wait_counters_retry_is_used_for_its_polls() -> None:
    async with scene(retry=NO_RETRY) as (fake, client, tries):
        task = await client.segments.refresh_counters(**SEG)
        fake.faults.next(STATUS, Fault.http(503))
        assert await client.tasks.wait_counters(task.task_id, retry=RETRY_TWICE)
        assert retried(tries, "tasks.status") == 1


async def test_refresh_and_waits_retry_is_used_for_its_start() -> None:
    async with scene() as (fake, client, tries):
        fake.faults.next(SEG_REFRESH, Fault.rate_limited(retry_after=0))
        with pytest.raises(HTTPStatusError) as caught:
            await client.segments.refresh_and_wait(**SEG, retry=NO_RETRY)
        assert caught.value.status == 429 and fake.stats.tasks_started == 0
        fake.faults.next(SEG_REFRESH, Fault.rate_limited(retry_after=0))
        assert await client.segments.refresh_and_wait(**SEG, retry=RETRY_TWICE)
        assert retried(tries, "segments.refresh_counters") == 1
        assert fake.stats.tasks_started == 1


async def test_a_reads_timeout_bounds_the_whole_call() -> None:
    # each try is cut at request_timeout and retried; timeout ends the whole call
    many = RetryPolicy(attempts=50, backoff=FAST)
    async with scene() as (fake, client, _):
        fake.faults.script(SEG_GET, Fault.delay(0.5))
        with pytest.raises(RequestTimeoutError):
            await client.segments.get_counters(**SEG, timeout=0.25, request_timeout=0.1, retry=many)
        # tries last request_timeout each: at most three begin within the call's 0.25 s
        assert 1 <= fake.calls(SEG_GET) <= 3


async def test_a_starts_timeout_bounds_the_whole_call() -> None:
    # retry_starts lets a start that may have arrived be tried 50 times; timeout ends them
    many = RetryPolicy(attempts=50, backoff=FAST, retry_starts=True)
    async with scene() as (fake, client, _):
        fake.faults.script(SEG_REFRESH, Fault.delay(0.5))
        with pytest.raises(RequestTimeoutError) as caught:
            await client.segments.refresh_counters(
                **SEG, timeout=0.25, request_timeout=0.1, retry=many
            )
        assert caught.value.sent  # the start may have reached the server
        assert 1 <= fake.calls(SEG_REFRESH) <= 3


async def test_request_timeout_is_per_try() -> None:
    async with scene() as (fake, client, _):
        fake.faults.next(SEG_GET, Fault.delay(30))  # cut at 1 s; the retry has its own second
        assert await client.segments.get_counters(**SEG, request_timeout=1.0)
        assert fake.calls(SEG_GET) == 2  # the slow try was cut and retried


async def test_a_refresh_and_waits_timeout_covers_start_and_polls() -> None:
    async with scene() as (fake, client, _):
        fake.plan_tasks(TaskPlan.never())
        with pytest.raises(TimeoutError):
            await client.segments.refresh_and_wait(**SEG, timeout=0.2)
        assert fake.stats.tasks_started == 1


BAD_OPTIONS = [
    ({"retry": "x"}, "retry must be a RetryPolicy"),
    ({"request_timeout": 0}, "request_timeout"),
    ({"timeout": -1}, "timeout"),
]


@pytest.mark.parametrize(("name", "method"), METHODS, ids=[name for name, _ in METHODS])
@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS)
async def test_bad_options_are_refused_before_anything_is_sent(
    name: str, method: Callable[..., Any], options: dict[str, Any], message: str
) -> None:
    async with scene() as (fake, client, _):
        namespace, short = name.split(".")
        bound = getattr(client if namespace == "client" else getattr(client, namespace), short)
        arguments = ARGUMENTS[name]
        with pytest.raises(InvalidRequestError, match=message):
            result = bound(*arguments[0], **arguments[1], **options)
            if inspect.isawaitable(result):
                await result
            else:  # refresh_many: a fan-out, refused when made
                async with result as outcomes:
                    async for _ in outcomes:
                        pass
        assert fake.stats.requests == 0


ARGUMENTS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "segments.get_counters": ((), SEG),
    "segments.refresh_counters": ((), SEG),
    "segments.refresh_and_wait": ((), SEG),
    "segments.refresh_many": (([SegmentRef(**SEG)],), {}),
    "resources.refresh_counters": ((), {"resource_id": 24, "database_id": 1}),
    "resources.refresh_and_wait": ((), {"resource_id": 24, "database_id": 1}),
    "resources.refresh_many": (([],), {}),
    "databases.get_counters": ((), {"database_id": 1, "resource_id": 24}),
    "databases.refresh_counters": ((), {"database_id": 1, "resource_id": 24}),
    "databases.refresh_and_wait": ((), {"database_id": 1, "resource_id": 24}),
    "databases.refresh_many": (([],), {}),
    "tasks.status": (("t-1",), {}),
    "tasks.wait_counters": (("t-1",), {}),
    "admin.sender_queue_stats": ((), {"sender_id": 119}),
    "relations.get_counter": ((), {"relation_id": 3, "match": None}),
    "client.request": (("databases/list",), {}),
}


def test_every_method_has_sample_arguments() -> None:
    assert set(ARGUMENTS) == {name for name, _ in METHODS}
