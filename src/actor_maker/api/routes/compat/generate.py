"""Generating: each request becomes a job through ``Services.start_job``.

``generate-all-prompts``, ``generate-single`` and ``recreate`` wait for their job and answer
the CLI's JSON shapes; ``POST /api/training-data/generate`` answers the job at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from actor_maker import actors as actor_ops
from actor_maker import prompts as prompt_lib
from actor_maker.api.routes.compat._common import (
    VIA,
    base_ref,
    load_manifest,
    loadable_url,
    old_style_errors,
    resolve_actor_id,
    same_name,
)
from actor_maker.api.routes.compat.bodies import (
    GenerateAllBody,
    GenerateImagesBody,
    GenerateSettings,
    GenerateSingleBody,
    ImageRequest,
    RecreateBody,
)
from actor_maker.api.routes.compat.waiting import (
    check_ran,
    one_image,
    wait_finished,
    wants_async,
)
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.services import Services
from actor_maker.balance import library_prompts
from actor_maker.errors import InputError, NotFoundError
from actor_maker.jobs.models import Job, JobKind
from actor_maker.manifest import Manifest, read_manifest
from actor_maker.pipeline import Actor
from actor_maker.results import all_json, single_json

router = APIRouter(tags=["old frontend"])


@router.post(
    "/api/actors/{actor_id}/training-data/generate-all-prompts",
    responses={202: {"model": Job, "description": "With `Prefer: respond-async`: the job."}},
)
async def generate_all_prompts(
    actor_id: str,
    body: GenerateAllBody,
    request: Request,
    response: Response,
    services: ServicesDep,
    prefer: Annotated[str | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """Every library prompt the actor lacks. Waits and answers the CLI's `generate-all --json`
    object; an actor's job already running is answered instead of starting another."""
    with old_style_errors():
        job, _ = await services.start_job(
            body.actor(actor_id),
            kind=JobKind.all,
            base_image=base_ref(request, body.base_image_url),
            context={"route": "old frontend"},
        )
        if wants_async(prefer):
            response.status_code = 202
            response.headers["Location"] = f"/api/jobs/{job.id}"
            return job.model_dump(mode="json")
        job = await wait_finished(services, job.id, request)
        check_ran(job)
        return all_json(job)


@router.post("/api/actors/{actor_id}/training-data/generate-single")
async def generate_single(
    actor_id: str, body: GenerateSingleBody, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """One image from your prompt (`{subject}` is filled in); a library prompt's text (as
    `training-prompts` shows it) is recorded under its library id. Waits; a failure is a
    4xx/5xx with `success: false` and `error`."""
    with old_style_errors():
        actor = body.actor(actor_id)
        manifest = await asyncio.to_thread(read_manifest, services.store, actor.actor_id)
        prompt_id = _library_id(services, manifest, body.prompt)
        base = base_ref(request, body.base_image_url)
        job, _ = await one_image(
            services, request, actor, body.prompt, body.aspect_ratio, base, prompt_id, manifest
        )
        return single_json(job)


@router.post("/api/actors/{actor_id}/training-data/recreate")
async def recreate(
    actor_id: str, body: RecreateBody, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """A new image for the entry's prompt (or `prompt`) under a new filename; it takes the old
    entry's place once stored, and the old object goes to the trash."""
    with old_style_errors():
        manifest = await load_manifest(services, actor_id)
        same_name(manifest, body.actor_name)
        old = manifest.find(actor_ops.check_filename(body.filename))
        if old is None:
            raise NotFoundError(f"actor {actor_id} has no image {body.filename}")
        prompt = body.prompt or old.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"prompt: {body.filename} has no recorded prompt; give one")
        ratio = body.aspect_ratio or str(old.get("aspect_ratio") or "1:1")
        actor = body.actor(actor_id)
        prompt_id = _library_id(services, manifest, prompt)
        base = base_ref(request, body.base_image_url)
        job, item = await one_image(
            services, request, actor, prompt, ratio, base, prompt_id, manifest
        )
        same_prompt = prompt.strip() == str(old.get("prompt") or "").strip()
        new, record = await asyncio.to_thread(
            actor_ops.recreate_entry,
            services.store,
            manifest.actor_id,
            str(old["filename"]),
            str(item.filename),
            same_prompt=same_prompt,
            via=VIA,
        )
    return {
        "success": True,
        "filename": new["filename"],
        "s3_url": loadable_url(services, request, new.get("s3_url"), new.get("key")),
        "index": item.index,
        "prompt": new.get("prompt"),
        "replaced": old["filename"],
        "key": new.get("key"),
        "url": services.browser_url(new.get("key")),
        "prompt_id": new.get("prompt_id"),
        "trash_id": record.trash_id,
        "job_id": job.id,
    }


def _library_id(services: Services, manifest: Manifest | None, prompt: str) -> str | None:
    """The library id of ``prompt`` when it is a library prompt, as rendered for the actor
    (what the old prompt picker shows and sends) or as written in the library."""
    if manifest is None:
        return None
    return _library_match(services.pipeline().library, manifest, prompt)


def _library_match(
    library: Sequence[prompt_lib.PromptTemplate], manifest: Manifest, prompt: str
) -> str | None:
    text = prompt.strip()
    for template, scene in zip(library, library_prompts(manifest, library), strict=True):
        if text in (scene.text.strip(), template.template.strip()):
            return template.id
    return None


@router.post("/api/training-data/generate", status_code=201)
async def generate_images(body: GenerateImagesBody, services: ServicesDep) -> Job:
    """A job for actor `styleId` (a number is padded to "0012" when only that exists).
    Library `prompt_id`s (and prompts whose text is a library prompt rendered for the actor)
    make a subset job; any free prompt makes the whole request one custom job, with the
    library prompts as their rendered text. `workflow` and `settings` are recorded in the
    job's `context`; `settings` may set `aspect_ratio`, `seed` and `model`."""
    settings = body.settings or GenerateSettings()
    actor_id = await asyncio.to_thread(resolve_actor_id, services, body.style_id)
    manifest = await load_manifest(services, actor_id)
    ratio = _one_ratio(body.images, settings.aspect_ratio)
    library = services.pipeline(settings.model).library
    kind, ids, texts = _job_items(library, manifest, body.images)
    job, _ = await services.start_job(
        Actor(actor_id, manifest.actor_name),
        kind=kind,
        prompt_ids=ids,
        prompts=texts,
        aspect_ratio=ratio,
        seed=settings.seed,
        model=settings.model,
        manifest=manifest,
        context={
            "route": "old frontend",
            "workflow": body.workflow,
            "settings": settings.model_dump(mode="json"),
        },
    )
    return job


def _one_ratio(images: Sequence[ImageRequest], default: str | None) -> str:
    ratios = {image.aspect_ratio or default or "1:1" for image in images}
    if len(ratios) > 1:
        raise InputError(
            f"images: one request makes one job with one aspect ratio; got {sorted(ratios)}"
        )
    return ratios.pop()


def _job_items(
    library: Sequence[prompt_lib.PromptTemplate],
    manifest: Manifest,
    images: Sequence[ImageRequest],
) -> tuple[JobKind, list[str] | None, list[str] | None]:
    by_id = {p.id: p.text for p in library_prompts(manifest, library)}
    chosen: list[tuple[str | None, str]] = []  # (library id or None, text)
    for image in images:
        if image.prompt_id:
            if image.prompt_id not in by_id:
                raise InputError(f"images: unknown prompt id {image.prompt_id!r}")
            chosen.append((image.prompt_id, by_id[image.prompt_id]))
        else:
            text = str(image.prompt).strip()
            chosen.append((_library_match(library, manifest, text), text))
    chosen = list(dict.fromkeys(chosen))  # the same prompt twice is one item
    if all(prompt_id for prompt_id, _ in chosen):
        return JobKind.subset, [str(prompt_id) for prompt_id, _ in chosen], None
    return JobKind.custom, None, [text for _, text in chosen]
