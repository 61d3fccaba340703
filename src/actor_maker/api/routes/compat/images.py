"""Training images and flags: the listing, deleting (to the trash) and the `good` toggles."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from actor_maker import actors as actor_ops
from actor_maker.api.routes.compat._common import (
    VIA,
    load_manifest,
    loadable_url,
    resolve_actor_id,
    same_name,
)
from actor_maker.api.routes.compat.bodies import ActorRefBody, DeleteBody, ForActor
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.services import Services
from actor_maker.layout import BASE_IMAGE_PREFIX, index_of, object_key_of, training_prefix
from actor_maker.manifest import Entry, Manifest
from actor_maker.quality import effective_verdict
from actor_maker.trash import TrashRecord
from actor_maker.validation import check_actor_id

router = APIRouter(tags=["old frontend"])


@router.get("/api/actors/{actor_id}/training-data")
async def training_data(actor_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """The actor's training images; `url` (and `base_image`) are what a browser can load.
    `s3_url` and `base_image_url` are the S3 URLs, or for a local store this server's
    absolute `/api/files/...` URLs (the old frontend loads and sends back these two)."""
    manifest = await load_manifest(services, actor_id)
    entries = manifest.training_data
    base = manifest.base_images[0] if manifest.base_images else None
    base_key = object_key_of(services.store, base, BASE_IMAGE_PREFIX) if base else None
    return {
        "actor_id": manifest.actor_id or actor_id,
        "actor_name": manifest.actor_name,
        "training_images": [
            _image(services, request, manifest, n, e) for n, e in enumerate(entries)
        ],
        "base_image_url": (
            loadable_url(services, request, base.get("s3_url"), base_key) if base else None
        ),
        "base_image": services.browser_url(base_key),
        "base_thumbnail": services.thumbnail_url(base_key),
        "has_base_image": base is not None,
        "total_count": len(entries),
        "manifest_updated": manifest.data.get("training_data_updated"),
        "training_data_good": bool(manifest.data.get("training_data_good")),
    }


def _image(
    services: Services, request: Request, manifest: Manifest, position: int, entry: Entry
) -> dict[str, Any]:
    filename = str(entry["filename"])
    index = index_of(filename)
    key = object_key_of(services.store, entry, training_prefix(manifest.actor_name))
    return {
        "index": position if index is None else index,
        "filename": filename,
        "s3_url": loadable_url(services, request, entry.get("s3_url"), key, entry.get("status")),
        "status": entry.get("status"),
        "size_mb": entry.get("size_mb"),
        "modified_date": entry.get("modified_date"),
        "good": bool(entry.get("good")),
        "prompt": entry.get("prompt"),
        "prompt_id": entry.get("prompt_id"),
        "aspect_ratio": entry.get("aspect_ratio"),
        "key": key,
        "url": services.browser_url(key),
        "thumbnail": services.thumbnail_url(key),
        "verdict": effective_verdict(entry),
        "quality_reasons": (entry.get("quality") or {}).get("reasons", []),
    }


@router.post("/api/actors/{actor_id}/training-data/delete")
async def delete_image(actor_id: str, body: DeleteBody, services: ServicesDep) -> dict[str, Any]:
    """Remove one entry and move its object to the trash; statistics are recomputed."""
    manifest = await load_manifest(services, actor_id)
    same_name(manifest, body.actor_name)
    record = await asyncio.to_thread(
        actor_ops.delete_image, services.store, manifest.actor_id, body.filename, via=VIA
    )
    return _deleted(record)


@router.post("/api/actors/{actor_id}/training-data/delete-all")
async def delete_all_images(actor_id: str, body: ForActor, services: ServicesDep) -> dict[str, Any]:
    """Remove every entry and move their objects to the trash; the actor stays. `deleted`
    is how many (the old frontend prints it), `filenames` which."""
    manifest = await load_manifest(services, actor_id)
    same_name(manifest, body.actor_name)
    record = await asyncio.to_thread(
        actor_ops.delete_all_images, services.store, manifest.actor_id, via=VIA
    )
    filenames = [str(e["filename"]) for e in record.entries]
    return {
        "success": True,
        "deleted": len(filenames),
        "filenames": filenames,
        "trash_id": record.trash_id,
    }


def _deleted(record: TrashRecord) -> dict[str, Any]:
    return {
        "success": True,
        "deleted": [str(e["filename"]) for e in record.entries],
        "trash_id": record.trash_id,
    }


@router.post("/api/actors/{actor_id}/training-data/{filename}/toggle-good")
async def toggle_image_good(actor_id: str, filename: str, services: ServicesDep) -> dict[str, bool]:
    """Toggle a training image's `good` flag."""
    good = await asyncio.to_thread(
        actor_ops.set_good, services.store, check_actor_id(actor_id), filename
    )
    return {"good": good}


@router.post("/api/actors/{actor_id}/toggle-good")
async def toggle_actor_good(actor_id: str, services: ServicesDep) -> dict[str, bool]:
    """Toggle the actor's `good` flag."""
    good = await asyncio.to_thread(
        actor_ops.toggle_actor_good, services.store, check_actor_id(actor_id)
    )
    return {"good": good}


@router.post("/api/training/training-data/toggle-good")
async def toggle_training_data_good(body: ActorRefBody, services: ServicesDep) -> dict[str, bool]:
    """Toggle the manifest's `training_data_good`. `actorId` is a string ("0012") or a number
    (12: actor "12", or "0012" when only that one exists)."""
    actor_id = await asyncio.to_thread(resolve_actor_id, services, body.actor_id)
    good = await asyncio.to_thread(actor_ops.toggle_training_data_good, services.store, actor_id)
    return {"good": good}
