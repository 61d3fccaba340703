"""The identity check on two real people: Eileen Collins (astronaut) and Grace Hopper.

Embeddings take about 0.15 s each, so the photos and their descriptors are module fixtures.
The distances these tests rely on are in docs/quality.md ("Identity").
"""

from __future__ import annotations

import importlib.util
import io
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from actor_maker.errors import InvalidImageError
from actor_maker.quality import identity
from actor_maker.quality.identity import DEFAULT_THRESHOLD, FaceIdentity, identity_available

PHOTOS = Path(__file__).parent / "fixtures" / "photos"
PEOPLE = {"astronaut": "astronaut.jpg", "hopper": "grace_hopper.jpg"}
OTHER = {"astronaut": "hopper", "hopper": "astronaut"}

INSTALLED = importlib.util.find_spec("dlib") is not None
needs_models = pytest.mark.skipif(
    not identity_available(), reason="the [quality] extra (dlib-bin) is not installed"
)


def encode(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _face_crop(img: Image.Image) -> Image.Image:
    """The face with a face-sized margin (boxes measured on the two photos)."""
    boxes = {(512, 512): (179, 83, 267, 171), (512, 600): (161, 137, 377, 353)}
    left, top, right, bottom = boxes[img.size]
    w, h = right - left, bottom - top
    return img.crop(
        (max(0, left - w), max(0, top - h), min(img.width, right + w), min(img.height, bottom + h))
    )


#: Same-person edits: each must stay within the threshold of the original's face.
VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop": _face_crop,
    "crop-upscaled": lambda img: _face_crop(img).resize((900, 900), Image.Resampling.LANCZOS),
    "half-size": lambda img: img.resize((img.width // 2, img.height // 2)),
    "tint": lambda img: Image.blend(img, Image.new("RGB", img.size, (0, 128, 128)), 0.25),
    "recolor": lambda img: Image.merge("RGB", img.split()[::-1]),
    "grayscale": lambda img: ImageOps.grayscale(img).convert("RGB"),
    "flip": ImageOps.mirror,
    "posterize": lambda img: ImageOps.posterize(img, 3),
    "edge-enhance": lambda img: img.filter(ImageFilter.EDGE_ENHANCE_MORE),
}


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return {who: (PHOTOS / name).read_bytes() for who, name in PEOPLE.items()}


@pytest.fixture(scope="module")
def faces() -> FaceIdentity:
    return FaceIdentity()


@pytest.fixture(scope="module")
def bases(faces: FaceIdentity, photos: dict[str, bytes]) -> dict[str, np.ndarray]:
    found = {who: faces.embed(data) for who, data in photos.items()}
    assert all(d is not None for d in found.values())
    return {who: d for who, d in found.items() if d is not None}


@pytest.fixture(scope="module")
def no_face(photos: dict[str, bytes]) -> bytes:
    """A real photograph with no face in it: the shuttle model beside the astronaut."""
    with Image.open(io.BytesIO(photos["astronaut"])) as img:
        return encode(img.convert("RGB").crop((330, 0, 512, 300)).resize((546, 900)))


def test_available_when_installed() -> None:
    if not INSTALLED:
        pytest.skip("the [quality] extra (dlib-bin) is not installed")
    assert identity_available() is True


def test_unavailable_without_dlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "_available", None)
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    assert identity_available() is False


@needs_models
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("who", list(PEOPLE))
def test_same_person_passes(
    faces: FaceIdentity,
    photos: dict[str, bytes],
    bases: dict[str, np.ndarray],
    who: str,
    variant: str,
) -> None:
    with Image.open(io.BytesIO(photos[who])) as img:
        data = encode(VARIANTS[variant](img.convert("RGB")))
    result = faces.check(bases[who], data, face_visible=True, stylized=False)
    assert result.verdict == "accepted", result
    assert 0 <= result.scores["face_distance"] <= 0.5
    assert result.scores["faces_found"] >= 1


@needs_models
def test_jpeg_quality_50_passes(
    faces: FaceIdentity, photos: dict[str, bytes], bases: dict[str, np.ndarray]
) -> None:
    for who, data in photos.items():
        with Image.open(io.BytesIO(data)) as img:
            degraded = encode(img.convert("RGB"), quality=50)
        assert faces.check(bases[who], degraded, face_visible=True, stylized=False).verdict == (
            "accepted"
        )


@needs_models
@pytest.mark.parametrize("who", list(PEOPLE))
def test_other_person_is_rejected(
    faces: FaceIdentity, photos: dict[str, bytes], bases: dict[str, np.ndarray], who: str
) -> None:
    result = faces.check(bases[OTHER[who]], photos[who], face_visible=True, stylized=False)
    assert result.verdict == "rejected"
    distance = result.scores["face_distance"]
    assert distance > DEFAULT_THRESHOLD
    assert result.rejections == [
        f"face differs from the base image (distance {distance:.2f} > {DEFAULT_THRESHOLD:g})"
    ]


@needs_models
@pytest.mark.parametrize("who", list(PEOPLE))
def test_other_person_edited_is_rejected_even_when_stylized(
    faces: FaceIdentity, photos: dict[str, bytes], bases: dict[str, np.ndarray], who: str
) -> None:
    with Image.open(io.BytesIO(photos[who])) as img:
        data = encode(VARIANTS["grayscale"](_face_crop(img.convert("RGB"))))
    result = faces.check(bases[OTHER[who]], data, face_visible=True, stylized=True)
    assert result.verdict == "rejected"
    assert result.scores["face_distance"] > DEFAULT_THRESHOLD


@needs_models
def test_the_largest_face_is_used(
    faces: FaceIdentity, photos: dict[str, bytes], bases: dict[str, np.ndarray]
) -> None:
    # The mission patch on the suit is detected as a second "face"; tinted, it even comes out
    # larger than hers. Her face, not the patch, must be compared.
    with Image.open(io.BytesIO(photos["astronaut"])) as img:
        data = encode(VARIANTS["tint"](img.convert("RGB")))
    result = faces.check(bases["astronaut"], data, face_visible=True, stylized=False)
    assert result.scores["faces_found"] == 2
    assert result.verdict == "accepted", result


@needs_models
def test_threshold_is_configurable(
    faces: FaceIdentity, photos: dict[str, bytes], bases: dict[str, np.ndarray]
) -> None:
    with Image.open(io.BytesIO(photos["hopper"])) as img:
        data = encode(ImageOps.mirror(img.convert("RGB")))
    strict = faces.check(bases["hopper"], data, face_visible=True, stylized=False, threshold=0.05)
    assert strict.verdict == "rejected"
    assert "> 0.05)" in strict.rejections[0]


@needs_models
def test_no_face_in_a_photoreal_image_is_rejected(
    faces: FaceIdentity, bases: dict[str, np.ndarray], no_face: bytes
) -> None:
    result = faces.check(bases["hopper"], no_face, face_visible=True, stylized=False)
    assert result.verdict == "rejected"
    assert result.rejections == ["no face found"]
    assert result.scores == {"faces_found": 0}


@needs_models
def test_no_face_in_a_stylized_image_needs_review(
    faces: FaceIdentity, bases: dict[str, np.ndarray], no_face: bytes
) -> None:
    result = faces.check(bases["hopper"], no_face, face_visible=True, stylized=True)
    assert result.verdict == "review"
    assert result.doubts == ["no face found in a stylized image"]


def test_face_not_visible_is_skipped_without_looking() -> None:
    # Not even decoded: the prompt says the face is hidden (a rear view).
    result = FaceIdentity().check(
        np.zeros(128), b"not an image", face_visible=False, stylized=False
    )
    assert result.verdict == "accepted"
    assert result.scores == {"identity": "skipped (face not visible)"}


@needs_models
def test_base_without_a_face_needs_review(faces: FaceIdentity, photos: dict[str, bytes]) -> None:
    result = faces.check(None, photos["hopper"], face_visible=True, stylized=False)
    assert result.verdict == "review"
    assert result.doubts == ["no face in the base image to compare with"]


@needs_models
def test_base_image_without_a_face_embeds_to_none(faces: FaceIdentity, no_face: bytes) -> None:
    assert faces.embed(no_face) is None


@needs_models
def test_unreadable_image(faces: FaceIdentity, bases: dict[str, np.ndarray]) -> None:
    with pytest.raises(InvalidImageError):
        faces.embed(b"not an image")
    result = faces.check(bases["hopper"], b"not an image", face_visible=True, stylized=False)
    assert result.verdict == "rejected"


@needs_models
def test_embeddings_are_cached_and_deterministic(
    faces: FaceIdentity, photos: dict[str, bytes], bases: dict[str, np.ndarray]
) -> None:
    again = faces.embed(photos["hopper"])
    assert again is bases["hopper"]  # the cache: no second run of the model
    assert again.shape == (128,)
    assert not again.flags.writeable
    fresh = FaceIdentity().embed(photos["hopper"])
    assert fresh is not None and np.array_equal(fresh, bases["hopper"])


@needs_models
def test_concurrent_embeddings_match(
    photos: dict[str, bytes], bases: dict[str, np.ndarray]
) -> None:
    fresh = FaceIdentity(cache_size=0)
    order = ["astronaut", "hopper", "hopper", "astronaut"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda who: fresh.embed(photos[who]), order))
    for who, found in zip(order, results, strict=True):
        assert found is not None and np.allclose(found, bases[who])
