"""The offline ``preview`` provider: placeholder images, no network, no cost.

Images are derived from the base image and the prompt (a per-prompt crop, tilt,
light and backdrop panel at the requested aspect ratio, recoloured per prompt,
grey for black-and-white prompts) and carry a visible "PREVIEW" banner, so they
can never be mistaken for training data. Deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps

from actor_maker.providers.base import (
    UNTRACKED,
    GeneratedImage,
    GenerationParams,
    InputImage,
    Tracking,
)
from actor_maker.timeutil import utc_now

SHORT_SIDE = 768
NOTICE = "preview images are placeholders made offline, not training data"


def _size_for(aspect_ratio: str, source: tuple[int, int]) -> tuple[int, int]:
    if aspect_ratio in ("match_input_image", ""):
        w, h = source
    else:
        a, _, b = aspect_ratio.partition(":")
        w, h = int(a), int(b)
    if w >= h:
        return round(SHORT_SIDE * w / h), SHORT_SIDE
    return SHORT_SIDE, round(SHORT_SIDE * h / w)


def render_preview(image: bytes, params: GenerationParams) -> bytes:
    digest = hashlib.sha256(f"{params.prompt}\n{params.seed}".encode()).digest()
    with Image.open(io.BytesIO(image)) as src:
        base = src.convert("RGB")
    size = _size_for(params.aspect_ratio, base.size)
    # Each prompt gets its own framing, tilt, light and backdrop, so placeholders differ as
    # much as real scenes would (the near-duplicate check must not reject the demo's set).
    zoom = 0.35 + digest[6] / 255 * 0.65
    w, h = base.size
    cw, ch = max(1, int(w * zoom)), max(1, int(h * zoom))
    left = int((w - cw) * digest[0] / 255)
    top = int((h - ch) * digest[1] / 255)
    window = base.crop((left, top, left + cw, top + ch))
    window = window.rotate(
        (digest[7] / 255 - 0.5) * 24,
        resample=Image.Resampling.BICUBIC,
        fillcolor=(digest[8], digest[9], digest[10]),
    )
    frame = ImageOps.fit(window, size, Image.Resampling.BICUBIC)
    ramp = Image.linear_gradient("L").resize(size).rotate(digest[11] / 255 * 360)
    light = Image.blend(
        Image.new("RGB", size, (255, 255, 255)), Image.merge("RGB", [ramp] * 3), 0.85
    )
    frame = ImageChops.multiply(frame, light)
    if params.category == "bw_stylized":
        frame = ImageOps.grayscale(frame).convert("RGB")
    else:
        tint = Image.new("RGB", size, (digest[2], digest[3], digest[4]))
        frame = Image.blend(frame, tint, 0.25)
    if digest[5] % 2:
        frame = ImageOps.mirror(frame)
    draw = ImageDraw.Draw(frame)
    px, py = digest[12] / 255 * size[0] * 0.6, digest[13] / 255 * size[1] * 0.6
    backdrop = (digest[14], digest[15], digest[16])
    if params.category == "bw_stylized":
        backdrop = (sum(backdrop) // 3,) * 3
    draw.rectangle((px, py, px + size[0] * 0.4, py + size[1] * 0.4), fill=backdrop)
    band = max(40, size[1] // 12)
    draw.rectangle((0, 0, size[0], band), fill=(20, 20, 20))
    font = ImageFont.load_default(size=band * 0.5)
    draw.text((12, band * 0.2), "PREVIEW - not training data", fill=(255, 210, 0), font=font)
    out = io.BytesIO()
    fmt = "PNG" if params.output_format == "png" else "JPEG"
    frame.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


class PreviewProvider:
    """Offline placeholders for trying the system and testing without a token."""

    name = "preview"
    free = True
    placeholder = True

    def __init__(self, model: str = "preview", latency: float = 0.0) -> None:
        self.model = model
        self.latency = latency

    async def generate(
        self, image: InputImage, params: GenerationParams, tracking: Tracking = UNTRACKED
    ) -> GeneratedImage:
        """Placeholders are made here and now: nothing to resume or record."""
        started = utc_now()
        if self.latency:
            await asyncio.sleep(self.latency)
        data = await asyncio.to_thread(render_preview, image.data, params)
        return GeneratedImage(
            data=data,
            provider=self.name,
            model="preview",
            seed=params.seed,
            prediction_id=None,
            started_at=started,
            finished_at=utc_now(),
            cost=0.0,
        )

    async def check(self) -> str:
        return "preview provider (offline placeholders, no token needed)"

    async def aclose(self) -> None:
        return None
