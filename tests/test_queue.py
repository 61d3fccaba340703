"""Distributed mode end to end: real Redis, real worker processes, moto S3, the Replicate
stand-in. Exact manifests, the global request bound, a worker killed mid-job, a 429 storm."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import httpx
import pytest

from actor_maker import actors
from actor_maker.config import Settings
from actor_maker.jobs.models import JobKind
from actor_maker.jobs.redis import RedisJobRecords
from actor_maker.layout import training_prefix
from actor_maker.manifest import require_manifest
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn

from .apiserver import read_sse, serve_in_thread
from .helpers import CLI, clean_environ, run_cli, s3_environ, sample_image

REDIS = "redis://127.0.0.1:6379/13"
TOKEN = "r8_queue_token"
PROMPTS = [
    "photo-rain-platform",
    "photo-diner-morning",
    "bw-charcoal-portrait",
    "color-oil-portrait",
]


@pytest.fixture
def standin():
    with ReplicateStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture
def prefix():
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    RedisJobRecords(REDIS, prefix=name).clear()


@pytest.fixture
def env(prefix, standin, moto_server, s3_bucket, tmp_path):
    environ = clean_environ()
    environ.update(
        s3_environ(moto_server, s3_bucket),
        ACTOR_MAKER_QUEUE=REDIS,
        ACTOR_MAKER_QUEUE_PREFIX=prefix,
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=standin.base_url,
        ACTOR_MAKER_POLL_INTERVAL="0.05",
        ACTOR_MAKER_WORKER_HEARTBEAT="3",
        ACTOR_MAKER_SLOT_TTL="3",
        MAX_CONCURRENT_REQUESTS="3",
        ACTOR_MAKER_STATE_DIR=str(tmp_path / "state"),
    )
    return environ


def settings_from(environ) -> Settings:
    keys = {
        k: v
        for k, v in environ.items()
        if k.startswith(("ACTOR_MAKER_", "AWS_", "REPLICATE_", "MAX_"))
    }
    old = dict(os.environ)
    os.environ.update(keys)
    try:
        return Settings(_env_file=None)
    finally:
        os.environ.clear()
        os.environ.update(old)


class Workers:
    def __init__(self, environ, count=2, concurrency=3):
        self.procs = [
            subprocess.Popen(
                [*CLI, "worker", "--concurrency", str(concurrency)],
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def make_actors(store, count):
    ids = []
    for n in range(count):
        actor_id = f"07{n:02d}"
        actors.create_actor(
            store,
            actor_id=actor_id,
            actor_name=f"{actor_id}_queued",
            actor_sex="female",
            base_image=sample_image(seed=n),
            max_bytes=10**7,
            max_pixels=10**8,
        )
        ids.append(actor_id)
    return ids


def enqueue(environ, *args):
    proc = run_cli(environ, "enqueue", *args, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def wait_all(records, count, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = records.list(limit=100)
        if len(jobs) >= count and all(j.state.finished for j in jobs):
            return jobs
        time.sleep(0.2)
    raise AssertionError(
        f"jobs did not finish: {[(j.id, j.state, j.counts()) for j in records.list()]}"
    )


def check_exact(store, ids, jobs):
    by_actor = {j.actor_id: j for j in jobs}
    for actor_id in ids:
        manifest = require_manifest(store, actor_id)
        prompt_ids = sorted(e["prompt_id"] for e in manifest.training_data)
        assert prompt_ids == sorted(PROMPTS), f"{actor_id}: {prompt_ids}"
        keys = {e["key"] for e in manifest.training_data}
        for obj in store.list(training_prefix(manifest.actor_name)):
            if obj.key in keys:
                continue  # an orphan must explain itself: which job and prompt paid for it
            head = store.head(obj.key)
            assert head.metadata.get("job-id") == by_actor[actor_id].id, obj.key
            assert head.metadata.get("prompt-id") in PROMPTS


def test_multi_actor_jobs_finish_with_exact_manifests_under_the_global_bound(
    env, prefix, standin, s3_store
):
    standin.faults = Faults(latency=0.3)
    ids = make_actors(s3_store, 3)
    out = enqueue(env, *ids, "--only", ",".join(PROMPTS))
    assert "12 image(s)" in out
    workers = Workers(env, count=2, concurrency=4)
    records = RedisJobRecords(REDIS, prefix=prefix)
    try:
        jobs = wait_all(records, 3)
    finally:
        workers.stop()
    assert all(j.state.value == "succeeded" for j in jobs)
    check_exact(s3_store, ids, jobs)
    assert standin.creates == 12
    assert standin.max_in_flight <= 3  # MAX_CONCURRENT_REQUESTS across both workers
    assert standin.max_in_flight == 3


def test_a_worker_killed_mid_job_is_recovered_from(env, prefix, standin, s3_store):
    standin.faults = Faults(latency=1.0, wait_cap=0.2)
    ids = make_actors(s3_store, 2)
    enqueue(env, *ids, "--only", ",".join(PROMPTS))
    victim = Workers(env, count=1, concurrency=3)
    deadline = time.monotonic() + 30
    while standin.creates < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.procs[0].kill()  # kill -9 while predictions are in flight
    victim.procs[0].wait()
    survivor = Workers(env, count=1, concurrency=3)
    records = RedisJobRecords(REDIS, prefix=prefix)
    try:
        jobs = wait_all(records, 2, timeout=120)
    finally:
        survivor.stop()
    assert all(j.state.value == "succeeded" for j in jobs), [j.counts() for j in jobs]
    check_exact(s3_store, ids, jobs)


def test_a_429_storm_is_absorbed_without_losing_items(env, prefix, standin, s3_store):
    standin.faults = Faults(throttle_first=15, retry_after=0.2)
    ids = make_actors(s3_store, 2)
    enqueue(env, *ids, "--only", ",".join(PROMPTS))
    workers = Workers(env, count=2, concurrency=3)
    records = RedisJobRecords(REDIS, prefix=prefix)
    try:
        jobs = wait_all(records, 2)
    finally:
        workers.stop()
    assert standin.throttled == 15
    assert all(j.state.value == "succeeded" for j in jobs)
    check_exact(s3_store, ids, jobs)


def test_api_instances_share_jobs_and_streams(env, prefix, standin, s3_store):
    standin.faults = Faults(latency=0.2)
    make_actors(s3_store, 1)
    settings = settings_from(env)
    workers = Workers(env, count=1, concurrency=2)
    try:
        with (
            serve_in_thread(settings, store=s3_store) as one,
            serve_in_thread(settings, store=s3_store) as two,
        ):
            job = httpx.post(f"{one}/api/actors/0700/jobs", json={"prompt_ids": PROMPTS[:2]}).json()
            assert job["kind"] == JobKind.subset
            with httpx.stream("GET", f"{two}/api/jobs/{job['id']}/events", timeout=60) as stream:
                names = [name for name, _ in read_sse(stream)]
            assert names[0] == "progress" and names[-1] == "job_finished"
            assert names.count("item_succeeded") == 2
            final = httpx.get(f"{two}/api/jobs/{job['id']}").json()
            assert final["state"] == "succeeded"
    finally:
        workers.stop()


def test_enqueue_respects_the_batch_ceiling_and_dry_run(env, prefix, s3_store):
    ids = make_actors(s3_store, 3)
    proc = run_cli(env, "enqueue", "--all", "--max-cost", "1", timeout=60)
    assert proc.returncode == 2 and "over the ceiling" in proc.stderr
    out = enqueue(env, "--all", "--dry-run", "--max-cost", "100")
    assert f"{len(ids)} actor(s)" in out
    assert RedisJobRecords(REDIS, prefix=prefix).list() == []


def test_sigterm_finishes_the_items_in_hand_and_loses_nothing(env, prefix, standin, s3_store):
    standin.faults = Faults(latency=1.0, wait_cap=0.2)
    ids = make_actors(s3_store, 2)
    enqueue(env, *ids, "--only", ",".join(PROMPTS))
    first = Workers(env, count=1, concurrency=3)
    deadline = time.monotonic() + 30
    while standin.creates < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    in_flight = standin.creates
    first.stop()  # SIGTERM: finish what is in hand, take nothing new
    assert first.procs[0].returncode == 0
    assert standin.canceled == 0  # in-hand predictions were finished, not abandoned
    records = RedisJobRecords(REDIS, prefix=prefix)
    done = sum(j.succeeded for j in records.list())
    assert done >= in_flight  # what it had started, it stored
    second = Workers(env, count=1, concurrency=3)
    try:
        jobs = wait_all(records, 2)
    finally:
        second.stop()
    assert all(j.state.value == "succeeded" for j in jobs)
    check_exact(s3_store, ids, jobs)


def test_jobs_list_and_watch_from_another_process(env, prefix, standin, s3_store):
    standin.faults = Faults(latency=0.2)
    ids = make_actors(s3_store, 1)
    enqueue(env, *ids, "--only", ",".join(PROMPTS[:2]))
    records = RedisJobRecords(REDIS, prefix=prefix)
    (job,) = records.list()
    workers = Workers(env, count=1, concurrency=2)
    try:
        watch = run_cli(env, "jobs", "watch", job.id, timeout=60)
    finally:
        workers.stop()
    assert watch.returncode == 0, watch.stderr
    assert f"{job.id}: succeeded" in watch.stdout and "2/2 stored" in watch.stdout
    listed = run_cli(env, "jobs", "list", "--json", timeout=60)
    import json

    assert [j["id"] for j in json.loads(listed.stdout)] == [job.id]


async def test_base_image_cache_fetches_each_actor_once(local_store):
    import asyncio

    from actor_maker.config import Settings
    from actor_maker.pipeline import StoredBase
    from actor_maker.queue.items import BaseImageCache
    from actor_maker.runtime import Runtime

    for n in range(3):
        local_store.put_if_absent(f"system_actors/base_images/a{n}_base.jpg", sample_image(seed=n))
    pipeline = Runtime(Settings(_env_file=None), store=local_store).pipeline(provider="preview")
    cache = BaseImageCache(size=2)
    keys = [f"system_actors/base_images/a{n}_base.jpg" for n in range(3)]

    def prepare(key):
        return lambda: pipeline.prepare_input(StoredBase(key))

    await asyncio.gather(*(cache.get(keys[0], prepare(keys[0])) for _ in range(10)))
    assert cache.fetches == 1  # ten items of one actor at once: one fetch
    for key in keys:
        await cache.get(key, prepare(key))
    assert cache.fetches == 3 and len(cache._images) == 2  # bounded: the oldest went


def test_duplicate_deliveries_never_pay_twice(env, prefix, standin, s3_store):
    """resume re-queues every unfinished item while the first messages are still being
    worked on: the claim on each item makes the duplicates acknowledge and step aside."""
    import asyncio

    from actor_maker.queue.broker import make_broker
    from actor_maker.queue.dispatch import QueueRunner

    standin.faults = Faults(latency=0.8, wait_cap=0.2)
    ids = make_actors(s3_store, 1)
    enqueue(env, *ids, "--only", ",".join(PROMPTS))
    records = RedisJobRecords(REDIS, prefix=prefix)
    (job,) = records.list()
    workers = Workers(env, count=2, concurrency=4)
    try:
        deadline = time.monotonic() + 30
        while standin.creates < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        runner = QueueRunner(records=records, broker=make_broker(settings_from(env)))
        asyncio.run(runner.resume(job.id))
        asyncio.run(runner.resume(job.id))
        jobs = wait_all(records, 1)
    finally:
        workers.stop()
    assert jobs[0].state.value == "succeeded"
    assert standin.creates == len(PROMPTS)  # each prompt paid for once
    check_exact(s3_store, ids, jobs)


class CountingRecords(RedisJobRecords):
    """Real Redis job records that count the writes (``modify``) made to them."""

    writes = 0

    def modify(self, job_id, change):
        self.writes += 1
        return super().modify(job_id, change)


async def one_delivery(local_store, prefix, *, latency, claim_s, cancel_after=None):
    """One ``ItemProcessor.process`` of a one-item job (cancel polled every 0.05 s);
    returns the records, the provider and the job as it ended."""
    import asyncio

    from actor_maker.pipeline import Actor, Pipeline
    from actor_maker.queue.items import BaseImageCache, ItemProcessor
    from actor_maker.slots import ProcessSlots

    from .fakes import CountingProvider

    provider = CountingProvider(latency=latency)
    pipeline = Pipeline(
        settings=Settings(_env_file=None, prices={"fake/model": 0.04}),
        store=local_store,
        provider=provider,
        slots=ProcessSlots(2),
    )
    actor = Actor("0790", "0790_keeper", "person", "female")
    key = await pipeline.prepare_base(actor, sample_image())
    plan = pipeline.plan_all(actor, only=PROMPTS[:1])
    records = CountingRecords(REDIS, prefix=prefix)
    job = records.create(plan.to_job(provider="fake", base_image_key=key))
    processor = ItemProcessor(
        records=records,
        pipelines=lambda _: pipeline,
        cache=BaseImageCache(2),
        owner="test-worker",
        claim_s=claim_s,
        cancel_poll_s=0.05,
    )
    task = asyncio.create_task(processor.process(job.id, PROMPTS[0]))
    if cancel_after is not None:
        await asyncio.sleep(cancel_after)
        await asyncio.to_thread(records.request_cancel, job.id)
    assert await asyncio.wait_for(task, 30)
    return records, provider, records.get(job.id)


async def test_a_delivery_polls_for_cancel_without_rewriting_the_job(local_store, prefix):
    """The keeper reads the job every cancel poll but renews the claim (a write of the whole
    record, which the items of one job race for) only every quarter of the claim's life."""
    records, provider, job = await one_delivery(local_store, prefix, latency=1.0, claim_s=60)
    assert job.items[0].state.value == "succeeded" and provider.calls == 1
    # claim, prediction id, outcome (+ the job's finish); not ~20 renewals at 0.05 s
    assert records.writes <= 5, records.writes


async def test_a_delivery_still_renews_its_claim(local_store, prefix):
    records, _, job = await one_delivery(local_store, prefix, latency=1.5, claim_s=0.4)
    assert job.items[0].state.value == "succeeded"
    assert records.writes >= 7  # 3 or 4 + a renewal every 0.1 s through a 1.5 s call


async def test_a_delivery_sees_a_cancel_within_a_poll(local_store, prefix):
    started = time.monotonic()
    _, provider, job = await one_delivery(
        local_store, prefix, latency=10.0, claim_s=60, cancel_after=0.5
    )
    assert job.items[0].state.value == "canceled" and provider.canceled == 1
    assert time.monotonic() - started < 5
