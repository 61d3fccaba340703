"""Storing a paid image: create-only upload at the next free index, then the manifest entry.

``IndexAllocator`` hands out candidate indices in one process (create-only uploads settle
races between processes); in distributed mode every worker takes them from one counter in
Redis instead (``queue/indices.py``), so workers storing for one actor do not collide.
``EntryAppender`` group-commits entries that finish together into one manifest update
(other processes are handled by the manifest's compare-and-swap). ``Storing`` is the
``Pipeline``'s half that uses them: check, upload, entry.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

from actor_maker import metrics
from actor_maker.captions import caption_for
from actor_maker.config import Settings
from actor_maker.errors import PreconditionFailed
from actor_maker.images import inspect_image, md5_hex
from actor_maker.jobs.models import JobItem
from actor_maker.layout import highest_stored_index, training_key
from actor_maker.manifest import Manifest, legacy_now, read_manifest, update_manifest
from actor_maker.pipeline.model import Actor
from actor_maker.providers.base import GeneratedImage, ImageProvider
from actor_maker.quality import effective_verdict
from actor_maker.quality.checker import QualityChecker, decide_duplicate
from actor_maker.store.base import ObjectInfo, ObjectStore
from actor_maker.timeutil import utc_now

if TYPE_CHECKING:
    from actor_maker.pipeline.running import JobSession

log = logging.getLogger(__name__)


class Indices(Protocol):
    """Where one actor's candidate image indices come from."""

    def take(self) -> int: ...

    def raise_to(self, floor: int) -> None:
        """Skip past indices someone else has taken meanwhile (the next take is ≥ floor)."""


#: Builds the ``Indices`` of an actor: its id, and where its indices start (computed only
#: when needed: it reads the manifest and lists the actor's images).
IndexSource = Callable[[str, Callable[[], int]], Indices]


def local_indices(actor_id: str, start: Callable[[], int]) -> Indices:
    """This process's own counter (the default outside distributed mode)."""
    return IndexAllocator(start())


class IndexAllocator:
    """Hands out candidate indices; create-only uploads settle races between processes."""

    def __init__(self, start: int) -> None:
        self._next = start
        self._lock = threading.Lock()

    def raise_to(self, floor: int) -> None:
        """Skip past indices someone else has taken meanwhile."""
        with self._lock:
            self._next = max(self._next, floor)

    def take(self) -> int:
        with self._lock:
            value = self._next
            self._next += 1
            return value


class EntryAppender:
    """Group commit: entries that finish together go into one manifest update.

    Each caller queues its entry and then either finds it written by a flush
    already under way or flushes everything queued itself. Every caller learns
    the outcome of the write that carried its entry. Other processes are still
    handled by the manifest's compare-and-swap.
    """

    def __init__(self, store: ObjectStore, actor_id: str) -> None:
        self._store = store
        self._actor_id = actor_id
        self._pending: list[tuple[dict[str, Any], Future[dict[str, Any]]]] = []
        self._queue_lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add ``entry``; returns it as written (the near-duplicate decision may have
        rejected it against the manifest as it was at that moment)."""
        done: Future[dict[str, Any]] = Future()
        with self._queue_lock:
            self._pending.append((entry, done))
        with self._flush_lock:
            with self._queue_lock:
                batch, self._pending = self._pending, []
            if batch:
                self._flush(batch)
        return done.result()

    def _flush(self, batch: list[tuple[dict[str, Any], Future[dict[str, Any]]]]) -> None:
        def change(manifest: Manifest) -> bool:
            changed = False
            for entry, _ in batch:
                if stored_for(manifest, entry) is not None:
                    continue  # this job's item is stored already (a run that took it over)
                fresh = copy.deepcopy(entry)  # pure: this runs again on a conflict
                decide_duplicate(fresh, manifest.training_data)
                if not fresh.get("caption"):  # the actor's trigger word lives in the manifest
                    fresh["caption"] = caption_for(manifest, fresh)
                changed = manifest.add_entry(fresh) or changed
            return changed

        try:
            written = update_manifest(self._store, self._actor_id, change)
        except BaseException as exc:  # every waiter must hear about it
            for _, done in batch:
                done.set_exception(exc)
        else:
            for entry, done in batch:
                done.set_result(
                    written.find(str(entry["filename"])) or stored_for(written, entry) or entry
                )


def stored_for(manifest: Manifest, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The entry the same job stored for the same prompt, if any: one entry per job item,
    however many runs got as far as storing it."""
    job_id = (entry.get("generation") or {}).get("job_id")
    return manifest.job_entry(str(job_id), entry.get("prompt_id")) if job_id else None


class Storing:
    """The storing half of ``Pipeline`` (which supplies these attributes): a paid image is
    checked, uploaded create-only at the actor's next free index and given its entry."""

    settings: Settings
    store: ObjectStore
    provider: ImageProvider
    checker: QualityChecker | None
    _indices: IndexSource
    _actors: dict[str, tuple[Indices, EntryAppender]]
    _actors_lock: threading.Lock

    def _actor_state(self, actor: Actor) -> tuple[Indices, EntryAppender]:
        with self._actors_lock:
            known = self._actors.get(actor.actor_id)
        if known is not None:
            return known
        fresh = (
            self._indices(actor.actor_id, lambda: self._start_index(actor)),
            EntryAppender(self.store, actor.actor_id),
        )
        with self._actors_lock:
            return self._actors.setdefault(actor.actor_id, fresh)

    def _start_index(self, actor: Actor) -> int:
        manifest = read_manifest(self.store, actor.actor_id)
        highest = manifest.highest_index() if manifest else -1
        return max(highest, highest_stored_index(self.store, actor.actor_name)) + 1

    def _keep(
        self, session: JobSession, item: JobItem, generated: GeneratedImage
    ) -> dict[str, Any]:
        """Check, upload create-only at the next free index, add the entry: one thread,
        so a cancellation cannot stop it half way. A rejected image is stored too (it was
        paid for, and a person may overrule the checks); its entry says why."""
        job = session.job
        actor = Actor.of(job)
        info = inspect_image(
            generated.data,
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
            what="generated image",
        )
        quality = (
            self.checker.check(
                generated.data,
                base=session.base,
                actor_type=actor.type,
                face_visible=item.face_visible,
                category=item.category,
                placeholder=self.provider.placeholder,
            ).record()
            if self.checker is not None
            else None
        )
        metadata = {
            "actor-id": actor.actor_id,
            "prompt-id": item.prompt_id,
            "prompt-sha256": hashlib.sha256(item.prompt.encode()).hexdigest()[:32],
            "job-id": job.id,
            "seed": str(generated.seed),
            "provider": generated.provider,
            "model": generated.model,
            "prediction-id": generated.prediction_id or "",
            "aspect-ratio": job.aspect_ratio,
            "category": item.category or "",
        }
        indices, entries = self._actor_state(actor)
        while True:
            index = indices.take()
            key = training_key(actor.actor_name, index, info.extension)
            try:
                stored = self.store.put_if_absent(
                    key, generated.data, content_type=info.content_type, metadata=metadata
                )
                break
            except PreconditionFailed:
                mine = self._already_mine(key, metadata, len(generated.data))
                if mine is not None:  # our own write, retried after its answer was lost
                    stored = mine
                    break
                log.debug("%s is taken; trying the next index", key)
                indices.raise_to(self._start_index(actor))  # others wrote meanwhile
        size = len(generated.data)
        entry = {
            "filename": key.rsplit("/", 1)[-1],
            "s3_url": self.store.public_url(key),
            "key": key,
            "md5_hash": md5_hex(generated.data),
            "size_bytes": size,
            "size_mb": round(size / (1024 * 1024), 2),
            "modified_timestamp": stored.modified,
            "modified_date": legacy_now(),
            "status": "synced",
            "prompt": item.prompt,
            "prompt_id": item.prompt_id,
            "category": item.category,
            "face_visible": item.face_visible,
            "aspect_ratio": job.aspect_ratio,
            "generation": {**generated.provenance(), "job_id": job.id},
            "good": False,
            "quality": quality,
            "caption": None,
            "created_at": utc_now(),
        }
        written = entries.append(entry)
        if written.get("filename") != entry["filename"]:
            # Another run of this job stored the item first (it took over a claim that lapsed
            # while this one was starved). The same prediction's bytes are a plain copy.
            if written.get("md5_hash") == entry["md5_hash"]:
                self.store.delete(key)
            else:  # a second paid image: kept as an orphan, reconcile reports it
                log.warning("%s: %s was stored twice for job %s", job.actor_id, key, job.id)
            return written
        metrics.record_generated(generated.provider, generated.model)  # stored, even if canceled
        log.debug("%s: stored %s (%s)", job.actor_id, key, effective_verdict(written))
        return written

    def _already_mine(self, key: str, metadata: dict[str, str], size: int) -> ObjectInfo | None:
        head = self.store.head(key)
        if head is None or head.size != size:
            return None
        same = all(head.metadata.get(k) == metadata[k] for k in ("job-id", "prompt-id", "seed"))
        return head if same else None
