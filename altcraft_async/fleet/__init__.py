"""altcraft_async.fleet: refresh a whole account across a fleet of workers (extra ``[fleet]``).

The core SDK never imports this package; it needs ``redis>=5`` (``pip install
'altcraft-async[fleet]'``). ``designs/fleet.md`` is the design. Modules, imports flowing down::

    _keys       every Redis key the fleet writes, named in one place
    _limiter    RedisRateLimiter: the account's one request rate, GCRA in a Lua script
"""

from ._limiter import RedisRateLimiter

__all__ = ["RedisRateLimiter"]
