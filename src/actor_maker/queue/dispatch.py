"""The API side of distributed mode: jobs become queue messages, one per item.

``QueueRunner`` answers the same calls as the in-process ``JobRunner`` (submit,
cancel, resume, retry, active job), so the routes do not care which mode runs.
Workers (queue/worker.py) do the generating; job records and events live in
Redis, so any API instance can serve any job.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dramatiq.brokers.redis import RedisBroker

from actor_maker.errors import ConflictError, NotFoundError
from actor_maker.jobs.models import ItemState, Job, JobKind
from actor_maker.jobs.records import JobRecords
from actor_maker.jobs.runner import active_job, create_job, retryable
from actor_maker.queue.broker import enqueue_item


class QueueRunner:
    def __init__(self, *, records: JobRecords, broker: RedisBroker) -> None:
        self.records = records
        self.broker = broker

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def submit(self, job: Job) -> tuple[Job, bool]:
        stored, created = await create_job(self.records, job)
        if not created:
            return stored, False
        if not job.items:
            return await self._settle(job.id), True
        await asyncio.to_thread(self._enqueue, job, [i.prompt_id for i in job.items])
        return job, True

    def _enqueue(self, job: Job, prompt_ids: list[str]) -> None:
        for prompt_id in prompt_ids:
            enqueue_item(self.broker, job.id, prompt_id)

    async def active_job(self, actor_id: str, kind: JobKind | None = None) -> Job | None:
        return await active_job(self.records, actor_id, kind)

    async def cancel(self, job_id: str) -> Job:
        """Queued items are canceled at once; running ones by their workers, which watch
        the flag and cancel their predictions (images already paid for are kept)."""
        await asyncio.to_thread(self.records.request_cancel, job_id)

        def change(job: Job) -> bool:
            for item in job.items:
                if item.state == ItemState.queued:
                    item.state, item.error = ItemState.canceled, "canceled"
            return True

        return await self._settle(job_id, change)

    async def resume(self, job_id: str) -> Job:
        """Enqueue the unfinished items again (deliveries are idempotent)."""
        job = await self._get(job_id)
        if job.state.finished:
            raise ConflictError(f"job {job_id} is {job.state.value}; nothing to resume")
        pending = [i.prompt_id for i in job.items if ItemState(i.state) not in _DONE]
        await asyncio.to_thread(self._enqueue, job, pending)
        return job

    async def retry_failed(self, job_id: str) -> Job:
        job, _ = await self.submit(await retryable(self.records, job_id))
        return job

    async def _get(self, job_id: str) -> Job:
        job = await asyncio.to_thread(self.records.get, job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    async def _settle(self, job_id: str, change: Any = None) -> Job:
        finished = False

        def settle(job: Job) -> bool:
            nonlocal finished
            changed = change(job) if change else False
            finished = job.settle()
            return bool(changed or finished)

        job = await asyncio.to_thread(self.records.modify, job_id, settle)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        if finished:
            await asyncio.to_thread(
                self.records.append_event, job_id, "job_finished", job.model_dump(mode="json")
            )
        return job


_DONE = (ItemState.succeeded, ItemState.failed, ItemState.canceled)
