"""Global limits held in Redis, shared by every worker process on every machine.

``RedisSlots`` is the ``RequestSlots`` of distributed mode: at most ``limit`` provider calls
in flight across all processes together. ``RedisCreateGate`` is the provider's
``CreateGate``: one global create rate, and one global slow-down after any 429.

Keys (``prefix`` defaults to ``actor-maker``)::

    {prefix}:slots:{name}     sorted set: holder id -> expiry (Redis server time, seconds).
                              Acquire drops expired members, then adds the holder if fewer
                              than ``limit`` remain. A holder renews its expiry every ttl/3;
                              a crashed holder stops renewing and its slot frees itself
                              after ``ttl_s``. The set expires 1 s after its latest entry
                              would (and Redis deletes it when it empties).
    {prefix}:bucket:{name}    hash {tokens, ts}: the create token bucket, refilled from the
                              server time at each take (the key expires once it would be full).
    {prefix}:slowdown:{name}  string: server time until which nobody creates (expires then);
                              a 429 moves it later, never earlier, and empties the bucket.

Every decision is one Lua script reading ``TIME`` on the server, so the machines' clocks do
not matter and no two workers can interleave a read and a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import redis.asyncio
from redis.exceptions import RedisError

from actor_maker.errors import ConfigError, SlotTimeoutError, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The longest global slow-down one 429 can impose, whatever its Retry-After says.
MAX_SLOWDOWN_S = 60.0
#: How much of the rate a full bucket may spend at once (seconds' worth of tokens).
BURST_S = 2.0

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# The set lives as long as its latest expiry (plus a second): a crashed holder's entry never
# outlives its TTL, whether or not anyone comes to acquire afterwards.
_EXPIRE_SET = """
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - now) * 1000) + 1000)
end
"""

# KEYS[1] slots set; ARGV: limit, holder, ttl_s. 1 = acquired, 0 = all slots held.
_ACQUIRE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
"""
    + _EXPIRE_SET
    + "return 1\n"
)

# KEYS[1] slots set; ARGV: holder, ttl_s. 1 = renewed, 0 = no longer a holder.
_RENEW = (
    _NOW
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
"""
    + _EXPIRE_SET
    + "return 1\n"
)

# KEYS: slowdown, bucket; ARGV: rate (tokens/s), capacity.
# 0 = a token was taken, go; else milliseconds to wait before asking again.
_TAKE = (
    _NOW
    + """
local slow = tonumber(redis.call('GET', KEYS[1]))
if slow and slow > now then
  return math.ceil((slow - now) * 1000)
end
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.max(1, math.ceil((1 - tokens) / rate * 1000))
end
redis.call('HSET', KEYS[2], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[2], math.ceil(capacity / rate * 1000) + 1000)
return wait
"""
)

# KEYS: slowdown, bucket; ARGV: seconds, rate, capacity. Sets until = now + seconds unless a
# later one is set, and empties the bucket as of then: creates resume at the steady rate,
# not with a burst that would meet the next 429. 1 = set, 0 = a later one was in force.
_SLOW_DOWN = (
    _NOW
    + """
local seconds = tonumber(ARGV[1])
local until_ts = now + seconds
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current >= until_ts then return 0 end
redis.call('SET', KEYS[1], until_ts, 'PX', math.ceil(seconds * 1000) + 1000)
redis.call('HSET', KEYS[2], 'tokens', 0, 'ts', until_ts)
local refill_s = tonumber(ARGV[3]) / tonumber(ARGV[2])
redis.call('PEXPIRE', KEYS[2], math.ceil((seconds + refill_s) * 1000) + 1000)
return 1
"""
)

_USERINFO = re.compile(r"://[^@/\s]*@")


def _store_error(exc: RedisError, what: str) -> StoreError:
    """One line about a Redis failure; never a password (even one echoed in a URL)."""
    lines = str(exc).strip().splitlines()
    detail = _USERINFO.sub("://***@", lines[0][:200]) if lines else ""
    return StoreError(
        f"Redis failed while {what}: {type(exc).__name__}" + (f": {detail}" if detail else "")
    )


async def _redis(call: Awaitable[T], what: str) -> T:
    """Await one Redis call: its ``RedisError`` becomes a ``StoreError``, and a cancellation
    it swallowed is raised again.

    Python 3.11's ``asyncio.wait_for`` (fixed in 3.12) drops a cancellation that arrives as
    the awaited operation completes, and redis-py sends every command through it when the
    client has a ``socket_timeout`` (redis-py 8's default). The task's ``cancelling()`` count
    still records the request, so a loop here cannot go on polling after being cancelled.
    """
    task = asyncio.current_task()
    cancels = task.cancelling() if task is not None else 0
    try:
        result = await call
    except RedisError as exc:
        raise _store_error(exc, what) from exc
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError
    return result


class RedisSlots:
    """At most ``limit`` slots held across every process that shares the Redis key."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        limit: int,
        *,
        name: str = "provider",
        prefix: str = "actor-maker",
        ttl_s: float = 30.0,
        poll_s: float = 0.05,
        timeout_s: float = 600.0,
    ) -> None:
        if limit < 1:
            raise ConfigError(f"the request limit must be at least 1, not {limit}")
        if ttl_s <= 0:
            raise ConfigError(f"the slot TTL must be positive, not {ttl_s}")
        self.limit = limit
        self.key = f"{prefix}:slots:{name}"
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._client = client
        # No process polls Redis with more waiters than it could ever hold slots.
        self._local = asyncio.Semaphore(limit)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._holder_base = f"{socket.gethostname()}:{os.getpid()}"

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._local:
            holder = f"{self._holder_base}:{uuid.uuid4().hex[:12]}"
            try:
                await self._wait_for(holder)
                renewer = asyncio.create_task(self._keep_alive(holder))
                try:
                    yield
                finally:
                    renewer.cancel()
                    await asyncio.wait({renewer})
            finally:
                # Also after a cancelled acquire: the script may have run on the server.
                await asyncio.shield(self._release(holder))

    async def _try(self, holder: str) -> bool:
        got = await _redis(
            self._acquire(keys=[self.key], args=[self.limit, holder, self.ttl_s]),
            f"acquiring a request slot ({self.key})",
        )
        return bool(got)

    async def _wait_for(self, holder: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not await self._try(holder):
            if time.monotonic() >= deadline:
                raise SlotTimeoutError(
                    f"no request slot became free within {self.timeout_s:g} s: all "
                    f"{self.limit} slot(s) of {self.key} in Redis are held by other workers "
                    "(raise MAX_CONCURRENT_REQUESTS or wait for them)"
                )
            await asyncio.sleep(self.poll_s * random.uniform(0.75, 1.25))

    async def _keep_alive(self, holder: str) -> None:
        """Renew every ttl/3; a slot lost (e.g. a stall past the TTL) is taken back if free."""
        warned = False
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                renewed = await _redis(
                    self._renew(keys=[self.key], args=[holder, self.ttl_s]),
                    f"renewing a request slot ({self.key})",
                )
                if not renewed:
                    renewed = await self._try(holder)
            except StoreError as exc:  # transient, perhaps: the TTL leaves time to retry
                log.warning("%s", exc)
                continue
            if not renewed and not warned:
                warned = True
                log.warning(
                    "request slot %s expired while held (stalled longer than %g s?); "
                    "this call now runs over the global limit",
                    self.key,
                    self.ttl_s,
                )

    async def _release(self, holder: str) -> None:
        try:
            await _redis(
                self._client.zrem(self.key, holder), f"releasing a request slot ({self.key})"
            )
        except StoreError as exc:  # not raised over the caller's outcome: the TTL frees it
            log.warning("%s", exc)


class RedisCreateGate:
    """The provider's ``CreateGate`` for every worker: a global token bucket of creates
    (``per_minute``, with about two seconds' worth of burst) and a global slow-down that any
    worker's 429 switches on."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        per_minute: int = 600,
        prefix: str = "actor-maker",
        name: str = "replicate",
    ) -> None:
        if per_minute < 1:
            raise ConfigError(f"the create rate must be at least 1 per minute, not {per_minute}")
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * BURST_S)
        self.bucket_key = f"{prefix}:bucket:{name}"
        self.slowdown_key = f"{prefix}:slowdown:{name}"
        self._take = client.register_script(_TAKE)
        self._slow_down = client.register_script(_SLOW_DOWN)

    async def before_create(self) -> None:
        while True:
            wait_ms = await _redis(
                self._take(
                    keys=[self.slowdown_key, self.bucket_key], args=[self.rate, self.capacity]
                ),
                f"waiting for the global create rate ({self.bucket_key})",
            )
            if not wait_ms:
                return
            # A little jitter so waiting workers do not all ask again at the same instant.
            await asyncio.sleep(int(wait_ms) / 1000 * random.uniform(1.0, 1.1) + 0.001)

    async def throttled(self, retry_after: float | None) -> None:
        seconds = 1.0 if retry_after is None else retry_after
        seconds = min(max(seconds, 0.0), MAX_SLOWDOWN_S)
        if seconds <= 0:
            return
        slowed = await _redis(
            self._slow_down(
                keys=[self.slowdown_key, self.bucket_key],
                args=[seconds, self.rate, self.capacity],
            ),
            f"slowing every worker down ({self.slowdown_key})",
        )
        if slowed:
            log.info("429 from the provider: every worker waits %.1f s before creating", seconds)
