"""Wiring: build the store, provider, slots and pipeline from one Settings object."""

from __future__ import annotations

import functools
from pathlib import Path

from actor_maker import prompts as prompt_lib
from actor_maker.config import Settings
from actor_maker.errors import ConfigError
from actor_maker.fetch import AddressPolicy
from actor_maker.pipeline import Pipeline
from actor_maker.providers.base import CreateGate, ImageProvider
from actor_maker.providers.preview import PreviewProvider
from actor_maker.quality.checker import QualityChecker
from actor_maker.slots import MachineSlots, RequestSlots
from actor_maker.store import ObjectStore, open_store


def make_provider(
    settings: Settings,
    name: str | None = None,
    model: str | None = None,
    *,
    gate: CreateGate | None = None,
) -> ImageProvider:
    """The configured provider; ``gate`` paces Replicate creates across workers."""
    name = name or settings.provider_name
    if name == "preview":
        return PreviewProvider()
    if name != "replicate":
        raise ConfigError(f"unknown provider {name!r}; use replicate or preview")
    if settings.replicate_api_token is None:
        raise ConfigError("the replicate provider needs REPLICATE_API_TOKEN")
    from actor_maker.providers.replicate import ReplicateProvider

    model = model or settings.model
    return ReplicateProvider(
        token=settings.replicate_api_token.get_secret_value(),
        model=model,
        base_url=settings.replicate_base_url,
        price=settings.price_of(model),
        deadline_s=settings.image_deadline_s,
        max_retries=settings.max_retries,
        poll_interval_s=settings.poll_interval_s,
        wait_s=settings.create_wait_s,
        safety_tolerance=settings.safety_tolerance,
        gate=gate,
    )


@functools.cache
def _checker(identity: bool, threshold: float | None) -> QualityChecker:
    return QualityChecker(identity=identity, identity_threshold=threshold)


def make_checker(settings: Settings) -> QualityChecker | None:
    """The process's checker (face models load once), or ``None`` with checks off."""
    if not settings.checks:
        return None
    return _checker(settings.identity_check, settings.identity_threshold)


def make_pipeline(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    provider: ImageProvider | None = None,
    prompts_file: Path | None = None,
    policy: AddressPolicy | None = None,
    slots: RequestSlots | None = None,
) -> Pipeline:
    return Pipeline(
        settings=settings,
        store=store or open_store(settings),
        provider=provider or make_provider(settings),
        slots=slots
        or MachineSlots(
            settings.max_concurrent_requests,
            settings.slot_dir,
            timeout_s=settings.slot_timeout_s,
        ),
        policy=policy or AddressPolicy(allow_private=settings.allow_private_urls),
        library=prompt_lib.load_library(prompts_file) if prompts_file else None,
        checker=make_checker(settings),
    )
