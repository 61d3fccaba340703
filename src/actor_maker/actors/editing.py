"""Creating an actor and changing its type, sex, texts and base image."""

from __future__ import annotations

import logging
from typing import TypedDict, Unpack

from actor_maker.actors.common import _metadata, _set_or_clear, _text, _type_and_sex
from actor_maker.errors import InputError
from actor_maker.images import ImageInfo, inspect_image
from actor_maker.layout import base_image_item, store_base_image
from actor_maker.manifest import (
    Change,
    Manifest,
    new_manifest,
    read_manifest,
    require_manifest,
    update_manifest,
)
from actor_maker.names import check_name_free
from actor_maker.store.base import ObjectStore
from actor_maker.validation import check_actor_id, check_actor_name

log = logging.getLogger(__name__)


class ActorTexts(TypedDict, total=False):
    """What a request says about an actor besides its images. On an update ``None`` (or
    leaving it out) keeps a field and ``""`` clears it."""

    actor_type: str | None
    actor_sex: str | None
    description: str | None
    outfit: str | None


def _checked_texts(texts: ActorTexts) -> dict[str, str | None]:
    """Description and outfit, checked (``InputError`` for control characters, length)."""
    return {
        "description": _text(texts.get("description"), "description"),
        "outfit": _text(texts.get("outfit"), "outfit"),
    }


def create_actor(
    store: ObjectStore,
    *,
    actor_id: str,
    actor_name: str,
    base_image: bytes,
    max_bytes: int,
    max_pixels: int,
    **texts: Unpack[ActorTexts],
) -> Manifest:
    """A new actor: its base image stored create-only, its manifest created create-only.
    Its type defaults to ``person``."""
    check_actor_id(actor_id)
    check_actor_name(actor_name)
    kind, sex = _type_and_sex(texts.get("actor_type") or "person", texts.get("actor_sex"))
    checked = _checked_texts(texts)
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
        description=checked["description"],
        outfit=checked["outfit"],
    )
    manifest.base_images.append(base)

    def only_if_new(current: Manifest) -> bool:
        if current.version is not None:
            raise InputError(f"actor {actor_id} exists already")
        return True

    return update_manifest(store, actor_id, only_if_new, create=manifest.copy)


def ensure_manifest(store: ObjectStore, new: Manifest, change: Change | None = None) -> Manifest:
    """Apply ``change`` (none: leave it as it is) to the actor's manifest, creating it as
    ``new`` when the actor has none; ``ConflictError`` when another actor has the name."""
    if read_manifest(store, new.actor_id) is None:
        check_name_free(store, new.actor_name, new.actor_id)
    return update_manifest(store, new.actor_id, change or (lambda _m: False), create=new.copy)


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
    base_image: bytes | None = None,
    max_bytes: int,
    max_pixels: int,
    via: str = "api",
    **texts: Unpack[ActorTexts],
) -> Manifest:
    """Change type, sex, description, outfit (``None`` leaves a field, ``""`` clears it)
    and/or the base image, which goes to a new key and becomes ``base_images[0]``."""
    current = require_manifest(store, actor_id)
    actor_type, actor_sex = texts.get("actor_type"), texts.get("actor_sex")
    kind, sex = _type_and_sex(actor_type or current.actor_type, actor_sex)
    checked = _checked_texts(texts)
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
        for field, value in checked.items():
            if value is not None:
                _set_or_clear(meta, field, value)
        if base is not None:
            others = [b for b in manifest.base_images if b.get("filename") != base["filename"]]
            manifest.data["base_images"] = [dict(base), *others]
        return True

    log.info("actor %s updated via %s", actor_id, via)
    return update_manifest(store, actor_id, change)
