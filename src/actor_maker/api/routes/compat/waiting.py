"""Running a job to its end for the routes that wait, and reading it back in the CLI's shapes."""

from __future__ import annotations

import asyncio

from fastapi import Request

from actor_maker.api.routes.compat._common import failure
from actor_maker.api.services import Services
from actor_maker.errors import NotFoundError, error_class
from actor_maker.jobs.models import ItemState, Job, JobItem, JobKind
from actor_maker.manifest import Manifest
from actor_maker.pipeline import Actor, BaseImage

#: How often a waiting route looks at its job's record.
WAIT_POLL_S = 0.2


def wants_async(prefer: str | None) -> bool:
    tokens = (part.split(";")[0].strip().lower() for part in (prefer or "").split(","))
    return "respond-async" in tokens


async def wait_finished(services: Services, job_id: str, request: Request) -> Job:
    """The job once it has finished, or as it is when the client has gone away (the job
    goes on regardless). Reads the record, so a job another process resumed counts too."""
    while True:
        job = await asyncio.to_thread(services.records.get, job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        if job.state.finished or await request.is_disconnected():
            return job
        await asyncio.sleep(WAIT_POLL_S)


def check_ran(job: Job) -> None:
    """A job that stopped as a whole (no base image, the provider refused the token): the
    status comes from the error's type, kept in the record."""
    if job.error:
        cls = error_class(job.error_type)
        status = cls.status if job.error_type else 502
        raise failure(job.error, status, job.error_type or "JobFailed", job_id=job.id)


def only_item(job: Job) -> JobItem:
    check_ran(job)
    item = job.items[0]
    if item.state != ItemState.succeeded:
        reason = item.error or item.state.value
        status, kind = (
            (409, "Canceled") if item.state == ItemState.canceled else (502, "ItemFailed")
        )
        raise failure(reason, status, kind, job_id=job.id, prompt=item.prompt)
    return item


async def one_image(
    services: Services,
    request: Request,
    actor: Actor,
    prompt: str,
    aspect_ratio: str,
    base_image: BaseImage | None,
    prompt_id: str | None,
    manifest: Manifest | None,
) -> tuple[Job, JobItem]:
    """A job for one prompt, run to its end; its item when it succeeded. With ``prompt_id``
    (the prompt is that library prompt) the image is recorded under that id, else under
    the prompt's ``custom-…`` id. ``manifest``: the actor's, as the caller read it."""
    job, _ = await services.start_job(
        actor,
        kind=JobKind.subset if prompt_id else JobKind.custom,
        prompt_ids=[prompt_id] if prompt_id else None,
        prompts=None if prompt_id else [prompt],
        aspect_ratio=aspect_ratio,
        base_image=base_image,
        context={"route": "old frontend"},
        manifest=manifest,
    )
    job = await wait_finished(services, job.id, request)
    return job, only_item(job)
