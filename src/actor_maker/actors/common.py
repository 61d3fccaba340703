"""What the actor operations share: checking request text, finding an entry, the names
of the store's actors."""

from __future__ import annotations

from typing import Any

from actor_maker import prompts
from actor_maker.errors import (
    InputError,
    NotFoundError,
)
from actor_maker.manifest import Manifest
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
