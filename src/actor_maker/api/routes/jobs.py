"""Jobs: start, list, read, cancel, retry, resume, and their live event streams (SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field, model_validator
from sse_starlette.sse import EventSourceResponse

from actor_maker import actors as actor_ops
from actor_maker.api import sse
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.services import Services
from actor_maker.errors import NotFoundError
from actor_maker.jobs.models import Job, JobKind, JobState
from actor_maker.manifest import no_manifest, read_manifest
from actor_maker.pipeline import Actor
from actor_maker.validation import MAX_PROMPT_LENGTH, check_actor_id

router = APIRouter(tags=["jobs"])


class JobRequest(BaseModel):
    """What to generate for an actor: every missing library prompt (default), chosen
    library prompts, or your own prompts."""

    prompt_ids: list[str] | None = Field(default=None, max_length=500)
    prompts: list[Annotated[str, Field(max_length=MAX_PROMPT_LENGTH)]] | None = Field(
        default=None, max_length=100
    )
    aspect_ratio: str = Field(default="1:1", max_length=20)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    model: str | None = Field(default=None, max_length=200)
    max_cost: float | None = Field(default=None, ge=0)
    actor_name: str | None = Field(default=None, max_length=128)
    base_image_url: str | None = Field(default=None, max_length=2048)

    @model_validator(mode="after")
    def _one_kind(self) -> JobRequest:
        if self.prompt_ids and self.prompts:
            raise ValueError("give prompt_ids or prompts, not both")
        return self

    @property
    def kind(self) -> JobKind:
        if self.prompts:
            return JobKind.custom
        return JobKind.subset if self.prompt_ids else JobKind.all


@router.post("/api/actors/{actor_id}/jobs", status_code=201)
async def start_job(
    actor_id: str, body: JobRequest, response: Response, services: ServicesDep
) -> Job:
    """Start a job. A "generate all" for an actor with a job already queued or running
    answers 200 with that job instead of starting (and paying for) another."""
    check_actor_id(actor_id)
    manifest = await asyncio.to_thread(read_manifest, services.store, actor_id)
    manifest_name = manifest.actor_name if manifest else None
    name = body.actor_name or manifest_name
    if not name:
        raise NotFoundError(f"{no_manifest(actor_id)}; give actor_name and base_image_url")
    if manifest_name is None:  # a first job creates the actor: its name must be free
        await asyncio.to_thread(actor_ops.check_name_free, services.store, name, actor_id)
    job, created = await services.start_job(
        Actor(actor_id, name),
        kind=body.kind,
        prompt_ids=body.prompt_ids,
        prompts=body.prompts,
        aspect_ratio=body.aspect_ratio,
        seed=body.seed,
        model=body.model,
        max_cost=body.max_cost,
        base_image=body.base_image_url,
        manifest=manifest,
    )
    if not created:
        response.status_code = 200
    return job


@router.get("/api/jobs")
async def list_jobs(
    response: Response,
    services: ServicesDep,
    actor_id: Annotated[str | None, Query(max_length=128)] = None,
    state: Annotated[list[JobState] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[Job]:
    """Jobs, newest first; filter by actor and state (repeat `state` for several)."""
    records = services.records
    jobs = await asyncio.to_thread(
        records.list, actor_id=actor_id, states=state, limit=per_page, offset=(page - 1) * per_page
    )
    response.headers["X-Total-Count"] = str(
        await asyncio.to_thread(records.count, actor_id=actor_id, states=state)
    )
    return jobs


async def _job(services: Services, job_id: str) -> Job:
    job: Job | None = await asyncio.to_thread(services.records.get, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return job


@router.get("/api/jobs/{job_id}")
async def get_job(job_id: str, services: ServicesDep) -> Job:
    return await _job(services, job_id)


@router.post("/api/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, services: ServicesDep) -> Job:
    """Start nothing new, cancel in-flight predictions; images already paid for are kept."""
    return await services.jobs.cancel(job_id)


@router.post("/api/jobs/{job_id}/retry-failed", status_code=201)
async def retry_failed(job_id: str, services: ServicesDep) -> Job:
    """A new job with the failed and canceled items of a finished job."""
    return await services.jobs.retry_failed(job_id)


@router.post("/api/jobs/{job_id}/resume")
async def resume_job(job_id: str, services: ServicesDep) -> Job:
    """Run an unfinished job whose runner is gone (refused while another process runs it)."""
    return await services.jobs.resume(job_id)


@router.get("/api/jobs/{job_id}/events", **sse.ROUTE)
async def job_events(
    job_id: str,
    request: Request,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Server-Sent Events: `progress` first (the current state), then `job_started`,
    `item_started`, `item_succeeded` (data: the manifest entry), `item_failed` (data: the
    reason), `progress` (counts) and `job_finished` (the job), after which the stream ends.
    Without `Last-Event-ID` the stream starts at the latest event (what happens from now on)."""
    job = await _job(services, job_id)
    records = services.records

    async def newer(after: int, limit: int = 1000) -> list[sse.Event]:
        events = await asyncio.to_thread(records.events_since, job_id, after, limit)
        return [(e.seq, e.name, e.data) for e in events]

    async def stream() -> AsyncIterator[dict[str, str]]:
        seen = await newer(0, 100_000)
        last = sse.resume_after(last_event_id, seen[-1][0] if seen else 0)
        yield sse.event("progress", job.progress())
        if job.state.finished:
            yield sse.event("job_finished", job.model_dump(mode="json"), last)
            return
        async for sent in sse.follow(
            request.is_disconnected, newer, after=last, final={"job_finished"}
        ):
            yield sent

    return sse.respond(stream())
