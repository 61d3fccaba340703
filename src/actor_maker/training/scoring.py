"""A trained model's score: its samples' identity against the base image.

``share`` is the fraction of samples whose face is the base image's person (the identity
check of :mod:`actor_maker.quality.identity`); ``median_distance`` the median face distance
of the samples where a face was found. Without the ``[quality]`` extra there is no score:
``note`` says so and the model needs a person's review.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from actor_maker.quality.identity import DEFAULT_THRESHOLD, identity_available

UNAVAILABLE = "identity check unavailable: pip install 'actor-maker[quality]'"


@dataclass(frozen=True)
class Score:
    total: int
    passed: int | None = None
    share: float | None = None
    median_distance: float | None = None
    threshold: float = DEFAULT_THRESHOLD
    note: str | None = None
    #: Per sample: face distance (None when no face) and whether it passed.
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def score_samples(base_image: bytes, samples: list[bytes], threshold: float | None = None) -> Score:
    """Compare each sample's face with the base image's (blocking: run in a thread)."""
    limit = threshold if threshold is not None else DEFAULT_THRESHOLD
    if not identity_available():
        return Score(total=len(samples), threshold=limit, note=UNAVAILABLE)
    from actor_maker.quality.identity import FaceIdentity

    faces = FaceIdentity()
    base = faces.embed(base_image)
    if base is None:
        return Score(total=len(samples), threshold=limit, note="no face in the base image")
    results: list[dict[str, Any]] = []
    for data in samples:
        check = faces.check(base, data, face_visible=True, stylized=False, threshold=limit)
        distance = check.scores.get("face_distance")
        results.append(
            {
                "face_distance": distance,
                "passed": not check.rejections,
                "reason": "; ".join(check.rejections) or None,
            }
        )
    passed = sum(1 for r in results if r["passed"])
    distances = [float(r["face_distance"]) for r in results if r["face_distance"] is not None]
    return Score(
        total=len(samples),
        passed=passed,
        share=round(passed / len(samples), 3) if samples else None,
        median_distance=round(statistics.median(distances), 3) if distances else None,
        threshold=limit,
        samples=results,
    )
