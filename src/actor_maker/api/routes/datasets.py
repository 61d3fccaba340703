"""From a curated set to a training set: captions and exports."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from actor_maker.api.routes.deps import ServicesDep
from actor_maker.validation import check_actor_id

router = APIRouter(tags=["datasets"])


class ExportRequest(BaseModel):
    """The layout inside the zip, and which images go in (see docs/export.md)."""

    format: Literal["kohya", "ai-toolkit", "replicate-zip"]
    include_review: bool = False
    good_only: bool = False
    repeats: int = Field(default=10, ge=1, le=10_000)
    #: kohya: sd-scripts' ``shuffle_caption`` (off: it fails with cached text encoder outputs).
    shuffle_caption: bool = False


@router.post(
    "/api/actors/{actor_id}/exports",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "The zip."}},
)
async def export_actor(actor_id: str, body: ExportRequest, services: ServicesDep) -> Response:
    """The actor's usable images and captions as a zip in a trainer's layout, with a dataset
    card; the trigger word is in the `X-Trigger-Word` header. Built in a temporary file,
    streamed, then deleted."""
    import os
    import tempfile

    from fastapi.responses import FileResponse
    from starlette.background import BackgroundTask

    from actor_maker.export import export

    check_actor_id(actor_id)
    handle, path = tempfile.mkstemp(prefix="actor-maker-export-", suffix=".zip")
    os.close(handle)
    try:
        report = await asyncio.to_thread(
            export,
            services.store,
            [actor_id],
            fmt=body.format,
            out=path,
            settings=services.settings,
            include_review=body.include_review,
            good_only=body.good_only,
            repeats=body.repeats,
            shuffle_caption=body.shuffle_caption,
        )
    except BaseException:
        os.unlink(path)
        raise
    actor = report.actors[0]
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"{actor.actor_name}-{body.format}.zip",
        headers={"X-Trigger-Word": actor.trigger_word, "Cache-Control": "no-store"},
        background=BackgroundTask(os.unlink, path),
    )


# --- captions: per-image training captions, the trigger word, bulk edits ---------------------


class CaptionRequest(BaseModel):
    caption: str = Field(min_length=1, max_length=1000)


class GenerateCaptionsRequest(BaseModel):
    """``regenerate``: rewrite every caption, hand-edited ones too (default: only missing)."""

    regenerate: bool = False


class ReplaceCaptionsRequest(BaseModel):
    """Find and replace in every caption; with ``regex``, ``find`` is an RE2 pattern
    (linear-time: no backreferences or lookaround)."""

    find: str = Field(min_length=1, max_length=200)
    replace: str = Field(max_length=1000)
    regex: bool = False


class TriggerWordRequest(BaseModel):
    trigger_word: str = Field(min_length=3, max_length=32)


@router.put("/api/actors/{actor_id}/training-data/{filename}/caption")
async def put_caption(
    actor_id: str, filename: str, body: CaptionRequest, services: ServicesDep
) -> dict[str, Any]:
    """Set one image's caption by hand (one line, at most 1000 characters); returns the entry
    and `warnings` (a line when the caption lacks the trigger word)."""
    from actor_maker.captions import set_caption

    warnings: list[str] = []
    entry = await asyncio.to_thread(
        functools.partial(set_caption, warnings=warnings),
        services.store,
        check_actor_id(actor_id),
        filename,
        body.caption,
    )
    return {**entry, "warnings": warnings}


@router.post("/api/actors/{actor_id}/captions/generate")
async def generate_captions(
    actor_id: str, services: ServicesDep, body: GenerateCaptionsRequest | None = None
) -> dict[str, int]:
    """Write captions from the prompts for images without one (all with `regenerate`)."""
    from actor_maker.captions import generate_captions as generate

    regenerate = (body or GenerateCaptionsRequest()).regenerate
    changed = await asyncio.to_thread(
        generate, services.store, check_actor_id(actor_id), regenerate=regenerate
    )
    return {"changed": changed}


@router.post("/api/actors/{actor_id}/captions/replace")
async def replace_in_captions(
    actor_id: str, body: ReplaceCaptionsRequest, services: ServicesDep
) -> dict[str, Any]:
    """Find and replace in every caption of the actor, in one manifest update; `warnings`
    names each changed caption that lacks the trigger word."""
    from actor_maker.captions import replace_in_captions as replace

    warnings: list[str] = []
    changed = await asyncio.to_thread(
        replace,
        services.store,
        check_actor_id(actor_id),
        body.find,
        body.replace,
        regex=body.regex,
        warnings=warnings,
    )
    return {"changed": changed, "warnings": warnings}


@router.put("/api/actors/{actor_id}/trigger-word")
async def put_trigger_word(
    actor_id: str, body: TriggerWordRequest, services: ServicesDep
) -> dict[str, str]:
    """Set the actor's trigger word (3-32 lower-case letters and digits); captions that open
    with the old trigger word get the new one."""
    from actor_maker.captions import set_trigger_word

    word = await asyncio.to_thread(
        set_trigger_word, services.store, check_actor_id(actor_id), body.trigger_word
    )
    return {"trigger_word": word}
