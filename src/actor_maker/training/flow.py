"""The training flow: plan (validation and estimate, nothing paid) and run.

``run_training``: export the dataset → ``trainer.start`` → the training id goes into the
model record in one manifest update *before* waiting → poll with progress events → on
success, by the one process holding the record's finish claim (``training/finishing.py``):
weights stored create-only at ``system_actors/lora_models/{actor}_{version}
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from actor_maker.config import Settings
from actor_maker.errors import ConfigError, NotFoundError, ProviderError
from actor_maker.manifest import Manifest, read_manifest, utc_now
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
from actor_maker.training.finishing import OnEvent, finish_once
from actor_maker.training.planning import TrainingPlan, plan_training, reattach_plan
from actor_maker.validation import check_actor_id

__all__ = ["TrainingPlan", "cancel_training", "plan_training", "run_training"]

log = logging.getLogger(__name__)

#: How far the trainer's clock may be behind ours when a stale start looks for its training.
CLOCK_SKEW = timedelta(minutes=2)


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


def _recorded_request(settings: Settings, plan: TrainingPlan) -> TrainingRequest:
    """The request of a training started earlier, as its record tells it; its dataset is
    only described (the trainers read ``dataset.path`` in ``start`` alone)."""
    return _request(settings, plan, Dataset(Path(), plan.image_count, plan.dataset_sha256))


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
    if plan.reattach is None and plan.stale_start is not None:
        plan = await _settle_stale_start(store, settings, trainer, plan, on_event)
    if plan.reattach is not None:
        training_id = str(plan.reattach["training_id"])
        request = _recorded_request(settings, plan)
        on_event("training_reattached", {"training_id": training_id, "version": plan.version})
    else:
        training_id, request = await _start(store, settings, trainer, plan, on_event)
    poll = poll_s or settings.poll_interval_s
    status = await _wait(trainer, training_id, on_event, poll, wake)
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
    record = await finish_once(store, settings, trainer, plan, request, status, on_event, poll)
    await asyncio.to_thread(shutil.rmtree, _workdir(settings, plan), True)
    on_event("training_finished", record)
    return record


async def _settle_stale_start(
    store: ObjectStore,
    settings: Settings,
    trainer: Trainer,
    plan: TrainingPlan,
    on_event: OnEvent,
) -> TrainingPlan:
    """The actor's ``starting`` record went stale: its process died after sending the
    create, maybe before the answer came. Exactly one matching training created since the
    record was written is adopted (the plan becomes a re-attach to it); otherwise the record
    is marked failed, saying why, and ``plan`` (a new training) goes on."""
    record = plan.stale_start
    assert record is not None
    version = str(record.get("version"))
    manifest = read_manifest(store, plan.actor_id)
    if manifest is None:
        raise NotFoundError(f"unknown actor {plan.actor_id}")
    adopted, why = await _adoptable(settings, trainer, manifest, record, plan.max_cost)
    reason = f"interrupted before the trainer answered; {why}"
    settled = models.settle_stale_start(store, plan.actor_id, version, adopted, reason)
    if settled.get("status") not in models.ACTIVE or not settled.get("training_id"):
        return plan
    on_event("training_adopted", {"training_id": settled["training_id"], "version": version})
    # The plan comes from ``settled``; the manifest read above gives only the actor's name.
    return reattach_plan(manifest, settled, trainer.name, plan.max_cost)


async def _adoptable(
    settings: Settings,
    trainer: Trainer,
    manifest: Manifest,
    record: dict[str, Any],
    ceiling: float,
) -> tuple[str | None, str]:
    """The one training the stale ``record``'s create made, or ``None`` and why not."""
    if record.get("trainer") != trainer.name:
        return None, f"a {record.get('trainer')} training, not looked for by {trainer.name}"
    old = reattach_plan(manifest, record, trainer.name, ceiling)
    request = _recorded_request(settings, old)
    written = record.get("started_ts")
    since = datetime.fromtimestamp(written if isinstance(written, int | float) else 0, UTC)
    known = {m.get("training_id") for m in models.models_of(manifest)}
    try:
        found = await trainer.find_started(request, since - CLOCK_SKEW)
    except ProviderError as exc:
        return None, f"the trainer's list of trainings could not be read ({exc})"
    found = [t for t in found if t not in known]
    if len(found) == 1:
        return found[0], "adopted"
    if found:
        return None, (
            f"{len(found)} trainings in the trainer's list match it ({', '.join(found)}), so "
            "none was adopted; cancel there the ones you do not want"
        )
    return None, (
        "no matching training shows in the trainer's list; if the trainer shows one, cancel "
        "it there"
    )


async def _start(
    store: ObjectStore,
    settings: Settings,
    trainer: Trainer,
    plan: TrainingPlan,
    on_event: OnEvent,
) -> tuple[str, TrainingRequest]:
    assert plan.selection is not None
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
    # The manifest as written (``NotFoundError`` when the actor is gone) is what is exported.
    manifest = models.add_model(store, plan.actor_id, record)
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


async def cancel_training(store: ObjectStore, trainer: Trainer, actor_id: str) -> str:
    """Ask the trainer to cancel the actor's running training; its run records the outcome."""
    manifest = read_manifest(store, check_actor_id(actor_id))
    record = models.active_model(manifest) if manifest else None
    if record is None or not record.get("training_id"):
        raise NotFoundError(f"actor {actor_id} has no training running")
    await trainer.cancel(str(record["training_id"]))
    return str(record["training_id"])
