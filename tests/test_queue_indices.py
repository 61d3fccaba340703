"""Image indices from one Redis counter per actor, shared by every worker process (real Redis)."""

import multiprocessing

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from actor_maker.queue.indices import RedisIndices

from .helpers import REDIS_LIMITS_URL as REDIS_URL

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def prefix(redis_prefix):
    return redis_prefix


def _take_many(prefix, count, barrier, out):
    client = redis.Redis.from_url(REDIS_URL)
    starts = []

    def start():
        starts.append(1)
        return 7  # the store says: indices 0-6 are taken

    indices = RedisIndices(client, prefix=prefix)("0042", start)
    barrier.wait()
    taken = [indices.take() for _ in range(count)]
    out.put((taken, len(starts)))


def test_processes_taking_indices_of_one_actor_never_share_one(prefix):
    """Four processes take 50 indices each of one actor at once: 200 distinct indices,
    7 to 206 with no gap, and the store was asked where to start at most once per process."""
    barrier, out = SPAWN.Barrier(4), SPAWN.Queue()
    procs = [SPAWN.Process(target=_take_many, args=(prefix, 50, barrier, out)) for _ in range(4)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    taken = [i for values, _ in results for i in values]
    assert sorted(taken) == list(range(7, 207))
    assert all(starts <= 1 for _, starts in results)
    for values, _ in results:
        assert values == sorted(values)  # each process sees its own indices rise


def test_the_counter_starts_from_the_store_once_and_expires(prefix):
    client = redis.Redis.from_url(REDIS_URL)
    calls = []

    def start():
        calls.append(1)
        return 12

    source = RedisIndices(client, prefix=prefix, ttl_s=100)
    first, second = source("0001", start), source("0001", start)
    assert [first.take(), second.take(), first.take()] == [12, 13, 14]
    assert len(calls) == 1  # the second found the counter started
    assert 0 < client.ttl(f"{prefix}:index:0001") <= 100
    other = source("0002", lambda: 0)
    assert other.take() == 0  # one counter per actor
    client.close()


def test_raise_to_skips_ahead_and_never_goes_back(prefix):
    client = redis.Redis.from_url(REDIS_URL)
    indices = RedisIndices(client, prefix=prefix)("0003", lambda: 0)
    assert indices.take() == 0
    indices.raise_to(10)  # someone stored 1-9 without the counter (e.g. the CLI)
    assert indices.take() == 10
    indices.raise_to(4)
    assert indices.take() == 11
    client.close()


def test_without_redis_the_process_counts_on_its_own(caplog):
    """An image is already paid for when it needs an index: a Redis that does not answer
    must not fail it. The process counts from the store itself (create-only uploads settle
    any overlap)."""
    dead = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    indices = RedisIndices(dead, prefix="unused")("0004", lambda: 5)
    assert [indices.take(), indices.take()] == [5, 6]
    indices.raise_to(9)
    assert indices.take() == 9
    assert "counting in this process" in caplog.text
