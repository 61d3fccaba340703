"""The training flow: plan (validation and estimate, nothing paid) and run.

``run_training``: export the dataset → ``trainer.start`` → the training id goes into the
model record in one manifest update *before* waiting → poll with progress events → on
success: weights stored create-only at ``system_actors/lora_models/{actor}_{version}
.safetensors`` → samples stored beside them → identity score → the record's final status
(``trained`` or ``needs_review``; ``good`` only by :func:`~training.models.mark_good`).
A failed or canceled training changes only its record (status and reason). A run for an
actor whose record says ``training`` polls that training instead of starting another, so a
killed process re-run never pays twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actor_maker.config import Settings
from actor_maker.errors import (
    ConfigError,
    InputError,
    NotFoundError,
    PreconditionFailed,
    StoreError,
)
from actor_maker.images import md5_hex
from actor_maker.manifest import read_manifest, utc_now
from actor_maker.store.base import ObjectStore
from actor_maker.training import models
from actor_maker.training.base import (
    Dataset,
    Trainer,
    TrainingRequest,
    TrainingState,
    TrainingStatus,
)
from actor_maker.training.dataset import export_dataset
from actor_maker.training.planning import TrainingPlan, _base_key, _prices, plan_training
from actor_maker.training.scoring import score_samples
from actor_maker.validation import check_actor_id

__all__ = ["TrainingPlan", "cancel_training", "plan_training", "run_training"]

log = logging.getLogger(__name__)

#: ``on_event(name, data)``: progress for a CLI bar or an SSE stream.
OnEvent = Callable[[str, dict[str, Any]], None]


def destination(settings: Settings, plan: TrainingPlan) -> str | None:
    if plan.trainer != "replicate" or not settings.training_owner:
        return None
    slug = "".join(c if c.isalnum() else "-" for c in plan.actor_id.lower()).strip("-")
    return f"{settings.training_owner}/actor-{slug}-lora"


def _request(settings: Settings, plan: TrainingPlan, dataset: Dataset) -> TrainingRequest:
    return TrainingRequest(
        actor_id=plan.actor_id,
        version=plan.version,
        trigger_word=plan.trigger_word,
        dataset=dataset,
        params=plan.params,
        sample_prompts=plan.sample_prompts,
        sample_seeds=plan.sample_seeds,
        destination=destination(settings, plan),
        webhook_url=settings.training_webhook_url if plan.trainer == "replicate" else None,
    )


def _workdir(settings: Settings, plan: TrainingPlan) -> Path:
    return settings.state_dir / "trainings" / f"{plan.actor_id}_{plan.version}"


def _quiet(name: str, data: dict[str, Any]) -> None:
    """The default ``on_event``: events go to the debug log."""
    log.debug("%s %s", name, data)


async def run_training(
    store: ObjectStore,
    settings: Settings,
    trainer: Trainer,
    plan: TrainingPlan,
    *,
    on_event: OnEvent = _quiet,
    poll_s: float | None = None,
    wake: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run (or re-attach to) the planned training; returns the final model record."""
    if trainer.name != plan.trainer:
        raise ConfigError(f"the plan is for the {plan.trainer} trainer, not {trainer.name}")
    on_event("plan", plan.to_json())
    if plan.reattach is not None:
        training_id = str(plan.reattach["training_id"])
        request = _request(settings, plan, Dataset(Path(), plan.image_count, plan.dataset_sha256))
        if plan.trainer == "ai-toolkit":
            request = replace(
                request, dataset=replace(request.dataset, path=_workdir(settings, plan))
            )
        on_event("training_reattached", {"training_id": training_id, "version": plan.version})
    else:
        training_id, request = await _start(store, settings, trainer, plan, on_event)
    status = await _wait(trainer, training_id, on_event, poll_s or settings.poll_interval_s, wake)
    if status.state is not TrainingState.succeeded:
        record = models.update_model(
            store,
            plan.actor_id,
            plan.version,
            {
                "status": status.state.value,
                "reason": status.error or f"the training was {status.state.value}",
                "finished": utc_now(),
            },
        )
        on_event("training_finished", record)
        return record
    record = await _finish(store, settings, trainer, plan, request, status, on_event)
    await asyncio.to_thread(shutil.rmtree, _workdir(settings, plan), True)
    on_event("training_finished", record)
    return record


async def _start(
    store: ObjectStore,
    settings: Settings,
    trainer: Trainer,
    plan: TrainingPlan,
    on_event: OnEvent,
) -> tuple[str, TrainingRequest]:
    assert plan.selection is not None
    manifest = read_manifest(store, plan.actor_id)
    if manifest is None:
        raise NotFoundError(f"unknown actor {plan.actor_id}")
    record: dict[str, Any] = {
        "filename": f"{plan.actor_name}_{plan.version}.safetensors",
        "format": "safetensors",
        "version": plan.version,
        "trainer": plan.trainer,
        "trainer_model": trainer.model,
        "training_id": None,
        "trigger_word": plan.trigger_word,
        "dataset_sha256": plan.dataset_sha256,
        "image_count": plan.image_count,
        "params": vars(plan.params),
        "sample_prompts": list(plan.sample_prompts),
        "sample_seeds": list(plan.sample_seeds),
        "estimated_seconds": round(plan.estimated_seconds),
        "cost": {"estimated": round(plan.estimated_cost, 4), "max": plan.max_cost},
        "status": "starting",
        **models.created_fields(),
    }
    models.add_model(store, plan.actor_id, record)
    try:
        workdir = _workdir(settings, plan)
        dataset = await asyncio.to_thread(
            export_dataset,
            store,
            settings,
            manifest,
            plan.selection,
            fmt=trainer.export_format,
            workdir=workdir,
        )
        on_event("dataset_exported", {"images": dataset.images, "sha256": dataset.sha256})
        request = _request(settings, plan, dataset)
        training_id = await trainer.start(request)
    except BaseException as exc:
        models.update_model(
            store,
            plan.actor_id,
            plan.version,
            {"status": "failed", "reason": f"not started: {exc}"[:500], "finished": utc_now()},
        )
        raise
    # The one update that makes a restart re-attach instead of paying again.
    models.update_model(
        store, plan.actor_id, plan.version, {"status": "training", "training_id": training_id}
    )
    on_event("training_started", {"training_id": training_id, "version": plan.version})
    return training_id, request


async def _wait(
    trainer: Trainer,
    training_id: str,
    on_event: OnEvent,
    poll_s: float,
    wake: asyncio.Event | None = None,
) -> TrainingStatus:
    """Poll until final; ``wake`` (set by a verified webhook) cuts a wait short."""
    while True:
        status = await trainer.status(training_id)
        on_event(
            "progress",
            {
                "training_id": training_id,
                "state": status.state.value,
                "progress": status.progress,
                "logs": status.logs_tail[-500:],
            },
        )
        if status.state.final:
            return status
        if wake is None:
            await asyncio.sleep(poll_s)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), poll_s)
        wake.clear()


def _put_create_only(store: ObjectStore, key: str, data: bytes, content_type: str) -> str:
    """Store ``data`` at ``key`` unless it is there; an object of other bytes is an error."""
    try:
        store.put_if_absent(key, data, content_type=content_type)
    except PreconditionFailed:
        existing = store.get(key).data
        if md5_hex(existing) != md5_hex(data):
            raise StoreError(f"{key} exists with other contents; left as it is") from None
    return key


async def _finish(
    store: ObjectStore,
    settings: Settings,
    trainer: Trainer,
    plan: TrainingPlan,
    request: TrainingRequest,
    status: TrainingStatus,
    on_event: OnEvent,
) -> dict[str, Any]:
    weights = await trainer.weights(status)
    key = models.weights_key(plan.actor_name, plan.version)
    await asyncio.to_thread(_put_create_only, store, key, weights, "application/octet-stream")
    size = len(weights)
    now = datetime.now(UTC)
    stored: dict[str, Any] = {
        "key": key,
        "s3_url": store.public_url(key),
        "size_bytes": size,
        "size_mb": round(size / (1024 * 1024), 2),
        "md5_hash": md5_hex(weights),
        "last_modified": now.isoformat(timespec="seconds"),
        "created_date": now.date().isoformat(),
        "model_version": status.model_version,
    }
    del weights
    on_event("weights_stored", {"key": key, "size_bytes": size})
    base = await asyncio.to_thread(_base_image, store, plan.actor_id)
    images = await trainer.samples(status, request, base)
    samples: list[dict[str, Any]] = []
    for index, data in enumerate(images):
        sample = models.sample_key(plan.actor_name, plan.version, index)
        await asyncio.to_thread(_put_sample, store, sample, data)
        samples.append(
            {
                "key": sample,
                "prompt": request.sample_prompts[index],
                "seed": request.sample_seeds[index] if index < len(request.sample_seeds) else None,
            }
        )
    on_event("samples_stored", {"count": len(samples)})
    score = await asyncio.to_thread(score_samples, base, images, settings.identity_threshold)
    for entry, result in zip(samples, score.samples, strict=False):
        entry.update(result)
    good_enough = score.share is not None and score.share >= settings.training_min_pass
    per_second, per_sample = _prices(settings, plan.trainer)
    spent = (status.gpu_seconds or 0.0) * per_second + len(images) * per_sample
    score_json = score.to_json()
    score_json.pop("samples")
    return models.update_model(
        store,
        plan.actor_id,
        plan.version,
        {
            **stored,
            "samples": samples,
            "score": score_json,
            "cost": {
                "estimated": round(plan.estimated_cost, 4),
                "max": plan.max_cost,
                "actual": round(spent, 4),
                "gpu_seconds": status.gpu_seconds,
            },
            "status": "trained" if good_enough else "needs_review",
            "reason": None
            if good_enough
            else (score.note or "too few samples look like the actor"),
            "finished": utc_now(),
        },
    )


def _put_sample(store: ObjectStore, key: str, data: bytes) -> None:
    """Samples can be made again: a re-attached run replaces an earlier one's."""
    try:
        store.put_if_absent(key, data, content_type="image/jpeg")
    except PreconditionFailed:
        info = store.head(key)
        if info is not None:
            store.put_if_version(key, data, info.version, content_type="image/jpeg")


def _base_image(store: ObjectStore, actor_id: str) -> bytes:
    manifest = read_manifest(store, actor_id)
    key = _base_key(store, manifest) if manifest else None
    if key is None:
        raise InputError(f"actor {actor_id} has no base image in the store")
    return store.get(key).data


async def cancel_training(store: ObjectStore, trainer: Trainer, actor_id: str) -> str:
    """Ask the trainer to cancel the actor's running training; its run records the outcome."""
    manifest = read_manifest(store, check_actor_id(actor_id))
    record = models.active_model(manifest) if manifest else None
    if record is None or not record.get("training_id"):
        raise NotFoundError(f"actor {actor_id} has no training running")
    await trainer.cancel(str(record["training_id"]))
    return str(record["training_id"])
