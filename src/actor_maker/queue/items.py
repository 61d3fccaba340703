"""Processing one queued item: idempotent, so a redelivered message never pays twice.

Before generating, the worker checks the job record (a finished or canceled item
is acknowledged as is) and the actor's manifest (an entry of this job for this
prompt means an earlier delivery stored it). The item's state and the job's
completion are written with ``JobRecords.modify`` — atomic however many workers
finish items of one job at once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from actor_maker import metrics
from actor_maker.jobs.models import ItemState, Job, JobItem, JobState, now
from actor_maker.jobs.records import JobRecords
from actor_maker.jobs.runner import record_entry, record_result, stored_by_job
from actor_maker.pipeline import Actor, ItemResult, JobPlan, Pipeline, StoredBase
from actor_maker.pipeline import JobItem as PlanItem
from actor_maker.store.base import ObjectStore

log = logging.getLogger(__name__)


class BaseImageCache:
    """The last ``size`` base images a worker used, so an actor's items fetch it once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._images: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0

    async def get(self, store: ObjectStore, key: str) -> bytes:
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._images:
                self.fetches += 1
                self._images[key] = (await asyncio.to_thread(store.get, key)).data
                while len(self._images) > self.size:
                    self._images.popitem(last=False)
            self._locks.pop(key, None)
            return self._images[key]


def _entry_of(store: ObjectStore, job: Job, prompt_id: str) -> dict[str, Any] | None:
    """The manifest entry an earlier delivery of this item stored, if any."""
    return stored_by_job(store, job).get(prompt_id)


class ItemProcessor:
    def __init__(
        self,
        *,
        records: JobRecords,
        pipelines: Callable[[Job], Pipeline],
        cache: BaseImageCache,
        owner: str,
        claim_s: float = 60.0,
        cancel_poll_s: float = 1.0,
    ) -> None:
        self.records = records
        #: The pipeline for a job (its provider and model).
        self.pipelines = pipelines
        self.cache = cache
        #: Who this worker is, and how long its claim on an item lasts without renewal.
        self.owner = owner
        self.claim_s = claim_s
        self.cancel_poll_s = cancel_poll_s

    async def process(self, job_id: str, prompt_id: str) -> bool:
        """Handle one delivery. ``False``: another live delivery holds the item right now;
        the caller should look again later (that one may still die)."""
        job = await asyncio.to_thread(self.records.get, job_id)
        item = job.item(prompt_id) if job else None
        if job is None or item is None or item.state not in _OPEN:
            return True  # unknown, or done by an earlier delivery: acknowledge
        if job.cancel_requested:
            await self._finish(job_id, prompt_id, ItemState.canceled, error="canceled")
            return True
        pipeline = self.pipelines(job)
        entry = await asyncio.to_thread(_entry_of, pipeline.store, job, prompt_id)
        if entry is not None:
            await self._finish(job_id, prompt_id, ItemState.succeeded, entry=entry)
            return True
        claim = f"{self.owner}:{uuid.uuid4().hex[:8]}"  # this delivery, not just this process
        if not await self._claim(job_id, prompt_id, claim):
            latest = await asyncio.to_thread(self.records.get, job_id)
            held = latest.item(prompt_id) if latest else None
            return held is None or held.state not in _OPEN  # finished meanwhile, or busy
        await self._generate(job, item, pipeline, claim)
        return True

    async def _generate(self, job: Job, item: JobItem, pipeline: Pipeline, claim: str) -> None:
        if job.base_image_key is None:
            await self._finish(job.id, item.prompt_id, ItemState.failed, error="no base image")
            return
        base = StoredBase(
            job.base_image_key, await self.cache.get(pipeline.store, job.base_image_key)
        )
        actor = Actor(job.actor_id, job.actor_name, job.actor_type, job.actor_sex)
        planned = PlanItem(item.prompt_id, item.prompt, item.category, item.face_visible)
        # checked when the job was queued; no need to read the manifest again per item
        plan = JobPlan(actor, (planned,), job.model, 0.0, job.aspect_ratio)
        run = asyncio.create_task(
            pipeline.run(plan, base, seed=job.seed, job_id=job.id, ensure_actor=False)
        )
        canceled_by_job = asyncio.Event()
        watch = asyncio.create_task(
            self._watch(job.id, item.prompt_id, claim, run, canceled_by_job)
        )
        try:
            result = await run
        except asyncio.CancelledError:
            if not canceled_by_job.is_set():
                raise  # the worker is stopping: the message is not acknowledged, so it comes back
            entry = await asyncio.to_thread(_entry_of, pipeline.store, job, item.prompt_id)
            state = ItemState.succeeded if entry else ItemState.canceled
            await self._finish(job.id, item.prompt_id, state, entry=entry, error="canceled")
            return
        finally:
            watch.cancel()
        outcome = result.items[0]
        await self._finish(
            job.id, item.prompt_id, ItemState(outcome.state), result=outcome, error=outcome.error
        )

    async def _watch(
        self,
        job_id: str,
        prompt_id: str,
        claim: str,
        run: asyncio.Task[Any],
        flag: asyncio.Event,
    ) -> None:
        """Cancel the running item when someone cancels its job (from any machine), and
        keep this worker's claim on the item fresh."""
        renewed = time.monotonic()
        while not run.done():
            await asyncio.sleep(self.cancel_poll_s)
            job = await asyncio.to_thread(self.records.get, job_id)
            if job is not None and job.cancel_requested:
                flag.set()
                run.cancel()
                return
            if time.monotonic() - renewed > self.claim_s / 3:
                await asyncio.to_thread(self.records.modify, job_id, self._renew(prompt_id, claim))
                renewed = time.monotonic()

    def _renew(self, prompt_id: str, claim: str) -> Callable[[Job], bool]:
        def change(job: Job) -> bool:
            item = job.item(prompt_id)
            if item is None or item.claimed_by != claim:
                return False
            item.claimed_at = now()
            return True

        return change

    async def _claim(self, job_id: str, prompt_id: str, claim: str) -> bool:
        """Take the item unless a live worker holds it (duplicate deliveries: resume, a
        redelivery racing the original) or it was finished or canceled meanwhile."""
        started = claimed = False

        def change(job: Job) -> bool:
            nonlocal started, claimed
            started = claimed = False  # this may run more than once (optimistic retries)
            item = job.item(prompt_id)
            if item is None or job.cancel_requested or item.state not in _OPEN:
                return False
            fresh = (
                item.claimed_at is not None
                and (now() - item.claimed_at).total_seconds() < self.claim_s
            )
            if item.state == ItemState.running and fresh:
                return False
            item.state, item.claimed_by, item.claimed_at = ItemState.running, claim, now()
            claimed = True
            if job.state == JobState.queued:
                job.state = JobState.running
                job.started_at = now()
                started = True
            return True

        job = await asyncio.to_thread(self.records.modify, job_id, change)
        if job is None or not claimed:
            return False
        if started:
            await self._event(job_id, "job_started", job.model_dump(mode="json"))
        item = job.item(prompt_id)
        await self._event(
            job_id, "item_started", {"prompt_id": prompt_id, "prompt": item.prompt if item else ""}
        )
        return True

    async def _finish(
        self,
        job_id: str,
        prompt_id: str,
        state: ItemState,
        *,
        result: ItemResult | None = None,
        entry: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        finished = False

        def change(job: Job) -> bool:
            nonlocal finished
            item = job.item(prompt_id)
            if item is None or item.state in (
                ItemState.succeeded,
                ItemState.failed,
                ItemState.canceled,
            ):
                return False
            if result is not None:
                record_result(item, result)
            elif entry is not None and state == ItemState.succeeded:
                record_entry(item, entry)
            item.state = state
            item.error = None if state == ItemState.succeeded else error
            finished = job.settle()
            return True

        job = await asyncio.to_thread(self.records.modify, job_id, change)
        if job is None:
            return
        if state == ItemState.succeeded:
            data = dict((result.entry if result else None) or entry or {})
            await self._event(job_id, "item_succeeded", data)
        else:
            await self._event(job_id, "item_failed", {"prompt_id": prompt_id, "error": error})
        await self._event(job_id, "progress", job.progress())
        if finished:
            metrics.observe_job_span(
                job.state.value, job.started_at or job.created_at, job.finished_at or now()
            )
            await self._event(job_id, "job_finished", job.model_dump(mode="json"))

    async def _event(self, job_id: str, name: str, data: dict[str, Any]) -> None:
        await asyncio.to_thread(self.records.append_event, job_id, name, data)


_OPEN = (ItemState.queued, ItemState.running)
