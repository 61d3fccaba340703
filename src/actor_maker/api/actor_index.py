"""A cached summary of every actor, so listing thousands stays fast.

Listing the manifest prefix is one cheap call per thousand keys and gives each
manifest's version; only manifests whose version changed since the last look
are read again (in parallel). Summaries hold what the actors grid needs.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actor_maker.errors import CorruptManifestError, NotFoundError
from actor_maker.layout import actor_id_of, manifest_versions
from actor_maker.manifest import Manifest, parse_manifest
from actor_maker.quality import effective_verdict, is_usable
from actor_maker.store.base import ObjectStore

log = logging.getLogger(__name__)

LEGACY_FIELDS = ("sex", "age", "ethnicity", "outfit", "face_prompt")


def summarize(manifest: Manifest) -> dict[str, Any]:
    """The old frontend's actor object, plus new fields."""
    meta = manifest.metadata
    summary: dict[str, Any] = {"id": manifest.actor_id, "name": manifest.actor_name}
    for name in LEGACY_FIELDS:
        if name in meta:
            summary[name] = meta[name]
    for name in ("good", "poster_frames", "training_data_good"):
        if name in manifest.data:
            summary[name] = manifest.data[name]
    entries = manifest.training_data
    stored = [e for e in entries if e.get("status") in (None, "synced")]
    summary.update(
        actor_type=manifest.actor_type,
        description=manifest.description,
        training_count=len(entries),
        usable_count=sum(1 for e in entries if is_usable(e)),
        rejected_count=sum(1 for e in stored if effective_verdict(e) == "rejected"),
        review_count=sum(1 for e in stored if effective_verdict(e) == "review"),
        good_count=sum(1 for e in entries if e.get("good")),
        base_image_key=_base_key(manifest),
        base_image_url=(manifest.base_images[0].get("s3_url") if manifest.base_images else None),
        training_data_updated=manifest.data.get("training_data_updated"),
    )
    return summary


def unreadable(actor_id: str, exc: Exception) -> dict[str, Any]:
    """The list item of an actor whose manifest cannot be read."""
    reason = str(exc) if isinstance(exc, CorruptManifestError) else "manifest has an odd shape"
    return {
        "id": actor_id,
        "name": None,
        "error": reason,
        "training_count": 0,
        "usable_count": 0,
        "rejected_count": 0,
        "review_count": 0,
        "good_count": 0,
        "base_image_key": None,
        "base_image_url": None,
    }


def _base_key(manifest: Manifest) -> str | None:
    if not manifest.base_images:
        return None
    key = manifest.base_images[0].get("key")
    return str(key) if key else None


class ActorIndex:
    def __init__(self, store: ObjectStore, workers: int = 16) -> None:
        self.store = store
        self._cache: dict[str, tuple[str, dict[str, Any]]] = {}  # key → (version, summary)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="actor-index")

    def _read(self, key: str) -> tuple[str, dict[str, Any]] | None:
        actor_id = actor_id_of(key) or ""
        try:
            obj = self.store.get(key)
        except NotFoundError:
            return None
        try:
            manifest = parse_manifest(obj.data, key=key, version=obj.info.version)
            summary = summarize(manifest)
        except (CorruptManifestError, TypeError, ValueError, AttributeError) as exc:
            log.warning("actor %s is listed with an error: %s", actor_id, exc)
            return obj.info.version, unreadable(actor_id, exc)
        summary["id"] = summary["id"] or actor_id
        return obj.info.version, summary

    def all(self) -> list[dict[str, Any]]:
        """Every actor, sorted by id; one whose manifest cannot be read is listed with an
        ``error`` instead of its summary (it never takes the list down)."""
        listed = manifest_versions(self.store)
        with self._lock:
            stale = [k for k, v in listed.items() if self._cache.get(k, ("",))[0] != v]
        for key, fresh in zip(stale, self._pool.map(self._read, stale), strict=True):
            with self._lock:
                if fresh is None:
                    self._cache.pop(key, None)
                else:
                    self._cache[key] = fresh
        with self._lock:
            for key in set(self._cache) - set(listed):
                del self._cache[key]
            summaries = [s for _, s in self._cache.values()]
        return sorted(summaries, key=lambda s: str(s["id"]))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
