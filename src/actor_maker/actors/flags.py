"""Flags on an actor and its images (``good``), and what its images were made from."""

from __future__ import annotations

from collections import Counter

from actor_maker.actors.common import _position, check_filename
from actor_maker.manifest import Manifest, update_manifest
from actor_maker.store.base import ObjectStore
from actor_maker.validation import check_actor_id


def set_good(store: ObjectStore, actor_id: str, filename: str, good: bool | None = None) -> bool:
    """Set (or with ``None`` toggle) an image's ``good`` flag; returns the new value."""
    check_filename(filename)
    result = False

    def change(manifest: Manifest) -> bool:
        nonlocal result
        entry = manifest.training_data[_position(manifest, filename)]
        result = (not bool(entry.get("good"))) if good is None else good
        if entry.get("good") is result:
            return False
        entry["good"] = result
        return True

    update_manifest(store, check_actor_id(actor_id), change)
    return result


def _toggle(store: ObjectStore, actor_id: str, field: str) -> bool:
    result = False

    def change(manifest: Manifest) -> bool:
        nonlocal result
        result = not bool(manifest.data.get(field))
        manifest.data[field] = result
        return True

    update_manifest(store, check_actor_id(actor_id), change)
    return result


def toggle_actor_good(store: ObjectStore, actor_id: str) -> bool:
    """Toggle the actor's top-level ``good`` flag; returns the new value."""
    return _toggle(store, actor_id, "good")


def toggle_training_data_good(store: ObjectStore, actor_id: str) -> bool:
    """Toggle the legacy top-level ``training_data_good`` flag; returns the new value."""
    return _toggle(store, actor_id, "training_data_good")


def _usage(manifest: Manifest, field: str) -> dict[str, int]:
    values = (e.get(field) for e in manifest.training_data)
    return dict(Counter(v for v in values if isinstance(v, str) and v))


def prompt_usage(manifest: Manifest) -> dict[str, int]:
    """Prompt text → how many of the actor's images were made from it."""
    return _usage(manifest, "prompt")


def prompt_id_usage(manifest: Manifest) -> dict[str, int]:
    """Library prompt id → how many of the actor's images were made from it (a prompt made
    again by ``balance --fill`` as ``id~2`` counts for ``id``)."""
    from actor_maker.balance import base_prompt_id

    counts: Counter[str] = Counter()
    for prompt_id, n in _usage(manifest, "prompt_id").items():
        counts[base_prompt_id(prompt_id)] += n
    return dict(counts)
