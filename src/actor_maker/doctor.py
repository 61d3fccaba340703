"""``actor-maker doctor``: check the configuration and say in plain words what works."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from actor_maker.config import Settings
from actor_maker.errors import ActorMakerError
from actor_maker.runtime import make_provider
from actor_maker.slots import default_slot_dir
from actor_maker.store import open_store


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _store(settings: Settings) -> Check:
    try:
        store = open_store(settings)
        store.check_writable()
    except ActorMakerError as exc:
        return Check("store", False, f"{settings.store_location}: {exc}")
    return Check("store", True, f"{store.description} is reachable and writable")


def _provider(settings: Settings) -> Check:
    try:
        provider = make_provider(settings)
    except ActorMakerError as exc:
        return Check("provider", False, str(exc))

    async def probe() -> str:
        try:
            return await provider.check()
        finally:
            await provider.aclose()

    try:
        detail = asyncio.run(probe())
    except ActorMakerError as exc:
        return Check("provider", False, str(exc))
    if provider.placeholder:
        detail += "; set REPLICATE_API_TOKEN to generate real images"
    return Check("provider", True, detail)


def _price(settings: Settings) -> Check:
    if settings.provider_name == "preview":
        return Check("pricing", True, "preview images cost nothing")
    price = settings.price_of(settings.model)
    if price is None:
        return Check(
            "pricing", False, f"no price for {settings.model}; add it to ACTOR_MAKER_PRICES"
        )
    return Check(
        "pricing",
        True,
        f"{settings.model} at ${price:.3f}/image; job ceiling ${settings.max_job_cost:.2f}",
    )


def _slots(settings: Settings) -> Check:
    directory = settings.slot_dir or default_slot_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".doctor"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return Check("request slots", False, f"{directory} is not writable: {exc.strerror}")
    where = "across all workers (in Redis)" if settings.redis_url else f"per machine ({directory})"
    limit = settings.max_concurrent_requests
    return Check("request slots", True, f"{limit} concurrent provider calls {where}")


def _redis(settings: Settings) -> Check | None:
    if not settings.redis_url:
        return None
    try:
        import redis
    except ImportError:
        return Check(
            "queue",
            False,
            "ACTOR_MAKER_QUEUE is set but the redis package is missing: "
            "pip install 'actor-maker[queue]'",
        )
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        return Check(
            "queue", False, f"Redis at ACTOR_MAKER_QUEUE does not answer: {type(exc).__name__}"
        )
    return Check("queue", True, "Redis answers")


def run_checks(settings: Settings) -> list[Check]:
    checks = [_store(settings), _provider(settings), _price(settings), _slots(settings)]
    redis_check = _redis(settings)
    if redis_check:
        checks.append(redis_check)
    return checks
