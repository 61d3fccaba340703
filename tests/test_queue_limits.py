"""The Redis-held global limits against the real Redis, across real processes: request
slots (bound, crash recovery, renewal, timeout) and the create gate (rate, 429 slow-down),
and the Replicate provider sharing a gate against the stand-in."""

import asyncio
import json
import multiprocessing
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio

from actor_maker.errors import SlotTimeoutError, StoreError
from actor_maker.providers.base import GenerationParams, InputImage
from actor_maker.providers.replicate import ReplicateProvider
from actor_maker.providers.replicate_http import ReplicateHTTP
from actor_maker.queue.limits import RedisCreateGate, RedisSlots, _redis
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn

from .helpers import REDIS_LIMITS_URL as REDIS_URL
from .helpers import sample_image

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def prefix(redis_prefix):
    return redis_prefix


@pytest.fixture
async def client():
    c = redis.asyncio.Redis.from_url(REDIS_URL)
    yield c
    await c.aclose()


def start(target, *args):
    proc = SPAWN.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def join_all(procs, timeout=30.0):
    for proc in procs:
        proc.join(timeout)
        assert proc.exitcode == 0, f"child exited {proc.exitcode}"


# --- children (module level so spawn can import them) ----------------------------------------


def _hold_slots(prefix, limit, tasks, hold_s, barrier, out):
    async def main():
        c = redis.asyncio.Redis.from_url(REDIS_URL)
        slots = RedisSlots(c, limit, prefix=prefix, timeout_s=20)
        spans = []

        async def one():
            async with slots.slot():
                began = time.time()
                await asyncio.sleep(hold_s)
                spans.append((began, time.time()))

        await asyncio.gather(*(one() for _ in range(tasks)))
        await c.aclose()
        return spans

    barrier.wait(30)
    Path(out).write_text(json.dumps(asyncio.run(main())))


def _hold_forever(prefix, ttl_s, held):
    async def main():
        c = redis.asyncio.Redis.from_url(REDIS_URL)
        async with RedisSlots(c, 1, prefix=prefix, ttl_s=ttl_s).slot():
            held.set()
            await asyncio.sleep(3600)

    asyncio.run(main())


def _creates(prefix, per_minute, count, barrier, out):
    async def main():
        c = redis.asyncio.Redis.from_url(REDIS_URL)
        gate = RedisCreateGate(c, per_minute=per_minute, prefix=prefix)
        stamps = []
        for _ in range(count):
            await gate.before_create()
            stamps.append(time.time())
        await c.aclose()
        return stamps

    barrier.wait(30)
    Path(out).write_text(json.dumps(asyncio.run(main())))


def _create_after(prefix, ready, go, out):
    async def main():
        c = redis.asyncio.Redis.from_url(REDIS_URL)
        gate = RedisCreateGate(c, prefix=prefix)
        await c.ping()
        ready.set()
        while not go.is_set():
            await asyncio.sleep(0.001)
        began = time.monotonic()
        await gate.before_create()
        result = {"waited": time.monotonic() - began, "done": time.time()}
        await c.aclose()
        return result

    Path(out).write_text(json.dumps(asyncio.run(main())))


def peak_overlap(spans):
    events = sorted([(b, 1) for b, _ in spans] + [(e, -1) for _, e in spans])
    peak = current = 0
    for _, delta in events:  # at equal times an end (-1) sorts before a start
        current += delta
        peak = max(peak, current)
    return peak


# --- RedisSlots -------------------------------------------------------------------------------


def test_slots_bound_holds_across_processes(prefix, tmp_path):
    limit, procs_n, tasks = 4, 3, 6
    barrier = SPAWN.Barrier(procs_n)
    outs = [tmp_path / f"spans{i}.json" for i in range(procs_n)]
    procs = [start(_hold_slots, prefix, limit, tasks, 0.2, barrier, str(o)) for o in outs]
    join_all(procs)
    per_process = [json.loads(o.read_text()) for o in outs]
    spans = [s for spans in per_process for s in spans]
    assert len(spans) == procs_n * tasks
    # each process alone could hold 4 at once; all of them together never more than 4
    assert peak_overlap(spans) == limit
    assert max(e for _, e in spans) - min(b for b, _ in spans) >= 0.2 * len(spans) / limit * 0.9
    assert redis.Redis.from_url(REDIS_URL).exists(f"{prefix}:slots:provider") == 0  # all freed


async def test_slot_of_a_killed_holder_frees_itself_after_the_ttl(prefix, client):
    held = SPAWN.Event()
    proc = start(_hold_forever, prefix, 0.5, held)
    assert await asyncio.to_thread(held.wait, 20)
    await asyncio.sleep(0.8)  # longer than the TTL: the holder's renewals keep it
    waiting = RedisSlots(client, 1, prefix=prefix, ttl_s=0.5, timeout_s=0.2)
    with pytest.raises(SlotTimeoutError):
        async with waiting.slot():
            pass
    proc.kill()  # SIGKILL: no release, no more renewals
    await asyncio.to_thread(proc.join, 10)
    killed = time.monotonic()
    async with RedisSlots(client, 1, prefix=prefix, ttl_s=0.5, timeout_s=5).slot():
        freed_after = time.monotonic() - killed
    assert 0.1 < freed_after < 1.0


async def test_renewal_keeps_a_slot_held_past_its_ttl(prefix, client):
    holder = RedisSlots(client, 1, prefix=prefix, ttl_s=0.3)
    other = RedisSlots(client, 1, prefix=prefix, ttl_s=0.3, timeout_s=0.9)
    async with holder.slot():
        with pytest.raises(SlotTimeoutError):  # 3 TTLs pass while it is held
            async with other.slot():
                pass
        now = time.time()
        key = f"{prefix}:slots:provider"
        [(_, expiry)] = await client.zrange(key, 0, -1, withscores=True)
        assert now - 0.05 < expiry <= now + 0.35
        assert 0 < await client.pttl(key) <= 1350  # the set outlives its last holder by 1 s
    began = time.monotonic()
    async with other.slot():  # released at once, not after the TTL
        assert time.monotonic() - began < 0.2


async def test_timeout_raises_a_clear_slot_timeout_error(prefix, client):
    slots = RedisSlots(client, 2, prefix=prefix, name="bound", timeout_s=0.3)
    waiter = RedisSlots(client, 2, prefix=prefix, name="bound", timeout_s=0.3)
    async with slots.slot(), slots.slot():
        began = time.monotonic()
        with pytest.raises(SlotTimeoutError) as caught:
            async with waiter.slot():
                pass
        assert time.monotonic() - began >= 0.3
    message = str(caught.value)
    assert f"{prefix}:slots:bound" in message and "all 2 slot(s)" in message
    assert "MAX_CONCURRENT_REQUESTS" in message


async def test_a_cancelled_waiter_leaves_no_holder_behind(prefix, client):
    slots = RedisSlots(client, 1, prefix=prefix)
    waiter = RedisSlots(client, 1, prefix=prefix)
    key = f"{prefix}:slots:provider"

    async def wait_for_one():
        async with waiter.slot():
            pass

    async with slots.slot():
        for delay in (0.2, 0.013, 0.031, 0.057, 0.003):  # land in a sleep, in a Redis call
            task = asyncio.create_task(wait_for_one())
            await asyncio.sleep(delay)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
            assert await client.zcard(key) == 1
    assert await client.zcard(key) == 0


async def test_a_cancellation_swallowed_inside_a_redis_call_is_raised_again():
    """Python 3.11's asyncio.wait_for, which redis-py sends commands through, can drop a
    cancellation that lands as the send completes; the slot waiter must not poll on."""

    async def swallows_cancellation():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return 1

    task = asyncio.create_task(_redis(swallows_cancellation(), "testing"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_redis_failures_become_one_line_store_errors_without_the_password():
    down = redis.asyncio.Redis.from_url("redis://:s3cret-pw@127.0.0.1:1/0")
    with pytest.raises(StoreError) as caught:
        async with RedisSlots(down, 1).slot():
            pass
    message = str(caught.value)
    assert "\n" not in message and "s3cret-pw" not in message
    assert "acquiring a request slot" in message
    with pytest.raises(StoreError):
        await RedisCreateGate(down).before_create()
    await down.aclose()


# --- RedisCreateGate --------------------------------------------------------------------------


def test_create_rate_holds_across_processes(prefix, tmp_path):
    per_minute, per_process = 120, 10  # 2/s with a burst of 4: 20 creates take >= 8 s
    barrier = SPAWN.Barrier(2)
    outs = [tmp_path / f"creates{i}.json" for i in range(2)]
    procs = [start(_creates, prefix, per_minute, per_process, barrier, str(o)) for o in outs]
    join_all(procs)
    stamps = sorted(t for o in outs for t in json.loads(o.read_text()))
    assert len(stamps) == 20
    rate, burst = 2.0, 4
    assert stamps[-1] - stamps[0] >= (20 - burst) / rate * 0.95
    assert stamps[-1] - stamps[0] < (20 - burst) / rate + 2.0  # and not much slower
    for i, first in enumerate(stamps):  # no window ever saw more than burst + rate × length
        for j in range(i, len(stamps)):
            assert j - i + 1 <= burst + rate * (stamps[j] - first) + 1


async def test_a_429_slows_down_another_process(prefix, client, tmp_path):
    ready, go = SPAWN.Event(), SPAWN.Event()
    out = tmp_path / "after.json"
    proc = start(_create_after, prefix, ready, go, str(out))
    assert await asyncio.to_thread(ready.wait, 20)
    throttled_at = time.time()
    await RedisCreateGate(client, prefix=prefix).throttled(0.5)
    go.set()
    await asyncio.to_thread(join_all, [proc])
    seen = json.loads(out.read_text())
    assert seen["done"] - throttled_at >= 0.45
    assert seen["waited"] >= 0.4


async def test_throttled_never_shortens_a_slow_down(prefix, client):
    gate = RedisCreateGate(client, prefix=prefix)
    key = f"{prefix}:slowdown:replicate"

    async def remaining():
        seconds, micros = await client.time()
        return float(await client.get(key)) - (seconds + micros / 1e6)

    await gate.throttled(None)  # no Retry-After: one second
    assert 0.9 < await remaining() <= 1.0
    await gate.throttled(3.0)
    await gate.throttled(0.1)
    await gate.throttled(None)
    assert 2.9 < await remaining() <= 3.0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gate.before_create(), 0.3)


# --- the Replicate provider with a shared gate ------------------------------------------------

TOKEN = "r8_gate_secret_token"
MODEL = "black-forest-labs/flux-kontext-pro"
IMAGE = InputImage(sample_image(), "image/jpeg")
PARAMS = GenerationParams(prompt="The man waits on a rainy platform", aspect_ratio="1:1", seed=7)


@pytest.fixture(scope="module")
def standin():
    with ReplicateStandIn(token=TOKEN) as server:
        yield server


def provider(standin, gate):
    http = ReplicateHTTP(
        token=TOKEN, base_url=standin.base_url, backoff_initial_s=0.01, backoff_max_s=0.05
    )
    return ReplicateProvider(http, model=MODEL, poll_interval_s=0.05, deadline_s=10, gate=gate)


class RecordingGate:
    """Records the provider's calls, then hands them on to a real gate (or none)."""

    def __init__(self, inner=None):
        self.inner = inner
        self.calls = []
        self.throttled_seen = asyncio.Event()

    async def before_create(self):
        self.calls.append("before_create")
        if self.inner:
            await self.inner.before_create()

    async def throttled(self, retry_after):
        self.calls.append(f"throttled({retry_after})")
        if self.inner:
            await self.inner.throttled(retry_after)
        self.throttled_seen.set()


async def test_provider_tells_its_gate_before_each_create_and_after_a_429(standin):
    standin.faults = Faults(throttle_first=1, retry_after=0.3)
    standin.reset_counters()
    gate = RecordingGate()
    p = provider(standin, gate)
    try:
        await p.generate(IMAGE, PARAMS)
    finally:
        await p.aclose()
    assert gate.calls == ["before_create", "throttled(0.3)", "before_create"]
    assert standin.throttled == 1 and standin.creates == 1


async def test_a_429_seen_by_one_provider_delays_another_sharing_the_gate(standin, prefix, client):
    standin.faults = Faults(throttle_first=1, retry_after=0.3)
    standin.reset_counters()
    # two workers: each its own gate object and provider, the same Redis keys
    first_gate = RecordingGate(RedisCreateGate(client, prefix=prefix))
    first, second = (
        provider(standin, first_gate),
        provider(standin, RedisCreateGate(client, prefix=prefix)),
    )

    async def second_after_the_429():
        await asyncio.wait_for(first_gate.throttled_seen.wait(), 10)
        began = time.monotonic()
        await second.generate(IMAGE, PARAMS)
        return time.monotonic() - began

    try:
        _, second_took = await asyncio.gather(first.generate(IMAGE, PARAMS), second_after_the_429())
    finally:
        await first.aclose()
        await second.aclose()
    assert standin.throttled == 1 and standin.creates == 2
    assert second_took >= 0.25  # it did not get a 429 itself: it waited out the other's
    creates = [m for m, path in standin.requests_log if m == "POST" and "/predictions" in path]
    assert len(creates) == 3
