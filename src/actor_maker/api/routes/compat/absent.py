"""The old server's features this server does not have: a clear 501, never a bare 404.

The old frontend shows the ``error`` member of a failed answer, so the user reads why the
button did nothing instead of a "Not Found".
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from actor_maker.api.errors import ProblemWithFields
from actor_maker.api.routes.compat._common import failure
from actor_maker.validation import check_actor_id

router = APIRouter(tags=["old frontend"])

_NOT_HERE: dict[int | str, dict[str, Any]] = {
    501: {"description": "Not part of this server (problem+json with `success: false`)."}
}


def _not_here(feature: str, instead: str) -> ProblemWithFields:
    return failure(
        f"{feature} is not part of Actor Maker's server; {instead}", 501, "NotImplemented"
    )


@router.post("/api/actors/{actor_id}/regenerate-poster-frame", responses=_NOT_HERE)
async def regenerate_poster_frame(actor_id: str) -> None:
    """Not part of this server: the actor listing's poster frames are thumbnails of the
    base image, made on first request. Answers 501."""
    check_actor_id(actor_id)
    raise _not_here(
        "regenerating poster frames",
        "the poster frame is the base image's thumbnail; change the base image instead",
    )


@router.post("/api/generate-base-image", responses=_NOT_HERE)
async def generate_base_image() -> None:
    """Not part of this server: an actor starts from a base image you upload. Answers 501."""
    raise _not_here(
        "generating a base image from a description",
        "create the actor from an image you upload (the UI's New actor, or POST /api/actors)",
    )
