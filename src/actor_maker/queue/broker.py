"""The task queue: Dramatiq on Redis.

Why Dramatiq (over Celery): messages are acknowledged only after the actor
function returns, a dead worker's unacknowledged messages are requeued by the
Redis broker itself (heartbeats), retries with backoff are a middleware, and the
worker is a small library object we can run inside ``actor-maker worker`` — with
no separate beat/result services to deploy.

One message per job item: ``generate_item(job_id, prompt_id)``. Messages carry
ids only, so a queue of 10,000 items holds no images.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from actor_maker.config import Settings

QUEUE = "generate"
ACTOR = "generate_item"
#: Retries of an item whose processing raised (store or Redis trouble, not a failed image).
MAX_RETRIES = 5


def make_broker(settings: Settings) -> RedisBroker:
    """The broker of this deployment (``ACTOR_MAKER_QUEUE``, ``ACTOR_MAKER_QUEUE_PREFIX``)."""
    assert settings.redis_url, "distributed mode needs ACTOR_MAKER_QUEUE"
    heartbeat_ms = int(settings.worker_heartbeat_s * 1000)
    broker = RedisBroker(
        url=settings.redis_url,
        namespace=f"{settings.queue_prefix}:dramatiq",
        heartbeat_timeout=heartbeat_ms,
        # requeue dead workers' messages promptly: maintenance on ~1% of commands
        maintenance_chance=10_000 if heartbeat_ms >= 10_000 else 1_000_000,
        middleware=[
            AgeLimit(),
            TimeLimit(time_limit=int(settings.image_deadline_s * 1000) + 120_000),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            Retries(max_retries=MAX_RETRIES, min_backoff=500, max_backoff=30_000),
        ],
    )
    broker.declare_queue(QUEUE)
    return broker


def enqueue_item(
    broker: RedisBroker, job_id: str, prompt_id: str, *, delay_s: float | None = None
) -> None:
    message: dramatiq.Message[None] = dramatiq.Message(
        queue_name=QUEUE, actor_name=ACTOR, args=(job_id, prompt_id), kwargs={}, options={}
    )
    broker.enqueue(message, delay=int(delay_s * 1000) if delay_s else None)
