"""The API tokens never leak: not in logs, reprs, error messages, resume tokens or recordings.

Every public method and the usual error paths run against the fake with distinctive tokens, in
both wire formats and with the token in the body or in an ``Authorization: Bearer`` header,
while every logger is captured at DEBUG. Then every string a user could see or log is searched
for the tokens, tracebacks rendered with their frames' locals included. The command line and
the demo are checked the same way.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from helpers import FakeThread

from altcraft_async import (
    AltcraftClient,
    AltcraftError,
    APIError,
    AuthenticationError,
    Backoff,
    ClientClosedError,
    DecodeError,
    Feedback,
    FeedbackReceiver,
    HTTPStatusError,
    InvalidRequestError,
    Match,
    PermissionDeniedError,
    PollPolicy,
    RequestTimeoutError,
    ResourceRef,
    RetryPolicy,
    SegmentRef,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from altcraft_async._scrub import Scrubber
from altcraft_async._secret import HiddenStr, Secret
from altcraft_async.cli import main
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

TOKEN = "tok-SECRET-123456"
ADMIN_TOKEN = "adm-SECRET-654321"
WRONG_TOKEN = "bad-SECRET-777777"
RECEIVER_SECRET = "rcv-HIDDEN-424242"  # the webhook secret: legitimately sent to the platform
TOKENS = (TOKEN, ADMIN_TOKEN, WRONG_TOKEN)
MARKER = "SECRET"  # a part of every token: catches truncated or partly masked leaks too

FAST_RETRY = RetryPolicy(attempts=3, backoff=Backoff(initial=0.001, max_interval=0.005))
NO_RETRY = RetryPolicy(attempts=1)
FAST_POLL = PollPolicy(backoff=Backoff(initial=0.005, max_interval=0.02), timeout=10)

SEG_GET = "segments/get_counters"
SEG_REFRESH = "segments/refresh_counters"


class Sink:
    """Everything a user might print or log, as text, to search for secrets."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []

    def add(self, what: str, *objects: Any) -> None:
        for obj in objects:
            self.texts.append((what, obj if isinstance(obj, str) else repr(obj)))

    def error(self, what: str, exc: BaseException) -> None:
        self.errors.append(exc)
        self.add(what, str(exc), exc, vars(exc), *exc.args)
        self.add(what + " traceback", "".join(traceback.format_exception(exc)))
        # as error trackers show it: with the locals of every frame (tests/test_hardening.py
        # searches those frame by frame, error kind by error kind)
        with_locals = traceback.TracebackException.from_exception(exc, capture_locals=True)
        self.add(what + " traceback with locals", "".join(with_locals.format()))
        resume = getattr(exc, "resume_token", None)
        if resume:
            self.add(what + " resume token", resume)

    def expect(self, what: str, kind: type[BaseException], exc: BaseException) -> None:
        assert isinstance(exc, kind), f"{what}: expected {kind.__name__}, got {exc!r}"
        self.error(what, exc)

    def leaks(self, secrets: tuple[str, ...]) -> list[str]:
        return [
            f"{what}: {text[:300]}"
            for what, text in self.texts
            for secret in secrets
            if secret in text
        ]


class Captured(logging.Handler):
    """Formats every record with its args, exception and stack, like a verbose app handler."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s args=%(args)r")
        )
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))
        self.lines.append(repr(record.msg))
        self.lines.append(repr(record.args))


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[Captured]:
    """DEBUG logs of the whole ``altcraft_async`` tree (and of everything else, via caplog)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="altcraft_async")
    handler = Captured()
    logger = logging.getLogger("altcraft_async")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def log_texts(captured: Captured, caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    texts = [("log line", line) for line in captured.lines]
    for record in caplog.records:
        texts.append(("caplog message", record.getMessage()))
        texts.append(("caplog args", repr(record.args)))
    texts.append(("caplog text", caplog.text))
    return texts


def assert_no_secret(sink: Sink, secrets: tuple[str, ...] = TOKENS) -> None:
    leaks = sink.leaks(secrets)
    assert not leaks, "secret leaked:\n" + "\n".join(leaks[:10])


TWO_POLLS = TaskPlan.after_polls(1)


def new_fake(plan: TaskPlan = TWO_POLLS) -> FakeAltcraft:
    return FakeAltcraft.seeded(
        profiles=400,
        segments=3,
        resources=1,
        relations=1,
        senders=1,
        seed=5,
        token=TOKEN,
        admin_token=ADMIN_TOKEN,
        task_plan=plan,
        shutdown_timeout=0.1,
    )


async def run_everything(fake: FakeAltcraft, fmt: Any, auth: Any, sink: Sink) -> None:
    """Every public method and the error paths; each result and error goes to ``sink``."""
    platform = fake.platform
    profile_id = next(iter(platform.relations[1].props))
    sender_id = min(platform.senders)
    seg = {"segment_id": 1, "resource_id": 1, "database_id": 1}
    options: dict[str, Any] = {"format": fmt, "auth": auth, "retry": FAST_RETRY, "poll": FAST_POLL}
    progress: list[Any] = []

    async with (
        FeedbackReceiver(secret=RECEIVER_SECRET, safety_poll_interval=5) as receiver,
        AltcraftClient(fake.url, token=TOKEN, admin_token=ADMIN_TOKEN, **options) as client,
    ):
        sink.add("client", client, receiver)
        sink.add("get_counters", await client.segments.get_counters(**seg))

        task = await client.segments.refresh_counters(**seg)
        sink.add("segment task", task, task.resume_token(), await task.status())
        sink.add("watch", [status async for status in task.watch()])
        sink.add("task.wait", await task.wait(on_progress=progress.append))
        sink.add("refresh_and_wait", await client.segments.refresh_and_wait(**seg))
        async with client.segments.refresh_many(
            [SegmentRef(1, 1, 1), SegmentRef(2, 1, 1), SegmentRef(3, 1, 1)], concurrency=2
        ) as outcomes:
            sink.add("segments.refresh_many", [outcome async for outcome in outcomes])

        rtask = await client.resources.refresh_counters(resource_id=1, database_id=1)
        sink.add("resource task", rtask, rtask.resume_token(), await rtask.wait())
        hook = Feedback(url="http://127.0.0.1:9/altcraft-hook")
        sink.add(
            "resources.refresh_and_wait feedback",
            await client.resources.refresh_and_wait(resource_id=1, database_id=1, feedback=hook),
        )
        # pushed tasks end on their own, soon, long before the receiver's safety poll
        fake.plan_tasks(TaskPlan.after_seconds(0.05), kind="resource", count=2)
        with anyio.fail_after(10):
            pushed = await client.resources.refresh_counters(
                resource_id=1, database_id=1, feedback=receiver
            )
            sink.add("pushed task", pushed, pushed.resume_token(), receiver)
            sink.add("pushed wait", await pushed.wait())
            sink.add(
                "resources.refresh_and_wait receiver",
                await client.resources.refresh_and_wait(
                    resource_id=1, database_id=1, feedback=receiver
                ),
            )
        async with client.resources.refresh_many([ResourceRef(1, 1)]) as outcomes:
            sink.add("resources.refresh_many", [outcome async for outcome in outcomes])

        sink.add("tasks.status", await client.tasks.status(task.task_id))
        sink.add("tasks.wait_counters", await client.tasks.wait_counters(task.task_id))
        resumed = client.tasks.resume(task.resume_token())
        sink.add("tasks.resume", resumed, resumed.resume_token(), await resumed.wait())
        sink.add("tasks.task", client.tasks.task(task.task_id))
        sink.add("admin", await client.admin.sender_queue_stats(sender_id=sender_id, group="total"))
        sink.add(
            "relations",
            await client.relations.get_counter(relation_id=1, match=Match.profile_id(profile_id)),
        )
        sink.add("progress", progress)

        # -- error paths ----------------------------------------------------------------------
        fake.faults.next(SEG_GET, Fault.http(503), times=FAST_RETRY.attempts)
        with pytest.raises(HTTPStatusError) as info:
            await client.segments.get_counters(**seg)
        sink.expect("503 exhausted", HTTPStatusError, info.value)

        fake.faults.next(SEG_GET, Fault.drop(), times=FAST_RETRY.attempts)
        with pytest.raises(TransportError) as info_transport:
            await client.segments.get_counters(**seg)
        sink.expect("drop", TransportError, info_transport.value)

        fake.faults.next(SEG_GET, Fault.malformed(), times=FAST_RETRY.attempts)
        with pytest.raises(DecodeError) as info_decode:
            await client.segments.get_counters(**seg)
        sink.expect("malformed", DecodeError, info_decode.value)

        fake.faults.next(SEG_GET, Fault.truncated())
        with pytest.raises(AltcraftError) as info_truncated:
            await client.segments.get_counters(**seg, retry=NO_RETRY)
        sink.error("truncated", info_truncated.value)

        fake.faults.next(SEG_GET, Fault.delay(0.3))
        with pytest.raises(RequestTimeoutError) as info_timeout:
            await client.segments.get_counters(**seg, timeout=0.05, retry=NO_RETRY)
        sink.expect("timeout", RequestTimeoutError, info_timeout.value)

        fake.faults.next(SEG_GET, Fault.api_error(402, "tariff limit"))
        with pytest.raises(APIError) as info_api:
            await client.segments.get_counters(**seg)
        sink.expect("api error", APIError, info_api.value)

        fake.plan_tasks(TaskPlan.fails(status="error"), count=1)
        with pytest.raises(TaskFailedError) as info_failed:
            await client.segments.refresh_and_wait(**seg)
        sink.expect("task failed", TaskFailedError, info_failed.value)

        fake.plan_tasks(TaskPlan.never(), count=1)
        with pytest.raises(TaskTimeoutError) as info_task_timeout:
            await client.segments.refresh_and_wait(**seg, timeout=0.1)
        sink.expect("task timeout", TaskTimeoutError, info_task_timeout.value)
        assert info_task_timeout.value.resume_token

        for bad_call in (
            lambda: client.segments.get_counters(segment_id=-1, resource_id=1),
            lambda: client.tasks.status(""),
            lambda: client.relations.get_counter(relation_id=1, match="nobody"),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidRequestError) as info_invalid:
                await bad_call()
            sink.expect("invalid request", InvalidRequestError, info_invalid.value)
        for bad_sync in (
            lambda: client.tasks.resume("not a resume token"),
            lambda: AltcraftClient("ftp://example.test", token=TOKEN),
            lambda: AltcraftClient(fake.url, token=TOKEN, format="yaml"),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidRequestError) as info_invalid:
                bad_sync()
            sink.expect("invalid request (sync)", InvalidRequestError, info_invalid.value)

        # a forged webhook call is refused and logged (without the secret)
        async with aiohttp.ClientSession() as session:
            url = receiver.reserve().feedback.url.replace(RECEIVER_SECRET, "forged")
            async with session.post(url, data=b"{}") as response:
                assert response.status == 403

    async with AltcraftClient(fake.url, token=WRONG_TOKEN, **options) as wrong:
        sink.add("wrong client", wrong)
        with pytest.raises(AuthenticationError) as info_auth:
            await wrong.segments.get_counters(**seg)
        sink.expect("wrong token", AuthenticationError, info_auth.value)
        with pytest.raises(InvalidRequestError) as info_no_admin:
            await wrong.admin.sender_queue_stats(sender_id=sender_id)
        sink.expect("no admin token", InvalidRequestError, info_no_admin.value)

    async with AltcraftClient(fake.url, token=TOKEN, admin_token=TOKEN, **options) as user:
        with pytest.raises(PermissionDeniedError) as info_denied:
            await user.admin.sender_queue_stats(sender_id=sender_id)
        sink.expect("admin with user token", PermissionDeniedError, info_denied.value)

    with pytest.raises(ClientClosedError) as info_closed:
        await client.segments.get_counters(**seg)
    sink.expect("closed client", ClientClosedError, info_closed.value)
    sink.add("closed client repr", client, task, rtask, pushed)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "auth"), [("json", "body"), ("xml", "body"), ("json", "bearer"), ("xml", "bearer")]
)
async def test_no_token_anywhere(
    fmt: str, auth: str, captured: Captured, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink()
    fake = new_fake()
    async with fake:
        await run_everything(fake, fmt, auth, sink)
        sink.add("fake.requests", fake.requests, fake, fake.stats, fake.webhooks)
        sink.add("fake.tasks", fake.tasks)
        # (the request the client gave up on during its delay fault was never read)
        records = [record for record in fake.requests if record.params is not None]

    sink.texts.extend(log_texts(captured, caplog))
    assert_no_secret(sink, (*TOKENS, MARKER))
    assert_no_secret(_sdk_only(sink), (RECEIVER_SECRET,))

    # the run really did what it claims: the checks above searched real material
    assert len(sink.errors) >= 18
    assert {record.token for record in records} >= {"user", "admin", "invalid"}
    wanted_source = "header" if auth == "bearer" else "body"
    assert {r.token_source for r in records if r.token != "missing"} == {wanted_source}
    assert {record.format for record in records} == {fmt}
    messages = [record.getMessage() for record in captured.records]
    assert any(m.startswith("POST ") for m in messages)
    assert any(" retry " in m for m in messages)
    assert any("forged" in m for m in messages)
    assert any(m.startswith("feedback received") for m in messages)
    assert {record.name for record in captured.records} >= {
        "altcraft_async",
        "altcraft_async.feedback",
    }


def _sdk_only(sink: Sink) -> Sink:
    """The webhook secret legitimately goes to the platform: search all but the fake's records."""
    kept = Sink()
    kept.texts = [(what, text) for what, text in sink.texts if not what.startswith("fake.")]
    return kept


def test_the_search_finds_a_leak() -> None:
    """The detector itself: a token in a log line, a repr or an error is reported."""
    sink = Sink()
    sink.add("repr", {"headers": {"Authorization": f"Bearer {TOKEN}"}})
    sink.error("error", AuthenticationError(401, f"bad token {ADMIN_TOKEN[:-1]}7"))
    sink.add("log", f"body={{'token': '{TOKEN}'}}")
    assert len(sink.leaks(TOKENS)) == 2
    with pytest.raises(AssertionError, match="secret leaked"):
        assert_no_secret(sink)
    assert sink.leaks((MARKER,))  # the marker catches the mangled admin token too


def test_a_secret_shows_nothing_of_itself() -> None:
    """What the client keeps of its tokens: no repr, str or format of it, of a container
    holding it, of the bearer header value or of the scrubber shows the token."""
    secret = Secret(TOKEN)
    hidden = HiddenStr(f"Bearer {TOKEN}")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", repr({"token": secret})]
    shown += [repr(hidden), repr({"Authorization": hidden}), repr(Scrubber([secret, None]))]
    assert not [text for text in shown if MARKER in text]
    assert secret.reveal() == TOKEN and secret == Secret(TOKEN) and secret != TOKEN
    assert hidden == f"Bearer {TOKEN}" and f"{hidden}" == str(hidden) == f"Bearer {TOKEN}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


# --- the command line --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[FakeThread]:
    # the command line polls with the default policy: tasks done at once keep it quick
    with FakeThread(new_fake(TaskPlan.immediate())) as thread:
        yield thread


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_never_prints_a_token(
    capsys: pytest.CaptureFixture[str],
    captured: Captured,
    caplog: pytest.LogCaptureFixture,
    served: FakeThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ALTCRAFT_URL", "ALTCRAFT_TOKEN", "ALTCRAFT_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    conn = ["--url", served.url, "--token", TOKEN, "--admin-token", ADMIN_TOKEN]
    seg = ["--segment-id", "1", "--resource-id", "1", "--database-id", "1"]
    refs = tmp_path / "refs.csv"
    refs.write_text("segment_id,resource_id,database_id\n1,1,1\n2,1,1\n")
    sink = Sink()
    outputs: list[tuple[int, str, str]] = []

    def run(*argv: str, expect: int = 0) -> str:
        code, out, err = cli(capsys, *argv)
        outputs.append((code, out, err))
        sink.add(f"cli {argv[:2]} stdout", out)
        sink.add(f"cli {argv[:2]} stderr", err)
        assert code == expect, (argv, code, out, err)
        return out

    for fmt in ("json", "xml"):
        wire = ["--format", fmt]
        run("segments", "counters", *conn, *wire, *seg)
        run("segments", "refresh", *conn, *wire, *seg, "--json")
        started = json.loads(run("segments", "refresh", *conn, *wire, *seg, "--no-wait", "--json"))
        run("tasks", "status", started["task_id"], *conn, *wire)
        run("tasks", "wait", started["task_id"], *conn, *wire)
        run("tasks", "resume", started["resume_token"], *conn, *wire, "--json")
        run("resources", "refresh", *conn, *wire, "--resource-id", "1", "--database-id", "1")
        run(
            "resources",
            "refresh",
            *conn,
            *wire,
            "--resource-id",
            "1",
            "--database-id",
            "1",
            "--feedback-url",
            "http://127.0.0.1:9/hook",
            "--no-wait",
        )
        run("admin", "sender-queue", *conn, *wire, "--sender-id", "1", "--group", "total")
        profile = next(iter(served.fake.platform.relations[1].props))
        run("relations", "counter", *conn, *wire, "--relation-id", "1", "--profile-id", profile)
        run("refresh-many", str(refs), *conn, *wire)

    # error paths: each is one line on stderr, exit 1 (or 2 for usage)
    wrong = ["--url", served.url, "--token", WRONG_TOKEN, "--admin-token", WRONG_TOKEN]
    err_out = run("segments", "counters", *wrong, *seg, expect=1)
    assert err_out == "" and "AuthenticationError" in outputs[-1][2]
    user_as_admin = ["--url", served.url, "--token", TOKEN, "--admin-token", TOKEN]
    run("admin", "sender-queue", *user_as_admin, "--sender-id", "1", expect=1)
    assert "PermissionDeniedError" in outputs[-1][2]
    run("segments", "counters", *conn, "--segment-id", "0", "--resource-id", "1", expect=1)
    run("relations", "counter", *conn, "--relation-id", "1", expect=2)
    run("tasks", "resume", "garbage", *conn, expect=1)
    dead = ["--url", "http://127.0.0.1:9", "--token", TOKEN, "--timeout", "1"]
    run("segments", "counters", *dead, *seg, expect=1)
    assert "TransportError" in outputs[-1][2]

    # connection from the environment instead of flags
    monkeypatch.setenv("ALTCRAFT_URL", served.url)
    monkeypatch.setenv("ALTCRAFT_TOKEN", TOKEN)
    monkeypatch.setenv("ALTCRAFT_ADMIN_TOKEN", ADMIN_TOKEN)
    run("segments", "counters", *seg)
    monkeypatch.setenv("ALTCRAFT_TOKEN", WRONG_TOKEN)
    run("segments", "counters", *seg, expect=1)

    sink.texts.extend(log_texts(captured, caplog))
    assert_no_secret(sink, (*TOKENS, MARKER))
    assert all("Traceback" not in err for _, _, err in outputs)
    assert len(outputs) == 2 * 11 + 8
    assert any(record.getMessage().startswith("POST ") for record in captured.records)


DEMO_ARGS = ["demo", "--profiles", "500", "--segments", "3", "--min-task", "0.05"]
DEMO_ARGS += ["--max-task", "0.1"]
# The demo's embedded fake uses FakeAltcraft's default tokens.
DEMO_TOKENS = tuple(
    inspect.signature(FakeAltcraft).parameters[name].default for name in ("token", "admin_token")
)
VERBOSE = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG, "
    "format='%(name)s %(message)s %(args)r'); "
    "from altcraft_async.cli import main; sys.exit(main(sys.argv[1:]))"
)


def test_demo_never_prints_its_token() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"}
    runs = [
        [sys.executable, "-m", "altcraft_async", *DEMO_ARGS],
        [sys.executable, "-c", VERBOSE, *DEMO_ARGS, "--format", "xml", "--json"],
    ]
    processes = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for argv in runs
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        results.append((process.returncode, out.decode(), err.decode()))
    for code, out, err in results:
        assert code == 0, err
        assert "verified_against_fake" in out
        for secret in DEMO_TOKENS:
            assert secret not in out and secret not in err
    assert "altcraft_async POST " in results[1][2]  # the DEBUG logs really were printed
