"""An item's life in its job record: claimed, its prediction noted, finished.

Every write is ``JobRecords.modify`` (atomic however many processes finish items of one
job at once), and the job is finished by the write that finishes its last item: one rule
for the CLI, the in-process runner and the queue workers.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from actor_maker import metrics
from actor_maker.jobs.models import ItemState, Job, JobItem, JobState, now
from actor_maker.layout import index_of
from actor_maker.manifest import Entry, read_manifest
from actor_maker.quality import effective_verdict
from actor_maker.store.base import ObjectStore

if TYPE_CHECKING:
    from actor_maker.pipeline.running import JobSession


def stored_by_job(store: ObjectStore, job: Job, prompt_id: str) -> Entry | None:
    """The manifest entry a run of this job stored for the prompt (a resumed or redelivered
    item finds its work done)."""
    manifest = read_manifest(store, job.actor_id)
    return manifest.job_entry(job.id, prompt_id) if manifest is not None else None


def record_entry(item: JobItem, entry: Entry) -> None:
    """The item is done: ``entry`` was stored for it."""
    item.state, item.error = ItemState.succeeded, None
    item.filename, item.key, item.s3_url = entry["filename"], entry.get("key"), entry.get("s3_url")
    generation = entry.get("generation") or {}
    item.cost = generation.get("cost")
    item.seed = generation.get("seed", item.seed)
    item.prediction_id = generation.get("prediction_id") or item.prediction_id
    index = entry.get("index")
    item.index = index if isinstance(index, int) else index_of(str(entry["filename"]))
    item.verdict = effective_verdict(entry)


def fresh(item: JobItem, claim_s: float) -> bool:
    return item.claimed_at is not None and (now() - item.claimed_at).total_seconds() < claim_s


async def claim(session: JobSession, prompt_id: str, claim: str) -> JobItem | None:
    """Take the item for this run unless it is final, canceled, or held by a live run.
    Returns the item as claimed (with the prediction id an earlier run noted, if any)."""
    started = False
    claim_s = session.claim_s

    def change(job: Job) -> bool:
        nonlocal started
        started = False  # this may run more than once (optimistic retries)
        item = job.item(prompt_id)
        if item is None or job.cancel_requested or not item.open:
            return False
        if item.state == ItemState.running and fresh(item, claim_s):
            return False
        item.state, item.claimed_by, item.claimed_at = ItemState.running, claim, now()
        item.attempts += 1
        if job.state == JobState.queued:
            job.state, job.started_at, started = JobState.running, now(), True
        return True

    job = await asyncio.to_thread(session.records.modify, session.job.id, change)
    item = job.item(prompt_id) if job else None
    if job is None or item is None or item.claimed_by != claim:
        return None
    if started:
        await asyncio.to_thread(session.event, "job_started", job.model_dump(mode="json"))
    await asyncio.to_thread(
        session.event, "item_started", {"prompt_id": prompt_id, "prompt": item.prompt}
    )
    await asyncio.to_thread(session.event, "progress", job.progress())
    return item


def settled(session: JobSession, prompt_id: str) -> bool:
    """After a refused claim: ``True`` when the item is final (nothing left to do)."""
    job = session.records.get(session.job.id)
    item = job.item(prompt_id) if job else None
    return item is None or not item.open or (job is not None and job.cancel_requested)


def record_prediction(session: JobSession, item: JobItem, prediction_id: str) -> None:
    """Note the prediction started for the item, before waiting for it."""
    claim_id = session.held.get(item.prompt_id)

    def change(job: Job) -> bool:
        held = job.item(item.prompt_id)
        if held is None or held.claimed_by != claim_id:
            return False
        held.prediction_id = prediction_id
        return True

    job = session.records.modify(session.job.id, change)
    item.prediction_id = prediction_id
    if job is not None:  # running now: the counts change
        session.event("progress", job.progress())


def renew(session: JobSession) -> Job | None:
    """Refresh the claims this session holds (called from the keeper thread)."""
    held = dict(session.held)

    def change(job: Job) -> bool:
        changed = False
        for prompt_id, claim_id in held.items():
            item = job.item(prompt_id)
            if item is not None and item.open and item.claimed_by == claim_id:
                item.claimed_at = now()
                changed = True
        return changed

    return session.records.modify(session.job.id, change)


async def release(session: JobSession, prompt_id: str) -> None:
    """Give an unfinished item back (this process stops): queued again, its prediction id
    kept so whoever runs it next polls that prediction instead of paying again."""
    claim_id = session.held.get(prompt_id)

    def change(job: Job) -> bool:
        item = job.item(prompt_id)
        if item is None or not item.open or item.claimed_by != claim_id:
            return False
        item.state, item.claimed_by, item.claimed_at = ItemState.queued, None, None
        return True

    await asyncio.to_thread(session.records.modify, session.job.id, change)


async def finish(
    session: JobSession,
    prompt_id: str,
    state: ItemState,
    *,
    entry: Entry | None = None,
    cost: float | None = None,
    error: str | None = None,
) -> Job | None:
    """Record the item's outcome; the write that finishes the last item finishes the job."""
    finished = applied = False

    def change(job: Job) -> bool:
        nonlocal finished, applied
        finished = applied = False
        item = job.item(prompt_id)
        if item is None or not item.open:
            return False
        applied = True
        if entry is not None and state == ItemState.succeeded:
            record_entry(item, entry)
            if cost is not None:
                item.cost = cost
        item.state = state
        item.error = None if state == ItemState.succeeded else error
        item.claimed_by = item.claimed_at = None
        if state == ItemState.canceled:
            metrics.record_canceled()
        finished = job.settle()
        return True

    job = await asyncio.to_thread(session.records.modify, session.job.id, change)
    if job is None or not applied:
        return job
    if state == ItemState.succeeded:
        await asyncio.to_thread(session.event, "item_succeeded", dict(entry or {}))
    else:
        data: dict[str, Any] = {"prompt_id": prompt_id, "error": error}
        await asyncio.to_thread(session.event, "item_failed", data)
    await asyncio.to_thread(session.event, "progress", job.progress())
    if finished:
        metrics.observe_job_span(
            job.state.value, job.started_at or job.created_at, job.finished_at or now()
        )
        await asyncio.to_thread(session.event, "job_finished", job.model_dump(mode="json"))
    return job
