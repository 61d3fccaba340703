"""Actors, their images, prompts, trash, and the store's files for browsers."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from actor_maker import actors as actor_ops
from actor_maker import balance as balance_lib
from actor_maker import prompts as prompt_lib
from actor_maker import trash
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.services import Services
from actor_maker.errors import ConflictError, InputError, NotFoundError
from actor_maker.jobs.models import Job
from actor_maker.manifest import Manifest, read_manifest
from actor_maker.pipeline import Actor
from actor_maker.quality.review import base_image_bytes, recheck, set_override, summary
from actor_maker.runtime import make_checker
from actor_maker.store.base import check_key
from actor_maker.thumbnails import ensure_thumbnail, thumbnail_key
from actor_maker.validation import check_actor_id

router = APIRouter(tags=["actors"])

VIA = "api"


def _manifest_or_404(services: Services, actor_id: str) -> dict[str, Any]:
    manifest = read_manifest(services.store, check_actor_id(str(actor_id)))
    if manifest is None:
        raise NotFoundError(f"actor {actor_id} has no manifest")
    return manifest.data


@router.get("/api/actors")
async def list_actors(
    request: Request,
    response: Response,
    services: ServicesDep,
    q: Annotated[str | None, Query(description="Text in id or name.", max_length=200)] = None,
    actor_type: Annotated[str | None, Query(max_length=40)] = None,
    sex: Annotated[str | None, Query(max_length=40)] = None,
    has_training_data: bool | None = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Every actor (from the manifests in the store), as the bare JSON array the old frontend
    reads; paging in `Link` and `X-Total-Count` headers."""
    actors = await asyncio.to_thread(services.index.all)
    if q:
        needle = q.lower()
        actors = [
            a for a in actors if needle in str(a["id"]).lower() or needle in str(a["name"]).lower()
        ]
    if actor_type:
        actors = [a for a in actors if a.get("actor_type") == actor_type]
    if sex:
        actors = [a for a in actors if str(a.get("sex", "")).lower() == sex.lower()]
    if has_training_data is not None:
        actors = [a for a in actors if (a["training_count"] > 0) == has_training_data]
    total = len(actors)
    pages = max(1, math.ceil(total / per_page))
    response.headers["X-Total-Count"] = str(total)
    links = []
    params = dict(request.query_params)
    for rel, number in (("first", 1), ("prev", page - 1), ("next", page + 1), ("last", pages)):
        if 1 <= number <= pages and (rel in ("first", "last") or number != page):
            query = urlencode({**params, "page": number, "per_page": per_page})
            links.append(f'<{request.url.path}?{query}>; rel="{rel}"')
    if links:
        response.headers["Link"] = ", ".join(links)
    chosen = actors[(page - 1) * per_page : page * per_page]
    return [
        {
            **a,
            "base_image": services.browser_url(a.get("base_image_key")),
            "base_thumbnail": services.thumbnail_url(a.get("base_image_key")),
        }
        for a in chosen
    ]


async def _image_bytes(
    services: Services, upload: UploadFile | None, url: str | None, *, required: bool
) -> bytes | None:
    if upload is not None and url:
        raise InputError("give either base_image or base_image_url, not both")
    if upload is not None:
        data = await upload.read(services.settings.max_image_bytes + 1)
        if len(data) > services.settings.max_image_bytes:
            raise InputError("base_image is larger than the upload limit")
        return data
    if url:
        pipeline = services.pipeline()
        pipeline.check_base_image_ref(url)
        data, _, _ = await pipeline.load_base_image(url)
        return data
    if required:
        raise InputError("base_image: upload a file or give base_image_url")
    return None


@router.post("/api/actors", status_code=201)
async def create_actor(
    services: ServicesDep,
    actor_id: Annotated[str, Form(max_length=128)],
    actor_name: Annotated[str, Form(max_length=128)],
    actor_type: Annotated[str, Form(max_length=40)] = "person",
    actor_sex: Annotated[str | None, Form(max_length=40)] = None,
    description: Annotated[str | None, Form(max_length=2000)] = None,
    outfit: Annotated[str | None, Form(max_length=2000)] = None,
    base_image: Annotated[UploadFile | None, File()] = None,
    base_image_url: Annotated[str | None, Form(max_length=2048)] = None,
) -> dict[str, Any]:
    """Create an actor from an uploaded base image or a base image URL; returns its manifest."""
    data = await _image_bytes(services, base_image, base_image_url, required=True)
    assert data is not None
    manifest = await asyncio.to_thread(
        actor_ops.create_actor,
        services.store,
        actor_id=actor_id,
        actor_name=actor_name,
        actor_type=actor_type,
        actor_sex=actor_sex or None,
        description=description or None,
        outfit=outfit or None,
        base_image=data,
        max_bytes=services.settings.max_image_bytes,
        max_pixels=services.settings.max_image_pixels,
    )
    return manifest.data


@router.get("/api/actors/{actor_id}")
async def get_actor(actor_id: str, services: ServicesDep) -> dict[str, Any]:
    """The actor's manifest as stored."""
    return await asyncio.to_thread(_manifest_or_404, services, actor_id)


@router.patch("/api/actors/{actor_id}")
async def update_actor(
    actor_id: str,
    services: ServicesDep,
    actor_type: Annotated[str | None, Form(max_length=40)] = None,
    actor_sex: Annotated[str | None, Form(max_length=40)] = None,
    description: Annotated[str | None, Form(max_length=2000)] = None,
    outfit: Annotated[str | None, Form(max_length=2000)] = None,
    base_image: Annotated[UploadFile | None, File()] = None,
    base_image_url: Annotated[str | None, Form(max_length=2048)] = None,
) -> dict[str, Any]:
    """Change type, sex, description, outfit (an empty value clears it) or the base image."""
    data = await _image_bytes(services, base_image, base_image_url, required=False)
    manifest = await asyncio.to_thread(
        actor_ops.update_actor,
        services.store,
        check_actor_id(actor_id),
        actor_type=actor_type,
        actor_sex=actor_sex,
        description=description,
        outfit=outfit,
        base_image=data,
        max_bytes=services.settings.max_image_bytes,
        max_pixels=services.settings.max_image_pixels,
        via=VIA,
    )
    return manifest.data


@router.delete("/api/actors/{actor_id}")
async def delete_actor(
    actor_id: str,
    services: ServicesDep,
    confirm: Annotated[str, Query(description="Must repeat the actor id.", max_length=128)] = "",
) -> dict[str, Any]:
    """Move the actor (manifest, base and training images) to the trash."""
    record = await asyncio.to_thread(
        actor_ops.delete_actor, services.store, check_actor_id(actor_id), confirm=confirm, via=VIA
    )
    return _record(record)


@router.delete("/api/actors/{actor_id}/training-data/{filename}")
async def delete_training_image(
    actor_id: str, filename: str, services: ServicesDep
) -> dict[str, Any]:
    """Move one training image to the trash and drop its entry."""
    record = await asyncio.to_thread(
        actor_ops.delete_image, services.store, check_actor_id(actor_id), filename, via=VIA
    )
    return _record(record)


@router.get("/api/prompts")
async def list_prompts(
    services: ServicesDep,
    actor_type: Annotated[str, Query(max_length=40)] = "person",
    actor_sex: Annotated[str | None, Query(max_length=40)] = None,
    actor_id: Annotated[str | None, Query(max_length=128)] = None,
) -> list[dict[str, Any]]:
    """The prompt library rendered for an actor; with `actor_id`, how often each was used."""
    usage: dict[str, int] = {}
    description = outfit = None
    if actor_id:
        manifest = await asyncio.to_thread(read_manifest, services.store, check_actor_id(actor_id))
        if manifest is None:
            raise NotFoundError(f"actor {actor_id} has no manifest")
        usage = actor_ops.prompt_id_usage(manifest)
        actor_type, actor_sex = manifest.actor_type, actor_sex or manifest.actor_sex
        description, outfit = manifest.description, manifest.outfit
    rendered = prompt_lib.render_all(
        services.pipeline().library,
        actor_type=actor_type,
        actor_sex=actor_sex,
        description=description,
        outfit=outfit,
    )
    return [
        {
            "id": p.id,
            "category": p.category,
            "face_visible": p.face_visible,
            "prompt": p.text,
            "used": usage.get(p.id, 0),
        }
        for p in rendered
    ]


@router.get("/api/trash")
async def list_trash(
    services: ServicesDep, actor_id: Annotated[str | None, Query(max_length=128)] = None
) -> list[dict[str, Any]]:
    """Deleted images and actors that can still be restored."""
    records = await asyncio.to_thread(trash.list_trash, services.store, actor_id=actor_id)
    return [_record(r) for r in records]


@router.post("/api/trash/{trash_id}/restore")
async def restore_trash(trash_id: str, services: ServicesDep) -> dict[str, Any]:
    """Put a trash folder's images (and entries, or whole actor) back."""
    if not trash.trash_id_valid(trash_id):
        raise NotFoundError(f"no trash entry {trash_id!r}")
    return _record(await asyncio.to_thread(trash.restore, services.store, trash_id))


def _record(record: trash.TrashRecord) -> dict[str, Any]:
    body = dataclasses.asdict(record)
    body.pop("manifest", None)
    return body


@router.get("/api/files/{key:path}", response_class=Response)
async def get_file(key: str, services: ServicesDep) -> Response:
    """An object of the store for a browser: a redirect to a short-lived URL (S3) or the
    bytes (local store). Only images under `system_actors/` are served."""
    try:
        check_key(key)
    except InputError as exc:
        raise NotFoundError("no such file") from exc
    if not key.startswith("system_actors/") or not key.lower().endswith(
        (".jpg", ".jpeg", ".png", ".webp")
    ):
        raise NotFoundError("no such file")
    return await _serve(services, key, max_age=3600)


async def _serve(services: Services, key: str, *, max_age: int) -> Response:
    """A checked key's object for a browser: a redirect to a short-lived URL (S3) or the
    bytes (local store), cached privately for ``max_age`` seconds."""
    url = services.store.presigned_url(key, expires_in=3600)
    if url:
        return RedirectResponse(
            url, status_code=307, headers={"Cache-Control": "private, max-age=300"}
        )
    obj = await asyncio.to_thread(services.store.get, key)
    return Response(
        obj.data,
        media_type=obj.info.content_type or "application/octet-stream",
        headers={
            "Cache-Control": f"private, max-age={max_age}",
            "ETag": f'"{obj.info.version}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/api/thumbnails/{key:path}", response_class=Response)
async def get_thumbnail(key: str, services: ServicesDep) -> Response:
    """A small WebP of an image under `system_actors/` (made on the first request and kept in
    the store), served like `/api/files/...`."""
    try:
        thumb_key = thumbnail_key(key)
    except InputError as exc:
        raise NotFoundError("no such file") from exc
    if not key.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
        raise NotFoundError("no such file")
    await asyncio.to_thread(ensure_thumbnail, services.store, key)
    return await _serve(services, thumb_key, max_age=86400)


class ReviewRequest(BaseModel):
    """``accepted`` (approve), ``rejected``, or null to go back to the checks' verdict."""

    verdict: Literal["accepted", "rejected"] | None


@router.post("/api/actors/{actor_id}/training-data/{filename}/review")
async def review_image(
    actor_id: str, filename: str, body: ReviewRequest, services: ServicesDep
) -> dict[str, Any]:
    """Approve or reject an image by hand, overriding the quality checks; returns the entry."""
    return await asyncio.to_thread(
        set_override, services.store, check_actor_id(actor_id), filename, body.verdict, via=VIA
    )


@router.post("/api/actors/{actor_id}/quality-check")
async def check_actor_images(actor_id: str, services: ServicesDep) -> dict[str, Any]:
    """Run the quality checks again on every image of the actor; overrides stay."""
    checker = make_checker(services.settings.model_copy(update={"checks": True}))
    assert checker is not None
    manifest = await asyncio.to_thread(read_manifest, services.store, check_actor_id(actor_id))
    if manifest is None:
        raise NotFoundError(f"actor {actor_id} has no manifest")
    base = await asyncio.to_thread(base_image_bytes, services.store, manifest)
    entries = await asyncio.to_thread(recheck, services.store, actor_id, checker, base=base)
    return {"checked": len(entries), "summary": summary(entries), "entries": entries}


# --- balance: usable images per category against a target mix ------------------------------


class BalanceRequest(BaseModel):
    """Fill what the actor is missing against ``target`` (photoreal/bw/color percentages)
    and ``size``; refused when the estimate is over ``max_cost``."""

    target: str = Field(default=balance_lib.DEFAULT_TARGET, max_length=40)
    size: int = Field(default=balance_lib.DEFAULT_SIZE, ge=1, le=balance_lib.MAX_SIZE)
    max_cost: float | None = Field(default=None, ge=0)


def _balance(
    services: Services, actor_id: str, target: str, size: int
) -> tuple[Manifest, balance_lib.BalanceReport]:
    goal = balance_lib.Target(size=size, mix=balance_lib.parse_mix(target))
    manifest = read_manifest(services.store, check_actor_id(actor_id))
    if manifest is None:
        raise NotFoundError(f"actor {actor_id} has no manifest")
    return manifest, balance_lib.report(manifest, goal)


@router.get("/api/actors/{actor_id}/balance")
async def get_balance(
    actor_id: str,
    services: ServicesDep,
    target: Annotated[
        str, Query(description="Percentages photoreal/bw_stylized/color_stylized.", max_length=40)
    ] = balance_lib.DEFAULT_TARGET,
    size: Annotated[int, Query(ge=1, le=balance_lib.MAX_SIZE)] = balance_lib.DEFAULT_SIZE,
) -> dict[str, Any]:
    """Usable, awaiting-review and rejected images per category; wanted and missing counts."""
    _, found = await asyncio.to_thread(_balance, services, actor_id, target, size)
    return found.to_json()


@router.post("/api/actors/{actor_id}/balance", status_code=201)
async def fill_balance(
    actor_id: str,
    response: Response,
    services: ServicesDep,
    body: BalanceRequest | None = None,
) -> Job | dict[str, Any]:
    """Start a job generating what is missing (201, the job). 200 with the report when
    nothing is missing, or with the balance job already queued or running for the actor;
    409 while another job of the actor runs (its images are not counted yet)."""
    body = body or BalanceRequest()
    active = await services.jobs.active_job(check_actor_id(actor_id))
    if active is not None:
        if "balance" in active.context:
            response.status_code = 200
            return active
        raise ConflictError(
            f"actor {actor_id} has job {active.id} {active.state.value}; "
            "balance it when that job has finished"
        )
    manifest, found = await asyncio.to_thread(_balance, services, actor_id, body.target, body.size)
    items = balance_lib.fill_items(
        manifest, found, balance_lib.library_prompts(manifest, services.pipeline().library)
    )
    if not items:
        response.status_code = 200
        return found.to_json()
    return await services.start_items_job(
        Actor(actor_id, manifest.actor_name),
        items,
        max_cost=body.max_cost,
        context={"balance": {"target": found.to_json()["target"], "size": body.size}},
    )


# --- export: the actor's dataset as a downloadable zip ---------------------------------------


class ExportRequest(BaseModel):
    """The layout inside the zip, and which images go in (see docs/export.md)."""

    format: Literal["kohya", "ai-toolkit", "replicate-zip"]
    include_review: bool = False
    good_only: bool = False
    repeats: int = Field(default=10, ge=1, le=10_000)


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
    """Find and replace in every caption; with ``regex``, ``find`` is a Python pattern."""

    find: str = Field(min_length=1, max_length=200)
    replace: str = Field(max_length=1000)
    regex: bool = False


class TriggerWordRequest(BaseModel):
    trigger_word: str = Field(min_length=3, max_length=32)


@router.put("/api/actors/{actor_id}/training-data/{filename}/caption")
async def put_caption(
    actor_id: str, filename: str, body: CaptionRequest, services: ServicesDep
) -> dict[str, Any]:
    """Set one image's caption by hand (one line, at most 1000 characters); returns the entry."""
    from actor_maker.captions import set_caption

    return await asyncio.to_thread(
        set_caption, services.store, check_actor_id(actor_id), filename, body.caption
    )


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
) -> dict[str, int]:
    """Find and replace in every caption of the actor, in one manifest update."""
    from actor_maker.captions import replace_in_captions as replace

    changed = await asyncio.to_thread(
        replace,
        services.store,
        check_actor_id(actor_id),
        body.find,
        body.replace,
        regex=body.regex,
    )
    return {"changed": changed}


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
