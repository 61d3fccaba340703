"""Bounded decoding (#11.7): a 49-megapixel PNG of a few hundred KB must not cost its size in
memory several times over. Peak memory is measured in a fresh subprocess (``ru_maxrss``), so
nothing else in the test process counts."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from actor_maker.decoding import decode_within
from actor_maker.errors import InvalidImageError
from actor_maker.thumbnails import THUMBNAIL_SIZE, make_thumbnail

from .test_images import png_header_only

SIDE = 7000  # 49 megapixels
FRAME_MB = SIDE * SIDE * 4 / 2**20  # Pillow keeps RGB and RGBA at 4 bytes a pixel: 187 MiB


def big_png(path: Path, mode: str) -> Path:
    img = Image.new(mode, (SIDE, SIDE), (200, 180, 160, 255)[: len(mode)])
    draw = ImageDraw.Draw(img)
    for i in range(0, SIDE, 500):
        draw.rectangle([i, i, i + 300, i + 300], fill=(20, 40, 90, 128)[: len(mode)])
    img.save(path, "PNG")
    return path


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big")
    return {mode: big_png(folder / f"{mode}.png", mode) for mode in ("RGB", "RGBA")}


PROBE = textwrap.dedent(
    """
    import json, resource, sys, threading
    from actor_maker.images import inspect_image
    from actor_maker.thumbnails import make_thumbnail
    from actor_maker.quality.technical import technical_check
    import actor_maker.decoding as decoding

    data = open(sys.argv[1], "rb").read()
    threads, limit = int(sys.argv[2]), int(sys.argv[3])
    decoding.configure_decoding(limit)  # as the API and the pipeline do at start-up

    def work():
        inspect_image(data, max_bytes=1 << 30, max_pixels=50_000_000)
        make_thumbnail(data)
        technical_check(data)

    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    before = peak()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps({"grew_mb": peak() - before}))
    """
)


def peak_growth_mb(path: Path, *, threads: int = 1, limit: int = 2) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(threads), str(limit)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return float(json.loads(done.stdout.strip().splitlines()[-1])["grew_mb"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_one_49_megapixel_png_costs_at_most_one_frame(pngs: dict[str, Path], mode: str) -> None:
    """Checking, thumbnailing and measuring it: one full frame at a time, plus small change
    (before: the EXIF transpose, the mode conversion and the RGBA premultiply each copied the
    frame, 560-750 MB)."""
    grew = peak_growth_mb(pngs[mode])
    assert grew < FRAME_MB * 1.4, f"peak grew by {grew:.0f} MB for a {FRAME_MB:.0f} MB frame"


@pytest.mark.slow
def test_concurrent_decodes_wait_for_a_slot(pngs: dict[str, Path]) -> None:
    """Three at once with one decode slot: still one frame at a time."""
    grew = peak_growth_mb(pngs["RGB"], threads=3, limit=1)
    assert grew < FRAME_MB * 1.4, f"peak grew by {grew:.0f} MB for a {FRAME_MB:.0f} MB frame"


def test_too_many_pixels_are_refused_from_the_header_before_decoding() -> None:
    data = png_header_only(20_000, 20_000)  # 400 megapixels: 1.6 GB if it were decoded
    for call in (
        lambda: make_thumbnail(data),
        lambda: decode_within(data, box=(64, 64), max_pixels=1_000_000),
    ):
        with pytest.raises(InvalidImageError, match=r"megapixels|too many pixels"):
            call()


def test_reduced_decodes_keep_the_size_and_the_transparency_on_white() -> None:
    img = Image.new("RGBA", (3000, 1000), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, 1500, 1000))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    decoded = decode_within(buf.getvalue(), box=(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    assert (decoded.width, decoded.height) == (3000, 1000)
    assert decoded.image.mode == "RGB"
    assert THUMBNAIL_SIZE * 2 <= decoded.image.width < 3000
    assert decoded.image.getpixel((10, 10)) == (255, 0, 0)
    assert decoded.image.getpixel((decoded.image.width - 10, 10)) == (255, 255, 255)
    thumb = Image.open(io.BytesIO(make_thumbnail(buf.getvalue())))
    assert thumb.size == (THUMBNAIL_SIZE, THUMBNAIL_SIZE // 3)
