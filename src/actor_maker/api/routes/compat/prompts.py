"""Prompts as the old frontend reads them: the library, usage counts and each image's prompt."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from actor_maker import actors as actor_ops
from actor_maker import prompts as prompt_lib
from actor_maker.api.routes.compat._common import load_manifest
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.balance import library_prompts

router = APIRouter(tags=["old frontend"])

#: Our category names → the old frontend's.
OLD_CATEGORIES = {"photoreal": "photorealistic"}
_LABEL_PREFIXES = ("photo", "bw", "color")


@router.get("/api/actors/{actor_id}/training-prompts")
async def training_prompts(actor_id: str, services: ServicesDep) -> dict[str, Any]:
    """The prompt library with the actor's subject filled in, in the old category names
    (`photorealistic`, `bw_stylized`, `color_stylized`); `descriptor` is the subject word."""
    manifest = await load_manifest(services, actor_id)
    descriptor = prompt_lib.subject_for(manifest.actor_type, manifest.actor_sex)
    prompts = [
        {
            "id": p.id,
            "category": OLD_CATEGORIES.get(p.category, p.category),
            "label": _label(p.id),
            "prompt": p.text,
        }
        for p in library_prompts(manifest, services.pipeline().library)
    ]
    return {"descriptor": descriptor, "prompts": prompts}


def _label(prompt_id: str) -> str:
    """ "photo-rain-platform" → "Rain Platform"."""
    words = prompt_id.split("-")
    if len(words) > 1 and words[0] in _LABEL_PREFIXES:
        words = words[1:]
    return " ".join(words).title()


@router.get("/api/actors/{actor_id}/prompt-usage")
async def prompt_usage(actor_id: str, services: ServicesDep) -> dict[str, dict[str, int]]:
    """Prompt text → how many of the actor's images were made from it."""
    manifest = await load_manifest(services, actor_id)
    return {"prompt_usage": actor_ops.prompt_usage(manifest)}


@router.get("/api/actors/{actor_id}/training-data/prompts")
async def training_data_prompts(actor_id: str, services: ServicesDep) -> dict[str, Any]:
    """Each image's prompt (null when unknown) and aspect ratio, as objects ("recreate"
    needs the filename with the prompt)."""
    manifest = await load_manifest(services, actor_id)
    prompts = [
        {
            "filename": e["filename"],
            "prompt": e.get("prompt"),
            "aspect_ratio": e.get("aspect_ratio"),
        }
        for e in manifest.training_data
    ]
    return {"prompts": prompts}
