"""A person's word over the checks, and re-running the checks on demand."""

from __future__ import annotations

import copy
from typing import Any

from actor_maker.errors import InputError, NotFoundError
from actor_maker.layout import base_key, entry_key
from actor_maker.manifest import Manifest, require_manifest, update_manifest, utc_now
from actor_maker.quality import CheckResult, effective_verdict, is_preview
from actor_maker.quality.checker import QualityChecker, decide_duplicate
from actor_maker.store.base import ObjectStore
from actor_maker.validation import check_actor_id

OVERRIDES = ("accepted", "rejected")


def set_override(
    store: ObjectStore, actor_id: str, filename: str, verdict: str | None, *, via: str
) -> dict[str, Any]:
    """Approve (``accepted``) or reject an image whatever the checks said; ``None`` clears
    the override. Records when and through which interface. Returns the entry."""
    if verdict is not None and verdict not in OVERRIDES:
        raise InputError(f"verdict must be one of {', '.join(OVERRIDES)} (or none to clear)")
    check_actor_id(actor_id)

    def change(manifest: Manifest) -> bool:
        entry = manifest.find(filename)
        if entry is None:
            raise NotFoundError(f"actor {actor_id} has no training image {filename!r}")
        if verdict == "accepted" and is_preview(entry):
            raise InputError(
                f"{filename} is a preview placeholder, never training data: it cannot be "
                "approved (generate real images with the replicate provider)"
            )
        quality = entry.get("quality") if isinstance(entry.get("quality"), dict) else None
        quality = quality or {"verdict": None, "reasons": [], "scores": {}, "checked_at": None}
        if verdict is None:
            quality.pop("override", None)
        else:
            quality["override"] = {"verdict": verdict, "at": utc_now(), "via": via}
        entry["quality"] = quality
        return True

    written = update_manifest(store, actor_id, change)
    entry = written.find(filename)
    assert entry is not None
    return entry


def recheck(
    store: ObjectStore, actor_id: str, checker: QualityChecker, *, base: bytes | None = None
) -> list[dict[str, Any]]:
    """Run the checks again on every image of the actor that is in this store (in index
    order, so the earlier of two near-copies is the one kept). Overrides stay. ``base``
    defaults to the actor's base image in this store (found from the manifest read here)."""
    manifest = require_manifest(store, actor_id)
    if base is None:
        base = base_image_bytes(store, manifest)
    results: dict[str, dict[str, Any]] = {}
    for entry in manifest.training_data:
        key = entry_key(store, entry, manifest.actor_name)
        if key is None:
            continue
        try:
            data = store.get(key).data
        except NotFoundError:
            continue
        category = entry.get("category")
        result = checker.check(
            data,
            base=base,
            actor_type=manifest.actor_type,
            face_visible=bool(entry.get("face_visible", True)),
            category=str(category) if category else None,
            placeholder=is_preview(entry),
        )
        results[str(entry["filename"])] = result.record()

    def change(current: Manifest) -> bool:
        seen: list[dict[str, Any]] = []
        for entry in current.training_data:
            fresh = results.get(str(entry.get("filename")))
            if fresh is not None:
                override = (entry.get("quality") or {}).get("override")
                entry["quality"] = copy.deepcopy(fresh)
                if override:
                    entry["quality"]["override"] = override
                decide_duplicate(entry, seen)
            seen.append(entry)
        return bool(results)

    written = update_manifest(store, actor_id, change)
    return [e for e in written.training_data if str(e.get("filename")) in results]


def base_image_bytes(store: ObjectStore, manifest: Manifest) -> bytes | None:
    """The actor's base image from this store (by key, or an s3_url of this store)."""
    key = base_key(store, manifest.base_images)
    return store.get(key).data if key is not None else None


def summary(entries: list[dict[str, Any]]) -> dict[str, int]:
    """How many images are usable, rejected, waiting for review, never checked."""
    counts = {"accepted": 0, "rejected": 0, "review": 0, "unchecked": 0}
    for entry in entries:
        counts[effective_verdict(entry) or "unchecked"] += 1
    return counts


__all__ = ["OVERRIDES", "CheckResult", "base_image_bytes", "recheck", "set_override", "summary"]
