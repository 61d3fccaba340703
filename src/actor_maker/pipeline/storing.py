"""Storing a paid image: create-only upload at the next free index, then the manifest entry.

``IndexAllocator`` hands out candidate indices in one process (create-only uploads settle
races between processes); in distributed mode every worker takes them from one counter in
Redis instead (``queue/indices.py``), so workers storing for one actor do not collide.
``EntryAppender`` group-commits entries that finish together into one manifest update
(other processes are handled by the manifest's compare-and-swap).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from actor_maker.captions import caption_for
from actor_maker.manifest import Manifest, update_manifest
from actor_maker.quality.checker import decide_duplicate
from actor_maker.store.base import ObjectStore


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
