"""The actor's trained models in its manifest: ``custom_lora_models`` and ``lora_model``.

Each training is one record in ``custom_lora_models`` with the old system's fields
(``filename``, ``s3_url``, ``size_bytes``, ``size_mb``, ``md5_hash``, ``last_modified``,
``created_date``, ``format``) plus ours: ``version``, ``trainer``, ``training_id``,
``dataset_sha256``, ``image_count``, ``params``, ``cost``, ``created``, ``key`` (the weights'
object key), ``status``, ``reason``, ``score`` and ``samples``. ``lora_model`` is the one
marked good, in the old shape, so old readers keep working.

Statuses: ``starting`` → ``training`` (the training id is recorded) → ``trained`` (samples
passed the identity check), ``needs_review`` (they did not, or could not be checked),
``failed`` or ``canceled``; a person makes a model ``good``. Every change is one
:func:`~actor_maker.manifest.update_manifest`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from actor_maker.errors import ConflictError, InputError, NotFoundError
from actor_maker.layout import ROOT
from actor_maker.manifest import Manifest, legacy_now, update_manifest, utc_now
from actor_maker.store.base import ObjectStore

LORA_PREFIX = f"{ROOT}/lora_models/"
ACTIVE = ("starting", "training")
FINISHED_OK = ("trained", "needs_review", "good")
#: A ``starting`` record older than this belongs to a process that died before the trainer
#: answered: the next run marks it failed and starts afresh.
STALE_START_S = 15 * 60
#: The fields of ``lora_model`` (the old shape).
LEGACY_FIELDS = (
    "filename",
    "s3_url",
    "size_bytes",
    "size_mb",
    "md5_hash",
    "last_modified",
    "created_date",
    "format",
)
_VERSION_RE = re.compile(r"^V(\d{1,6})$")

Record = dict[str, Any]


def weights_key(actor_name: str, version: str) -> str:
    return f"{LORA_PREFIX}{actor_name}_{version}.safetensors"


def sample_key(actor_name: str, version: str, index: int) -> str:
    return f"{LORA_PREFIX}{actor_name}_{version}_samples/sample_{index}.jpg"


def models_of(manifest: Manifest) -> list[Record]:
    models = manifest.data.get("custom_lora_models")
    return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []


def find_model(manifest: Manifest, version: str) -> Record | None:
    return next((m for m in models_of(manifest) if m.get("version") == version), None)


def active_model(manifest: Manifest) -> Record | None:
    """The record of a training that is starting or running, if any."""
    return next((m for m in models_of(manifest) if m.get("status") in ACTIVE), None)


def next_version(manifest: Manifest) -> str:
    numbers = [
        int(match.group(1))
        for m in models_of(manifest)
        if (match := _VERSION_RE.match(str(m.get("version", ""))))
    ]
    return f"V{max(numbers, default=0) + 1}"


def is_stale(record: Record, now: float | None = None) -> bool:
    """A ``starting`` record without a training id whose process is presumably gone."""
    if record.get("status") != "starting" or record.get("training_id"):
        return False
    started = record.get("started_ts")
    return not isinstance(started, int | float) or (now or time.time()) - started > STALE_START_S


def _models_list(manifest: Manifest) -> list[Record]:
    models = manifest.data.get("custom_lora_models")
    if not isinstance(models, list):
        models = manifest.data["custom_lora_models"] = []
    return models


def add_model(store: ObjectStore, actor_id: str, record: Record) -> Manifest:
    """Add a ``starting`` record; ``ConflictError`` when another training is active (a stale
    ``starting`` one is marked failed in the same update)."""

    def change(manifest: Manifest) -> bool:
        models = _models_list(manifest)
        for other in models:
            if not isinstance(other, dict) or other.get("status") not in ACTIVE:
                continue
            if is_stale(other):
                other["status"] = "failed"
                other["reason"] = (
                    "interrupted before the trainer answered; if the trainer shows a "
                    "training for it, cancel it there"
                )
                continue
            raise ConflictError(
                f"actor {actor_id} already has a training {other.get('status')} "
                f"(version {other.get('version')})"
            )
        if any(isinstance(m, dict) and m.get("version") == record["version"] for m in models):
            raise ConflictError(f"actor {actor_id} already has a model {record['version']}")
        models.append(dict(record))
        manifest.data["custom_lora_models_updated"] = legacy_now()
        return True

    return update_manifest(store, actor_id, change)


def _edit_model(
    store: ObjectStore, actor_id: str, version: str, edit: Callable[[Manifest, Record], None]
) -> Record:
    """Apply ``edit(manifest, record)`` to the record of ``version`` in one CAS update
    (``NotFoundError`` when the actor has none); the record as written."""

    def change(manifest: Manifest) -> bool:
        record = find_model(manifest, version)
        if record is None:
            raise NotFoundError(f"actor {actor_id} has no model {version}")
        edit(manifest, record)
        manifest.data["custom_lora_models_updated"] = legacy_now()
        return True

    written = find_model(update_manifest(store, actor_id, change), version)
    assert written is not None
    return written


def update_model(store: ObjectStore, actor_id: str, version: str, fields: Record) -> Record:
    """Set ``fields`` on the record of ``version`` (one CAS update); the record as written."""
    return _edit_model(store, actor_id, version, lambda _, record: record.update(fields))


def legacy_shape(record: Record) -> Record:
    """``lora_model`` as the old system wrote it (plus ``version`` and ``key``)."""
    shape = {name: record.get(name) for name in LEGACY_FIELDS}
    shape["version"] = record.get("version")
    shape["key"] = record.get("key")
    return shape


def mark_good(store: ObjectStore, actor_id: str, version: str) -> Record:
    """Make ``version`` the actor's model: ``lora_model`` in the old shape, status ``good``;
    the previous good one goes back to ``trained``."""

    def make_good(manifest: Manifest, record: Record) -> None:
        if record.get("status") not in FINISHED_OK or not record.get("key"):
            raise InputError(
                f"model {version} is {record.get('status')}: only a trained model with "
                "stored weights can be marked good"
            )
        for other in models_of(manifest):
            if other is not record and other.get("status") == "good":
                other["status"] = "trained"
        record["status"] = "good"
        record["marked_good"] = utc_now()
        manifest.data["lora_model"] = legacy_shape(record)
        manifest.data["lora_model_updated"] = legacy_now()

    return _edit_model(store, actor_id, version, make_good)


def created_fields() -> Record:
    now = datetime.now(UTC)
    return {"created": utc_now(), "started_ts": now.timestamp()}
