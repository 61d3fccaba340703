"""Deleting never loses data by accident: deleted objects are moved to a trash prefix.

One deletion is one trash folder::

    system_actors/trash/{trash_id}/record.json        what was deleted, by whom, why
    system_actors/trash/{trash_id}/{original key}     a copy of each deleted object

``trash_id`` is a UTC timestamp plus a short random part, so folders sort by age.
A move copies every object and writes the record first and deletes the originals
last: a crash in between leaves a duplicate, never a loss. ``restore`` puts the
objects back (at the next free index when a training image's name was taken in
the meantime) and re-adds the manifest entries through ``update_manifest``;
``purge`` removes folders older than a number of days.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NotRequired, TypedDict, Unpack

from actor_maker.errors import ActorMakerError, InputError, NotFoundError, PreconditionFailed
from actor_maker.layout import (
    BASE_IMAGE_PREFIX,
    ROOT,
    index_of,
    manifest_key,
    numbered_keys,
    object_key_of,
    put_first_free,
    same_bytes,
    training_key,
    training_prefix,
)
from actor_maker.manifest import (
    Entry,
    Manifest,
    no_manifest,
    read_manifest,
    update_manifest,
    utc_now,
)
from actor_maker.names import restore_name
from actor_maker.store.base import ObjectStore, check_key, check_metadata
from actor_maker.thumbnails import thumbnail_key
from actor_maker.validation import check_actor_id, check_actor_name

log = logging.getLogger(__name__)

TRASH_PREFIX = f"{ROOT}/trash/"
RECORD_NAME = "record.json"
REASONS = ("delete", "delete-all", "delete-actor", "replaced", "orphan")
VIAS = ("cli", "api", "ui")

_ID_FORMAT = "%Y%m%dT%H%M%S%fZ"
_ID_RE = re.compile(r"\d{8}T\d{12}Z-[0-9a-f]{8}")


@dataclass(frozen=True)
class TrashRecord:
    """The ``record.json`` of one trash folder."""

    trash_id: str
    deleted_at: str
    reason: str
    actor_id: str
    actor_name: str
    via: str
    #: ``{key, size, content_type, metadata, version}`` of each object moved.
    objects: list[dict[str, Any]]
    #: The manifest entries removed, verbatim.
    entries: list[dict[str, Any]]
    #: The whole manifest when a whole actor was deleted, else ``None``.
    manifest: dict[str, Any] | None

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> TrashRecord:
        data = json.loads(raw)
        manifest = data.get("manifest")
        return cls(
            trash_id=str(data["trash_id"]),
            deleted_at=str(data.get("deleted_at", "")),
            reason=str(data.get("reason", "")),
            actor_id=str(data.get("actor_id", "")),
            actor_name=str(data.get("actor_name", "")),
            via=str(data.get("via", "")),
            objects=[o for o in data.get("objects") or [] if isinstance(o, dict) and o.get("key")],
            entries=[e for e in data.get("entries") or [] if isinstance(e, dict)],
            manifest=manifest if isinstance(manifest, dict) else None,
        )


# --- ids and keys -----------------------------------------------------------------------


def new_trash_id(now: datetime | None = None) -> str:
    return f"{(now or datetime.now(UTC)).strftime(_ID_FORMAT)}-{secrets.token_hex(4)}"


def trash_id_valid(value: object) -> bool:
    """Whether ``value`` is a well-formed trash id (so it is safe inside a key)."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def trash_id_time(trash_id: str) -> datetime:
    return datetime.strptime(trash_id.split("-", 1)[0], _ID_FORMAT).replace(tzinfo=UTC)


def _checked_id(trash_id: str) -> str:
    if not trash_id_valid(trash_id):
        raise InputError(f"invalid trash id {trash_id!r}")
    return trash_id


def trash_folder(trash_id: str) -> str:
    return f"{TRASH_PREFIX}{_checked_id(trash_id)}/"


def record_key(trash_id: str) -> str:
    return f"{trash_folder(trash_id)}{RECORD_NAME}"


def _storable(metadata: dict[str, str]) -> dict[str, str]:
    """Metadata our stores accept; odd metadata of a foreign object stays in the record only."""
    try:
        return check_metadata(metadata)
    except InputError:
        return {}


# --- moving to the trash ---------------------------------------------------------------


class Deletion(TypedDict):
    """Who and what a deletion is about, as its trash record keeps it."""

    actor_id: str
    actor_name: str
    #: One of ``REASONS``.
    reason: str
    #: One of ``VIAS``.
    via: str
    #: The manifest entries removed (default: none).
    entries: NotRequired[Iterable[Entry]]
    #: The whole manifest, when a whole actor is deleted.
    manifest: NotRequired[dict[str, Any] | None]


def copy_to_trash(
    store: ObjectStore, *, keys: Sequence[str], **deletion: Unpack[Deletion]
) -> TrashRecord:
    """First half of a move: copy ``keys`` (absent ones skipped) and write the record.
    Nothing is deleted; finish with ``delete_originals`` or undo with ``discard``."""
    reason, via = deletion["reason"], deletion["via"]
    if reason not in REASONS:
        raise InputError(f"unknown trash reason {reason!r}; one of {', '.join(REASONS)}")
    if via not in VIAS:
        raise InputError(f"unknown via {via!r}; one of {', '.join(VIAS)}")
    for key in keys:
        if check_key(key).startswith(TRASH_PREFIX):
            raise InputError(f"{key} is in the trash already")
    trash_id = new_trash_id()
    folder = trash_folder(trash_id)
    objects: list[dict[str, Any]] = []
    for key in dict.fromkeys(keys):
        try:
            obj = store.get(key)
        except NotFoundError:
            log.info("%s is gone already; nothing to move to the trash", key)
            continue
        info = obj.info
        meta = dict(info.metadata)
        store.put_if_absent(
            f"{folder}{key}", obj.data, content_type=info.content_type, metadata=_storable(meta)
        )
        objects.append(
            {
                "key": key,
                "size": info.size,
                "content_type": info.content_type,
                "metadata": meta,
                "version": info.version,
            }
        )
    record = TrashRecord(
        trash_id=trash_id,
        deleted_at=utc_now(),
        reason=reason,
        actor_id=deletion["actor_id"],
        actor_name=deletion["actor_name"],
        via=via,
        objects=objects,
        entries=[copy.deepcopy(dict(e)) for e in deletion.get("entries", ())],
        manifest=copy.deepcopy(deletion.get("manifest")),
    )
    store.put_if_absent(record_key(trash_id), record.to_json(), content_type="application/json")
    return record


def delete_originals(store: ObjectStore, record: TrashRecord) -> None:
    """Second half of a move, after the manifest change. An object changed since it was
    copied (its newer content is not in the trash) is left in place, and so is an object
    the actor's manifest lists (again) now: a concurrent update re-added it. One that a
    manifest update landing during the deletes lists again is put back from the trash
    copy. The manifest itself (a whole actor's deletion) goes first."""
    own_manifest = manifest_key(record.actor_id)
    ordered = sorted(record.objects, key=lambda o: o["key"] != own_manifest)
    listed: set[str] | None = None
    deleted: list[dict[str, Any]] = []
    for obj in ordered:
        key = str(obj["key"])
        if key != own_manifest:
            listed = _listed_keys(store, record) if listed is None else listed
            if key in listed:
                log.warning("%s is listed by the manifest again; left in place", key)
                continue
        head = store.head(key)
        if head is None:
            continue
        if head.version != obj.get("version"):
            log.warning("%s changed after it was copied to the trash; left in place", key)
            continue
        store.delete(key)
        deleted.append(obj)
    relisted = _listed_keys(store, record) if deleted else set()
    for obj in deleted:
        if obj["key"] in relisted:
            _put_back(store, record, obj)
        else:
            _drop_thumbnail(store, str(obj["key"]))


def _listed_keys(store: ObjectStore, record: TrashRecord) -> set[str]:
    """Keys the actor's manifest names now (entries and base images, in its own prefixes)."""
    try:
        manifest = read_manifest(store, record.actor_id)
    except ActorMakerError:
        return set()  # unreadable: nothing it lists can be known, and it is left as it is
    if manifest is None:
        return set()
    prefix = training_prefix(record.actor_name)
    keys = {object_key_of(store, e, prefix) for e in manifest.training_data}
    keys |= {object_key_of(store, b, BASE_IMAGE_PREFIX) for b in manifest.base_images}
    return {k for k in keys if k is not None}


def _put_back(store: ObjectStore, record: TrashRecord, obj: dict[str, Any]) -> None:
    key = str(obj["key"])
    try:
        data = store.get(f"{trash_folder(record.trash_id)}{key}").data
        store.put_if_absent(
            key,
            data,
            content_type=obj.get("content_type"),
            metadata=_storable(obj.get("metadata") or {}),
        )
    except PreconditionFailed:
        return  # already back
    log.warning("%s was listed by the manifest again while it was deleted; put back", key)


def _drop_thumbnail(store: ObjectStore, key: str) -> None:
    """Thumbnails are derived: they go with their image (and are remade on restore)."""
    with contextlib.suppress(InputError):
        store.delete(thumbnail_key(key))


def discard(store: ObjectStore, trash_id: str) -> None:
    """Remove a trash folder: the record first (it stops being listed), then the copies."""
    folder = trash_folder(trash_id)
    store.delete(record_key(trash_id))
    for info in list(store.list(folder)):
        store.delete(info.key)


def move_to_trash(
    store: ObjectStore, *, keys: Sequence[str], **deletion: Unpack[Deletion]
) -> TrashRecord:
    """Copy ``keys`` and the record into a new trash folder, then delete the originals."""
    record = copy_to_trash(store, keys=keys, **deletion)
    delete_originals(store, record)
    return record


# --- reading the trash -----------------------------------------------------------------


def _trash_ids(store: ObjectStore) -> dict[str, list[str]]:
    """Trash id → keys in its folder (folders whose name is not an id are ignored)."""
    folders: dict[str, list[str]] = {}
    for info in store.list(TRASH_PREFIX):
        trash_id = info.key[len(TRASH_PREFIX) :].split("/", 1)[0]
        if trash_id_valid(trash_id):
            folders.setdefault(trash_id, []).append(info.key)
    return folders


def read_record(store: ObjectStore, trash_id: str) -> TrashRecord:
    """The record of ``trash_id``; ``InputError`` when the id is malformed,
    ``NotFoundError`` when there is no such trash entry."""
    key = record_key(trash_id)
    try:
        raw = store.get(key).data
    except NotFoundError as exc:
        raise NotFoundError(f"no trash entry {trash_id!r}") from exc
    try:
        return TrashRecord.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"trash record {key} is unreadable: {exc}") from exc


def list_trash(store: ObjectStore, *, actor_id: str | None = None) -> list[TrashRecord]:
    """Trash records, newest first; folders without a readable record are skipped."""
    records: list[TrashRecord] = []
    for trash_id, keys in sorted(_trash_ids(store).items(), reverse=True):
        if record_key(trash_id) not in keys:
            continue
        try:
            record = read_record(store, trash_id)
        except InputError as exc:
            log.warning("%s", exc)
            continue
        if actor_id is None or record.actor_id == actor_id:
            records.append(record)
    return records


# --- restoring -------------------------------------------------------------------------


class _Restorer:
    """Puts one record's objects back and works out where each one went."""

    def __init__(self, store: ObjectStore, record: TrashRecord, current: Manifest | None) -> None:
        self.store = store
        self.record = record
        self.name = record.actor_name
        self.moved: dict[str, str] = {}  # original key → key restored to (when different)
        highest = [current.highest_index()] if current else []
        if record.manifest is not None:
            highest.append(Manifest(record.manifest).highest_index())
        self._next_index = max(highest, default=-1) + 1

    def restore_objects(self) -> None:
        folder = trash_folder(self.record.trash_id)
        for obj in self.record.objects:
            key = str(obj["key"])
            if key == manifest_key(self.record.actor_id):
                continue  # the manifest comes back through update_manifest
            try:
                data = self.store.get(f"{folder}{key}").data
            except NotFoundError:
                log.warning("trash copy of %s is missing; skipped", key)
                continue
            restored = put_first_free(
                self.store,
                self._candidates(key, data),
                data,
                content_type=obj.get("content_type"),
                metadata=_storable(obj.get("metadata") or {}),
            )
            assert restored is not None  # the candidates never run out
            if restored != key:
                self.moved[key] = restored

    def _candidates(self, key: str, data: bytes) -> Iterator[str]:
        """The original key; then, for a training image, an object already holding these
        bytes (a restore re-run) or the next free index; for others, a numbered key."""
        yield key
        filename = key.rsplit("/", 1)[-1]
        index = index_of(filename)
        if not (key.startswith(training_prefix(self.name)) and index is not None):
            yield from numbered_keys(key)
            return
        for info in self.store.list(training_prefix(self.name)):
            if info.size == len(data) and same_bytes(self.store, info.key, data):
                yield info.key
        extension = filename.rsplit(".", 1)[-1]
        while True:
            yield training_key(self.name, self._next_index, extension)
            self._next_index += 1

    def rewrite(self, item: Entry, prefix: str) -> Entry:
        """A copy of ``item`` naming the key its object was restored to."""
        item = copy.deepcopy(item)
        new = self.moved.get(object_key_of(self.store, item, prefix) or "")
        if new is not None:
            item["filename"] = new.rsplit("/", 1)[-1]
            item["key"] = new
            if item.get("s3_url") or self.store.public_url(new):
                item["s3_url"] = self.store.public_url(new)
        return item


def restore(store: ObjectStore, trash_id: str) -> TrashRecord:
    """Put a trash folder's objects and entries back, then remove the folder.

    Returns the record with its entries as restored (renamed where their index
    had been taken in the meantime).
    """
    record = read_record(store, trash_id)
    check_actor_id(record.actor_id)
    check_actor_name(record.actor_name)
    current = read_manifest(store, record.actor_id)
    whole_actor = record.reason == "delete-actor" and record.manifest is not None
    if current is None and not whole_actor:
        raise InputError(f"{no_manifest(record.actor_id)}; restore the deletion of the actor first")
    restorer = _Restorer(store, record, current)
    restorer.restore_objects()
    prefix = training_prefix(record.actor_name)
    entries = [restorer.rewrite(e, prefix) for e in record.entries]
    saved: Manifest | None = None
    if whole_actor:
        assert record.manifest is not None
        saved = Manifest(copy.deepcopy(record.manifest))
        saved.data["training_data"] = [restorer.rewrite(e, prefix) for e in saved.training_data]
        saved.data["base_images"] = [
            restorer.rewrite(b, BASE_IMAGE_PREFIX) for b in saved.base_images
        ]
    update_manifest(store, record.actor_id, _merge(entries, saved), create=_creator(saved))
    if whole_actor and saved is not None:
        restore_name(store, saved.actor_name, record.actor_id)
    discard(store, trash_id)
    log.info("restored trash %s (%s of actor %s)", trash_id, record.reason, record.actor_id)
    return replace(record, entries=entries)


def _merge(entries: list[Entry], saved: Manifest | None) -> Callable[[Manifest], bool]:
    def change(manifest: Manifest) -> bool:
        changed = False
        all_entries = entries + (saved.training_data if saved else [])
        for entry in all_entries:
            changed = manifest.add_entry(copy.deepcopy(entry)) or changed
        known = {b.get("filename") for b in manifest.base_images}
        for base in saved.base_images if saved else []:
            if base.get("filename") not in known:
                manifest.base_images.append(copy.deepcopy(base))
                changed = True
        return changed

    return change


def _creator(saved: Manifest | None) -> Callable[[], Manifest] | None:
    if saved is None:
        return None
    return lambda: Manifest(copy.deepcopy(saved.data))


# --- purging -----------------------------------------------------------------------------


def purgeable(
    store: ObjectStore, *, older_than_days: float = 30, now: datetime | None = None
) -> list[str]:
    """Ids of the trash folders older than ``older_than_days``, oldest first."""
    if older_than_days < 0:
        raise InputError("--older-than-days must not be negative")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cutoff = now - timedelta(days=older_than_days)
    return sorted(i for i in _trash_ids(store) if trash_id_time(i) < cutoff)


def purge(
    store: ObjectStore, *, older_than_days: float = 30, now: datetime | None = None
) -> list[str]:
    """Delete trash folders older than ``older_than_days`` for good; returns their ids."""
    purged = purgeable(store, older_than_days=older_than_days, now=now)
    for trash_id in purged:
        discard(store, trash_id)
    return purged
