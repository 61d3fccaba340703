"""The actor's trained models in its manifest: ``custom_lora_models`` and ``lora_model``.

Each training is one record in ``custom_lora_models`` with the old system's fields
(``filename``, ``s3_url``, ``size_bytes``, ``size_mb``, ``md5_hash``, ``last_modified``,
``created_date``, ``format``) plus ours: ``version``, ``trainer``, ``training_id``,
``dataset_sha256``, ``image_count``, ``params``, ``cost``, ``created``, ``key`` (the weights'
object key), ``status``, ``reason``, ``score`` and ``samples``. ``lora_model`` is the one
marked good, in the old shape, so old readers keep working.

Finishing a succeeded training (weights, paid samples, score) is claimed by one process at a
time: ``finish_claim`` (``{"by": ..., "renewed_ts": ...}``, renewed while it works, stale
after the lease) and ``sample_predictions`` (sample index → the Replicate prediction paid
for it, noted as soon as its create answers) let a second process wait instead of paying
again, and a process that takes over a stale claim poll the predictions already paid for.

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
#: answered: the next run adopts the training its create made (when the trainer can find
#: exactly one) or marks it failed and starts afresh.
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
    store: ObjectStore,
    actor_id: str,
    version: str,
    edit: Callable[[Manifest, Record], bool | None],
) -> Record:
    """Apply ``edit(manifest, record)`` to the record of ``version`` in one CAS update
    (``NotFoundError`` when the actor has none; an edit that returns ``False`` writes
    nothing); the record as written (or as read)."""

    def change(manifest: Manifest) -> bool:
        record = find_model(manifest, version)
        if record is None:
            raise NotFoundError(f"actor {actor_id} has no model {version}")
        if edit(manifest, record) is False:
            return False
        manifest.data["custom_lora_models_updated"] = legacy_now()
        return True

    written = find_model(update_manifest(store, actor_id, change), version)
    assert written is not None
    return written


def update_model(store: ObjectStore, actor_id: str, version: str, fields: Record) -> Record:
    """Set ``fields`` on the record of ``version`` (one CAS update); the record as written."""

    def set_fields(_: Manifest, record: Record) -> None:
        record.update(fields)

    return _edit_model(store, actor_id, version, set_fields)


def complete_model(store: ObjectStore, actor_id: str, version: str, fields: Record) -> Record:
    """Set the final ``fields`` unless the record is final already (another process finished
    it first: its record stands); the record as written or found."""

    def complete(_: Manifest, record: Record) -> bool:
        if record.get("status") not in ACTIVE:
            return False
        record.update(fields)
        return True

    return _edit_model(store, actor_id, version, complete)


def settle_stale_start(
    store: ObjectStore, actor_id: str, version: str, training_id: str | None, reason: str
) -> Record:
    """A stale ``starting`` record: adopt ``training_id`` (status ``training``) or, without
    one, mark it failed with ``reason``. Nothing is written when the record is no longer a
    stale start (another process settled it first); the record as written or found."""

    def settle(_: Manifest, record: Record) -> bool:
        if not is_stale(record):
            return False
        if training_id:
            record.update(status="training", training_id=training_id, adopted=utc_now())
        else:
            record.update(status="failed", reason=reason[:500], finished=utc_now())
        return True

    return _edit_model(store, actor_id, version, settle)


def claim_holder(record: Record, lease_s: float, now: float | None = None) -> str | None:
    """Who holds a fresh claim to finish the record, if anyone."""
    claim = record.get("finish_claim")
    if not isinstance(claim, dict):
        return None
    renewed = claim.get("renewed_ts")
    if not isinstance(renewed, int | float) or (now or time.time()) - renewed > lease_s:
        return None
    holder = claim.get("by")
    return str(holder) if holder else None


def claim_finish(
    store: ObjectStore, actor_id: str, version: str, owner: str, lease_s: float
) -> tuple[bool, Record]:
    """Take or renew ``owner``'s claim to finish ``version`` (one CAS update). ``(True,
    record)``: ``owner`` holds it now; ``(False, record)``: the record is final already, or
    another owner's claim is fresh (nothing written)."""
    taken = False

    def take(_: Manifest, record: Record) -> bool:
        nonlocal taken
        taken = False  # the edit may run more than once (optimistic retries)
        if record.get("status") not in ACTIVE:
            return False
        holder = claim_holder(record, lease_s)
        if holder is not None and holder != owner:
            return False
        record["finish_claim"] = {"by": owner, "renewed_ts": time.time()}
        taken = True
        return True

    record = _edit_model(store, actor_id, version, take)
    return taken, record


def note_sample_prediction(
    store: ObjectStore, actor_id: str, version: str, owner: str, index: int, prediction_id: str
) -> None:
    """Record the prediction paid for sample ``index`` (and renew ``owner``'s claim), unless
    the record is final or another process holds the claim now."""

    def note(_: Manifest, record: Record) -> bool:
        claim = record.get("finish_claim")
        if record.get("status") not in ACTIVE or not (
            isinstance(claim, dict) and claim.get("by") == owner
        ):
            return False
        noted = record.get("sample_predictions")
        noted = dict(noted) if isinstance(noted, dict) else {}
        noted[str(index)] = prediction_id
        record["sample_predictions"] = noted
        claim["renewed_ts"] = time.time()
        return True

    _edit_model(store, actor_id, version, note)


def release_finish(store: ObjectStore, actor_id: str, version: str, owner: str) -> None:
    """Give the claim up (the holder failed): the next process need not wait for the lease."""

    def release(_: Manifest, record: Record) -> bool:
        claim = record.get("finish_claim")
        if not (isinstance(claim, dict) and claim.get("by") == owner):
            return False
        record["finish_claim"] = None
        return True

    _edit_model(store, actor_id, version, release)


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
