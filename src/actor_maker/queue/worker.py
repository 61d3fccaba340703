"""``actor-maker worker``: a Dramatiq worker running the pipeline for queued items.

Each process keeps one asyncio loop (in a thread) with the providers' HTTP
clients, the Redis-held limits and a bounded cache of base images; Dramatiq's
worker threads hand it one item at a time. A message is acknowledged only after
its image is stored and the manifest updated (or the item is final); a killed
worker's messages are delivered again to another worker. SIGTERM/SIGINT: stop
taking messages, finish the ones in hand, then exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import dramatiq
import redis.asyncio as aioredis
from dramatiq.brokers.redis import RedisBroker

from actor_maker.config import Settings
from actor_maker.jobs.models import Job
from actor_maker.jobs.runner import default_owner
from actor_maker.pipeline import Pipeline
from actor_maker.queue.broker import ACTOR, QUEUE, enqueue_item, make_broker
from actor_maker.queue.items import BaseImageCache, ItemProcessor
from actor_maker.queue.limits import RedisCreateGate, RedisSlots
from actor_maker.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerRuntime:
    """Everything one worker process shares between its threads."""

    def __init__(
        self, settings: Settings, broker: RedisBroker, *, provider: str | None = None
    ) -> None:
        assert settings.redis_url
        self.settings = settings
        self.broker = broker
        self.provider_name = provider
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="worker-loop", daemon=True
        )
        self._thread.start()
        self.redis = self.call(self._connect())
        self.runtime = Runtime(
            settings,
            provider=provider,
            slots=RedisSlots(
                self.redis,
                settings.max_concurrent_requests,
                prefix=settings.queue_prefix,
                ttl_s=settings.slot_ttl_s,
                timeout_s=settings.slot_timeout_s,
            ),
            gate=RedisCreateGate(
                self.redis, per_minute=settings.create_rate_per_minute, prefix=settings.queue_prefix
            ),
        )
        self.records = self.runtime.records
        self.cache = BaseImageCache(settings.base_cache_size)
        self.processor = ItemProcessor(
            records=self.records,
            pipelines=self.pipeline,
            cache=self.cache,
            owner=default_owner(),
            claim_s=settings.worker_heartbeat_s,
        )

    async def _connect(self) -> aioredis.Redis:
        assert self.settings.redis_url
        return aioredis.Redis.from_url(self.settings.redis_url)

    def pipeline(self, job: Job) -> Pipeline:
        """The pipeline for the job's provider and model (``--provider`` overrides)."""
        return self.runtime.pipeline(job.model, self.provider_name or job.provider)

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def process(self, job_id: str, prompt_id: str) -> None:
        """The Dramatiq actor: raises only for trouble worth a redelivery. A duplicate of an
        item another delivery is working on comes back later, in case that one dies."""
        if not self.call(self.processor.process(job_id, prompt_id)):
            enqueue_item(self.broker, job_id, prompt_id, delay_s=self.settings.worker_heartbeat_s)

    def close(self) -> None:
        async def shutdown() -> None:
            await self.runtime.aclose()
            await self.redis.aclose()

        self.call(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def run_worker(settings: Settings, *, concurrency: int, provider: str | None = None) -> None:
    """Run until SIGTERM or SIGINT, then finish the items in hand and return."""
    broker = make_broker(settings)
    dramatiq.set_broker(broker)
    runtime = WorkerRuntime(settings, broker, provider=provider)
    dramatiq.Actor(
        runtime.process, broker=broker, actor_name=ACTOR, queue_name=QUEUE, priority=0, options={}
    )
    worker = dramatiq.Worker(broker, worker_threads=concurrency, worker_timeout=200)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    log.warning("worker started: %d thread(s), queue %s", concurrency, settings.queue_prefix)
    try:
        stop.wait()
    finally:
        log.warning("stopping: finishing the items in hand")
        worker.stop(timeout=int((settings.image_deadline_s + 60) * 1000))
        runtime.close()
