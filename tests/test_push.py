"""Push instead of poll: the feedback webhook races the poller, through real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from altcraft_async import (
    AltcraftClient,
    Feedback,
    FeedbackReceiver,
    InvalidRequestError,
    TaskFailedError,
    TaskTimeoutError,
)
from altcraft_async.testing import FakeAltcraft, TaskPlan

pytestmark = pytest.mark.anyio


def counters_of(snapshots: list[Any]) -> dict[str, dict[str, int | None]]:
    return {
        channel.channel: {
            name: getattr(channel.status, name)
            for name in ("all", "subscribed", "subscribed_sendable", "unsubscribed")
        }
        for snapshot in snapshots
        for channel in snapshot.channels
    }


def expected(fake: FakeAltcraft) -> dict[str, dict[str, int | None]]:
    return {
        channel: {
            name: values[name]
            for name in ("all", "subscribed", "subscribed_sendable", "unsubscribed")
        }
        for channel, values in fake.platform.resource_counters(1, 1).items()
    }


async def refresh(fake: FakeAltcraft, receiver: FeedbackReceiver, **wait: Any) -> list[Any]:
    async with AltcraftClient(fake.url, token=fake.token) as client:
        with anyio.fail_after(10):
            return await client.resources.refresh_and_wait(
                resource_id=1, database_id=1, feedback=receiver, **wait
            )


async def test_push_wins_and_polling_stops() -> None:
    fake = FakeAltcraft.seeded(profiles=500, segments=2, task_plan=TaskPlan.after_seconds(0.2))
    async with fake, FeedbackReceiver(safety_poll_interval=30) as receiver:
        snapshots = await refresh(fake, receiver)
        assert counters_of(snapshots) == expected(fake)
        assert fake.calls("tasks/status") == 0  # done by push alone
        assert receiver.received == 1
        # the receiver had the webhook before it answered; the fake records the delivery
        # when it has read that answer
        with anyio.fail_after(10):
            await fake.wait_webhooks()
        (webhook,) = fake.webhooks
        assert webhook.delivered
        task = fake.tasks[webhook.task_id]
        assert task.feedback_url is not None and task.feedback_url.startswith(
            receiver.reserve().feedback.url.rsplit("/", 1)[0]
        )


async def test_lost_webhook_still_completes_by_polling() -> None:
    fake = FakeAltcraft.seeded(
        profiles=500,
        segments=2,
        task_plan=TaskPlan.after_seconds(0.1),
        webhook_delivery="lost",
    )
    async with fake, FeedbackReceiver(safety_poll_interval=0.15) as receiver:
        snapshots = await refresh(fake, receiver)
        assert counters_of(snapshots) == expected(fake)
        assert fake.calls("tasks/status") >= 1
        assert receiver.received == 0


async def test_duplicate_webhook_is_ignored() -> None:
    fake = FakeAltcraft.seeded(
        profiles=500,
        segments=2,
        task_plan=TaskPlan.after_seconds(0.05),
        webhook_delivery="twice",
    )
    async with fake, FeedbackReceiver(safety_poll_interval=30) as receiver:
        await refresh(fake, receiver)
        await fake.wait_webhooks()
        assert [w.status for w in fake.webhooks] == [200, 200]
        assert receiver.received == 1
        assert receiver.rejected == 0


async def test_pushed_failure_raises_task_failed() -> None:
    fake = FakeAltcraft.seeded(
        profiles=500,
        segments=2,
        task_plan=TaskPlan.fails(after_seconds=0.05, status="error"),
    )
    async with fake, FeedbackReceiver(safety_poll_interval=30) as receiver:
        with pytest.raises(TaskFailedError) as caught:
            await refresh(fake, receiver)
        assert caught.value.status == "error"
        assert fake.calls("tasks/status") == 0


async def post(url: str, body: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body) as response:
        return response.status, await response.text()


RESULT_ITEM = (
    b'{"channels":[{"channel":"email","status":{"all":3,"subscribed_sendable":2}}],'
    b'"in_progress":false,"list_id":1,"resource_id":1,"refresh_task_id":"",'
    b'"updated":"2024-04-20T09:30:01.583Z"}'
)


async def test_forged_unknown_malformed_and_late_calls() -> None:
    async with FeedbackReceiver(secret="s3cret-path") as receiver:
        waiter = receiver.reserve()
        waiter.task_id = "t-1"
        url = waiter.feedback.url
        base, nonce = url.rsplit("/", 1)
        root = base.rsplit("/", 1)[0]
        payload = b'{"task_id":"t-1","status":"completed","progress":100,"result":[]}'

        assert (await post(f"{root}/wrong-secret/{nonce}", payload))[0] == 403
        assert (await post(f"{root}/{nonce}", payload))[0] == 403
        assert (await post(f"{base}/unknown-nonce", payload))[0] == 404
        assert (await post(url, b"{not json"))[0] == 400
        assert (await post(url, b'{"status":"processing","progress":5}'))[0] == 400
        wrong_task = b'{"task_id":"t-2","status":"completed","progress":100,"result":[]}'
        assert (await post(url, wrong_task))[0] == 400
        assert receiver.rejected == 6
        assert waiter.status is None  # nothing forged got through

        status, _ = await post(url, b"[" + RESULT_ITEM + b"]")  # a bare result list
        assert status == 200
        with anyio.fail_after(5):
            pushed = await waiter.wait()
        assert pushed.succeeded and pushed.result[0].channels[0].status.all == 3

        assert await post(url, payload) == (200, "ignored: duplicate")
        waiter.release()
        assert await post(url, payload) == (200, "ignored: already finished")
        assert receiver.received == 1


async def test_handler_mounts_into_an_existing_application() -> None:
    app = web.Application()
    receiver = FeedbackReceiver(public_url="http://127.0.0.1:1", secret=None)
    receiver.add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        waiter = receiver.reserve()
        nonce = waiter.feedback.url.rsplit("/", 1)[1]
        body = b'{"task_id":"x","status":"success","progress":100,"result":[' + RESULT_ITEM + b"]}"
        status, _ = await post(f"http://{host}:{port}/altcraft-feedback/{nonce}", body)
        assert status == 200
        assert waiter.status is not None and waiter.status.succeeded
    finally:
        await runner.cleanup()


def test_receiver_validation_and_repr_hides_the_secret() -> None:
    with pytest.raises(InvalidRequestError):
        FeedbackReceiver(path="no-slash")
    with pytest.raises(InvalidRequestError):
        FeedbackReceiver().reserve()  # not started and no public_url
    receiver = FeedbackReceiver(public_url="https://app.example.com", secret="hush-123")
    assert "hush-123" not in repr(receiver)
    feedback = receiver.reserve().feedback
    assert isinstance(feedback, Feedback)
    assert feedback.url.startswith("https://app.example.com/altcraft-feedback/hush-123/")
    assert "hush-123" not in repr(feedback)


async def test_a_wait_after_a_timeout_still_hears_the_webhook() -> None:
    """The fake's clock is manual: the task ends (and its webhook goes out) only when the test
    moves the clock, once the second wait is parked."""
    fake = FakeAltcraft.seeded(
        profiles=500, segments=2, task_plan=TaskPlan.after_seconds(1.0), clock="manual"
    )
    async with (
        fake,
        FeedbackReceiver(safety_poll_interval=30) as receiver,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        task = await client.resources.refresh_counters(
            resource_id=1, database_id=1, feedback=receiver
        )
        with pytest.raises(TaskTimeoutError):
            await task.wait(timeout=0.05)
        snapshots: list[Any] = []

        async def second_wait() -> None:
            snapshots.extend(await task.wait(timeout=10))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(second_wait)
                await anyio.wait_all_tasks_blocked()
                fake.advance(1.0)  # the task ends now: the fake sends its webhook
        assert counters_of(snapshots) == expected(fake)
        assert receiver.received == 1
        # at most one poll, the first wait's last look before its deadline (a runner that
        # starts the 50 ms wait late skips it: the task was not done anyway); the second wait
        # heard the push and polled not at all
        assert fake.calls("tasks/status") <= 1


async def test_a_bare_callback_path_is_matched_by_the_payloads_task_id() -> None:
    async with FeedbackReceiver(secret=None) as receiver:
        waiter = receiver.reserve()
        waiter.task_id = "t-9"
        bare = waiter.feedback.url.rsplit("/", 1)[0]
        body = b'{"task_id":"t-9","status":"completed","progress":100,"result":[]}'
        assert (await post(bare, body))[0] == 200
        assert waiter.status is not None and waiter.status.succeeded


GO_STYLE_ITEM = (
    b'{"channels":[{"channel":"email","status":{"all":3,"subscribed_sendable":2}}],'
    b'"in_progress":false,"list_id":1,"resource_id":1,"refresh_task_id":null,'
    b'"updated":"2024-04-20T12:30:01.583000000+03:00"}'
)


@pytest.mark.parametrize(
    ("body", "succeeded", "result"),
    [
        # a Go server: status in capitals, a BOM, nulls, nanoseconds and an offset, task_id ""
        (
            b'\xef\xbb\xbf{"task_id":"","status":" Completed","progress":"100","result":['
            + GO_STYLE_ITEM
            + b"]}",
            True,
            None,
        ),
        (b'{"status":"FAILED","progress":null,"result":null}', False, None),
        (b'{"status":"failed","result":"quota exceeded"}', False, "quota exceeded"),
        (b'{"status":"Error","result":{"reason":"db down"}}', False, {"reason": "db down"}),
    ],
)
async def test_pushed_payloads_are_read_by_the_same_rules(
    body: bytes, succeeded: bool, result: Any
) -> None:
    async with FeedbackReceiver(secret=None) as receiver:
        waiter = receiver.reserve()
        waiter.task_id = "t-1"
        assert (await post(waiter.feedback.url, body))[0] == 200
        status = waiter.status
        assert status is not None and status.succeeded is succeeded
        if succeeded:
            (snapshot,) = status.result
            assert snapshot.refresh_task_id == "" and snapshot.updated is not None
            assert snapshot.updated.utcoffset() is not None and snapshot.updated.hour == 12
            assert snapshot.channel("email") is not None
        else:
            assert status.failed and status.failure_result == result


async def test_a_pushed_failure_reason_reaches_the_error() -> None:
    fake = FakeAltcraft.seeded(profiles=500, segments=2, task_plan=TaskPlan.never())
    async with (
        fake,
        FeedbackReceiver(secret=None, safety_poll_interval=30) as receiver,
        AltcraftClient(fake.url, token=fake.token) as client,
    ):
        task = await client.resources.refresh_counters(
            resource_id=1, database_id=1, feedback=receiver
        )
        url = next(iter(fake.tasks.values())).feedback_url
        assert url is not None
        payload = (
            b'{"status":"failed","result":"quota exceeded","task_id":"' + task.task_id.encode()
        )
        assert (await post(url, payload + b'"}'))[0] == 200
        with anyio.fail_after(5), pytest.raises(TaskFailedError) as caught:
            await task.wait(timeout=10)
        assert caught.value.result == "quota exceeded" and caught.value.status == "failed"
