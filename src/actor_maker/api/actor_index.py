"""A cached summary of every actor, so listing thousands stays fast.

Listing the manifest prefix is one call per thousand keys and gives each manifest's
version; only manifests whose version changed since the last look are read again (in
parallel). The listing itself is reused for ``max_age_s`` (one S3 listing of 10,000 keys
takes ten requests), and a change made through this server (``invalidate``) makes the next
read list again at once; other processes' changes show within ``max_age_s``. Summaries
hold what the actors grid needs, sorted once per refresh.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actor_maker import __version__
from actor_maker.api.browser import SAFE_METHODS
from actor_maker.errors import CorruptManifestError, NotFoundError
from actor_maker.layout import actor_id_of, manifest_key, manifest_versions
from actor_maker.manifest import Manifest, parse_manifest
from actor_maker.quality import effective_verdict, is_usable
from actor_maker.store.base import ObjectStore
from actor_maker.validation import is_actor_id

log = logging.getLogger(__name__)

#: Bumped when what a summary holds changes: older snapshots are then not used.
SNAPSHOT_FORMAT = "actor-index/1"
#: The snapshot (several MB at 10,000 actors) is rewritten at most this often while jobs
#: keep changing manifests, and once more when the server stops.
SNAPSHOT_EVERY_S = 30.0

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


def listed(summary: dict[str, Any], full_url: str | None, thumb_url: str | None) -> dict[str, Any]:
    """A summary as ``GET /api/actors`` answers it: the base image's loadable URLs, and for
    an actor without ``poster_frames`` (every actor Actor Maker created) poster frames made
    of the base image's thumbnail. Members without a value are left out, never null or
    empty: the old frontend prints what it finds."""
    out = {k: v for k, v in summary.items() if v is not None and v != ""}
    out.update(base_image=full_url, base_thumbnail=thumb_url)
    if "poster_frames" not in out and thumb_url:
        frame = {"webp_sm": thumb_url, "webp_md": thumb_url, "webp_lg": thumb_url}
        frame["png"] = full_url or thumb_url
        out["poster_frames"] = {"standard": frame, "accelerated": dict(frame)}
    return {k: v for k, v in out.items() if v is not None}


def _base_key(manifest: Manifest) -> str | None:
    if not manifest.base_images:
        return None
    key = manifest.base_images[0].get("key")
    return str(key) if key else None


class ActorIndex:
    """Summaries of every actor, kept fresh without listing the store on every request.

    - The first ``all`` lists and reads everything (the cold start).
    - An actor changed through this server (``invalidate(actor_id)``) is read again, alone,
      by the next ``all``; ``invalidate()`` without an id makes the next ``all`` list again.
    - Older than ``max_age_s``, the listing is refreshed in the background while requests
      are answered from the summaries at hand (changes by other processes show then).
    """

    def __init__(
        self,
        store: ObjectStore,
        workers: int = 16,
        *,
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        snapshot: Path | None = None,
    ) -> None:
        self.store = store
        self.max_age_s = max_age_s
        #: Where the summaries are kept between runs, so a restart reads only the manifests
        #: that changed meanwhile (their versions tell); ``None``: not kept.
        self.snapshot = snapshot
        self._clock = clock
        self._cache: dict[str, tuple[str, dict[str, Any]]] = {}  # key → (version, summary)
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._listed_at: float | None = None
        self._dirty: set[str] = set()
        self._background: threading.Thread | None = None
        self._sorted: list[dict[str, Any]] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="actor-index")
        self._saved_at = -SNAPSHOT_EVERY_S  # the first refresh saves at once
        self._load_snapshot()

    def _snapshot_tag(self) -> str:
        return f"{SNAPSHOT_FORMAT} {__version__} {self.store.description}"

    def _load_snapshot(self) -> None:
        if self.snapshot is None:
            return
        try:
            saved = json.loads(self.snapshot.read_bytes())
            if saved.get("tag") != self._snapshot_tag():
                return
            self._cache = {str(k): (str(v), dict(s)) for k, (v, s) in saved["actors"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.info("actor index snapshot not used: %s", exc)

    def _save_snapshot(self) -> None:
        if self.snapshot is None:
            return
        self._saved_at = self._clock()
        with self._lock:  # summaries are replaced, never changed: a shallow copy will do
            actors = dict(self._cache)
        body = json.dumps({"tag": self._snapshot_tag(), "actors": actors})
        try:
            self.snapshot.parent.mkdir(parents=True, exist_ok=True)
            partial = self.snapshot.with_suffix(".partial")
            partial.write_text(body)
            os.replace(partial, self.snapshot)
        except OSError as exc:
            log.warning("cannot keep the actor index snapshot: %s", exc)

    def invalidate(self, actor_id: str | None = None) -> None:
        """Something changed here: that actor is read again (or, without an id, the store is
        listed again) before the next ``all`` answers."""
        with self._lock:
            if actor_id is None:
                self._listed_at = None
            elif is_actor_id(actor_id):  # a request's path may name anything
                self._dirty.add(manifest_key(actor_id))

    def all(self) -> list[dict[str, Any]]:
        """Every actor, sorted by id. The list is shared: callers filter and page it, they
        never change it. Only the cold start and changes made here wait for the store."""
        with self._lock:
            listed_at, dirty = self._listed_at, bool(self._dirty)
        if listed_at is not None and not dirty:  # a background refresh never blocks a read
            if self._clock() - listed_at > self.max_age_s:
                self._refresh_in_background()
            return self._sorted
        with self._refreshing:  # one refresh at a time; the others wait for its result
            with self._lock:
                listed_at, keys, self._dirty = self._listed_at, self._dirty, set()
            if listed_at is None:
                started = self._clock()
                self._refresh()
                self._listed_at = started
            elif keys:
                self._reread(keys)
            return self._sorted

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._background is not None and self._background.is_alive():
                return
            self._background = threading.Thread(
                target=self._background_refresh, name="actor-index refresh", daemon=True
            )
            self._background.start()

    def _background_refresh(self) -> None:
        started = self._clock()
        with self._refreshing:
            self._refresh()
            with self._lock:
                if self._listed_at is not None:  # an invalidate() meanwhile still counts
                    self._listed_at = started

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

    def _store_read(self, keys: list[str]) -> None:
        for key, fresh in zip(keys, self._pool.map(self._read, keys), strict=True):
            with self._lock:
                if fresh is None:
                    self._cache.pop(key, None)
                else:
                    self._cache[key] = fresh

    def _reread(self, keys: set[str]) -> None:
        self._store_read(sorted(keys))
        self._resort()

    def _refresh(self) -> None:
        """List the manifests and read those whose version changed. An actor whose manifest
        cannot be read is listed with an ``error`` instead of its summary (it never takes the
        list down)."""
        listed = manifest_versions(self.store)
        with self._lock:
            stale = [k for k, v in listed.items() if self._cache.get(k, ("",))[0] != v]
            gone = set(self._cache) - set(listed)
        self._store_read(stale)
        with self._lock:
            for key in gone:
                self._cache.pop(key, None)
        self._resort()
        if (stale or gone) and self._clock() - self._saved_at >= SNAPSHOT_EVERY_S:
            self._save_snapshot()

    def _resort(self) -> None:
        with self._lock:
            summaries = [s for _, s in self._cache.values()]
        self._sorted = sorted(summaries, key=lambda s: str(s["id"]))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        if self._listed_at is not None:
            self._save_snapshot()  # what changed since the last save


class ChangesRefreshIndex:
    """A state-changing request may change an actor: the next listing reads it again (or
    lists the store again when the path names no actor). Pure ASGI: a read costs nothing
    here, and streams pass through untouched. The index hears of it as the answer starts,
    so a listing the client asks for next sees the change."""

    def __init__(self, app: ASGIApp, *, index: ActorIndex) -> None:
        self.app = app
        self.index = index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        parts = scope["path"].split("/")
        named = len(parts) > 3 and parts[1:3] == ["api", "actors"] and parts[3]
        actor_id = parts[3] if named else None

        async def send_and_invalidate(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.index.invalidate(actor_id)
            await send(message)

        await self.app(scope, receive, send_and_invalidate)
