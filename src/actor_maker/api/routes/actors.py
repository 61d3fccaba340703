"""Actors, their images, prompts and the trash."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile

from actor_maker import actors as actor_ops
from actor_maker import prompts as prompt_lib
from actor_maker import trash
from actor_maker.actors.editing import ActorTexts
from actor_maker.api.actor_index import listed
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.services import Services
from actor_maker.errors import InputError, NotFoundError
from actor_maker.manifest import require_manifest
from actor_maker.validation import check_actor_id

router = APIRouter(tags=["actors"])

VIA = "api"


def manifest_or_404(services: Services, actor_id: str) -> dict[str, Any]:
    manifest = require_manifest(services.store, str(actor_id))
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
    root = str(request.base_url).rstrip("/")
    return [
        listed(
            a,
            _absolute(root, services.browser_url(a.get("base_image_key"))),
            _absolute(root, services.thumbnail_url(a.get("base_image_key"))),
        )
        for a in chosen
    ]


def _absolute(root: str, url: str | None) -> str | None:
    """This server's root-relative URLs made absolute (the old frontend may run elsewhere)."""
    return root + url if url and url.startswith("/") else url


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


@dataclasses.dataclass
class ActorForm:
    """The form fields that creating and changing an actor share: its texts (on a change,
    an empty value clears one) and a base image, uploaded or at a URL."""

    texts: ActorTexts
    base_image: UploadFile | None
    base_image_url: str | None

    async def image(self, services: Services, *, required: bool) -> bytes | None:
        return await _image_bytes(services, self.base_image, self.base_image_url, required=required)


def _actor_form(
    actor_type: Annotated[str | None, Form(max_length=40)] = None,
    actor_sex: Annotated[str | None, Form(max_length=40)] = None,
    description: Annotated[str | None, Form(max_length=2000)] = None,
    outfit: Annotated[str | None, Form(max_length=2000)] = None,
    base_image: Annotated[UploadFile | None, File()] = None,
    base_image_url: Annotated[str | None, Form(max_length=2048)] = None,
) -> ActorForm:
    texts = ActorTexts(
        actor_type=actor_type, actor_sex=actor_sex, description=description, outfit=outfit
    )
    return ActorForm(texts, base_image, base_image_url)


ActorFormDep = Annotated[ActorForm, Depends(_actor_form)]


@router.post("/api/actors", status_code=201)
async def create_actor(
    services: ServicesDep,
    actor_id: Annotated[str, Form(max_length=128)],
    actor_name: Annotated[str, Form(max_length=128)],
    form: ActorFormDep,
) -> dict[str, Any]:
    """Create an actor from an uploaded base image or a base image URL; returns its manifest.
    Its type defaults to `person`."""
    data = await form.image(services, required=True)
    assert data is not None
    manifest = await asyncio.to_thread(
        actor_ops.create_actor,
        services.store,
        actor_id=actor_id,
        actor_name=actor_name,
        base_image=data,
        max_bytes=services.settings.max_image_bytes,
        max_pixels=services.settings.max_image_pixels,
        **form.texts,
    )
    return manifest.data


@router.get("/api/actors/{actor_id}")
async def get_actor(actor_id: str, services: ServicesDep) -> dict[str, Any]:
    """The actor's manifest as stored."""
    return await asyncio.to_thread(manifest_or_404, services, actor_id)


@router.patch("/api/actors/{actor_id}")
async def update_actor(actor_id: str, services: ServicesDep, form: ActorFormDep) -> dict[str, Any]:
    """Change type, sex, description, outfit (an empty value clears it) or the base image."""
    data = await form.image(services, required=False)
    manifest = await asyncio.to_thread(
        actor_ops.update_actor,
        services.store,
        check_actor_id(actor_id),
        base_image=data,
        max_bytes=services.settings.max_image_bytes,
        max_pixels=services.settings.max_image_pixels,
        via=VIA,
        **form.texts,
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
        manifest = await asyncio.to_thread(require_manifest, services.store, actor_id)
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
