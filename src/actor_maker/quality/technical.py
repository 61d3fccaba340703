"""Technical checks: the image decodes, is big enough, shows something, is exposed and sharp.

Everything is measured on the luminance (Pillow's ``L``: ITU-R 601 luma, 0–255) scaled down
to :data:`NORMALIZED_SHORT_SIDE` px on the short side, so the numbers do not depend on the
output size; smaller images are measured as they are (and rejected for their size anyway).
The perceptual hash for the near-duplicate check (:mod:`.duplicates`) is computed here too,
on the decoded image, so every image is decoded once.

The thresholds and how they were calibrated are in ``docs/quality.md``. On a 2-core machine
a 1024×1024 JPEG takes about 14 ms, decoding and pHash included (a PNG about 40 ms, mostly
decoding); the first call in a process also pays 0.2–0.45 s for ``imagehash`` importing
``scipy.fftpack``.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from actor_maker.decoding import decode_within
from actor_maker.errors import InvalidImageError
from actor_maker.quality import CheckResult

#: Sharpness is the variance of the Laplacian at this short side (and the luma stats too).
NORMALIZED_SHORT_SIDE = 512


@dataclass(frozen=True)
class TechnicalThresholds:
    """Where an image stops being usable; ``docs/quality.md`` says how each was chosen."""

    #: Shorter side in pixels, at least.
    min_short_side: int = 512
    #: Luminance standard deviation below this: blank or nearly uniform.
    min_luma_std: float = 5.0
    #: Underexposed: mean luminance below ``min_luma_mean`` and the brightest 1% of the
    #: pixels below ``min_highlight``; overexposed: mean above ``max_luma_mean`` and the
    #: darkest 1% above ``max_shadow``. The mean alone would reject ink drawings on white
    #: paper and noir scenes, mostly white or black on purpose but with full contrast.
    min_luma_mean: float = 40.0
    max_luma_mean: float = 215.0
    min_highlight: int = 80
    max_shadow: int = 175
    #: Pixels at luma <= ``clip_dark`` (>= ``clip_bright``) count as clipped in the scores.
    #: Recorded, not a reason on its own: woodcuts and noir clip half their pixels.
    clip_dark: int = 5
    clip_bright: int = 250
    #: Variance of the Laplacian at ``NORMALIZED_SHORT_SIDE`` px below this: blurry.
    min_sharpness: float = 8.0


DEFAULT_THRESHOLDS = TechnicalThresholds()


def technical_check(
    data: bytes, thresholds: TechnicalThresholds = DEFAULT_THRESHOLDS
) -> CheckResult:
    """Measure ``data`` and reject it when any measure is past its threshold.

    Scores: ``width``, ``height``, ``luma_mean``, ``luma_std``, ``luma_p1`` and ``luma_p99``
    (percentiles), ``clipped_dark``, ``clipped_bright`` (fractions of the pixels),
    ``sharpness`` and ``phash`` (16 hex digits). An image that does not decode is rejected
    with no scores.
    """
    t = thresholds
    try:
        luma, width, height = _decode(data)
    except ValueError as exc:
        return CheckResult(rejections=[f"not a readable image: {exc}"])

    phash = str(imagehash.phash(luma))
    pixels = np.asarray(_normalized(luma))
    tones = _Tones(np.bincount(pixels.ravel(), minlength=256), t)
    sharpness = laplacian_variance(pixels.astype(np.float32))

    result = CheckResult(
        scores={
            "width": width,
            "height": height,
            "luma_mean": round(tones.mean, 1),
            "luma_std": round(tones.std, 1),
            "luma_p1": tones.p1,
            "luma_p99": tones.p99,
            "clipped_dark": round(tones.clipped_dark, 3),
            "clipped_bright": round(tones.clipped_bright, 3),
            "sharpness": round(sharpness, 1),
            "phash": phash,
        }
    )
    short = min(width, height)
    if short < t.min_short_side:
        result.rejections.append(
            f"too small: {width}×{height}, the short side {short} px is below {t.min_short_side}"
        )
    blank = tones.std < t.min_luma_std
    if blank:
        result.rejections.append(
            f"blank or nearly uniform: luminance spread {tones.std:.1f} is below {t.min_luma_std:g}"
        )
    exposure = _exposure(tones, t)
    if exposure:
        result.rejections.append(exposure)
    # The Laplacian's variance grows with the square of the contrast: a blank, black or
    # washed-out frame has no edges either, and calling it blurry too would only add noise.
    if sharpness < t.min_sharpness and not blank and not exposure:
        result.rejections.append(f"blurry: sharpness {sharpness:.1f} is below {t.min_sharpness:g}")
    return result


def _exposure(tones: _Tones, t: TechnicalThresholds) -> str | None:
    """Why the image is severely under- or over-exposed, if it is."""
    if tones.mean < t.min_luma_mean and tones.p99 < t.min_highlight:
        return (
            f"underexposed: mean luminance {tones.mean:.1f} is below {t.min_luma_mean:g} "
            f"and its brightest 1% only reach {tones.p99} (below {t.min_highlight})"
        )
    if tones.mean > t.max_luma_mean and tones.p1 > t.max_shadow:
        return (
            f"overexposed: mean luminance {tones.mean:.1f} is above {t.max_luma_mean:g} "
            f"and its darkest 1% are at {tones.p1} (above {t.max_shadow})"
        )
    return None


class _Tones:
    """Luminance statistics from a 256-bin histogram (cheaper than sorting the pixels)."""

    def __init__(self, histogram: NDArray[np.intp], t: TechnicalThresholds) -> None:
        count = float(histogram.sum())
        levels = np.arange(256, dtype=np.float64)
        self.mean = float((histogram * levels).sum() / count)
        self.std = float(np.sqrt((histogram * (levels - self.mean) ** 2).sum() / count))
        self.clipped_dark = float(histogram[: t.clip_dark + 1].sum()) / count
        self.clipped_bright = float(histogram[t.clip_bright :].sum()) / count
        cumulative = np.cumsum(histogram)
        self.p1 = int(np.searchsorted(cumulative, 0.01 * count))
        self.p99 = int(np.searchsorted(cumulative, 0.99 * count))


def laplacian_variance(pixels: NDArray[np.float32]) -> float:
    """Variance of the 4-neighbour Laplacian over the interior of a 2-D array."""
    if pixels.shape[0] < 3 or pixels.shape[1] < 3:
        return 0.0
    centre = pixels[1:-1, 1:-1]
    laplacian = (
        pixels[:-2, 1:-1] + pixels[2:, 1:-1] + pixels[1:-1, :-2] + pixels[1:-1, 2:] - 4 * centre
    )
    return float(laplacian.var())


def _decode(data: bytes) -> tuple[Image.Image, int, int]:
    """The luminance, reduced while decoding to no less than twice the normalized size, and
    the stored width and height; every failure is a ``ValueError`` with a reason."""
    if not data:
        raise ValueError("no data")
    try:
        decoded = decode_within(data, short_side=NORMALIZED_SHORT_SIDE)
    except InvalidImageError as exc:
        reason = str(exc).removeprefix("image is not a readable image").lstrip(": ")
        raise ValueError(reason.removeprefix("image ")) from exc
    return decoded.image.convert("L"), decoded.width, decoded.height


def _normalized(luma: Image.Image) -> Image.Image:
    width, height = luma.size
    short = min(width, height)
    if short <= NORMALIZED_SHORT_SIDE:
        return luma
    scale = NORMALIZED_SHORT_SIDE / short
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return luma.resize(size, Image.Resampling.BILINEAR)
