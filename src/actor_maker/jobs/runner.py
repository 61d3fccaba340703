"""The in-process job runner (embedded mode).

Runs each job as an asyncio task holding a lease on its record: a heartbeat
renews the lease and notices cancel requests made by any process. A watchdog
resumes jobs whose runner died (lease expired). A resumed job skips the items
its earlier run already stored (entries carry ``generation.job_id``), so it
finishes without duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from actor_maker import metrics
from actor_maker.errors import ActorMakerError, ConflictError, NotFoundError
from actor_maker.jobs.models import ItemState, Job, JobItem, JobKind, JobState, now
from actor_maker.jobs.records import JobRecords
from actor_maker.manifest import Entry, read_manifest
from actor_maker.pipeline import Actor, Event, ItemResult, JobPlan, Pipeline, StoredBase
from actor_maker.pipeline import JobItem as PlanItem
from actor_maker.quality import effective_verdict
from actor_maker.store.base import ObjectStore

log = logging.getLogger(__name__)

#: Called after every change of a job (the API wakes its event streams with it).
Listener = Callable[[str], None]


async def active_job(records: JobRecords, actor_id: str, kind: JobKind | None) -> Job | None:
    """A queued or running job of the actor (of ``kind``, if given): to answer a double
    click with the job already under way instead of paying twice."""
    jobs = await asyncio.to_thread(
        records.list, actor_id=actor_id, states=[JobState.queued, JobState.running], limit=100
    )
    return next((j for j in jobs if kind is None or j.kind == kind), None)


async def retryable(records: JobRecords, job_id: str) -> Job:
    """The retry of a finished job's failed items (not yet submitted)."""
    job = await asyncio.to_thread(records.get, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    if not job.state.finished:
        raise ConflictError(f"job {job_id} is still {job.state.value}")
    if job.failed == 0:
        raise ConflictError(f"job {job_id} has no failed items")
    return job.retry()


class Runner(Protocol):
    """Where jobs run: in this process (``JobRunner``) or on queue workers (``QueueRunner``)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def submit(self, job: Job) -> Job: ...
    async def active_job(self, actor_id: str, kind: JobKind | None = None) -> Job | None: ...
    async def cancel(self, job_id: str) -> Job: ...
    async def resume(self, job_id: str) -> Job: ...
    async def retry_failed(self, job_id: str) -> Job: ...


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def job_from_plan(plan: JobPlan, **fields: Any) -> Job:
    """A new job record for ``plan``."""
    items = [
        JobItem(
            prompt_id=i.prompt_id, prompt=i.prompt, category=i.category, face_visible=i.face_visible
        )
        for i in plan.items
    ]
    return Job(
        actor_id=plan.actor.actor_id,
        actor_name=plan.actor.actor_name,
        actor_type=plan.actor.actor_type,
        actor_sex=plan.actor.actor_sex,
        items=items,
        aspect_ratio=plan.aspect_ratio,
        model=plan.model,
        estimated_cost=plan.estimated_cost,
        **fields,
    )


class JobRunner:
    def __init__(
        self,
        *,
        records: JobRecords,
        pipelines: Callable[[str], Pipeline],
        lease_ttl_s: float = 15.0,
        watch_interval_s: float = 5.0,
        owner: str | None = None,
    ) -> None:
        self.records = records
        #: The pipeline for a job's model.
        self.pipelines = pipelines
        self.lease_ttl_s = lease_ttl_s
        self.watch_interval_s = watch_interval_s
        self.owner = owner or default_owner()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._listeners: list[Listener] = []
        self._watchdog: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._watchdog = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop running jobs without finishing them: another runner resumes them."""
        tasks = [t for t in (self._watchdog, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # --- requests -------------------------------------------------------------------
    async def submit(self, job: Job) -> Job:
        await asyncio.to_thread(self.records.create, job)
        self._launch(job.id)
        return job

    async def active_job(self, actor_id: str, kind: JobKind | None = None) -> Job | None:
        return await active_job(self.records, actor_id, kind)

    async def cancel(self, job_id: str) -> Job:
        job = await self._get(job_id)
        if job.state.finished:
            return job
        await asyncio.to_thread(self.records.request_cancel, job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        elif await asyncio.to_thread(
            self.records.acquire_lease, job_id, self.owner, self.lease_ttl_s
        ):
            # nobody runs it: finish the record here
            job = await self._get(job_id)
            await self._finish(job, canceled=True)
        return await self._get(job_id)

    async def resume(self, job_id: str) -> Job:
        job = await self._get(job_id)
        if job.state.finished:
            raise ConflictError(f"job {job_id} is {job.state.value}; nothing to resume")
        holder = await asyncio.to_thread(self.records.lease_owner, job_id)
        if holder is not None and holder != self.owner:
            raise ConflictError(f"job {job_id} is being run by {holder}")
        self._launch(job_id)
        return job

    async def retry_failed(self, job_id: str) -> Job:
        return await self.submit(await retryable(self.records, job_id))

    # --- running ----------------------------------------------------------------------
    def _launch(self, job_id: str) -> None:
        if job_id in self._tasks:
            return
        task = asyncio.create_task(self._execute(job_id), name=f"job {job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))

    async def _watch(self) -> None:
        while True:
            try:
                for job in await asyncio.to_thread(self.records.orphaned):
                    if job.id not in self._tasks:
                        log.info("resuming job %s (its runner is gone)", job.id)
                        self._launch(job.id)
            except ActorMakerError as exc:
                log.warning("job watchdog: %s", exc)
            await asyncio.sleep(self.watch_interval_s)

    async def _execute(self, job_id: str) -> None:
        if not await asyncio.to_thread(
            self.records.acquire_lease, job_id, self.owner, self.lease_ttl_s
        ):
            return  # someone else runs it
        job = await self._get(job_id)
        if job.state.finished:
            await asyncio.to_thread(self.records.release_lease, job_id, self.owner)
            return
        heartbeat = asyncio.create_task(self._heartbeat(job_id, asyncio.current_task()))
        try:
            if job.cancel_requested:
                await self._finish(job, canceled=True)
                return
            await self._run(job)
        except asyncio.CancelledError:
            latest = await self._get(job_id)
            if not latest.cancel_requested:  # shutting down or lease lost: leave it to resume
                await asyncio.to_thread(self.records.release_lease, job_id, self.owner)
                raise
            job.cancel_requested = True
            await self._finish(job, canceled=True)
        except ActorMakerError as exc:
            job.error = str(exc)
            await self._finish(job)
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, job_id: str, run: asyncio.Task[Any] | None) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl_s / 3)
            kept = await asyncio.to_thread(
                self.records.renew_lease, job_id, self.owner, self.lease_ttl_s
            )
            job = await asyncio.to_thread(self.records.get, job_id)
            if run is not None and (not kept or (job is not None and job.cancel_requested)):
                run.cancel()
                return

    async def _run(self, job: Job) -> None:
        pipeline = self.pipelines(job.model)
        self._mark_done_items(job, pipeline)
        job.state = JobState.running
        job.started_at = job.started_at or now()
        await self._save(job, "job_started", job.model_dump(mode="json"))
        remaining = [i for i in job.items if i.state in (ItemState.queued, ItemState.running)]
        if remaining:
            if job.base_image_key is None:
                raise NotFoundError(f"job {job.id} has no base image to work from")
            actor = Actor(job.actor_id, job.actor_name, job.actor_type, job.actor_sex)
            items = [PlanItem(i.prompt_id, i.prompt, i.category, i.face_visible) for i in remaining]
            plan = pipeline.plan_items(actor, items, aspect_ratio=job.aspect_ratio)
            by_id = {i.prompt_id: i for i in remaining}
            result = await pipeline.run(
                plan,
                StoredBase(job.base_image_key),
                seed=job.seed,
                job_id=job.id,
                on_event=lambda event: self._on_event(job, by_id, event),
            )
            if result.fatal is not None:
                job.error = str(result.fatal)
        await self._finish(job)

    @staticmethod
    def _mark_done_items(job: Job, pipeline: Pipeline) -> None:
        """Items an earlier run of this job stored already count as done."""
        stored = stored_by_job(pipeline.store, job)
        for item in job.items:
            entry = stored.get(item.prompt_id)
            if entry is not None and item.state != ItemState.succeeded:
                record_entry(item, entry)

    def _on_event(self, job: Job, items: dict[str, JobItem], event: Event) -> None:
        if event.item is None:
            return
        item = items[event.item.prompt_id]
        record_result(item, event.item)
        if event.kind == "item_started":
            self._save_sync(
                job, "item_started", {"prompt_id": item.prompt_id, "prompt": item.prompt}
            )
        elif event.kind == "item_succeeded":
            # data: the new manifest entry
            self._save_sync(job, "item_succeeded", dict(event.item.entry or {}))
            self._event_sync(job, "progress", job.progress())
        elif event.kind == "item_failed":
            self._save_sync(job, "item_failed", {"prompt_id": item.prompt_id, "error": item.error})
            self._event_sync(job, "progress", job.progress())

    async def _finish(self, job: Job, *, canceled: bool = False) -> None:
        for item in job.items:
            if item.state in (ItemState.queued, ItemState.running):
                item.state = ItemState.canceled
                item.error = item.error or ("canceled" if canceled else "not run")
        job.state = JobState.canceled if canceled else job.final_state()
        if job.error and job.state == JobState.succeeded:
            job.state = JobState.failed
        job.finished_at = now()
        metrics.observe_job_span(job.state.value, job.started_at or job.created_at, job.finished_at)
        await self._save(job, "job_finished", job.model_dump(mode="json"))
        await asyncio.to_thread(self.records.release_lease, job.id, self.owner)

    # --- records --------------------------------------------------------------------
    async def _get(self, job_id: str) -> Job:
        job = await asyncio.to_thread(self.records.get, job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    async def _save(self, job: Job, event: str, data: dict[str, Any]) -> None:
        await asyncio.to_thread(self._save_sync, job, event, data)

    def _save_sync(self, job: Job, event: str, data: dict[str, Any]) -> None:
        self.records.save(job)
        self._event_sync(job, event, data)

    def _event_sync(self, job: Job, event: str, data: dict[str, Any]) -> None:
        self.records.append_event(job.id, event, data)
        for listener in self._listeners:
            listener(job.id)


def stored_by_job(store: ObjectStore, job: Job) -> dict[str, Entry]:
    """The manifest entries this job's runs stored, by prompt id (how a resumed or
    redelivered item knows it was done already)."""
    manifest = read_manifest(store, job.actor_id)
    if manifest is None:
        return {}
    return {
        str(e.get("prompt_id")): e
        for e in manifest.training_data
        if isinstance(e.get("generation"), dict) and e["generation"].get("job_id") == job.id
    }


def record_result(item: JobItem, result: ItemResult) -> None:
    """Copy what the pipeline reported for an item onto the job record's item."""
    item.state = ItemState(result.state)
    item.error = result.error
    item.filename, item.index, item.key, item.s3_url = (
        result.filename,
        result.index,
        result.key,
        result.s3_url,
    )
    item.seed, item.cost, item.verdict = result.seed, result.cost, result.verdict


def record_entry(item: JobItem, entry: Entry) -> None:
    """The item is done: an earlier run stored ``entry`` for it."""
    item.state, item.error = ItemState.succeeded, None
    item.filename, item.key, item.s3_url = entry["filename"], entry.get("key"), entry.get("s3_url")
    item.cost = (entry.get("generation") or {}).get("cost")
    item.verdict = effective_verdict(entry)
