"""Processing one queued item: one message = one ``Pipeline.run_item``.

A redelivered message never pays twice: ``run_item`` acknowledges a final item, finds
an item an earlier delivery stored, refuses an item another live delivery has claimed,
and polls the prediction a dead delivery started. The worker caches base images prepared
for the provider (an actor's items fetch, decode and downscale theirs once) and opens a
session per delivery, each with a keeper thread that renews its claim.

Each delivery's keeper reads the job record every ``cancel_poll_s`` to notice a cancel,
but writes it (renews the item's claim) only every quarter of the claim's life: a write of
the whole record every second for every item in flight made the items of one job race each
other's ``WATCH`` and was most of a worker's Redis and CPU work at the provider's rate.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable

from actor_maker.jobs.executor import Keeper
from actor_maker.jobs.models import Job
from actor_maker.jobs.records import JobRecords
from actor_maker.pipeline import JobSession, Pipeline, PreparedBase, StoredBase

log = logging.getLogger(__name__)


class BaseImageCache:
    """The last ``size`` base images a worker prepared (read, checked, downscaled for the
    provider), so an actor's items do that once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._images: collections.OrderedDict[str, PreparedBase] = collections.OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0

    async def get(self, key: str, prepare: Callable[[], Awaitable[PreparedBase]]) -> PreparedBase:
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._images:
                self.fetches += 1
                self._images[key] = await prepare()
                while len(self._images) > self.size:
                    self._images.popitem(last=False)
            self._locks.pop(key, None)
            return self._images[key]


class ItemKeeper(Keeper):
    """The keeper of one delivery: a read every ``interval_s`` for a cancel request, a
    renewal of the claim (a write) only every ``renew_s``."""

    def __init__(
        self,
        session: JobSession,
        loop: asyncio.AbstractEventLoop,
        *,
        interval_s: float,
        renew_s: float,
    ) -> None:
        super().__init__(session, loop, interval_s=interval_s)
        self.renew_s = renew_s
        self._renewed = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._renewed >= self.renew_s:
            self._renewed = now
            super().tick()  # renews the claim, and looks at the cancel flag it read
            return
        session = self.session
        job = session.records.get(session.job.id)
        if job is not None and job.cancel_requested and not session.canceled.is_set():
            session.canceled.set()
            session.stop.set()
            for task in list(self.tasks):
                self.loop.call_soon_threadsafe(task.cancel)


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
        if job is None or item is None or not item.open:
            return True  # unknown, or done by an earlier delivery: acknowledge
        pipeline = self.pipelines(job)
        if job.base_image_key is None:
            log.warning("job %s has no base image", job_id)
            return True
        key = job.base_image_key
        prepared = await self.cache.get(key, lambda: pipeline.prepare_input(StoredBase(key)))
        session = await pipeline.open_session(
            self.records, job, owner=self.owner, prepared=prepared, claim_s=self.claim_s
        )
        return await self._run(pipeline, session, prompt_id)

    async def _run(self, pipeline: Pipeline, session: JobSession, prompt_id: str) -> bool:
        keeper = ItemKeeper(
            session,
            asyncio.get_running_loop(),
            interval_s=min(self.cancel_poll_s, self.claim_s / 4),
            renew_s=self.claim_s / 4,
        )
        task = asyncio.create_task(pipeline.run_item(session, prompt_id))
        keeper.tasks.add(task)
        with keeper:
            try:
                return await task
            except asyncio.CancelledError:
                if session.canceled.is_set():
                    return True  # the job was canceled: the item is recorded canceled
                raise  # the worker is stopping: the message is not acknowledged, comes back
