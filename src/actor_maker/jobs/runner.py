"""The in-process job runner: the API's embedded mode and the CLI.

Runs each job as an asyncio task holding a lease on its record; the executor's keeper
thread renews the lease and notices cancel requests made by any process. A watchdog
resumes jobs whose runner died (lease expired). Items go through ``Pipeline.run_item``,
so a resumed job skips what an earlier run stored and polls the predictions it started.
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

from actor_maker.errors import ActorMakerError, ConflictError, NotFoundError
from actor_maker.fetch import redact_url
from actor_maker.jobs.executor import Keeper, close_job, run_items
from actor_maker.jobs.models import ItemState, Job, JobKind, JobState, now
from actor_maker.jobs.records import JobRecords
from actor_maker.pipeline.model import BaseImage, JobPlan
from actor_maker.pipeline.running import EventSink, JobSession, Pipeline

log = logging.getLogger(__name__)


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


async def active_job(records: JobRecords, actor_id: str, kind: JobKind | None) -> Job | None:
    """A queued or running job of the actor (of ``kind``, if given)."""
    jobs = await asyncio.to_thread(
        records.list, actor_id=actor_id, states=[JobState.queued, JobState.running], limit=100
    )
    return next((j for j in jobs if kind is None or j.kind == kind), None)


class Runner(Protocol):
    """Where jobs run: in this process (``JobRunner``) or on queue workers (``QueueRunner``)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def submit(self, job: Job) -> tuple[Job, bool]: ...
    async def active_job(self, actor_id: str, kind: JobKind | None = None) -> Job | None: ...
    async def cancel(self, job_id: str) -> Job: ...
    async def resume(self, job_id: str) -> Job: ...
    async def retry_failed(self, job_id: str) -> Job: ...


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def create_job(records: JobRecords, job: Job) -> tuple[Job, bool]:
    """Store ``job`` unless the actor has an active job with its ``dedupe_key`` (one atomic
    step in the records): returns (the job that holds the slot, whether it is ``job``)."""
    stored = await asyncio.to_thread(records.create, job)
    return stored, stored.id == job.id


#: An item's claim lasts this many leases: a runner that lost its lease to a starved
#: machine still holds the items it is paying for, long after another runner took the job.
CLAIM_LEASES = 4


class JobRunner:
    def __init__(
        self,
        *,
        records: JobRecords,
        pipelines: Callable[[str], Pipeline],
        lease_ttl_s: float = 15.0,
        watch_interval_s: float = 5.0,
        owner: str | None = None,
        watchdog: bool = True,
    ) -> None:
        self.records = records
        #: The pipeline for a job's model.
        self.pipelines = pipelines
        self.lease_ttl_s = lease_ttl_s
        self.watch_interval_s = watch_interval_s
        self.owner = owner or default_owner()
        self.watchdog = watchdog
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sessions: dict[str, JobSession] = {}
        self._listeners: list[EventSink] = []
        self._watchdog: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        if self.watchdog:
            self._watchdog = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop running jobs without finishing them: another runner resumes them."""
        tasks = [t for t in (self._watchdog, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def add_listener(self, listener: EventSink) -> None:
        self._listeners.append(listener)

    # --- requests -------------------------------------------------------------------
    async def submit(self, job: Job) -> tuple[Job, bool]:
        stored, created = await create_job(self.records, job)
        if created:
            self._launch(job.id)
        return stored, created

    async def run(self, job: Job) -> Job:
        """Submit ``job`` and wait for this process's run of it (the CLI)."""
        stored, created = await self.submit(job)
        if not created:
            raise ConflictError(
                f"actor {job.actor_id} already has job {stored.id} {stored.state.value}; "
                f"follow it with: actor-maker jobs watch {stored.id}"
            )
        task = self._tasks.get(job.id)
        if task is not None:  # shielded: the caller's cancel goes through ``cancel``
            await asyncio.shield(task)
        return await self._get(job.id)

    async def active_job(self, actor_id: str, kind: JobKind | None = None) -> Job | None:
        return await active_job(self.records, actor_id, kind)

    async def cancel(self, job_id: str) -> Job:
        job = await self._get(job_id)
        if job.state.finished:
            return job
        await asyncio.to_thread(self.records.request_cancel, job_id)
        task = self._tasks.get(job_id)
        if task is not None:
            session = self._sessions.get(job_id)
            if session is not None:  # in flight here: its items end canceled, not released
                session.canceled.set()
                session.stop.set()
            self._cancel_task(job_id)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        elif await asyncio.to_thread(
            self.records.acquire_lease, job_id, self.owner, self.lease_ttl_s
        ):
            self._launch(job_id)  # nobody runs it: a run here finishes the record
            task = self._tasks.get(job_id)
            if task is not None:
                await asyncio.wait({task})
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
        job, _ = await self.submit(await retryable(self.records, job_id))
        return job

    # --- running ----------------------------------------------------------------------
    def _launch(self, job_id: str) -> None:
        if job_id in self._tasks:
            return
        task = asyncio.create_task(self._execute(job_id), name=f"job {job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))

    def _cancel_task(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()

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

    def _emit(self, job_id: str, name: str, data: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(job_id, name, data)

    async def _execute(self, job_id: str) -> None:
        if not await asyncio.to_thread(
            self.records.acquire_lease, job_id, self.owner, self.lease_ttl_s
        ):
            return  # someone else runs it
        try:
            job = await self._get(job_id)
            if not job.state.finished:
                await self._run(job)
        except ActorMakerError as exc:
            await asyncio.to_thread(self._fail, job_id, exc)
        finally:
            await asyncio.to_thread(self.records.release_lease, job_id, self.owner)

    async def _run(self, job: Job) -> None:
        pipeline = self.pipelines(job.model)
        session = await pipeline.open_session(
            self.records,
            job,
            owner=self.owner,
            emit=self._emit,
            claim_s=self.lease_ttl_s * CLAIM_LEASES,
        )
        if job.cancel_requested:
            session.canceled.set()
        self._sessions[job.id] = session
        loop = asyncio.get_running_loop()
        keeper = Keeper(session, loop, interval_s=self.lease_ttl_s / 4, lease_s=self.lease_ttl_s)
        with keeper:
            if job.state.value == "queued":
                await asyncio.to_thread(self._started, job)
            if not session.canceled.is_set():
                try:
                    await run_items(pipeline, session, keeper, [i.prompt_id for i in job.items])
                except asyncio.CancelledError:
                    if not session.canceled.is_set():
                        raise  # shutting down: leave the job to be resumed
            await close_job(session)
        self._sessions.pop(job.id, None)
        # An empty job, or every item settled by others meanwhile: finish the record.
        await asyncio.to_thread(self._settle, job.id, session)

    def _started(self, job: Job) -> None:
        def change(current: Job) -> bool:
            if current.state.value != "queued":
                return False
            current.state, current.started_at = JobState.running, now()
            return True

        stored = self.records.modify(job.id, change)
        if stored is not None and stored.state == JobState.running:
            self.records.append_event(job.id, "job_started", stored.model_dump(mode="json"))
            self._emit(job.id, "job_started", {})

    def _settle(self, job_id: str, session: Any) -> None:
        finished = False

        def change(job: Job) -> bool:
            nonlocal finished
            finished = job.settle()
            return finished

        job = self.records.modify(job_id, change)
        if job is not None and finished:
            session.event("job_finished", job.model_dump(mode="json"))

    def _fail(self, job_id: str, exc: ActorMakerError) -> None:
        """The job could not run at all (e.g. its base image is gone): finish it failed."""
        finished = False

        def change(job: Job) -> bool:
            nonlocal finished
            for item in job.items:
                if item.open:
                    item.state, item.error = ItemState.canceled, f"not started: {exc}"
            job.error, job.error_type = str(exc), type(exc).__name__
            finished = job.settle()
            return True

        job = self.records.modify(job_id, change)
        if job is not None and finished:
            self.records.append_event(job_id, "job_finished", job.model_dump(mode="json"))
            self._emit(job_id, "job_finished", {})

    async def _get(self, job_id: str) -> Job:
        job = await asyncio.to_thread(self.records.get, job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job


async def prepared_job(
    pipeline: Pipeline, plan: JobPlan, base_image: BaseImage, **fields: Any
) -> Job:
    """The job record for ``plan`` once its base image is stored (the actor's manifest
    created if it had none): the base image's key, its URL without secrets, the provider;
    ``fields`` (kind, seed, dedupe key, context ...) go to ``JobPlan.to_job``."""
    key = await pipeline.prepare_base(plan.actor, base_image)
    url = redact_url(base_image) if isinstance(base_image, str) else None
    return plan.to_job(
        provider=pipeline.provider.name, base_image_key=key, base_image_url=url, **fields
    )


async def run_plan(
    pipeline: Pipeline,
    plan: JobPlan,
    base_image: BaseImage,
    *,
    records: JobRecords,
    seed: int | None = None,
    kind: JobKind = JobKind.all,
    dedupe_key: str | None = None,
    on_event: EventSink | None = None,
    lease_ttl_s: float = 15.0,
    context: dict[str, Any] | None = None,
) -> Job:
    """Record ``plan`` as a job and run it here to its end (the CLI and the demo): the same
    records, executor and item rule as the API, so the job id works with ``actor-maker jobs``
    and shows on the UI's Jobs page."""
    job = await prepared_job(
        pipeline,
        plan,
        base_image,
        kind=kind,
        seed=seed,
        dedupe_key=dedupe_key,
        context=context or {"via": "cli"},
    )
    runner = JobRunner(
        records=records, pipelines=lambda _model: pipeline, lease_ttl_s=lease_ttl_s, watchdog=False
    )
    if on_event is not None:
        runner.add_listener(on_event)
    try:
        return await runner.run(job)
    except asyncio.CancelledError:  # Ctrl-C: the job ends canceled (paid images are kept)
        await runner.cancel(job.id)
        raise
