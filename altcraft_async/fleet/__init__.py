"""altcraft_async.fleet: refresh a whole account across a fleet of workers (extra ``[fleet]``).

The core SDK never imports this package; it needs ``redis>=5`` (``pip install
'altcraft-async[fleet]'``). ``designs/fleet.md`` is the design. Modules, imports flowing down::

    _keys       every Redis key the fleet writes, named in one place
    _limiter    RedisRateLimiter: the account's one request rate, GCRA in a Lua script
    _ledger     StartLedger: claim -> sending -> started(token) -> done | failed | unknown,
                fenced Lua scripts; the account's in-flight cap
    _batch      run_pair: one pair through the ledger (refresh_counters / tasks.resume /
                Task.wait, nothing new on the wire); what a failed start means
    _run        Fleet / FleetRun: start or re-attach to a run, progress, results, unknowns,
                wait_pair (pub/sub), supervise (revive lost batches); Engine, the protocol
                an engine adapter implements
    _push       FleetFeedbackReceiver: feedback webhooks written into the ledger (any worker,
                or nobody, may be waiting)
    arq         extra [arq]: the batch job, enqueue_run, revive_run, worker_settings (import
                it by name)
"""

from ._batch import PairOutcome, pair_id, ref_of, run_pair, start_verdict
from ._ledger import Claim, PairState, StartLedger
from ._limiter import PrepaidSlot, RedisRateLimiter
from ._push import FleetFeedbackReceiver
from ._run import Engine, Fleet, FleetRun, RunProgress, Supervision

__all__ = [
    "Claim",
    "Engine",
    "Fleet",
    "FleetFeedbackReceiver",
    "FleetRun",
    "PairOutcome",
    "PairState",
    "PrepaidSlot",
    "RedisRateLimiter",
    "RunProgress",
    "StartLedger",
    "Supervision",
    "pair_id",
    "ref_of",
    "run_pair",
    "start_verdict",
]
