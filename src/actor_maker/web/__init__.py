"""The web UI: server-rendered page shells (Jinja2) plus plain JavaScript that calls the API.

The pages carry no data (every actor, image and job comes from the protected JSON API), so
they and ``/static/`` are open without the token (``api.auth.OPEN_PAGES``); the page asks
for the token when the API answers 401. Two small JSON helpers live under ``/ui/api/`` and
stay protected:

- ``GET /ui/api/actors/{actor_id}/plan`` — what "generate all" would make: count and cost.
- ``GET /ui/api/actors/{actor_id}/neighbors`` — the previous and next actor ids.

``STATIC_DIR`` is mounted at ``/static`` by ``create_app``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from actor_maker import __version__
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.manifest import require_manifest
from actor_maker.pipeline import Actor
from actor_maker.prompts import ACTOR_TYPES
from actor_maker.validation import ASPECT_RATIOS, check_actor_id

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {
            "version": __version__,
            "actor_types": ACTOR_TYPES,
            "aspect_ratios": ASPECT_RATIOS,
            **context,
        },
    )


@router.get("/", response_class=HTMLResponse)
def actors_page(request: Request) -> HTMLResponse:
    return _page(request, "actors.html", page="actors", title="Actors")


@router.get("/actors/{actor_id}", response_class=HTMLResponse)
def actor_page(request: Request, actor_id: str) -> HTMLResponse:
    check_actor_id(actor_id)
    return _page(request, "actor.html", page="actor", title=f"Actor {actor_id}", actor_id=actor_id)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html", page="jobs", title="Jobs")


@router.get("/trash", response_class=HTMLResponse)
def trash_page(request: Request) -> HTMLResponse:
    return _page(request, "trash.html", page="trash", title="Trash")


@router.get("/ui/api/actors/{actor_id}/plan")
async def plan(
    actor_id: str,
    services: ServicesDep,
    aspect_ratio: Annotated[str, Query(max_length=20)] = "1:1",
) -> dict[str, Any]:
    """What "generate all missing prompts" would make now, without starting anything."""
    manifest = await asyncio.to_thread(require_manifest, services.store, actor_id)
    pipeline = services.pipeline()
    found = await asyncio.to_thread(
        pipeline.plan_all, Actor(actor_id, manifest.actor_name), aspect_ratio=aspect_ratio
    )
    return {
        "count": len(found.items),
        "estimated_cost": found.estimated_cost,
        "price": found.price,
        "model": found.model,
        "already_done": len(found.already_done),
        #: Which prompts: the page takes each off as its image lands during a job.
        "prompt_ids": [item.prompt_id for item in found.items],
    }


@router.get("/ui/api/actors/{actor_id}/neighbors")
async def neighbors(actor_id: str, services: ServicesDep) -> dict[str, str | None]:
    """The actors before and after this one in id order (null at either end)."""
    check_actor_id(actor_id)
    ids = [str(a["id"]) for a in await asyncio.to_thread(services.index.all)]
    if actor_id not in ids:
        return {"prev": None, "next": None}
    at = ids.index(actor_id)
    return {
        "prev": ids[at - 1] if at > 0 else None,
        "next": ids[at + 1] if at + 1 < len(ids) else None,
    }
