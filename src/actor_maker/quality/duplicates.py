"""Near-duplicates: an image whose pHash is close to an accepted image's copies it.

The pHash (64 bits, 16 hex digits, :func:`imagehash.phash`) comes from the technical
check. Resizing, recompressing, mild blur and small crops move it by a few bits; unrelated
pictures differ in about half of the 64. A mirror image is *not* caught: pHash is not
flip-invariant, and a mirrored pose is a legitimate variation for training anyway. The
threshold and its calibration are in ``docs/quality.md``.

The decision must be made against the manifest as it is at the moment of the update (see
``checker.decide_duplicate``), so two near-copies finishing together cannot both pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from actor_maker.quality import CheckResult

#: Hamming distance (of 64 bits) at or below which two images are near-duplicates. Resized,
#: recompressed, recoloured copies and crops of up to 3% a side measure 0–8; unrelated
#: pictures 20 and more (docs/quality.md).
NEAR_DUPLICATE_DISTANCE = 10


def hamming(a_hex: str, b_hex: str) -> int:
    """Number of differing bits between two hex-encoded hashes of the same length."""
    if len(a_hex) != len(b_hex):
        raise ValueError(f"hashes of different lengths: {a_hex!r} and {b_hex!r}")
    return (int(a_hex, 16) ^ int(b_hex, 16)).bit_count()


def nearest(
    phash: str,
    accepted: Iterable[tuple[str, str]],
    max_distance: int = NEAR_DUPLICATE_DISTANCE,
) -> tuple[str, int] | None:
    """The (filename, distance) of the accepted image closest to ``phash``, if within reach.

    ``accepted`` holds (filename, pHash) pairs; ties go to the first one listed. Hashes
    that cannot be compared (empty, malformed, another length) are skipped.
    """
    best: tuple[str, int] | None = None
    for filename, other in accepted:
        try:
            distance = hamming(phash, other)
        except ValueError:
            continue
        if distance <= max_distance and (best is None or distance < best[1]):
            best = (filename, distance)
    return best


def duplicate_check(phash: str, accepted: Iterable[tuple[str, str]]) -> CheckResult:
    """Reject an image that nearly copies one of ``accepted`` (filename, pHash) pairs."""
    found = nearest(phash, accepted)
    if found is None:
        return CheckResult()
    filename, distance = found
    return CheckResult(
        rejections=[f"near-duplicate of {filename} (pHash distance {distance})"],
        scores={"duplicate_of": filename, "duplicate_distance": distance},
    )
