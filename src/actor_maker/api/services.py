"""What the routes share: settings, store, pipelines, job records and runner.

Built once when the application starts and kept on ``app.state.services``.
Starting a job is here (not in a route) because several routes do it: the new
jobs route and the old frontend's routes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actor_maker.api.actor_index import ActorIndex
from actor_maker.api.sessions import Sessions
from actor_maker.config import Settings
from actor_maker.errors import InputError
from actor_maker.fetch import redact_url
from actor_maker.jobs.models import DEDUPE_ALL, DEDUPE_BALANCE, Job, JobItem, JobKind
from actor_maker.jobs.records import JobRecords
from actor_maker.jobs.runner import Runner
from actor_maker.layout import base_key
from actor_maker.manifest import Manifest, read_manifest
from actor_maker.pipeline import Actor, BaseImage, JobPlan, Pipeline, StoredBase
from actor_maker.runtime import Runtime
from actor_maker.store.base import ObjectStore


@dataclass
class Services:
    runtime: Runtime
    #: Runs the jobs: in this process, or on the queue's workers in distributed mode.
    jobs: Runner
    sessions: Sessions | None
    index: ActorIndex
    #: The runtime's, at hand for the routes.
    settings: Settings = field(init=False)
    store: ObjectStore = field(init=False)
    records: JobRecords = field(init=False)

    def __post_init__(self) -> None:
        runtime = self.runtime
        self.settings, self.store, self.records = runtime.settings, runtime.store, runtime.records

    def pipeline(self, model: str | None = None) -> Pipeline:
        """The pipeline for a model (validated first; a bounded number are kept)."""
        return self.runtime.pipeline(model)

    async def aclose(self) -> None:
        """Stop the runner (unfinished jobs stay resumable) and release everything."""
        await self.jobs.stop()
        self.index.close()
        await self.runtime.aclose()

    async def start_job(
        self,
        actor: Actor,
        *,
        kind: JobKind,
        prompt_ids: Sequence[str] | None = None,
        prompts: Sequence[str] | None = None,
        aspect_ratio: str = "1:1",
        seed: int | None = None,
        model: str | None = None,
        max_cost: float | None = None,
        base_image: BaseImage | None = None,
        context: dict[str, Any] | None = None,
        manifest: Manifest | None = None,
    ) -> tuple[Job, bool]:
        """Plan, check the budget, secure the base image, submit. Returns (job, created).
        ``manifest``: the actor's, when the caller has just read it (else it is read here,
        once, for the plan and the base image).

        A "generate all" for an actor that already has a queued or running one answers
        with that job instead of paying twice: the records decide it atomically when the
        job is created (the look-up here only saves the planning).
        """
        if kind == JobKind.all:
            active = await self.jobs.active_job(actor.actor_id, kind=JobKind.all)
            if active is not None and active.dedupe_key == DEDUPE_ALL:
                return active, False
        pipeline = self.pipeline(model)
        if manifest is None:
            manifest = await asyncio.to_thread(read_manifest, self.store, actor.actor_id)
        plan = await asyncio.to_thread(
            self._plan, pipeline, actor, kind, prompt_ids, prompts, aspect_ratio, manifest
        )
        pipeline.check_budget(plan, self.settings.max_job_cost if max_cost is None else max_cost)
        ref = base_image
        if ref is None:
            ref = await asyncio.to_thread(self._manifest_base, actor, manifest)
        pipeline.check_base_image_ref(ref)
        key = await pipeline.prepare_base(plan.actor, ref)
        job = plan.to_job(
            kind=kind,
            provider=pipeline.provider.name,
            seed=seed,
            max_cost=max_cost,
            base_image_key=key,
            base_image_url=redact_url(ref) if isinstance(ref, str) else None,
            dedupe_key=DEDUPE_ALL if kind == JobKind.all else None,
            context=context or {},
        )
        return await self.jobs.submit(job)

    async def start_items_job(
        self,
        actor: Actor,
        items: Sequence[JobItem],
        *,
        max_cost: float | None = None,
        context: dict[str, Any] | None = None,
        manifest: Manifest,
    ) -> tuple[Job, bool]:
        """A job for exactly these items (e.g. what balance found missing), from the base
        image in the actor's ``manifest`` (as the caller read it), refused when over the
        cost ceiling. Items have no seed: each draws its own. At most one such job per actor
        runs at a time (a second request gets the running one)."""
        pipeline = self.pipeline()
        plan = await asyncio.to_thread(pipeline.plan_items, actor, items, aspect_ratio="1:1")
        pipeline.check_budget(plan, self.settings.max_job_cost if max_cost is None else max_cost)
        ref = await asyncio.to_thread(self._manifest_base, actor, manifest)
        key = await pipeline.prepare_base(plan.actor, ref)
        job = plan.to_job(
            kind=JobKind.custom,
            provider=pipeline.provider.name,
            seed=None,
            max_cost=max_cost,
            base_image_key=key,
            dedupe_key=DEDUPE_BALANCE,
            context=context or {},
        )
        return await self.jobs.submit(job)

    @staticmethod
    def _plan(
        pipeline: Pipeline,
        actor: Actor,
        kind: JobKind,
        prompt_ids: Sequence[str] | None,
        prompts: Sequence[str] | None,
        aspect_ratio: str,
        manifest: Manifest | None,
    ) -> JobPlan:
        if kind == JobKind.custom:
            return pipeline.plan_custom(actor, list(prompts or ()), aspect_ratio=aspect_ratio)
        if kind == JobKind.subset:
            if not prompt_ids:
                raise InputError("prompt_ids: choose at least one prompt")
            return pipeline.plan_all(
                actor,
                only=list(prompt_ids),
                force=True,
                aspect_ratio=aspect_ratio,
                manifest=manifest,
            )
        return pipeline.plan_all(actor, aspect_ratio=aspect_ratio, manifest=manifest)

    def _manifest_base(self, actor: Actor, manifest: Manifest | None) -> BaseImage:
        key = base_key(self.store, manifest.base_images) if manifest else None
        if key is not None:
            return StoredBase(key)
        raise InputError(
            f"actor {actor.actor_id} has no base image in the store; give base_image_url"
        )

    def browser_url(self, key: str | None) -> str | None:
        """A URL a browser can load: presigned for S3, the API's file route locally."""
        if not key:
            return None
        return self.store.presigned_url(key, expires_in=3600) or f"/api/files/{key}"

    def thumbnail_url(self, key: str | None) -> str | None:
        """The API's thumbnail route for an image (it makes the thumbnail on first request)."""
        return f"/api/thumbnails/{key}" if key else None
