"""Checks in the pipeline: a bad image is stored but rejected with its reason, two
near-copies finishing together are not both accepted, a person's override wins."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from PIL import Image, ImageFilter

from actor_maker.config import Settings
from actor_maker.manifest import require_manifest
from actor_maker.pipeline import Actor, Pipeline
from actor_maker.providers.base import GeneratedImage, GenerationParams, InputImage
from actor_maker.quality import effective_verdict, is_usable
from actor_maker.quality.checker import QualityChecker
from actor_maker.quality.review import recheck, set_override
from actor_maker.slots import ProcessSlots

from .helpers import REPO, found

PHOTOS = REPO / "tests" / "fixtures" / "photos"
ASTRONAUT = (PHOTOS / "astronaut.jpg").read_bytes()
HOPPER = (PHOTOS / "grace_hopper.jpg").read_bytes()


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=92)
    return buf.getvalue()


def upscaled(data: bytes, size=768) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return jpeg(img.convert("RGB").resize((size, size)))


BLANK = jpeg(Image.new("RGB", (768, 768), (128, 128, 128)))
BLURRED = jpeg(Image.open(io.BytesIO(upscaled(ASTRONAUT))).filter(ImageFilter.GaussianBlur(8)))


class ScriptedProvider:
    """Answers each prompt with a chosen image after a chosen delay (a fake of our seam)."""

    name = "scripted"
    model = "scripted/model"
    free = True
    placeholder = False

    def __init__(self, images: dict[str, bytes], delay: float = 0.0) -> None:
        self.images = images
        self.delay = delay

    async def generate(
        self, image: InputImage, params: GenerationParams, **_: object
    ) -> GeneratedImage:
        await asyncio.sleep(self.delay)
        data = next(v for k, v in self.images.items() if k in params.prompt)
        return GeneratedImage(data, self.name, self.model, params.seed, None, "s", "f", 0.0)

    async def check(self) -> str:
        return "scripted"

    async def aclose(self) -> None:
        return None


@pytest.fixture(scope="module")
def checker():
    return QualityChecker()


def make(store, provider, checker, limit=4):
    settings = Settings(_env_file=None, prices={"scripted/model": 0.0})
    return Pipeline(
        settings=settings,
        store=store,
        provider=provider,
        slots=ProcessSlots(limit),
        checker=checker,
    )


ACTOR = Actor("0900", "0900_quality", "person", "female")


async def run(pipeline, prompts):
    plan = pipeline.plan_custom(ACTOR, prompts)
    return await pipeline.run(plan, upscaled(ASTRONAUT))


async def test_bad_images_are_stored_but_rejected_with_reasons(store, checker):
    provider = ScriptedProvider({"blank": BLANK, "blurry": BLURRED, "good": upscaled(ASTRONAUT)})
    result = await run(
        make(store, provider, checker), ["a blank one", "a blurry one", "a good one"]
    )
    verdicts = {i.prompt: i.verdict for i in result.items}
    assert verdicts == {
        "a blank one": "rejected",
        "a blurry one": "rejected",
        "a good one": "accepted",
    }
    manifest = require_manifest(store, ACTOR.actor_id)
    assert len(manifest.training_data) == 3  # paid for: kept, but not training data
    by_prompt = {e["prompt"]: e for e in manifest.training_data}
    assert any(
        "uniform" in r or "blank" in r for r in by_prompt["a blank one"]["quality"]["reasons"]
    )
    assert any("blur" in r or "sharp" in r for r in by_prompt["a blurry one"]["quality"]["reasons"])
    assert [e["prompt"] for e in manifest.training_data if is_usable(e)] == ["a good one"]
    assert by_prompt["a good one"]["quality"]["scores"]["phash"]


async def test_two_near_copies_finishing_together_are_not_both_accepted(store, checker):
    same = upscaled(ASTRONAUT)  # the base image's person: identity passes for both
    near = jpeg(Image.open(io.BytesIO(same)).resize((760, 760)))  # recompressed, resized
    provider = ScriptedProvider({"first": same, "second": near}, delay=0.2)
    result = await run(make(store, provider, checker), ["the first take", "the second take"])
    verdicts = sorted(i.verdict for i in result.items)
    assert verdicts == ["accepted", "rejected"]
    manifest = require_manifest(store, ACTOR.actor_id)
    rejected = next(e for e in manifest.training_data if effective_verdict(e) == "rejected")
    kept = next(e for e in manifest.training_data if effective_verdict(e) == "accepted")
    assert f"near-duplicate of {kept['filename']}" in " ".join(rejected["quality"]["reasons"])


async def test_identity_rejects_another_person(store, checker):
    if not checker.identity_enabled:
        pytest.fail("the [quality] extra is part of the dev install; identity must be on")
    provider = ScriptedProvider({"same": upscaled(ASTRONAUT), "other": upscaled(HOPPER)})
    result = await run(make(store, provider, checker), ["the same woman", "the other woman"])
    verdicts = {i.prompt: i.verdict for i in result.items}
    assert verdicts == {"the same woman": "accepted", "the other woman": "rejected"}
    manifest = require_manifest(store, ACTOR.actor_id)
    other = next(e for e in manifest.training_data if e["prompt"] == "the other woman")
    assert other["quality"]["scores"]["face_distance"] > checker.identity_threshold


async def test_override_and_recheck(local_store, checker):
    provider = ScriptedProvider({"blank": BLANK, "good": upscaled(ASTRONAUT)})
    await run(make(local_store, provider, checker), ["a blank one", "a good one"])
    blank = next(
        e
        for e in require_manifest(local_store, ACTOR.actor_id).training_data
        if e["prompt"] == "a blank one"
    )
    entry = set_override(local_store, ACTOR.actor_id, blank["filename"], "accepted", via="api")
    assert effective_verdict(entry) == "accepted" and entry["quality"]["override"]["via"] == "api"
    assert entry["quality"]["verdict"] == "rejected"  # the checks' word is kept beside it
    rechecked = recheck(local_store, ACTOR.actor_id, checker, base=upscaled(ASTRONAUT))
    again = next(e for e in rechecked if e["filename"] == blank["filename"])
    assert effective_verdict(again) == "accepted"  # overrides survive a re-check
    set_override(local_store, ACTOR.actor_id, blank["filename"], None, via="cli")
    manifest = require_manifest(local_store, ACTOR.actor_id)
    assert effective_verdict(found(manifest.find(blank["filename"]))) == "rejected"
    json.dumps(manifest.data)  # still plain JSON
