import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from actor_maker.errors import InvalidImageError
from actor_maker.images import PROVIDER_MAX_PIXELS, downscale_for_provider, inspect_image

from .helpers import sample_image

LIMITS: dict[str, Any] = {"max_bytes": 25 * 1024 * 1024, "max_pixels": 50_000_000}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepts_common_formats(fmt):
    info = inspect_image(sample_image(fmt=fmt), **LIMITS)
    assert (info.width, info.height) == (640, 640)
    assert info.content_type.startswith("image/")


@pytest.mark.parametrize("data", [b"", b"hello", b"<html></html>", b"\x89PNG\r\n\x1a\nbroken"])
def test_non_images_refused(data):
    with pytest.raises(InvalidImageError):
        inspect_image(data, **LIMITS)


def test_truncated_jpeg_refused():
    with pytest.raises(InvalidImageError):
        inspect_image(sample_image()[:2000], **LIMITS)


@pytest.mark.parametrize("side", [8000, 12000, 60000])
def test_decompression_bombs_refused_from_the_header(side):
    # 8000² = 64 MP: between Pillow's warning and error thresholds, still refused
    with pytest.raises(InvalidImageError, match=r"megapixels|too many pixels"):
        inspect_image(png_header_only(side, side), **LIMITS)


def test_too_many_bytes_refused():
    with pytest.raises(InvalidImageError, match="MB"):
        inspect_image(b"x" * 2000, max_bytes=1000, max_pixels=10**8)


def test_gif_refused():
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, "GIF")
    with pytest.raises(InvalidImageError, match="GIF"):
        inspect_image(buf.getvalue(), **LIMITS)


def test_downscale_only_above_limit():
    small = sample_image()
    info = inspect_image(small, **LIMITS)
    assert downscale_for_provider(small, info)[0] is small
    big = sample_image((2400, 1600))
    data, out = downscale_for_provider(big, inspect_image(big, **LIMITS))
    assert out.width * out.height <= PROVIDER_MAX_PIXELS
    assert abs(out.width / out.height - 1.5) < 0.01
    assert inspect_image(data, **LIMITS).format == "JPEG"
