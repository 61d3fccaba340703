"""Small WebP thumbnails for browsers' grids, made once per image and kept in the store.

A thumbnail lives in a tree parallel to the images, so listing an actor's training
prefix (index allocation, reconcile) never sees one::

    system_actors/training_data/a/a_3.jpg  →  system_actors/thumbnails/training_data/a/a_3.jpg.webp

Its metadata records the version of the image it was made from; an image stored
again under the same key (after a delete) gets a fresh thumbnail.
"""

from __future__ import annotations

import io

from PIL import Image

from actor_maker.decoding import DEFAULT_MAX_PIXELS, decode_within
from actor_maker.errors import InputError, NotFoundError, PreconditionFailed
from actor_maker.layout import ROOT
from actor_maker.store.base import ObjectStore, check_key

#: The longest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 384
THUMBNAIL_QUALITY = 80
THUMBNAIL_CONTENT_TYPE = "image/webp"
THUMBNAIL_PREFIX = f"{ROOT}/thumbnails/"

_SOURCE_VERSION = "source-version"


def thumbnail_key(image_key: str) -> str:
    """Where the thumbnail of ``image_key`` is stored; only images under ``system_actors/``."""
    check_key(image_key)
    if (
        not image_key.startswith(f"{ROOT}/")
        or image_key.startswith(THUMBNAIL_PREFIX)
        or image_key.startswith(f"{ROOT}/trash/")  # deleted: nothing would ever clean it up
    ):
        raise InputError(f"no thumbnails for {image_key!r}: not a live image under {ROOT}/")
    return check_key(f"{THUMBNAIL_PREFIX}{image_key[len(ROOT) + 1 :]}.webp")


def make_thumbnail(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """WebP within ``THUMBNAIL_SIZE``², upright (EXIF orientation), transparency on white.

    Decoded reduced (:func:`~actor_maker.decoding.decode_within`): a 49-megapixel image
    never exists twice at full size, and more than ``max_pixels`` is refused unread."""
    box = (THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    img = decode_within(data, box=box, max_pixels=max_pixels).image
    img.thumbnail(box, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "WEBP", quality=THUMBNAIL_QUALITY, method=4)
    return buf.getvalue()


def ensure_thumbnail(
    store: ObjectStore, image_key: str, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> str:
    """The key of ``image_key``'s thumbnail, made now if missing or made from other bytes.

    ``NotFoundError`` when the image is missing. Concurrent callers may both make
    it; the store's conditional writes keep one, and losing that race is fine.
    """
    key = thumbnail_key(image_key)
    image = store.head(image_key)
    if image is None:
        raise NotFoundError(f"no image {image_key}")
    thumb = store.head(key)
    if thumb is not None and thumb.metadata.get(_SOURCE_VERSION) == image.version:
        return key
    source = store.get(image_key)
    data = make_thumbnail(source.data, max_pixels=max_pixels)
    metadata = {_SOURCE_VERSION: source.info.version}
    try:
        if thumb is None:
            store.put_if_absent(key, data, content_type=THUMBNAIL_CONTENT_TYPE, metadata=metadata)
        else:  # the image was replaced since: the old thumbnail shows other bytes
            store.put_if_version(
                key, data, thumb.version, content_type=THUMBNAIL_CONTENT_TYPE, metadata=metadata
            )
    except PreconditionFailed:
        pass  # another request made it first
    return key
