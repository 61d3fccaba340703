"""The store's images for browsers: files and thumbnails, never escaping the store."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.services import Services
from actor_maker.errors import InputError, NotFoundError
from actor_maker.store.base import check_key
from actor_maker.thumbnails import ensure_thumbnail, thumbnail_key

router = APIRouter(tags=["files"])


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
    await asyncio.to_thread(
        ensure_thumbnail, services.store, key, max_pixels=services.settings.max_image_pixels
    )
    return await _serve(services, thumb_key, max_age=86400)
