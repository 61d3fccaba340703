"""Fakes of our own seams, for unit tests of the pipeline (never the only test of a feature)."""

from __future__ import annotations

import asyncio

from actor_maker.errors import ContentFlaggedError
from actor_maker.providers.base import (
    UNTRACKED,
    GeneratedImage,
    GenerationParams,
    InputImage,
    Tracking,
)
from actor_maker.providers.preview import render_preview


class CountingProvider:
    """Preview images after ``latency`` seconds; counts calls and peak concurrency."""

    name = "fake"
    model = "fake/model"
    free = False
    placeholder = False

    def __init__(self, latency: float = 0.0, flag: str | None = None) -> None:
        self.latency = latency
        self.flag = flag
        self.calls = 0
        self.in_flight = 0
        self.peak = 0
        self.canceled = 0
        self.image_urls: list[str | None] = []

    async def generate(
        self, image: InputImage, params: GenerationParams, tracking: Tracking = UNTRACKED
    ) -> GeneratedImage:
        self.calls += 1
        self.image_urls.append(image.url)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if tracking.on_created is not None:
                await tracking.on_created(f"p{self.calls}")
            await asyncio.sleep(self.latency)
            if self.flag and self.flag in params.prompt:
                raise ContentFlaggedError("flagged as sensitive (E005)")
            data = render_preview(image.data, params)
        except asyncio.CancelledError:
            self.canceled += 1
            raise
        finally:
            self.in_flight -= 1
        return GeneratedImage(
            data, self.name, self.model, params.seed, f"p{self.calls}", "s", "f", 0.01
        )

    async def check(self) -> str:
        return "fake"

    async def aclose(self) -> None:
        return None
