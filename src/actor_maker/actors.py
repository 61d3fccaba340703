"""Operations on actors, shared by the HTTP API and the CLI.

Each is a few lines over ``update_manifest`` and the store; they raise our
errors (``NotFoundError``, ``InputError``, ...) and know nothing of HTTP.
Deletions go through the trash (``actor_maker.trash``): the trash copy and its
record are written first, then the manifest changes, then the original goes.
Statistics are recomputed by ``update_manifest`` itself.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actor_maker import prompts
from actor_maker.errors import ActorMakerError, InputError, NameTakenError, NotFoundError
from actor_maker.images import ImageInfo, inspect_image
from actor_maker.layout import (
    ACTOR_ID_FIELD,
    BASE_IMAGE_PREFIX,
    actor_ids,
    base_image_item,
    filename_of,
    manifest_key,
    object_key_of,
    owned_key,
    store_base_image,
    training_prefix,
)
from actor_maker.manifest import (
    Change,
    Entry,
    Manifest,
    new_manifest,
    read_manifest,
    require_manifest,
    update_manifest,
)
from actor_maker.quality import is_preview
from actor_maker.store.base import ObjectStore
from actor_maker.trash import TrashRecord, copy_to_trash, delete_originals, discard, move_to_trash
from actor_maker.validation import MAX_PROMPT_LENGTH, check_actor_id, check_actor_name, check_name

log = logging.getLogger(__name__)


# --- shared bits ---------------------------------------------------------------------


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


# --- creating and editing ------------------------------------------------------------------


def actor_named(store: ObjectStore, actor_name: str, *, other_than: str = "") -> str | None:
    """The id of an actor of ``store`` named ``actor_name`` (other than ``other_than``),
    or ``None``. Manifests that cannot be read are skipped."""
    ids = [i for i in actor_ids(store) if i != other_than]

    def name_of(actor_id: str) -> str | None:
        try:
            manifest = read_manifest(store, actor_id)
        except ActorMakerError:
            return None
        return manifest.actor_name if manifest else None

    with ThreadPoolExecutor(16) as pool:
        for actor_id, name in zip(ids, pool.map(name_of, ids), strict=True):
            if name == actor_name:
                return actor_id
    return None


def check_name_free(store: ObjectStore, actor_name: str, actor_id: str) -> None:
    """Names are unique in a store: ``ConflictError`` when another actor has this one."""
    owner = actor_named(store, actor_name, other_than=actor_id)
    if owner is not None:
        raise NameTakenError(f"actor name {actor_name} is taken by actor {owner}")


def create_actor(
    store: ObjectStore,
    *,
    actor_id: str,
    actor_name: str,
    actor_type: str = "person",
    actor_sex: str | None = None,
    description: str | None = None,
    outfit: str | None = None,
    base_image: bytes,
    max_bytes: int,
    max_pixels: int,
) -> Manifest:
    """A new actor: its base image stored create-only, its manifest created create-only."""
    check_actor_id(actor_id)
    check_actor_name(actor_name)
    kind, sex = _type_and_sex(actor_type, actor_sex)
    description, outfit = _text(description, "description"), _text(outfit, "outfit")
    info = inspect_image(base_image, max_bytes=max_bytes, max_pixels=max_pixels, what="base image")
    if read_manifest(store, actor_id) is not None:
        raise InputError(f"actor {actor_id} exists already")
    check_name_free(store, actor_name, actor_id)
    base = store_base_image(store, actor_id, actor_name, base_image, info)
    manifest = new_manifest(
        actor_id=actor_id,
        actor_name=actor_name,
        actor_type=kind,
        actor_sex=sex,
        description=description,
        outfit=outfit,
    )
    manifest.base_images.append(base)

    def only_if_new(current: Manifest) -> bool:
        if current.version is not None:
            raise InputError(f"actor {actor_id} exists already")
        return True

    return update_manifest(store, actor_id, only_if_new, create=manifest.copy)


def ensure_actor(
    store: ObjectStore,
    *,
    actor_id: str,
    actor_name: str,
    actor_type: str | None,
    actor_sex: str | None,
    data: bytes,
    info: ImageInfo,
    key: str | None,
) -> str:
    """What a job for an actor that may not exist yet does first: create the manifest when
    missing (``ConflictError`` when another actor has the name) and make sure the base
    image is stored (create-only, beside any other one). Returns the base image's key."""
    if read_manifest(store, actor_id) is None:
        check_name_free(store, actor_name, actor_id)
    if key is None:
        base = store_base_image(store, actor_id, actor_name, data, info)
        key = str(base["key"])
    else:
        base = base_image_item(store, key, info.extension)

    def change(manifest: Manifest) -> bool:
        changed = False
        if not manifest.base_images:
            manifest.base_images.append(dict(base))
            changed = True
        for field_name, value in (("actor_type", actor_type), ("actor_sex", actor_sex)):
            if field_name not in manifest.data and value:
                manifest.data[field_name] = value
                changed = True
        return changed

    update_manifest(
        store,
        actor_id,
        change,
        create=lambda: new_manifest(
            actor_id=actor_id,
            actor_name=actor_name,
            actor_type=actor_type or "person",
            actor_sex=actor_sex,
        ),
    )
    return key


def update_actor(
    store: ObjectStore,
    actor_id: str,
    *,
    actor_type: str | None = None,
    actor_sex: str | None = None,
    description: str | None = None,
    outfit: str | None = None,
    base_image: bytes | None = None,
    max_bytes: int,
    max_pixels: int,
    via: str = "api",
) -> Manifest:
    """Change type, sex, description, outfit (``None`` leaves a field, ``""`` clears it)
    and/or the base image, which goes to a new key and becomes ``base_images[0]``."""
    current = require_manifest(store, actor_id)
    kind, sex = _type_and_sex(actor_type or current.actor_type, actor_sex)
    texts = {"description": _text(description, "description"), "outfit": _text(outfit, "outfit")}
    base = None
    if base_image is not None:
        info = inspect_image(
            base_image, max_bytes=max_bytes, max_pixels=max_pixels, what="base image"
        )
        name = check_actor_name(current.actor_name)
        base = store_base_image(store, actor_id, name, base_image, info)

    def change(manifest: Manifest) -> bool:
        meta = _metadata(manifest)
        if actor_type is not None:
            manifest.data["actor_type"] = kind
        if actor_sex is not None:
            manifest.data["actor_sex"] = sex
            _set_or_clear(meta, "sex", sex or "")
        for field, value in texts.items():
            if value is not None:
                _set_or_clear(meta, field, value)
        if base is not None:
            others = [b for b in manifest.base_images if b.get("filename") != base["filename"]]
            manifest.data["base_images"] = [dict(base), *others]
        return True

    log.info("actor %s updated via %s", actor_id, via)
    return update_manifest(store, actor_id, change)


# --- deleting -------------------------------------------------------------------------------


def delete_actor(store: ObjectStore, actor_id: str, *, confirm: str, via: str) -> TrashRecord:
    """Move the manifest, the base images and every training object to the trash."""
    if confirm != actor_id:
        raise InputError(f"to delete actor {actor_id}, confirm with its id {actor_id!r}")
    manifest = require_manifest(store, actor_id)
    name = check_actor_name(manifest.actor_name)
    return move_to_trash(
        store,
        keys=[manifest_key(actor_id), *actor_objects(store, manifest)],
        actor_id=actor_id,
        actor_name=name,
        reason="delete-actor",
        via=via,
        entries=manifest.training_data,
        manifest=manifest.data,
    )


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


def _delete_entries(
    store: ObjectStore,
    manifest: Manifest,
    entries: list[Entry],
    *,
    reason: str,
    via: str,
    must_exist: bool,
) -> TrashRecord:
    name = check_actor_name(manifest.actor_name)
    prefix = training_prefix(name)
    keys = [k for e in entries if (k := owned_key(store, e, prefix, manifest.actor_id))]
    record = copy_to_trash(
        store,
        keys=keys,
        actor_id=manifest.actor_id,
        actor_name=name,
        reason=reason,
        via=via,
        entries=entries,
    )
    filenames = {str(e["filename"]) for e in entries}
    return _commit(store, record, manifest.actor_id, _without(filenames, must_exist=must_exist))


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
    old_key = owned_key(store, old, prefix, actor_id)
    record = copy_to_trash(
        store,
        keys=[old_key] if old_key else [],
        actor_id=actor_id,
        actor_name=manifest.actor_name,
        reason="replaced",
        via=via,
        entries=[old],
    )

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
    prefix = training_prefix(check_actor_name(manifest.actor_name))
    old = manifest.training_data[_position(manifest, old_filename)]
    old_key = owned_key(store, old, prefix, actor_id)
    record = copy_to_trash(
        store,
        keys=[old_key] if old_key else [],
        actor_id=actor_id,
        actor_name=manifest.actor_name,
        reason="replaced",
        via=via,
        entries=[old],
    )
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


# --- flags ----------------------------------------------------------------------------------


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


# --- reading --------------------------------------------------------------------------------


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
