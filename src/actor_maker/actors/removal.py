"""Deleting and replacing: an actor, some of its images, one image by a new one.

Every removal goes through the trash (``actor_maker.trash``): the trash copy and its
record are written first, then the manifest changes, then the originals go.
"""

from __future__ import annotations

import copy
from collections.abc import Collection

from actor_maker.actors.common import _keep_high_water_mark, _position, check_filename
from actor_maker.errors import InputError, NotFoundError
from actor_maker.layout import (
    ACTOR_ID_FIELD,
    BASE_IMAGE_PREFIX,
    filename_of,
    manifest_key,
    object_key_of,
    owned_key,
    training_prefix,
)
from actor_maker.manifest import Change, Entry, Manifest, require_manifest, update_manifest
from actor_maker.names import release_name
from actor_maker.quality import is_preview
from actor_maker.store.base import ObjectStore
from actor_maker.trash import TrashRecord, copy_to_trash, delete_originals, discard, move_to_trash
from actor_maker.validation import check_actor_name, check_name


def delete_actor(store: ObjectStore, actor_id: str, *, confirm: str, via: str) -> TrashRecord:
    """Move the manifest, the base images and every training object to the trash."""
    if confirm != actor_id:
        raise InputError(f"to delete actor {actor_id}, confirm with its id {actor_id!r}")
    manifest = require_manifest(store, actor_id)
    name = check_actor_name(manifest.actor_name)
    record = move_to_trash(
        store,
        keys=[manifest_key(actor_id), *actor_objects(store, manifest)],
        actor_id=actor_id,
        actor_name=name,
        reason="delete-actor",
        via=via,
        entries=manifest.training_data,
        manifest=manifest.data,
    )
    release_name(store, name, actor_id)
    return record


def actor_objects(store: ObjectStore, manifest: Manifest) -> list[str]:
    """The keys of an actor's own objects: what its base images and entries name (inside
    its own prefixes), plus objects under its training prefix whose metadata names its
    id. Never an object whose metadata names another actor, never by name prefix alone."""
    actor_id, name = manifest.actor_id, check_actor_name(manifest.actor_name)
    keys: list[str] = []
    for base in manifest.base_images:
        key = owned_key(store, base, BASE_IMAGE_PREFIX, actor_id)
        if key and filename_of(key).startswith(f"{name}_base"):
            keys.append(key)
    prefix = training_prefix(name)
    keys += [k for e in manifest.training_data if (k := owned_key(store, e, prefix, actor_id))]
    named = set(keys)
    for info in store.list(prefix):
        if info.key in named or "/" in info.key[len(prefix) :]:
            continue
        head = store.head(info.key)
        if head is not None and head.metadata.get(ACTOR_ID_FIELD) == actor_id:
            keys.append(info.key)
    return keys


def _copy_entries(
    store: ObjectStore,
    actor_id: str,
    manifest: Manifest,
    entries: list[Entry],
    *,
    reason: str,
    via: str,
) -> TrashRecord:
    """First half of removing ``entries``: their own objects and themselves copied to the
    trash; nothing deleted yet (``_commit`` finishes)."""
    name = check_actor_name(manifest.actor_name)
    prefix = training_prefix(name)
    return copy_to_trash(
        store,
        keys=[k for e in entries if (k := owned_key(store, e, prefix, actor_id))],
        actor_id=actor_id,
        actor_name=name,
        reason=reason,
        via=via,
        entries=entries,
    )


def _commit(store: ObjectStore, record: TrashRecord, actor_id: str, change: Change) -> TrashRecord:
    """The manifest change of a deletion whose trash copy is written; then the originals go.
    When the change fails, the manifest and originals are untouched and the copy goes."""
    try:
        update_manifest(store, actor_id, change)
    except BaseException:
        discard(store, record.trash_id)
        raise
    delete_originals(store, record)
    return record


def _without(filenames: Collection[str], *, must_exist: bool) -> Change:
    def change(manifest: Manifest) -> bool:
        if must_exist:
            for filename in filenames:
                _position(manifest, filename)
        mark = manifest.highest_index()
        kept = [e for e in manifest.training_data if e.get("filename") not in filenames]
        if len(kept) == len(manifest.training_data):
            return False
        manifest.data["training_data"] = kept
        _keep_high_water_mark(manifest, mark)
        return True

    return change


def _delete_entries(
    store: ObjectStore,
    manifest: Manifest,
    entries: list[Entry],
    *,
    reason: str,
    via: str,
    must_exist: bool,
) -> TrashRecord:
    actor_id = manifest.actor_id
    record = _copy_entries(store, actor_id, manifest, entries, reason=reason, via=via)
    filenames = {str(e["filename"]) for e in entries}
    return _commit(store, record, actor_id, _without(filenames, must_exist=must_exist))


def delete_image(
    store: ObjectStore, actor_id: str, filename: str, *, via: str, reason: str = "delete"
) -> TrashRecord:
    """Remove one entry and move its object (when it is in this store) to the trash."""
    check_filename(filename)
    manifest = require_manifest(store, actor_id)
    entry = manifest.training_data[_position(manifest, filename)]
    return _delete_entries(store, manifest, [entry], reason=reason, via=via, must_exist=True)


def delete_all_images(store: ObjectStore, actor_id: str, *, via: str) -> TrashRecord:
    """Remove every entry and move their objects to the trash; the actor stays."""
    manifest = require_manifest(store, actor_id)
    entries = list(manifest.training_data)
    return _delete_entries(store, manifest, entries, reason="delete-all", via=via, must_exist=False)


def delete_previews(store: ObjectStore, actor_id: str, *, via: str) -> TrashRecord | None:
    """Move the actor's preview placeholder images to the trash (``clean-previews``);
    ``None`` when it has none. Real images stay."""
    manifest = require_manifest(store, actor_id)
    entries = [e for e in manifest.training_data if is_preview(e)]
    if not entries:
        return None
    return _delete_entries(store, manifest, entries, reason="delete", via=via, must_exist=False)


def replace_entry(
    store: ObjectStore, actor_id: str, old_filename: str, new_entry: Entry, *, via: str
) -> TrashRecord:
    """Put ``new_entry`` (its image already stored) where ``old_filename`` was, in one
    manifest change; the old object goes to the trash (reason ``replaced``)."""
    check_filename(old_filename)
    new_filename = check_name(str(new_entry.get("filename") or ""), "new filename")
    if new_filename == old_filename:
        raise InputError(f"the new image must have a new filename, not {old_filename}")
    manifest = require_manifest(store, actor_id)
    prefix = training_prefix(check_actor_name(manifest.actor_name))
    old = manifest.training_data[_position(manifest, old_filename)]
    new_key = object_key_of(store, new_entry, prefix)
    if new_key is not None and store.head(new_key) is None:
        raise InputError(f"store the new image {new_key} before replacing {old_filename}")
    record = _copy_entries(store, actor_id, manifest, [old], reason="replaced", via=via)

    def change(current: Manifest) -> bool:
        position = _position(current, old_filename)
        if current.find(new_filename) is not None:
            raise InputError(f"actor {actor_id} has an image {new_filename} already")
        mark = current.highest_index()
        current.training_data[position] = copy.deepcopy(new_entry)
        _keep_high_water_mark(current, mark)
        return True

    return _commit(store, record, actor_id, change)


def recreate_entry(
    store: ObjectStore,
    actor_id: str,
    old_filename: str,
    new_filename: str,
    *,
    same_prompt: bool,
    via: str,
) -> tuple[Entry, TrashRecord]:
    """A recreated image takes its predecessor's place: the new entry (appended when its job
    stored it) moves to the old one's position in ONE manifest change, keeping the old
    library prompt id when the prompt is the same; the old object goes to the trash. When
    the change fails, the manifest is untouched: the new entry stays at the end (paid for)."""
    check_filename(old_filename)
    check_filename(new_filename)
    manifest = require_manifest(store, actor_id)
    old = manifest.training_data[_position(manifest, old_filename)]
    record = _copy_entries(store, actor_id, manifest, [old], reason="replaced", via=via)
    moved: list[Entry] = []

    def change(current: Manifest) -> bool:
        moved.clear()
        new = current.find(new_filename)
        if new is None:
            raise NotFoundError(f"the new image {new_filename} left the manifest; nothing replaced")
        previous = current.training_data[_position(current, old_filename)]
        mark = current.highest_index()
        current.training_data.remove(new)
        new = copy.deepcopy(new)
        if same_prompt and previous.get("prompt_id"):  # still the library prompt it was made from
            new["prompt_id"], new["category"] = previous["prompt_id"], previous.get("category")
        current.training_data[_position(current, old_filename)] = new
        _keep_high_water_mark(current, mark)
        moved.append(new)
        return True

    record = _commit(store, record, actor_id, change)
    return moved[0], record
