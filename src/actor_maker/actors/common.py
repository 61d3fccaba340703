"""What the actor operations share: checking request text, finding an entry, the names
of the store's actors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actor_maker import prompts
from actor_maker.errors import ActorMakerError, InputError, NameTakenError, NotFoundError
from actor_maker.layout import actor_ids
from actor_maker.manifest import Manifest, read_manifest
from actor_maker.store.base import ObjectStore
from actor_maker.validation import MAX_PROMPT_LENGTH, check_name


def check_filename(filename: str) -> str:
    """A training image's filename from a request: a plain name, no path tricks."""
    return check_name(filename, "filename")


def _text(value: str | None, what: str) -> str | None:
    """Free text such as a description: ``None`` leaves a field, ``""`` clears it."""
    if value is None:
        return None
    text = value.strip()
    if len(text) > MAX_PROMPT_LENGTH:
        raise InputError(f"{what} is {len(text)} characters; the limit is {MAX_PROMPT_LENGTH}")
    if any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise InputError(f"{what} contains control characters")
    return text


def _type_and_sex(actor_type: str, actor_sex: str | None) -> tuple[str, str | None]:
    kind = actor_type.strip().lower()
    prompts.subject_for(kind, actor_sex)  # UnknownActorTypeError for unknown types
    return kind, (_text(actor_sex, "actor sex") or "").lower() or None


def _metadata(manifest: Manifest) -> dict[str, Any]:
    meta = manifest.data.get("metadata")
    if not isinstance(meta, dict):
        meta = manifest.data["metadata"] = {}
    return meta


def _set_or_clear(target: dict[str, Any], field: str, value: str) -> None:
    if value:
        target[field] = value
    else:
        target.pop(field, None)


def _position(manifest: Manifest, filename: str) -> int:
    for i, entry in enumerate(manifest.training_data):
        if entry.get("filename") == filename:
            return i
    raise NotFoundError(f"actor {manifest.actor_id} has no image {filename}")


def _keep_high_water_mark(manifest: Manifest, mark: int) -> None:
    """Indices of removed images stay used, so a restore finds its name free."""
    if mark >= 0:
        manifest.data["last_index"] = max(mark, manifest.highest_index())


def actor_named(store: ObjectStore, actor_name: str, *, other_than: str = "") -> str | None:
    """The id of an actor of ``store`` named ``actor_name`` (other than ``other_than``),
    or ``None``. Manifests that cannot be read are skipped."""
    ids = [i for i in actor_ids(store) if i != other_than]

    def name_of(actor_id: str) -> str | None:
        try:
            manifest = read_manifest(store, actor_id)
        except ActorMakerError:
            return None
        return manifest.actor_name if manifest else None

    with ThreadPoolExecutor(16) as pool:
        for actor_id, name in zip(ids, pool.map(name_of, ids), strict=True):
            if name == actor_name:
                return actor_id
    return None


def check_name_free(store: ObjectStore, actor_name: str, actor_id: str) -> None:
    """Names are unique in a store: ``ConflictError`` when another actor has this one."""
    owner = actor_named(store, actor_name, other_than=actor_id)
    if owner is not None:
        raise NameTakenError(f"actor name {actor_name} is taken by actor {owner}")
