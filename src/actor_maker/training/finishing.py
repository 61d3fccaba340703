"""Finishing a succeeded training, once: weights → samples → score → the final record.

Several processes can re-attach to one training (two API servers restarting, a CLI re-run
while a server re-attaches too). Only one of them finishes it: the one holding the model
record's finish claim (:func:`models.claim_finish`), which it renews every third of
``ACTOR_MAKER_TRAINING_FINISH_LEASE`` while it works. Another process waits, polling the
record, until it is final and returns it; when the claim goes stale (its holder died) or is
given up (its holder failed), it takes over.

Each sample's prediction id goes into the record (``sample_predictions``) as soon as its
create answers; whoever finishes next gets them back as ``Tracking(resume=...)``, so the
predictions already paid for are polled, and only one whose output expired is paid again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actor_maker.config import Settings
from actor_maker.errors import InputError, PreconditionFailed, StoreError
from actor_maker.images import md5_hex
from actor_maker.manifest import read_manifest, utc_now
from actor_maker.providers.base import OnCreated, Tracking
from actor_maker.quality.review import base_image_bytes
from actor_maker.store.base import ObjectStore
from actor_maker.training import models
from actor_maker.training.base import Trainer, TrainingRequest, TrainingStatus
from actor_maker.training.planning import TrainingPlan, prices
from actor_maker.training.scoring import score_samples

log = logging.getLogger(__name__)

#: ``on_event(name, data)``: progress for a CLI bar or an SSE stream.
OnEvent = Callable[[str, dict[str, Any]], None]


def holder_name() -> str:
    """Who claims a finish: this host and process, plus a token per run."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class _Finishing:
    """What one process's finish of a succeeded training works with; ``owner`` is the name
    its claim is held under."""

    store: ObjectStore
    settings: Settings
    trainer: Trainer
    plan: TrainingPlan
    request: TrainingRequest
    on_event: OnEvent
    owner: str = field(default_factory=holder_name)

    def claim(self) -> tuple[bool, dict[str, Any]]:
        """Take or renew the claim (:func:`models.claim_finish`); blocking."""
        return models.claim_finish(
            self.store,
            self.plan.actor_id,
            self.plan.version,
            self.owner,
            self.settings.training_finish_lease_s,
        )

    def release(self) -> None:
        """Give the claim up (:func:`models.release_finish`); blocking."""
        models.release_finish(self.store, self.plan.actor_id, self.plan.version, self.owner)

    def note(self, index: int, prediction_id: str) -> None:
        """Record sample ``index``'s paid prediction (:func:`models.note_sample_prediction`)."""
        models.note_sample_prediction(
            self.store, self.plan.actor_id, self.plan.version, self.owner, index, prediction_id
        )


async def finish_once(
    store: ObjectStore,
    settings: Settings,
    trainer: Trainer,
    plan: TrainingPlan,
    request: TrainingRequest,
    status: TrainingStatus,
    on_event: OnEvent,
    poll_s: float,
) -> dict[str, Any]:
    """Finish the succeeded training under the record's claim, or wait for whoever holds
    it; the final record either way."""
    job = _Finishing(store, settings, trainer, plan, request, on_event)
    waited = False
    while True:
        taken, record = await asyncio.to_thread(job.claim)
        if taken:
            break
        if record.get("status") not in models.ACTIVE:
            return record
        if not waited:
            holder = models.claim_holder(record, settings.training_finish_lease_s)
            on_event("finish_waiting", {"version": plan.version, "holder": holder})
            waited = True
        await asyncio.sleep(poll_s)
    keeper = asyncio.create_task(_keep_claim(job))
    try:
        noted = record.get("sample_predictions")
        return await _finish(job, status, noted if isinstance(noted, dict) else {})
    except BaseException:
        keeper.cancel()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(job.release)
        raise
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper


async def _keep_claim(job: _Finishing) -> None:
    """Renew the claim every third of the lease while the finish runs."""
    plan = job.plan
    while True:
        await asyncio.sleep(job.settings.training_finish_lease_s / 3)
        try:
            taken, _ = await asyncio.to_thread(job.claim)
        except Exception as exc:  # a store hiccup: the next renewal may get through
            log.warning("renewing the finish claim of %s failed: %s", plan.version, exc)
            continue
        if not taken:
            log.warning("the finish claim of %s %s was taken over", plan.actor_id, plan.version)
            return


def _put_create_only(store: ObjectStore, key: str, data: bytes, content_type: str) -> str:
    """Store ``data`` at ``key`` unless it is there; an object of other bytes is an error."""
    try:
        store.put_if_absent(key, data, content_type=content_type)
    except PreconditionFailed:
        existing = store.get(key).data
        if md5_hex(existing) != md5_hex(data):
            raise StoreError(f"{key} exists with other contents; left as it is") from None
    return key


def _tracking(job: _Finishing, noted: dict[str, Any]) -> list[Tracking]:
    """One ``Tracking`` per sample: the prediction an earlier run paid for, and a hook that
    notes a new one in the record before it is waited for."""

    def hook(index: int) -> OnCreated:
        async def note(prediction_id: str) -> None:
            await asyncio.to_thread(job.note, index, prediction_id)

        return note

    return [
        Tracking(resume=str(noted[str(i)]) if noted.get(str(i)) else None, on_created=hook(i))
        for i in range(len(job.request.sample_prompts))
    ]


async def _finish(job: _Finishing, status: TrainingStatus, noted: dict[str, Any]) -> dict[str, Any]:
    store, settings, plan, request = job.store, job.settings, job.plan, job.request
    weights = await job.trainer.weights(status)
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
    job.on_event("weights_stored", {"key": key, "size_bytes": size})
    base = await asyncio.to_thread(_base_image, store, plan.actor_id)
    tracking = _tracking(job, noted)
    images = await job.trainer.samples(status, request, tracking)
    seeds = request.seeds()
    samples: list[dict[str, Any]] = []
    for index, data in enumerate(images):
        sample = models.sample_key(plan.actor_name, plan.version, index)
        await asyncio.to_thread(_put_sample, store, sample, data)
        samples.append(
            {
                "key": sample,
                "prompt": request.sample_prompts[index],
                "seed": seeds[index],
            }
        )
    job.on_event("samples_stored", {"count": len(samples)})
    score = await asyncio.to_thread(score_samples, base, images, settings.identity_threshold)
    for entry, result in zip(samples, score.samples, strict=False):
        entry.update(result)
    good_enough = score.share is not None and score.share >= settings.training_min_pass
    per_second, per_sample = prices(settings, plan.trainer)
    spent = (status.gpu_seconds or 0.0) * per_second + len(images) * per_sample
    score_json = score.to_json()
    score_json.pop("samples")
    return models.complete_model(
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
            "finish_claim": None,
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
    data = base_image_bytes(store, manifest) if manifest else None
    if data is None:
        raise InputError(f"actor {actor_id} has no base image in the store")
    return data
