"""Seeding an actor ready to train: a base image with a face and N usable images of it."""

from __future__ import annotations

import io

from PIL import Image, ImageEnhance

from actor_maker.demo import demo_base_image
from actor_maker.layout import base_image_key
from actor_maker.manifest import new_manifest, update_manifest
from actor_maker.store.base import ObjectStore

from .helpers import store_training_image

ACTOR, NAME = "0012", "0012_european_30_female"


def face_variant(seed: int) -> bytes:
    """The demo astronaut, cropped and lit a little differently per ``seed`` (same face)."""
    with Image.open(io.BytesIO(demo_base_image())) as src:
        img = src.convert("RGB")
    w, h = img.size
    dx, dy = (seed * 7) % 30, (seed * 11) % 30
    img = img.crop((dx, dy, w - 30 + dx, h - 30 + dy))
    img = ImageEnhance.Brightness(img).enhance(0.9 + (seed % 5) * 0.05)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def seed_actor(
    store: ObjectStore,
    actor_id: str = ACTOR,
    name: str = NAME,
    *,
    usable: int = 12,
    rejected: int = 1,
    preview: int = 1,
) -> None:
    """An actor with a base image, ``usable`` accepted images, plus rejected and preview ones."""
    base = demo_base_image()
    key = base_image_key(name, "jpg")
    store.put_if_absent(key, base, content_type="image/jpeg")

    def create():  # type: ignore[no-untyped-def]
        manifest = new_manifest(
            actor_id=actor_id, actor_name=name, actor_type="person", actor_sex="female"
        )
        manifest.base_images.append(
            {"filename": key.rsplit("/", 1)[-1], "key": key, "status": "synced"}
        )
        return manifest

    update_manifest(store, actor_id, lambda m: False, create=create)
    index = 0
    kinds = [("ok", usable), ("rejected", rejected), ("preview", preview)]
    for kind, count in kinds:
        for _ in range(count):
            fields: dict[str, object] = {"quality": {"verdict": "accepted"}}
            if kind == "rejected":
                fields["quality"] = {"verdict": "rejected"}
            if kind == "preview":
                fields["generation"] = {"provider": "preview", "model": "preview"}
            store_training_image(
                store,
                actor_id,
                name,
                index,
                face_variant(index),
                metadata={"actor-id": actor_id},
                caption=f"amk{actor_id} woman, picture {index}",
                **fields,
            )
            index += 1
