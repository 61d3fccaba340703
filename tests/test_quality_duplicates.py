"""Near-duplicates by pHash distance, on real photographs (docs/quality.md)."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable

import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from actor_maker.demo import demo_base_image
from actor_maker.prompts import load_library, render_all
from actor_maker.providers.base import GenerationParams
from actor_maker.providers.preview import render_preview
from actor_maker.quality.duplicates import (
    NEAR_DUPLICATE_DISTANCE,
    duplicate_check,
    hamming,
    nearest,
)
from actor_maker.quality.technical import technical_check
from actor_maker.testing.replicate_server import render_placeholder_image

from .helpers import REPO

PHOTOS = REPO / "tests" / "fixtures" / "photos"
NAMES = ("astronaut", "grace_hopper")


def phash(image: Image.Image | bytes) -> str:
    if isinstance(image, Image.Image):
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=90)
        image = out.getvalue()
    return str(technical_check(image).scores["phash"])


def original(name: str) -> Image.Image:
    return Image.open(PHOTOS / f"{name}.jpg").convert("RGB")


def crop(image: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(image.width * fraction), round(image.height * fraction)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def recompress(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


NEAR_COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "resized to 90%": lambda im: im.resize((im.width * 9 // 10, im.height * 9 // 10)),
    "resized to 150%": lambda im: im.resize((im.width * 3 // 2, im.height * 3 // 2)),
    "JPEG quality 60": lambda im: recompress(im, 60),
    "blurred (radius 1)": lambda im: im.filter(ImageFilter.GaussianBlur(1)),
    "15% brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.15),
    "grey": ImageOps.grayscale,
    "3% cropped on each side": lambda im: crop(im, 0.03),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("edit", NEAR_COPIES.values(), ids=NEAR_COPIES.keys())
def test_near_copies_of_a_photo_are_duplicates(
    name: str, edit: Callable[[Image.Image], Image.Image]
) -> None:
    accepted = [(f"{name}.jpg", phash((PHOTOS / f"{name}.jpg").read_bytes()))]
    result = duplicate_check(phash(edit(original(name))), accepted)
    assert result.verdict == "rejected"
    distance = result.scores["duplicate_distance"]
    assert distance <= NEAR_DUPLICATE_DISTANCE
    assert result.scores["duplicate_of"] == f"{name}.jpg"
    assert result.rejections == [f"near-duplicate of {name}.jpg (pHash distance {distance})"]


@pytest.mark.parametrize("name", NAMES)
def test_a_mirror_image_is_not_a_duplicate(name: str) -> None:
    """Decided: a mirror image counts as a new image. pHash could not tell anyway: a flip
    moves about half of the 64 bits, as far as an unrelated picture."""
    distance = hamming(phash(original(name)), phash(ImageOps.mirror(original(name))))
    assert distance >= 20


def test_crops_beyond_a_few_percent_are_not_caught() -> None:
    """Documented limit: 10% off each side moves the hash as far as another picture."""
    for name in NAMES:
        assert hamming(phash(original(name)), phash(crop(original(name), 0.10))) > 10


def test_different_photos_are_not_duplicates() -> None:
    astronaut, hopper = (phash((PHOTOS / f"{name}.jpg").read_bytes()) for name in NAMES)
    assert hamming(astronaut, hopper) >= 20
    assert duplicate_check(hopper, [("astronaut.jpg", astronaut)]).verdict == "accepted"


def test_stand_in_images_of_different_prompts_are_not_duplicates() -> None:
    prompts = render_all(load_library(), actor_type="person")[:20]
    hashes = [phash(render_placeholder_image(p.text, 0, (768, 768))) for p in prompts]
    closest = min(hamming(a, b) for a, b in itertools.combinations(hashes, 2))
    assert closest > NEAR_DUPLICATE_DISTANCE


def test_demo_previews_are_mostly_not_duplicates_of_each_other() -> None:
    """The demo's 49 preview images of one base: measured, see docs/quality.md.

    The preview provider zooms into 55-100% of the base image; zooms near 100% frame
    almost the same picture, so some pairs are near-copies and are rejected."""
    base = demo_base_image()
    prompts = render_all(load_library(), actor_type="person", actor_sex="female")
    hashes = [
        phash(render_preview(base, GenerationParams(p.text, "1:1", seed, category=p.category)))
        for seed, p in enumerate(prompts)
    ]
    distances = sorted(hamming(a, b) for a, b in itertools.combinations(hashes, 2))
    accepted: list[tuple[str, str]] = []
    for index, value in enumerate(hashes):
        if duplicate_check(value, accepted).verdict == "accepted":
            accepted.append((f"{index}.jpg", value))
    print(
        f"demo previews: {len(distances)} pairs, min {distances[0]}, "
        f"median {distances[len(distances) // 2]}, "
        f"{sum(d <= NEAR_DUPLICATE_DISTANCE for d in distances)} pairs within "
        f"{NEAR_DUPLICATE_DISTANCE}; {len(accepted)} of {len(hashes)} accepted in order"
    )
    assert len(accepted) > len(hashes) * 2 // 3


# --------------------------------------------------------------------------- the functions


def test_hamming() -> None:
    assert hamming("0000000000000000", "0000000000000000") == 0
    assert hamming("0000000000000000", "ffffffffffffffff") == 64
    assert hamming("8000000000000001", "0000000000000000") == 2
    with pytest.raises(ValueError):
        hamming("00", "0000")


def test_nearest_picks_the_closest_within_reach() -> None:
    target = "0000000000000000"
    accepted = [
        ("far.jpg", "00000000000003ff"),  # 10 bits
        ("close.jpg", "0000000000000007"),  # 3 bits
        ("closer.jpg", "0000000000000001"),  # 1 bit
        ("unrelated.jpg", "ffffffff00000000"),  # 32 bits
    ]
    assert nearest(target, accepted) == ("closer.jpg", 1)
    assert nearest(target, accepted[:1]) == ("far.jpg", 10)
    assert nearest(target, accepted[:1], max_distance=9) is None
    assert nearest(target, accepted[3:]) is None
    assert nearest(target, []) is None


def test_nearest_ties_go_to_the_first_and_bad_hashes_are_skipped() -> None:
    accepted = [
        ("bad.jpg", "zzzzzzzzzzzzzzzz"),
        ("short.jpg", "00"),
        ("a.jpg", "01"),
        ("b.jpg", "02"),
    ]
    assert nearest("00", accepted[2:]) == ("a.jpg", 1)
    assert nearest("0000000000000000", accepted) is None


def test_duplicate_check_with_nothing_accepted() -> None:
    result = duplicate_check("c2924c5532bddfc8", [])
    assert result.verdict == "accepted"
    assert result.rejections == [] and result.scores == {}
