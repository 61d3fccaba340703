"""Helpers every part of the old frontend's routes uses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import Request

from actor_maker.api.errors import ProblemWithFields
from actor_maker.api.services import Services
from actor_maker.errors import ActorMakerError, InputError
from actor_maker.manifest import Manifest, read_manifest, require_manifest
from actor_maker.pipeline import BaseImage, StoredBase
from actor_maker.store.base import check_key
from actor_maker.validation import check_actor_id, check_actor_name

#: Recorded in trash records: the change came through the API.
VIA = "api"

#: The path of the API's file route; ``loadable_url`` answers URLs under it.
FILES_PATH = "/api/files/"


@contextmanager
def old_style_errors() -> Iterator[None]:
    """Our errors, answered with the old frontend's ``success: false`` and ``error`` added."""
    try:
        yield
    except ProblemWithFields:
        raise
    except ActorMakerError as exc:
        raise failure(str(exc), exc.status, type(exc).__name__) from exc


def failure(message: str, status: int, error_type: str, **fields: Any) -> ProblemWithFields:
    return ProblemWithFields(
        message,
        status=status,
        error_type=error_type,
        fields={"success": False, "error": message, **fields},
    )


async def load_manifest(services: Services, actor_id: str) -> Manifest:
    return await asyncio.to_thread(require_manifest, services.store, actor_id)


def same_name(manifest: Manifest, actor_name: str) -> None:
    check_actor_name(actor_name)
    if manifest.actor_name and manifest.actor_name != actor_name:
        raise InputError(
            f"actor {manifest.actor_id} is named {manifest.actor_name!r}, not {actor_name!r}"
        )


def resolve_actor_id(services: Services, value: int | str) -> str:
    """A body's actor id: the string as given. A JSON number ``n`` is ``str(n)``, or
    ``f"{n:04d}"`` when only that actor has a manifest (the old ids are "0012")."""
    plain = check_actor_id(str(value))
    if isinstance(value, int) and value >= 0 and read_manifest(services.store, plain) is None:
        padded = f"{value:04d}"
        if read_manifest(services.store, padded) is not None:
            return padded
    return plain


def loadable_url(
    services: Services, request: Request, s3_url: Any, key: str | None, status: Any = None
) -> Any:
    """What the old frontend reads as ``s3_url``/``base_image_url``: the entry's S3 URL
    where it has one; for a local store's object (no S3 URL, stored: ``status`` synced or
    absent) the absolute URL of this server's file route; else as it is (null)."""
    if s3_url or not key or status not in (None, "synced"):
        return s3_url
    url = services.browser_url(key)
    if url and url.startswith("/"):  # a local store; S3 entries keep what they have
        return str(request.base_url).rstrip("/") + url
    return s3_url


def base_ref(request: Request, url: str | None) -> BaseImage | None:
    """A ``base_image_url`` as sent: this server's own file URL (what the listing gave a
    local store's actor) is that object in the store; anything else goes on as given."""
    if not url:
        return None
    parts = urlsplit(url)
    own = not parts.scheme or (
        parts.scheme in ("http", "https") and parts.netloc == request.base_url.netloc
    )
    root = request.base_url.path.rstrip("/")
    prefix = root + FILES_PATH
    if own and not parts.query and parts.path.startswith(prefix):
        key = check_key(unquote(parts.path[len(prefix) :]))
        if not key.startswith("system_actors/"):
            raise InputError("base_image_url: not an image of this server's store")
        return StoredBase(key)
    return url
