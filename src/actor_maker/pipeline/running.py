"""Running one item of a job: the one place that decides whether an item is paid for.

``Pipeline.run_item`` does, for one prompt of a recorded job:

    item final or job canceled? → acknowledge
    stored by an earlier run of this job (manifest entry with its job id)? → done
    claim it in the job record (atomic; refused while another live run holds it)
    → generate (or poll the prediction an earlier run started) → check → upload
    create-only → manifest update (CAS) → item state in the record → events

The CLI, the API's in-process runner and the queue workers all call it (through
``jobs.executor``), so they share one rule for idempotency and one for finishing a job.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from actor_maker import metrics
from actor_maker import prompts as prompt_lib
from actor_maker.config import Settings
from actor_maker.errors import ActorMakerError, ConfigError
from actor_maker.fetch import AddressPolicy
from actor_maker.images import downscale_for_provider
from actor_maker.jobs import items as job_items
from actor_maker.jobs.models import ItemState, Job, JobItem
from actor_maker.jobs.records import JobRecords
from actor_maker.pipeline.base_image import BaseImages
from actor_maker.pipeline.model import BaseImage, JobPlan, StoredBase
from actor_maker.pipeline.planning import Planning
from actor_maker.pipeline.storing import EntryAppender, IndexSource, Indices, Storing, local_indices
from actor_maker.providers.base import (
    GenerationParams,
    ImageProvider,
    InputImage,
    Tracking,
)
from actor_maker.quality.checker import QualityChecker
from actor_maker.slots import RequestSlots
from actor_maker.store.base import ObjectStore

log = logging.getLogger(__name__)

#: Receives each event a run appends to a job's stream: (job id, event name, data).
EventSink = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class PreparedBase:
    """A job's base image, read, checked and made ready for the provider."""

    #: As stored (full size): what the identity check compares with.
    data: bytes = field(repr=False)
    #: What the provider is given (downscaled when large) and its type.
    image: bytes = field(repr=False)
    content_type: str
    #: Its key in the store, and whether the provider may fetch it by a presigned URL.
    key: str | None
    fetchable: bool


@dataclass
class JobSession:
    """One process's hold on one recorded job while it runs items of it."""

    records: JobRecords
    job: Job
    #: Who claims items (a runner's or a worker's name); each claim adds a random part.
    owner: str
    image: InputImage
    #: The base image as stored (full size): what the identity check compares with.
    base: bytes
    emit: EventSink
    #: How long a claim on an item lasts without renewal (the keeper renews it).
    claim_s: float = 60.0
    #: Set when this process must not start another prediction (lease lost, cancel, stop).
    stop: threading.Event = field(default_factory=threading.Event)
    #: Set when the job was canceled (by anyone): items in flight end as canceled.
    canceled: threading.Event = field(default_factory=threading.Event)
    #: The items this session holds a claim on right now: prompt id → claim.
    held: dict[str, str] = field(default_factory=dict)
    #: A configuration error (e.g. the provider refused the token) that stops the job.
    fatal: ConfigError | None = None

    def event(self, name: str, data: dict[str, Any]) -> None:
        self.records.append_event(self.job.id, name, data)
        self.emit(self.job.id, name, data)


class Pipeline(Planning, BaseImages, Storing):
    def __init__(
        self,
        *,
        settings: Settings,
        store: ObjectStore,
        provider: ImageProvider,
        slots: RequestSlots,
        policy: AddressPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        library: list[prompt_lib.PromptTemplate] | None = None,
        checker: QualityChecker | None = None,
        indices: IndexSource = local_indices,
    ) -> None:
        self.settings = settings
        self.store = store
        self.provider = provider
        self.slots = slots
        self.policy = policy or AddressPolicy(allow_private=settings.allow_private_urls)
        self._http = http
        #: Quality checks on every generated image (``None``: checks off).
        self.checker = checker
        self.library = library if library is not None else prompt_lib.load_library()
        #: Where each actor's image indices come from (Redis-held in distributed mode).
        self._indices = indices
        #: Per actor, shared by every job of this pipeline (a worker runs items of many jobs
        #: at once): one index allocator and one group-commit appender.
        self._actors: dict[str, tuple[Indices, EntryAppender]] = {}
        self._actors_lock = threading.Lock()

    async def run(
        self,
        plan: JobPlan,
        base_image: BaseImage,
        *,
        seed: int | None = None,
        records: JobRecords | None = None,
        on_event: EventSink | None = None,
    ) -> Job:
        """Record ``plan`` as a job and run it to its end here, through the one executor
        (``jobs.runner.run_plan``); without ``records``, in this process's memory."""
        from actor_maker.jobs.memory import MemoryJobRecords
        from actor_maker.jobs.runner import run_plan

        return await run_plan(
            self,
            plan,
            base_image,
            records=records or MemoryJobRecords(),
            seed=seed,
            on_event=on_event,
            lease_ttl_s=self.settings.job_lease_s,
        )

    # --- a job's session -------------------------------------------------------------
    async def prepare_input(self, base: StoredBase) -> PreparedBase:
        """Read and check a stored base image and make the provider's copy: the work every
        item of the job shares (a worker caches the result per base image)."""
        data, info, key = await self.load_base_image(base)
        provider_data, provider_info = await asyncio.to_thread(
            downscale_for_provider, data, info, max_pixels=self.settings.max_image_pixels
        )
        # A hosted model can fetch a presigned URL only from a store on the internet;
        # otherwise the provider gets the bytes (data URI or its files API).
        fetchable = provider_data is data and self.store.reachable_from_internet
        return PreparedBase(data, provider_data, provider_info.content_type, key, fetchable)

    async def open_session(
        self,
        records: JobRecords,
        job: Job,
        *,
        owner: str,
        emit: EventSink | None = None,
        prepared: PreparedBase | None = None,
        claim_s: float = 60.0,
    ) -> JobSession:
        """A session on the job; its base image (stored when the job was created) is read
        here unless the caller ``prepared`` it already."""
        if prepared is None:
            if job.base_image_key is None:
                raise ConfigError(f"job {job.id} has no base image to work from")
            prepared = await self.prepare_input(StoredBase(job.base_image_key))
        key = prepared.key
        # A presigned URL expires: made for each session, never cached.
        url = self.store.presigned_url(key) if key and prepared.fetchable else None
        return JobSession(
            records=records,
            job=job,
            owner=owner,
            image=InputImage(prepared.image, prepared.content_type, url),
            base=prepared.data,
            emit=emit or (lambda *_: None),
            claim_s=claim_s,
        )

    # --- one item ----------------------------------------------------------------------
    async def run_item(self, session: JobSession, prompt_id: str) -> bool:
        """Run one item. ``False``: another live run holds it right now (look again later)."""
        job = await asyncio.to_thread(session.records.get, session.job.id)
        item = job.item(prompt_id) if job else None
        if job is None or item is None or not item.open:
            return True
        if job.cancel_requested:
            await job_items.finish(session, prompt_id, ItemState.canceled, error="canceled")
            return True
        tried = item.attempts > 0 or item.prediction_id is not None
        entry = (
            await asyncio.to_thread(job_items.stored_by_job, self.store, job, prompt_id)
            if tried
            else None
        )
        if entry is not None:  # an earlier run stored it; its record update was lost
            await job_items.finish(session, prompt_id, ItemState.succeeded, entry=entry)
            return True
        if session.stop.is_set():
            return True  # not ours to start any more; whoever runs the job next will
        claim = f"{session.owner}:{uuid.uuid4().hex[:8]}"
        claimed = await job_items.claim(session, prompt_id, claim)
        if claimed is None:
            return await asyncio.to_thread(job_items.settled, session, prompt_id)
        session.held[prompt_id] = claim
        try:
            await self._generate(session, claimed)
        finally:
            session.held.pop(prompt_id, None)
        return True

    async def _generate(self, session: JobSession, item: JobItem) -> None:
        job = session.job
        seed = job.seed if job.seed is not None else (item.seed or random.randrange(2**31))
        params = GenerationParams(
            prompt=item.prompt,
            aspect_ratio=job.aspect_ratio,
            seed=seed,
            output_format=self.settings.output_format,
            category=item.category,
        )

        async def created(prediction_id: str) -> None:
            await asyncio.to_thread(job_items.record_prediction, session, item, prediction_id)

        try:
            async with metrics.slot_wait(self.slots.slot()):
                if session.stop.is_set():  # decided while waiting: start nothing new
                    await job_items.release(session, item.prompt_id)
                    return
                with metrics.provider_timer(self.provider.name):
                    generated = await self.provider.generate(
                        session.image,
                        params,
                        tracking=Tracking(resume=item.prediction_id, on_created=created),
                    )
            # The image is paid for: keep it even if the job is canceled from here on.
            entry = await asyncio.shield(asyncio.to_thread(self._keep, session, item, generated))
        except ActorMakerError as exc:
            metrics.record_failure(exc)
            log.info("%s: %s failed: %s", job.actor_id, item.prompt_id, exc)
            if isinstance(exc, ConfigError):
                session.fatal = session.fatal or exc
                session.stop.set()
            await job_items.finish(session, item.prompt_id, ItemState.failed, error=str(exc))
            return
        except asyncio.CancelledError:
            if session.canceled.is_set():
                done = job_items.finish(
                    session, item.prompt_id, ItemState.canceled, error="canceled"
                )
            else:  # this process stops: whoever runs the job next takes the item over
                done = job_items.release(session, item.prompt_id)
            await asyncio.shield(done)
            raise
        except Exception as exc:  # a bug must not sink the other items
            metrics.record_failure(exc)
            log.exception("%s: %s failed unexpectedly", job.actor_id, item.prompt_id)
            error = f"internal error: {type(exc).__name__}"
            await job_items.finish(session, item.prompt_id, ItemState.failed, error=error)
            return
        await job_items.finish(
            session, item.prompt_id, ItemState.succeeded, entry=entry, cost=generated.cost
        )
