"""Decoding, validation and light transformation of image bytes."""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass

from PIL import Image

from actor_maker.decoding import DEFAULT_MAX_PIXELS, decode_slot, decode_within, open_within
from actor_maker.errors import InvalidImageError

#: Formats we accept as input and store as output.
_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}

MIB = 1024 * 1024

#: Base images above this are downscaled before they are sent to the model.
PROVIDER_MAX_PIXELS = 2_000_000


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str  # "JPEG", "PNG", "WEBP"

    @property
    def extension(self) -> str:
        return _FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return _FORMATS[self.format][1]


def inspect_image(
    data: bytes, *, max_bytes: int, max_pixels: int, what: str = "image"
) -> ImageInfo:
    """Check that ``data`` is a whole JPEG/PNG/WebP image within the size limits.

    The pixel count is read from the header before anything is decoded, so a
    decompression bomb is refused without allocating its pixels. The whole file is then
    decoded to find truncation, holding a decode slot (:mod:`actor_maker.decoding`); a JPEG
    at 1/8 scale, which reads every byte but allocates 1/64 of the pixels.
    """
    if len(data) > max_bytes:
        raise InvalidImageError(
            f"{what} is {len(data) / MIB:.1f} MB; the limit is {max_bytes / MIB:.0f} MB"
        )
    if not data:
        raise InvalidImageError(f"{what} is empty")
    with open_within(data, max_pixels=max_pixels, what=what) as img:
        fmt = img.format or ""
        width, height = img.size
        if fmt not in _FORMATS:
            raise InvalidImageError(
                f"{what} is {fmt or 'an unknown format'}; use JPEG, PNG or WebP"
            )
        with decode_slot():
            img.draft(img.mode, (1, 1))  # JPEG only: the smallest DCT scale
            img.load()  # full decode: truncated files fail here
    return ImageInfo(width=width, height=height, format=fmt)


def downscale_for_provider(
    data: bytes, info: ImageInfo, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[bytes, ImageInfo]:
    """Re-encode as JPEG at most ``PROVIDER_MAX_PIXELS``; small images pass unchanged."""
    if info.width * info.height <= PROVIDER_MAX_PIXELS:
        return data, info
    scale = (PROVIDER_MAX_PIXELS / (info.width * info.height)) ** 0.5
    size = (max(1, int(info.width * scale)), max(1, int(info.height * scale)))
    decoded = decode_within(data, box=size, max_pixels=max_pixels)
    out = decoded.image.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=92)
    return buf.getvalue(), ImageInfo(width=size[0], height=size[1], format="JPEG")


def data_uri(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
