"""Bounded image decoding: the pixel count from the header, reduced decodes, a cap on decodes.

A 139 KB PNG can hold 49 megapixels: 196 MB once decoded (Pillow keeps RGB as 4 bytes a
pixel), and each copy of the full frame (EXIF transpose, mode conversion, resampling) costs as
much again. Three such uploads took a server to 1.6 GB. So every decode here

- reads the size from the header and refuses more than ``max_pixels`` before any pixel is
  decoded (a decompression bomb costs nothing);
- decodes JPEG at a reduced scale (``draft``: the DCT scales by 1/2, 1/4, 1/8 while decoding)
  and shrinks other formats by an integer factor (``reduce``) right after decoding, so at most
  one full frame exists, and only until the small copy is made;
- holds one of the process's decode slots (:func:`configure_decoding`, from the
  ``ACTOR_MAKER_MAX_CONCURRENT_DECODES`` setting) while the full frame exists.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from actor_maker.errors import InvalidImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Decoded",
    "configure_decoding",
    "decode_slot",
    "decode_within",
    "open_within",
]

#: Used where no setting is passed in (the default of ``ACTOR_MAKER_MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 50_000_000
#: A reduced decode keeps at least this multiple of the final size, for a clean resample.
REDUCING_GAP = 2

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD = 1 << 20
_WHITE = (255, 255, 255)
#: Rows converted and reduced at a time (a few MB even for the widest allowed image).
_STRIP_ROWS = 256
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class _DecodeSlots:
    """How many full-frame decodes may run at once in this process (default 2)."""

    def __init__(self, limit: int = 2) -> None:
        self._cond = threading.Condition()
        self._limit = limit
        self._busy = 0

    def set_limit(self, limit: int) -> None:
        with self._cond:
            self._limit = max(1, limit)
            self._cond.notify_all()

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._busy < self._limit)
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify()


# Decoded pixels are a per-process resource, so the cap on them is per process too; the
# process's Runtime (API, CLI, worker) sets it from the settings.
_SLOTS = _DecodeSlots()


def configure_decoding(limit: int) -> None:
    """Allow ``limit`` concurrent full-frame decodes in this process, and have freed frames
    given back to the system.

    glibc serves a block at or below its *dynamic* mmap threshold from a per-thread heap, and
    a 16 MB Pillow block freed once raises that threshold: from then on frames decoded in
    worker threads stay resident after they are freed (three 49-megapixel decodes left
    ~700 MB behind), and each thread's heap adds to the peak. A fixed 1 MiB threshold keeps
    frame blocks on mmap, returned on free. Elsewhere than glibc this part does nothing.
    """
    _SLOTS.set_limit(limit)
    _fix_mmap_threshold()


@functools.cache
def _fix_mmap_threshold() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def decode_slot() -> AbstractContextManager[None]:
    """Hold one of the process's decode slots (blocks while all are taken)."""
    return _SLOTS.hold()


@contextmanager
def open_within(data: bytes, *, max_pixels: int, what: str = "image") -> Iterator[Image.Image]:
    """``Image.open`` on ``data``, its header checked: more than ``max_pixels`` is refused
    before any pixel is decoded. Every decoding failure becomes ``InvalidImageError``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise InvalidImageError(
                        f"{what} is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                        f"the limit is {max_pixels / 1e6:.0f} megapixels"
                    )
                yield img
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"{what} has too many pixels (decompression bomb?)") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{what} is not a readable image (not JPEG, PNG or WebP)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{what} is not a readable image: {exc}") from exc


def _flat_reduced(img: Image.Image, factor: int) -> Image.Image:
    """``img`` as RGB (transparency on white) reduced by ``factor``, a strip of rows at a time,
    so no second full-size frame is made (``Image.reduce`` on RGBA would premultiply a copy)."""
    width, height = img.size
    transparent = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)), _WHITE)
    rows = factor * max(1, _STRIP_ROWS // factor)
    for top in range(0, height, rows):
        strip = img.crop((0, top, width, min(height, top + rows)))
        if transparent:
            rgba = strip.convert("RGBA")
            strip = Image.new("RGB", rgba.size, _WHITE)
            strip.paste(rgba, mask=rgba.getchannel("A"))
        elif strip.mode != "RGB":
            strip = strip.convert("RGB")
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return out


@dataclass(frozen=True)
class Decoded:
    """An upright RGB image (transparency flattened on white), possibly reduced, and the
    size of the full image as stored."""

    image: Image.Image
    width: int
    height: int


def decode_within(
    data: bytes,
    *,
    box: tuple[int, int] | None = None,
    short_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    what: str = "image",
) -> Decoded:
    """Decode ``data`` no larger than the caller needs: the result still covers ``box``
    (fitted, aspect kept) or a short side of ``short_side`` at :data:`REDUCING_GAP` times
    the final size. Refuses more than ``max_pixels`` before decoding."""
    with open_within(data, max_pixels=max_pixels, what=what) as src:
        width, height = src.size
        scale = 1.0
        if box is not None:
            scale = min(box[0] / width, box[1] / height)
        elif short_side is not None:
            scale = short_side / min(width, height)
        target = scale * REDUCING_GAP
        with decode_slot():
            if target < 1:  # JPEG: let the DCT do most of the shrinking while decoding
                src.draft("RGB", (max(1, int(width * target)), max(1, int(height * target))))
            src.load()  # the whole file: a truncated one fails here
            orientation = src.getexif().get(_ORIENTATION)
            drafted = src.size[0] / width  # 1, or 1/2 … 1/8 after a JPEG draft
            factor = int(drafted / target) if target < drafted else 1
            img = _flat_reduced(src, factor)
        if orientation in _TRANSPOSE:
            img = img.transpose(_TRANSPOSE[orientation])
            if orientation in (5, 6, 7, 8):
                width, height = height, width
    return Decoded(image=img, width=width, height=height)
