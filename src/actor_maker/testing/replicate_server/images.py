"""Images the stand-in renders: deterministic placeholders for the image-editing models."""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageChops, ImageDraw, ImageOps

_GRAIN = [142 if v >= 252 else 114 if v < 4 else 128 for v in range(256)]


def render_placeholder_image(
    prompt: str, seed: int | None, size: tuple[int, int], fmt: str = "jpg"
) -> bytes:
    """A deterministic, photo-like test image for ``prompt`` and ``seed``.

    A colour gradient background, a dozen hard-edged shapes and a sprinkle of grain: not
    blank, not uniform, good contrast and sharpness. The same arguments give the same bytes;
    different prompts give images whose perceptual hashes are far apart. ``fmt`` is ``jpg``
    or ``png``. At 768×768 about 12 ms as JPEG and 28 ms as PNG (PNG encoding is most of it;
    a 16:9 PNG takes about 50 ms), which is why the server caches what it renders.
    """
    width, height = size
    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00{width}x{height}".encode()).digest()
    rng = random.Random(digest)

    def ramp(channel: Image.Image) -> Image.Image:
        low, high = rng.randint(0, 80), rng.randint(170, 255)
        if rng.random() < 0.5:
            low, high = high, low
        return channel.point([low + (high - low) * v // 255 for v in range(256)])

    linear = Image.linear_gradient("L")
    radial = Image.radial_gradient("L")
    turns = [Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270]
    layers = [linear.transpose(rng.choice(turns)), linear.transpose(rng.choice(turns)), radial]
    rng.shuffle(layers)
    background = Image.merge("RGB", [ramp(layer) for layer in layers])
    # NEAREST: a 256-step ramp stretched by a few pixels per step looks smooth, at a quarter
    # of BILINEAR's cost.
    image = background.resize((width, height), Image.Resampling.NEAREST)

    draw = ImageDraw.Draw(image)
    scale = min(width, height)
    for _ in range(rng.randint(9, 14)):
        colour = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
        cx, cy = rng.randint(0, width), rng.randint(0, height)
        half = rng.randint(scale // 14, scale // 4)
        box = (cx - half, cy - rng.randint(scale // 14, scale // 4), cx + half, cy + half)
        kind = rng.randrange(4)
        if kind == 0:
            draw.ellipse(box, fill=colour, outline=(0, 0, 0), width=rng.randint(0, 4))
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        elif kind == 2:
            points = [
                (cx + rng.randint(-half, half), cy + rng.randint(-half, half))
                for _ in range(rng.randint(3, 6))
            ]
            draw.polygon(points, fill=colour)
        else:
            draw.line(
                [(cx - half, cy), (cx + half, cy + rng.randint(-half, half))],
                fill=colour,
                width=rng.randint(3, max(4, scale // 40)),
            )

    # Grain: about 3% of the pixels a little lighter or darker. Dense noise would look more
    # like a sensor's, but makes PNG encoding several times slower.
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).point(_GRAIN)
    image = ImageChops.add(image, Image.merge("RGB", (grain, grain, grain)), 1.0, -128)

    return _encode(image, fmt, jpeg_quality=88)


def _encode(image: Image.Image, fmt: str, *, jpeg_quality: int) -> bytes:
    """``image`` as ``png`` (fast, light compression) or JPEG bytes."""
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format="JPEG", quality=jpeg_quality)
    return out.getvalue()


def ratio_size(ratio: float, short_side: int) -> tuple[int, int]:
    ratio = min(max(ratio, 9 / 21), 21 / 9)
    if ratio >= 1:
        return round(short_side * ratio), short_side
    return short_side, round(short_side / ratio)


def render_lora_image(
    sources: list[bytes], prompt: str, seed: int | None, size: tuple[int, int], fmt: str = "jpg"
) -> bytes:
    """What a LoRA "inference" returns here: one of the training images (picked by the seed),
    fitted to ``size``, tinted and framed by the prompt. The person in the training images
    stays recognisable, so identity checks behave as they would on a well-trained LoRA; with
    no training images it falls back to :func:`render_placeholder_image`."""
    if not sources:
        return render_placeholder_image(prompt, seed, size, fmt)
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    source = sources[int.from_bytes(digest[:4], "big") % len(sources)]
    with Image.open(io.BytesIO(source)) as opened:
        picture = ImageOps.fit(opened.convert("RGB"), size, Image.Resampling.LANCZOS)
    tint = Image.new("RGB", size, (digest[4], digest[5], digest[6]))
    picture = Image.blend(picture, tint, 0.12)
    border = max(2, min(size) // 40)
    ImageDraw.Draw(picture).rectangle(
        (0, 0, size[0] - 1, size[1] - 1), outline=(digest[7], digest[8], digest[9]), width=border
    )
    return _encode(picture, fmt, jpeg_quality=90)
