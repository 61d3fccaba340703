"""Quality: a person's review, re-checks, and the actor's balance."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from actor_maker import balance as balance_lib
from actor_maker.api.routes.actors import VIA
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.services import Services
from actor_maker.errors import ConflictError
from actor_maker.jobs.models import Job
from actor_maker.manifest import Manifest, require_manifest
from actor_maker.pipeline import Actor
from actor_maker.quality.review import recheck, set_override, summary
from actor_maker.runtime import make_checker
from actor_maker.validation import check_actor_id

router = APIRouter(tags=["quality"])


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
    entries = await asyncio.to_thread(recheck, services.store, check_actor_id(actor_id), checker)
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
    manifest = require_manifest(services.store, actor_id)
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
    job, created = await services.start_items_job(
        Actor(actor_id, manifest.actor_name),
        items,
        max_cost=body.max_cost,
        context={"balance": {"target": found.to_json()["target"], "size": body.size}},
        manifest=manifest,
    )
    if not created:  # a concurrent request started it a moment ago
        response.status_code = 200
    return job


# --- export: the actor's dataset as a downloadable zip ---------------------------------------
