"""What is trained: the actor's usable images, their hash, and their export for a trainer.

Selection: usable images (:func:`~actor_maker.quality.is_usable`: stored and accepted or
approved), never rejected ones, never the ``preview`` provider's placeholders (except for
the ``preview`` trainer, which learns nothing). The dataset hash is sha256 over the sorted
``(filename, md5, caption)`` of exactly the selected images; the export is made by
:func:`actor_maker.export.export` from a view of the store whose manifest lists exactly
those images, and is checked to hold all of them, so the hash names what was trained.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from actor_maker.captions import caption_for
from actor_maker.config import Settings
from actor_maker.errors import StoreError
from actor_maker.export import export
from actor_maker.layout import entry_key, index_of, manifest_key
from actor_maker.manifest import Entry, Manifest, serialize_manifest
from actor_maker.quality import effective_verdict, is_preview, is_usable
from actor_maker.store.base import ObjectInfo, ObjectStore, StoredObject
from actor_maker.training.base import Dataset


@dataclass(frozen=True)
class Selection:
    entries: list[Entry]
    sha256: str
    #: Why the other images were left out, with counts.
    left_out: dict[str, int] = field(default_factory=dict)


def _order(entry: Entry) -> tuple[bool, int, str]:
    filename = str(entry["filename"])
    index = index_of(filename)
    return index is None, index or 0, filename


def caption_of(manifest: Manifest, entry: Entry) -> str:
    """The caption the export writes for ``entry``."""
    return str(entry.get("caption") or caption_for(manifest, entry)).strip()


def select(store: ObjectStore, manifest: Manifest, *, allow_preview: bool = False) -> Selection:
    """The images to train on; ``allow_preview`` (the preview trainer only) takes the
    preview placeholders too."""
    chosen: list[Entry] = []
    left_out: Counter[str] = Counter()
    for entry in sorted(manifest.training_data, key=_order):
        if is_preview(entry):
            if not allow_preview or entry.get("status") not in (None, "synced"):
                left_out["preview placeholder"] += 1
                continue
        elif not is_usable(entry):
            verdict = effective_verdict(entry)
            if entry.get("status") not in (None, "synced"):
                left_out[f"status {entry.get('status')}"] += 1
            else:
                left_out["awaiting review" if verdict == "review" else str(verdict)] += 1
            continue
        if entry_key(store, entry, manifest.actor_name) is None:
            left_out["not in this store"] += 1
        else:
            chosen.append(entry)
    return Selection(chosen, dataset_sha256(manifest, chosen), dict(left_out))


def dataset_sha256(manifest: Manifest, entries: list[Entry]) -> str:
    rows = sorted(
        (str(e["filename"]), str(e.get("md5_hash") or ""), caption_of(manifest, e)) for e in entries
    )
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()


def _unmarked(entry: Entry) -> Entry:
    """A preview placeholder shown to the export as an ordinary image (preview trainer)."""
    copy = dict(entry)
    if is_preview(copy):
        copy["generation"] = {**copy["generation"], "provider": "preview-trainer"}
        copy.pop("quality", None)  # placeholders are rejected by rule, not by a check
    return copy


class DatasetView(ObjectStore):
    """A read-only view of ``store`` whose manifest for the actor lists only ``entries``
    (it supplies no write primitives, so the base class refuses every put).

    The export of the preview trainer (which learns nothing, so that ``demo --train`` can
    run the whole loop offline) sees preview placeholders as ordinary images; nothing else
    ever trains on them.
    """

    def __init__(self, store: ObjectStore, manifest: Manifest, entries: list[Entry]) -> None:
        self._store = store
        self.description = store.description
        data = dict(manifest.data)
        data["training_data"] = [_unmarked(e) for e in entries]
        self._key = manifest_key(manifest.actor_id)
        self._manifest = serialize_manifest(Manifest(data))

    def get(self, key: str) -> StoredObject:
        if key == self._key:
            return StoredObject(self._manifest, ObjectInfo(key, len(self._manifest), "view", 0))
        return self._store.get(key)

    def head(self, key: str) -> ObjectInfo | None:
        return self._store.head(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self._store.list(prefix)

    def delete(self, key: str) -> None:
        raise StoreError("the dataset view is read-only")

    def presigned_url(self, key: str, expires_in: int = 900) -> str | None:
        return self._store.presigned_url(key, expires_in)

    def public_url(self, key: str) -> str | None:
        return self._store.public_url(key)

    def key_for_url(self, url: str) -> str | None:
        return self._store.key_for_url(url)


def export_dataset(
    store: ObjectStore,
    settings: Settings,
    manifest: Manifest,
    selection: Selection,
    *,
    fmt: str,
    workdir: Path,
) -> Dataset:
    """Export exactly ``selection`` in ``fmt`` under ``workdir`` (blocking: run in a thread)."""
    workdir.mkdir(parents=True, exist_ok=True)
    replicate = fmt == "replicate-zip"
    out = workdir / (f"{manifest.actor_name}.zip" if replicate else "dataset")
    view = DatasetView(store, manifest, selection.entries)
    report = export(
        view,
        [manifest.actor_id],
        fmt="replicate-zip" if replicate else "ai-toolkit",
        out=str(out),
        settings=settings,
    )
    actor = report.actors[0]
    if actor.images != len(selection.entries):
        reasons = "; ".join(f"{s.filename}: {s.reason}" for s in actor.skipped[:5])
        raise StoreError(
            f"the export holds {actor.images} of the {len(selection.entries)} selected images "
            f"({reasons}); nothing was trained"
        )
    path = out if replicate else out / manifest.actor_name
    return Dataset(path=path, images=actor.images, sha256=selection.sha256)
