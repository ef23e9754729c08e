"""FleetFeedbackReceiver: feedback webhooks written into the start ledger, so the result of a
task lands whichever worker started it, and whether or not anyone is waiting in this process.

A :class:`~altcraft_async.FeedbackReceiver` matches a webhook to a waiter in its own memory (a
random nonce per start), which a fleet cannot use: the worker that started a task may be dead
by the time the platform calls back, and the process awaiting the pair (``wait_pair``) may be
another one. So the fleet's callback URL is deterministic, ``{public_url}{path}/{secret}/
{run}/{pair}``: nothing needs storing, any replica behind the load balancer can take the call,
and it writes the final status into the pair's ledger row (``StartLedger.pushed``: no owner
needed, the webhook proves the task ran; it also resolves an ``unknown`` pair) and publishes it
on the pair's channel, where ``wait_pair`` hears it. The owning worker's safety poll then only
confirms it (its own ``finish`` finds the pair final).

It is a FeedbackReceiver (same guard, secret, payload rules, answers): standalone with
``async with``, or ``add_routes(app)`` in your aiohttp application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .._codec import to_builtins
from .._errors import DecodeError, InvalidRequestError
from .._feedback import FeedbackReceiver, _final_status, _read_payload
from ..models import Feedback
from ..models.tasks import CountersResult
from ._keys import check_name
from ._ledger import StartLedger

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["FleetFeedbackReceiver"]


class FleetFeedbackReceiver(FeedbackReceiver):
    """Receives the fleet's refresh-done webhooks into Redis for ``account``::

        async with FleetFeedbackReceiver(redis, account="acme", port=8080,
                                         public_url="https://hooks.example.com") as receiver:
            feedback = receiver.feedback_for("nightly", pair)   # pass as feedback= to a start

    ``redis`` is a ``redis.asyncio.Redis`` the caller owns; the other arguments are
    FeedbackReceiver's (``secret``: random by default, so every replica must be given the same
    one).
    """

    def __init__(self, redis: Redis, *, account: str = "default", **options: Any) -> None:
        super().__init__(**options)
        self.account: str = check_name("account", account)
        self._redis = redis
        self._ledgers: dict[str, StartLedger] = {}
        self.stored: int = 0

    def __repr__(self) -> str:
        return f"<FleetFeedbackReceiver account={self.account!r} (secret hidden)>"

    def feedback_for(self, run: str, pair: str) -> Feedback:
        """The callback of ``pair``'s start in ``run`` (the same in every process)."""
        if self._public_url is None:
            raise InvalidRequestError("the receiver has no public_url: start it or give one")
        parts = [self._public_url + self.path]
        if self._secret:
            parts.append(self._secret)
        parts += [check_name("run", run), check_name("pair", pair)]
        return Feedback(url="/".join(parts))

    def _ledger(self, run: str) -> StartLedger:
        if run not in self._ledgers:
            self._ledgers[run] = StartLedger(self._redis, account=self.account, run=run)
        return self._ledgers[run]

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: the call's run and pair from its path, its final status into
        the ledger. 200 also for a status already stored (so the platform stops retrying)."""
        checked = self._authorised_path(request)
        if isinstance(checked, web.Response):
            return checked
        answer, tail = checked
        if len(tail) != 2:
            return self._reject(answer, 404, "feedback call to an unknown path")
        try:
            run, pair = check_name("run", tail[0]), check_name("pair", tail[1])
        except InvalidRequestError:
            return self._reject(answer, 404, "feedback call to an unknown path")
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            data, task_id = _read_payload(body)
            status = _final_status(data, CountersResult)
        except (DecodeError, ValueError) as exc:
            return self._reject(answer, 400, f"malformed feedback payload: {exc}")
        failed = not status.succeeded
        stored = await self._ledger(run).pushed(
            pair,
            failed=failed,
            detail=f"task {status.status} (pushed)" if failed else "",
            result=None if failed else to_builtins(list(status.result or ())),
            task_id=task_id or "",
        )
        if not stored:
            return answer(web.Response(status=200, text="ignored: final already or not started"))
        self.stored += 1
        return self._accepted(answer)
