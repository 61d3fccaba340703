"""Image indices for every worker from one counter per actor in Redis.

Each worker used to count an actor's indices itself, so workers storing images of one actor
at the same time kept picking indices another had just taken: the create-only upload failed,
and the worker listed the actor's images to skip ahead. At the provider's rate a quarter of
the uploads collided that way. Here every process of a deployment takes the next index from
``{prefix}:index:{actor_id}`` with one ``INCR``; the create-only upload stays the guard for
anyone who does not (the CLI on a laptop, an older worker, the legacy system).

The counter starts where the store says (the highest index in the manifest or among the
actor's images, plus one), computed by the first process that finds the key missing. It
expires a day after its last use, and is then started again from the store. When Redis does
not answer, the process counts on its own (the create-only upload settles the rest): an
image already paid for is never failed for want of an index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from actor_maker.pipeline.storing import IndexAllocator, Indices

log = logging.getLogger(__name__)

#: The next index, or nil when the counter is missing (the caller starts it).
_NEXT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local value = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return value
"""

#: Start the counter at ARGV[1] unless someone just did, and take the next index.
_START = """
redis.call('SET', KEYS[1], tonumber(ARGV[1]) - 1, 'NX')
local value = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return value
"""

#: Move the counter so that the next index is at least ARGV[1]; never back.
_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local floor = tonumber(ARGV[1]) - 1
if current < floor then redis.call('SET', KEYS[1], floor, 'EX', ARGV[2]) end
return 1
"""

DAY_S = 24 * 3600
#: After Redis failed to answer, the process counts on its own this long before asking again.
RETRY_AFTER_S = 30.0


class RedisIndices:
    """An ``IndexSource``: one shared counter per actor, for every process on the Redis."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int = DAY_S) -> None:
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._next = client.register_script(_NEXT)
        self._start = client.register_script(_START)
        self._raise = client.register_script(_RAISE)

    def __call__(self, actor_id: str, start: Callable[[], int]) -> Indices:
        return _SharedCounter(self, f"{self.prefix}:index:{actor_id}", start)


class _SharedCounter:
    def __init__(self, source: RedisIndices, key: str, start: Callable[[], int]) -> None:
        self._source = source
        self._key = key
        self._start = start
        #: Used instead while Redis does not answer, until ``_retry_at`` (monotonic).
        self._local: IndexAllocator | None = None
        self._retry_at = 0.0

    def take(self) -> int:
        source = self._source
        if self._local is not None and time.monotonic() < self._retry_at:
            return self._local.take()
        try:
            value = source._next(keys=[self._key], args=[source.ttl_s])
            if value is None:
                value = source._start(keys=[self._key], args=[self._start(), source.ttl_s])
            return int(value)
        except redis.RedisError as exc:
            return self._fallback(exc).take()

    def raise_to(self, floor: int) -> None:
        source = self._source
        if self._local is not None:
            self._local.raise_to(floor)
            if time.monotonic() < self._retry_at:
                return
        try:
            source._raise(keys=[self._key], args=[floor, source.ttl_s])
        except redis.RedisError as exc:
            self._fallback(exc).raise_to(floor)

    def _fallback(self, exc: redis.RedisError) -> IndexAllocator:
        if self._local is None:
            self._local = IndexAllocator(self._start())
        if time.monotonic() >= self._retry_at:
            log.warning(
                "image indices: Redis did not answer (%s); counting in this process for %.0f s",
                type(exc).__name__,
                RETRY_AFTER_S,
            )
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        return self._local


def open_indices(url: str, *, prefix: str) -> tuple[RedisIndices, redis.Redis]:
    """The shared counters of the deployment at ``url``, and the client to close."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=5, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )
    return RedisIndices(client, prefix=prefix), client
