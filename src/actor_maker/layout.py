"""Where an actor's objects live in the store: the one home of the key layout.

::

    system_actors/manifests/{actor_id}_manifest.json
    system_actors/base_images/{actor_name}_base.{ext}          (then _base_2, ... when taken)
    system_actors/training_data/{actor_name}/{actor_name}_{index}.{ext}

Everything that turns an actor, an entry or a base image into a key, lists the
actors in a store, or stores an object create-only at the first free key is here.
An entry's ``key`` is followed only inside the prefix it belongs to (its actor's
training prefix, or the base-image prefix): an entry cannot point an operation at
another actor's objects or out of the store. An object whose metadata names
another actor id is never treated as this actor's (``owned_key``).

This module knows keys and objects, not manifests: ``manifest.py`` builds on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from actor_maker.errors import InputError, PreconditionFailed
from actor_maker.images import ImageInfo, md5_hex
from actor_maker.store.base import ObjectStore, check_key

ROOT = "system_actors"
MANIFEST_PREFIX = f"{ROOT}/manifests/"
MANIFEST_SUFFIX = "_manifest.json"
TRAINING_PREFIX = f"{ROOT}/training_data/"
BASE_IMAGE_PREFIX = f"{ROOT}/base_images/"
#: One create-only marker per actor name, holding the id of the actor that has it.
NAME_PREFIX = f"{ROOT}/.names/"
#: The object metadata field naming the actor an object was stored for.
ACTOR_ID_FIELD = "actor-id"

#: ``{actor_name}_{index}.{ext}``
_INDEX_RE = re.compile(r"_(\d+)\.(?:jpe?g|png|webp)$", re.IGNORECASE)


# --- keys ------------------------------------------------------------------------------


def name_key(actor_name: str) -> str:
    return f"{NAME_PREFIX}{actor_name}"


def manifest_key(actor_id: str) -> str:
    return f"{MANIFEST_PREFIX}{actor_id}{MANIFEST_SUFFIX}"


def actor_id_of(key: str) -> str | None:
    """The actor id a manifest key names, or ``None`` for any other key."""
    if not (key.startswith(MANIFEST_PREFIX) and key.endswith(MANIFEST_SUFFIX)):
        return None
    actor_id = key[len(MANIFEST_PREFIX) : -len(MANIFEST_SUFFIX)]
    return actor_id if actor_id and "/" not in actor_id else None


def training_prefix(actor_name: str) -> str:
    return f"{TRAINING_PREFIX}{actor_name}/"


def training_key(actor_name: str, index: int, extension: str) -> str:
    return f"{training_prefix(actor_name)}{actor_name}_{index}.{extension}"


def base_image_key(actor_name: str, extension: str) -> str:
    return f"{BASE_IMAGE_PREFIX}{actor_name}_base.{extension}"


def index_of(filename: str) -> int | None:
    """The image index in a training filename, or ``None`` when it has none."""
    match = _INDEX_RE.search(filename)
    return int(match.group(1)) if match else None


def filename_of(key: str) -> str:
    return key.rsplit("/", 1)[-1]


# --- listing -----------------------------------------------------------------------------


def manifest_versions(store: ObjectStore) -> dict[str, str]:
    """Manifest key → version of every actor in the store (one listing)."""
    return {o.key: o.version for o in store.list(MANIFEST_PREFIX) if actor_id_of(o.key)}


def actor_ids(store: ObjectStore) -> list[str]:
    """Ids of every manifest in the store, sorted."""
    return sorted(i for k in manifest_versions(store) if (i := actor_id_of(k)))


def highest_stored_index(store: ObjectStore, actor_name: str) -> int:
    """The highest index of an object under the actor's training prefix (-1: none)."""
    found = (index_of(filename_of(o.key)) for o in store.list(training_prefix(actor_name)))
    return max((i for i in found if i is not None), default=-1)


# --- which object an entry names ---------------------------------------------------------


def object_key_of(
    store: ObjectStore, entry: Mapping[str, Any], prefix: str, *, by_filename: bool = True
) -> str | None:
    """The key in ``store`` of the object a manifest entry (or base image) names.

    ``entry["key"]``, else the key its ``s3_url`` maps to in this store, else (with
    ``by_filename``) ``prefix`` + filename when it has no URL at all. ``None`` when it is
    elsewhere (another bucket) or the key would fall outside ``prefix``: objects
    outside the actor's own layout are never read, moved or deleted through an entry.
    """
    key, url, filename = entry.get("key"), entry.get("s3_url"), entry.get("filename")
    if isinstance(key, str) and key:
        candidate: str | None = key
    elif isinstance(url, str) and url:
        candidate = store.key_for_url(url)
    elif by_filename and isinstance(filename, str) and filename:
        candidate = f"{prefix}{filename}"
    else:
        return None
    if candidate is None or not candidate.startswith(prefix):
        return None
    try:
        check_key(candidate)
    except InputError:
        return None
    if "/" in candidate[len(prefix) :]:
        return None  # nested below the prefix: not one of this actor's objects
    return candidate


def entry_key(store: ObjectStore, entry: Mapping[str, Any], actor_name: str) -> str | None:
    """The key of a training entry's object: its ``key`` or this store's ``s3_url``, and
    only inside the actor's own training prefix."""
    return object_key_of(store, entry, training_prefix(actor_name), by_filename=False)


def base_keys(store: ObjectStore, bases: Iterable[Mapping[str, Any]]) -> list[str]:
    """The keys the base image entries name (``key`` or this store's ``s3_url``, inside the
    base-image prefix), whether or not their objects exist."""
    keys = (object_key_of(store, base, BASE_IMAGE_PREFIX, by_filename=False) for base in bases)
    return [key for key in keys if key is not None]


def base_key(store: ObjectStore, bases: Iterable[Mapping[str, Any]]) -> str | None:
    """The first of ``base_keys`` that exists in ``store`` now."""
    return next((key for key in base_keys(store, bases) if store.head(key) is not None), None)


def stored_key_of(store: ObjectStore, entry: Mapping[str, Any], prefix: str) -> str | None:
    """``object_key_of`` when that object exists in ``store`` now, else ``None``."""
    key = object_key_of(store, entry, prefix)
    return key if key is not None and store.head(key) is not None else None


def owned_key(
    store: ObjectStore, entry: Mapping[str, Any], prefix: str, actor_id: str
) -> str | None:
    """``stored_key_of``, but ``None`` when the object's metadata names another actor:
    what a destructive operation of ``actor_id`` may touch."""
    key = object_key_of(store, entry, prefix)
    if key is None:
        return None
    head = store.head(key)
    if head is None:
        return None
    owner = head.metadata.get(ACTOR_ID_FIELD)
    return key if not owner or owner == actor_id else None


# --- storing create-only -----------------------------------------------------------------


def same_bytes(store: ObjectStore, key: str, data: bytes) -> bool:
    """Whether ``key`` holds exactly ``data`` (multipart ETags are checked by reading)."""
    head = store.head(key)
    if head is None or head.size != len(data):
        return False
    if head.version == md5_hex(data):
        return True
    return "-" in head.version and store.get(key).data == data


def put_first_free(
    store: ObjectStore,
    candidates: Iterable[str],
    data: bytes,
    *,
    content_type: str | None = None,
    metadata: dict[str, str] | None = None,
) -> str | None:
    """Store ``data`` create-only at the first candidate key that is free (or that
    already holds these bytes); returns that key, or ``None`` when every one is taken."""
    for key in candidates:
        try:
            store.put_if_absent(key, data, content_type=content_type, metadata=metadata)
            return key
        except PreconditionFailed:
            if same_bytes(store, key, data):
                return key
    return None


def numbered_keys(key: str, start: int = 2) -> Iterator[str]:
    """``key``, then ``{stem}_{n}.{ext}`` for n = start, start + 1, ..."""
    yield key
    stem, dot, ext = key.rpartition(".")
    if not dot:
        stem, ext = key, ""
    n = start
    while True:
        yield f"{stem}_{n}{dot}{ext}"
        n += 1


def store_base_image(
    store: ObjectStore, actor_id: str, actor_name: str, data: bytes, info: ImageInfo
) -> dict[str, Any]:
    """Store a base image create-only at ``{name}_base.{ext}`` or, when that holds other
    bytes, the next free ``_base_{n}``; returns its ``base_images`` item."""
    key = put_first_free(
        store,
        numbered_keys(base_image_key(actor_name, info.extension)),
        data,
        content_type=info.content_type,
        metadata={ACTOR_ID_FIELD: actor_id, "md5": md5_hex(data)},
    )
    assert key is not None  # numbered keys never run out
    return base_image_item(store, key, info.extension)


def base_image_item(store: ObjectStore, key: str, extension: str) -> dict[str, Any]:
    """The ``base_images`` item of a base image stored at ``key``."""
    return {
        "filename": filename_of(key),
        "s3_url": store.public_url(key),
        "status": "synced",
        "format": {"jpg": "jpeg"}.get(extension, extension),
        "key": key,
    }
