"""Planning a training: validation, parameters and the estimate; nothing paid or written."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from actor_maker import prompts as prompt_lib
from actor_maker.captions import TRIGGER_RE, class_word, trigger_word
from actor_maker.config import Settings
from actor_maker.errors import (
    BudgetError,
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
)
from actor_maker.layout import base_key
from actor_maker.manifest import Manifest, read_manifest
from actor_maker.store.base import ObjectStore
from actor_maker.training import models
from actor_maker.training.base import TrainingParams
from actor_maker.training.dataset import Selection, select
from actor_maker.training.factory import check_trainer
from actor_maker.training.params import DEFAULT_OPTIONS, TrainingOptions, params_for
from actor_maker.validation import check_actor_id

log = logging.getLogger(__name__)

#: Seconds a training spends before its first step (boot, download of the base model).
STARTUP_S = 120
#: Fixed seeds of the validation samples, one per sample.
SAMPLE_SEEDS = (1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010) * 2


@dataclass
class TrainingPlan:
    actor_id: str
    actor_name: str
    trainer: str
    version: str
    trigger_word: str
    image_count: int
    dataset_sha256: str
    params: TrainingParams
    sample_prompts: tuple[str, ...]
    sample_seeds: tuple[int, ...]
    estimated_seconds: float
    estimated_cost: float
    max_cost: float
    left_out: dict[str, int] = field(default_factory=dict)
    #: The record of a training already running for the actor: the run re-attaches to it.
    reattach: dict[str, Any] | None = None
    selection: Selection | None = None
    #: A ``starting`` record gone stale (its process died before recording the trainer's
    #: answer): the run tries to adopt its training, else marks it failed.
    stale_start: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "trainer": self.trainer,
            "version": self.version,
            "trigger_word": self.trigger_word,
            "image_count": self.image_count,
            "dataset_sha256": self.dataset_sha256,
            "params": vars(self.params),
            "samples": len(self.sample_prompts),
            "estimated_seconds": round(self.estimated_seconds),
            "estimated_cost": round(self.estimated_cost, 4),
            "max_cost": self.max_cost,
            "left_out": self.left_out,
            "reattach": self.reattach.get("training_id") if self.reattach else None,
        }


def sample_prompts(manifest: Manifest, trigger: str, count: int) -> tuple[str, ...]:
    """The first ``count`` face-visible photoreal library prompts, naming the trigger word."""
    templates = [
        t for t in prompt_lib.load_library() if t.category == "photoreal" and t.face_visible
    ]
    subject = class_word(manifest)
    texts = []
    for template in templates[:count]:
        text = prompt_lib.render(
            template, actor_type=manifest.actor_type, actor_sex=manifest.actor_sex
        ).text
        texts.append(text.replace(subject, f"{trigger} {subject}", 1))
    return tuple(texts)


def prices(settings: Settings, trainer: str) -> tuple[float, float]:
    """(USD per training GPU-second, USD per sample): Replicate bills both; the others none."""
    if trainer == "replicate":
        return settings.training_price_per_second, settings.sample_price
    return 0.0, 0.0


def plan_training(
    store: ObjectStore,
    settings: Settings,
    actor_id: str,
    options: TrainingOptions = DEFAULT_OPTIONS,
) -> TrainingPlan:
    """Validate and estimate; nothing is written or paid. ``InputError`` and friends for
    bad input, ``BudgetError`` over the ceiling."""
    check_actor_id(actor_id)
    name = check_trainer(options.trainer or settings.trainer_name)
    max_cost = options.max_cost
    if max_cost is not None and max_cost < 0:
        raise InputError(f"--max-cost {max_cost:g}: give zero or more")
    manifest = read_manifest(store, actor_id)
    if manifest is None:
        raise NotFoundError(f"unknown actor {actor_id}: it has no manifest")
    ceiling = settings.max_job_cost if max_cost is None else max_cost
    active = models.active_model(manifest)
    if active is not None and not models.is_stale(active):
        if not active.get("training_id") and active.get("trainer") == name:
            raise ConflictError(
                f"actor {manifest.actor_id}: a training is being started (version "
                f"{active.get('version')}); try again in a few minutes"
            )
        return reattach_plan(manifest, active, name, ceiling)
    stored = manifest.data.get("trigger_word")
    if stored is not None and (not isinstance(stored, str) or not TRIGGER_RE.match(stored)):
        raise InputError(
            f"actor {actor_id}: trigger word {stored!r} must be 3-32 lower-case letters and "
            "digits, no spaces"
        )
    trigger = trigger_word(manifest)
    if base_key(store, manifest.base_images) is None:
        raise InputError(
            f"actor {actor_id} has no base image in the store to score samples against"
        )
    selection = select(store, manifest, allow_preview=name == "preview")
    params = params_for(len(selection.entries), options)
    if name == "replicate" and not settings.training_owner:
        raise ConfigError(
            "the replicate trainer needs ACTOR_MAKER_TRAINING_OWNER (your Replicate account "
            "name, which owns the trained models)"
        )
    count = settings.training_samples
    per_second, per_sample = prices(settings, name)
    seconds = STARTUP_S + params.steps * settings.training_seconds_per_step
    if name == "preview":
        seconds = settings.preview_training_s
    cost = seconds * per_second + count * per_sample
    if cost > ceiling:
        raise BudgetError(
            f"estimated cost ${cost:.2f} (training + {count} samples) is over the ceiling "
            f"${ceiling:.2f}; raise --max-cost or ACTOR_MAKER_MAX_JOB_COST"
        )
    return TrainingPlan(
        actor_id=actor_id,
        actor_name=manifest.actor_name,
        trainer=name,
        version=_free_version(store, manifest),
        trigger_word=trigger,
        image_count=len(selection.entries),
        dataset_sha256=selection.sha256,
        params=params,
        sample_prompts=sample_prompts(manifest, trigger, count),
        sample_seeds=SAMPLE_SEEDS[:count],
        estimated_seconds=seconds,
        estimated_cost=cost,
        max_cost=ceiling,
        left_out=selection.left_out,
        selection=selection,
        stale_start=active,
    )


def _free_version(store: ObjectStore, manifest: Manifest) -> str:
    """The next version whose weights key is free (an object left there is never replaced)."""
    version = models.next_version(manifest)
    while store.head(models.weights_key(manifest.actor_name, version)) is not None:
        version = f"V{int(version[1:]) + 1}"
    return version


def reattach_plan(
    manifest: Manifest, record: dict[str, Any], name: str, ceiling: float
) -> TrainingPlan:
    """The plan of the training ``record`` names (to re-attach to it)."""
    if record.get("trainer") != name:
        raise ConflictError(
            f"actor {manifest.actor_id} has a {record.get('trainer')} training "
            f"{record.get('status')} (version {record.get('version')}); wait for it or cancel it"
        )
    params = record.get("params") or {}
    cost = record.get("cost") or {}
    return TrainingPlan(
        actor_id=manifest.actor_id,
        actor_name=manifest.actor_name,
        trainer=name,
        version=str(record["version"]),
        trigger_word=str(record.get("trigger_word") or trigger_word(manifest)),
        image_count=int(record.get("image_count") or 0),
        dataset_sha256=str(record.get("dataset_sha256") or ""),
        params=TrainingParams(
            steps=int(params.get("steps", 0)),
            rank=int(params.get("rank", 0)),
            learning_rate=float(params.get("learning_rate", 0.0)),
        ),
        sample_prompts=tuple(record.get("sample_prompts") or ()),
        sample_seeds=tuple(record.get("sample_seeds") or ()),
        estimated_seconds=float(record.get("estimated_seconds") or 0.0),
        estimated_cost=float(cost.get("estimated") or 0.0),
        max_cost=ceiling,
        reattach=record,
    )
