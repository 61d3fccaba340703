"""One job model for "all prompts", a subset, or one prompt.

``Pipeline.plan_*`` validates input and works out what would be generated
(nothing fetched, written or spent); ``Pipeline.run`` executes a plan:

    fetch base image once → ensure manifest + stored base image
    → for each item, at most N provider calls at once:
        generate → decode check → upload create-only (next free index) → manifest update → event
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import random
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import httpx

from actor_maker import metrics
from actor_maker import prompts as prompt_lib
from actor_maker.captions import caption_for
from actor_maker.config import Settings
from actor_maker.errors import (
    ActorMakerError,
    BudgetError,
    ConfigError,
    InputError,
    PreconditionFailed,
)
from actor_maker.fetch import AddressPolicy, fetch_url, redact_url
from actor_maker.images import ImageInfo, downscale_for_provider, inspect_image, md5_hex
from actor_maker.manifest import (
    Manifest,
    base_image_key,
    index_of,
    legacy_now,
    new_manifest,
    read_manifest,
    training_key,
    training_prefix,
    update_manifest,
    utc_now,
)
from actor_maker.providers.base import GeneratedImage, GenerationParams, ImageProvider, InputImage
from actor_maker.quality import effective_verdict
from actor_maker.quality.checker import QualityChecker, decide_duplicate
from actor_maker.slots import RequestSlots
from actor_maker.store.base import ObjectInfo, ObjectStore
from actor_maker.validation import (
    check_actor_id,
    check_actor_name,
    check_aspect_ratio,
    check_prompt,
)

log = logging.getLogger(__name__)

PREVIEW_CHARS = 100


@dataclass(frozen=True)
class Actor:
    """Who a job is for. Type and sex left ``None`` come from the manifest (or ``person``)."""

    actor_id: str
    actor_name: str
    actor_type: str | None = None
    actor_sex: str | None = None

    def validated(self) -> Actor:
        check_actor_id(self.actor_id)
        check_actor_name(self.actor_name)
        actor_type = (self.actor_type or "person").strip().lower()
        prompt_lib.subject_for(actor_type, self.actor_sex)  # refuses unknown types
        sex = self.actor_sex.strip().lower() if self.actor_sex else None
        return Actor(self.actor_id, self.actor_name, actor_type, sex)

    def completed_by(self, manifest: Manifest | None) -> Actor:
        """Fill type and sex the caller left open from the actor's manifest."""
        if manifest is None:
            return self
        return Actor(
            self.actor_id,
            self.actor_name,
            self.actor_type or manifest.actor_type,
            self.actor_sex or manifest.actor_sex,
        )

    @property
    def type(self) -> str:
        return self.actor_type or "person"


@dataclass(frozen=True)
class JobItem:
    prompt_id: str
    prompt: str
    category: str | None = None
    face_visible: bool = True


@dataclass(frozen=True)
class JobPlan:
    actor: Actor
    items: tuple[JobItem, ...]
    model: str
    price: float
    aspect_ratio: str
    #: Library prompts skipped because the manifest already has them.
    already_done: tuple[str, ...] = ()

    @property
    def estimated_cost(self) -> float:
        return round(len(self.items) * self.price, 4)


@dataclass
class ItemResult:
    prompt_id: str
    prompt: str
    category: str | None
    state: str = "queued"  # queued | running | succeeded | failed | canceled
    index: int | None = None
    filename: str | None = None
    key: str | None = None
    s3_url: str | None = None
    error: str | None = None
    cost: float | None = None
    seed: int | None = None
    #: The manifest entry written for it, once stored.
    entry: dict[str, Any] | None = None
    #: The quality checks' verdict (accepted, rejected, review), once stored.
    verdict: str | None = None

    @property
    def prompt_preview(self) -> str:
        text = self.prompt
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


@dataclass
class JobResult:
    job_id: str
    actor: Actor
    items: list[ItemResult]
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    #: A configuration error (e.g. the provider refused the token) that stopped the job.
    fatal: ConfigError | None = None

    @property
    def succeeded(self) -> list[ItemResult]:
        return [i for i in self.items if i.state == "succeeded"]

    @property
    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if i.state in ("failed", "canceled")]

    @property
    def cost(self) -> float:
        return round(sum(i.cost or 0.0 for i in self.items), 4)


@dataclass(frozen=True)
class Event:
    """Progress: job_started, item_started, item_succeeded, item_failed, job_finished."""

    kind: str
    job_id: str
    item: ItemResult | None = None
    result: JobResult | None = None


EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class StoredBase:
    """A base image already in the store, by key (what jobs remember across restarts);
    ``data`` when the caller holds its bytes already (a worker's cache)."""

    key: str
    data: bytes | None = field(default=None, repr=False)


#: What a job's base image can be given as: a URL, the bytes, or a key in the store.
BaseImage = str | bytes | StoredBase


def custom_prompt_id(text: str) -> str:
    return "custom-" + hashlib.sha256(text.encode()).hexdigest()[:10]


class _IndexAllocator:
    """Hands out candidate indices; create-only uploads settle races between processes."""

    def __init__(self, start: int) -> None:
        self._next = start
        self._lock = threading.Lock()

    def raise_to(self, floor: int) -> None:
        """Skip past indices someone else has taken meanwhile."""
        with self._lock:
            self._next = max(self._next, floor)

    def take(self) -> int:
        with self._lock:
            value = self._next
            self._next += 1
            return value


class _EntryAppender:
    """Group commit: entries that finish together go into one manifest update.

    Each caller queues its entry and then either finds it written by a flush
    already under way or flushes everything queued itself. Every caller learns
    the outcome of the write that carried its entry. Other processes are still
    handled by the manifest's compare-and-swap.
    """

    def __init__(self, store: ObjectStore, actor_id: str) -> None:
        self._store = store
        self._actor_id = actor_id
        self._pending: list[tuple[dict[str, Any], Future[dict[str, Any]]]] = []
        self._queue_lock = threading.Lock()
        self._flush_lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add ``entry``; returns it as written (the near-duplicate decision may have
        rejected it against the manifest as it was at that moment)."""
        done: Future[dict[str, Any]] = Future()
        with self._queue_lock:
            self._pending.append((entry, done))
        with self._flush_lock:
            with self._queue_lock:
                batch, self._pending = self._pending, []
            if batch:
                self._flush(batch)
        return done.result()

    def _flush(self, batch: list[tuple[dict[str, Any], Future[dict[str, Any]]]]) -> None:
        def change(manifest: Manifest) -> bool:
            changed = False
            for entry, _ in batch:
                fresh = copy.deepcopy(entry)  # pure: this runs again on a conflict
                decide_duplicate(fresh, manifest.training_data)
                if not fresh.get("caption"):  # the actor's trigger word lives in the manifest
                    fresh["caption"] = caption_for(manifest, fresh)
                changed = manifest.add_entry(fresh) or changed
            return changed

        try:
            written = update_manifest(self._store, self._actor_id, change)
        except BaseException as exc:  # every waiter must hear about it
            for _, done in batch:
                done.set_exception(exc)
        else:
            for entry, done in batch:
                done.set_result(written.find(str(entry["filename"])) or entry)


@dataclass
class _JobState:
    """What the items of one running job share."""

    job_id: str
    plan: JobPlan
    image: InputImage
    #: The base image as stored (full size): what the identity check compares with.
    base: bytes
    indices: _IndexAllocator
    entries: _EntryAppender
    seed: int | None
    emit: EventSink


class Pipeline:
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
        #: Per actor, shared by every run of this pipeline (a worker runs many single-item
        #: jobs at once): one index allocator and one group-commit appender, so concurrent
        #: items of one actor neither collide on indices nor race each other on the manifest.
        self._actors: dict[str, tuple[_IndexAllocator, _EntryAppender]] = {}
        self._actors_lock = threading.Lock()

    # --- planning: validation only, nothing written or spent --------------------------
    def _price(self) -> float:
        if self.provider.name == "preview":
            return 0.0
        price = self.settings.price_of(self.provider.model)
        if price is None:
            raise ConfigError(
                f"no price known for model {self.provider.model}; add it to ACTOR_MAKER_PRICES "
                'as JSON, e.g. {"owner/name": 0.05}'
            )
        return price

    def _prepare(self, actor: Actor) -> tuple[Actor, Manifest | None]:
        """Validate ``actor`` and complete it from its manifest, if it has one."""
        actor.validated()  # ids are checked before they are used in a key
        manifest = read_manifest(self.store, actor.actor_id)
        if manifest is not None and manifest.actor_name and manifest.actor_name != actor.actor_name:
            raise InputError(
                f"actor {actor.actor_id} is named {manifest.actor_name!r} in its manifest, "
                f"not {actor.actor_name!r}"
            )
        return actor.completed_by(manifest).validated(), manifest

    def plan_all(
        self,
        actor: Actor,
        *,
        only: list[str] | None = None,
        force: bool = False,
        aspect_ratio: str = "1:1",
    ) -> JobPlan:
        check_aspect_ratio(aspect_ratio)
        actor, manifest = self._prepare(actor)
        templates = self.library
        if only:
            known = {t.id for t in templates}
            unknown = [i for i in only if i not in known]
            if unknown:
                raise InputError(f"unknown prompt id(s): {', '.join(unknown)}")
            templates = [t for t in templates if t.id in set(only)]
        rendered = prompt_lib.render_all(
            templates,
            actor_type=actor.type,
            actor_sex=actor.actor_sex,
            description=manifest.description if manifest else None,
            outfit=manifest.outfit if manifest else None,
        )
        done = manifest.prompt_ids() if manifest and not force else set()
        items = tuple(
            JobItem(p.id, p.text, p.category, p.face_visible) for p in rendered if p.id not in done
        )
        skipped = tuple(p.id for p in rendered if p.id in done)
        return JobPlan(actor, items, self.provider.model, self._price(), aspect_ratio, skipped)

    def plan_single(self, actor: Actor, prompt: str, *, aspect_ratio: str = "1:1") -> JobPlan:
        return self.plan_custom(actor, [prompt], aspect_ratio=aspect_ratio)

    def plan_custom(
        self, actor: Actor, prompts: Sequence[str], *, aspect_ratio: str = "1:1"
    ) -> JobPlan:
        """Free-text prompts; ``{subject}`` in them is filled in like the library's."""
        check_aspect_ratio(aspect_ratio)
        texts = [check_prompt(p) for p in prompts]
        if not texts:
            raise InputError("no prompts given")
        actor, manifest = self._prepare(actor)
        items = []
        for text in texts:
            if "{subject}" in text:
                template = prompt_lib.PromptTemplate(
                    custom_prompt_id(text), "custom", text, True, ()
                )
                text = prompt_lib.render(
                    template,
                    actor_type=actor.type,
                    actor_sex=actor.actor_sex,
                    description=manifest.description if manifest else None,
                    outfit=manifest.outfit if manifest else None,
                ).text
            items.append(JobItem(custom_prompt_id(text), text, None, True))
        return JobPlan(actor, tuple(items), self.provider.model, self._price(), aspect_ratio)

    def plan_items(
        self, actor: Actor, items: Sequence[JobItem], *, aspect_ratio: str = "1:1"
    ) -> JobPlan:
        """Exactly these items (a job being resumed or retried), checked like new input."""
        check_aspect_ratio(aspect_ratio)
        for item in items:
            check_prompt(item.prompt)
        actor, _ = self._prepare(actor)
        return JobPlan(actor, tuple(items), self.provider.model, self._price(), aspect_ratio)

    @staticmethod
    def check_budget(plan: JobPlan, max_cost: float) -> None:
        if plan.estimated_cost > max_cost + 1e-9:
            raise BudgetError(
                f"estimated cost ${plan.estimated_cost:.2f} ({len(plan.items)} images × "
                f"${plan.price:.3f}) is over the ceiling ${max_cost:.2f}; raise the ceiling "
                "(max_cost in the API, --max-cost on the command line, or ACTOR_MAKER_MAX_JOB_COST)"
            )

    def check_base_image_ref(self, ref: BaseImage) -> None:
        """Syntax checks on the base image reference (no network)."""
        if not isinstance(ref, str):
            return
        if ref.startswith("s3://"):
            if self.store.key_for_url(ref) is None:
                raise InputError(
                    f"{ref.split('?', 1)[0]} is not in the configured store "
                    f"({self.store.description})"
                )
            return
        if self.store.key_for_url(ref) is None:
            self.policy.check_syntax(ref)

    # --- running ------------------------------------------------------------------------
    async def load_base_image(self, ref: BaseImage) -> tuple[bytes, ImageInfo, str | None]:
        """Bytes, decoded info, and the store key when the image came from the store."""
        key: str | None = None
        if isinstance(ref, StoredBase):
            key = ref.key
            data = (
                ref.data
                if ref.data is not None
                else (await asyncio.to_thread(self.store.get, key)).data
            )
        elif isinstance(ref, bytes):
            data = ref
        elif (key := self.store.key_for_url(ref)) is not None:
            obj = await asyncio.to_thread(self.store.get, key)
            data = obj.data
        else:
            client = self._http or httpx.AsyncClient(timeout=self.settings.fetch_timeout_s)
            try:
                data, _ = await fetch_url(
                    ref,
                    policy=self.policy,
                    client=client,
                    max_bytes=self.settings.max_image_bytes,
                    timeout=self.settings.fetch_timeout_s,
                )
            finally:
                if self._http is None:
                    await client.aclose()
        what = f"base image {redact_url(ref)}" if isinstance(ref, str) else "base image"
        info = await asyncio.to_thread(
            inspect_image,
            data,
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
            what=what,
        )
        return data, info, key

    def _ensure_actor(self, actor: Actor, data: bytes, info: ImageInfo, key: str | None) -> str:
        """Create the manifest when missing and make sure the base image is in the store.

        Returns the key holding exactly these bytes (never overwriting another image).
        """
        if key is None:
            key = base_image_key(actor.actor_name, info.extension)
            try:
                self.store.put_if_absent(
                    key,
                    data,
                    content_type=info.content_type,
                    metadata={"actor-id": actor.actor_id, "md5": md5_hex(data)},
                )
            except PreconditionFailed:
                head = self.store.head(key)
                if head is None or head.metadata.get("md5") != md5_hex(data):
                    # A different base image is stored there: keep it, store ours beside it.
                    key = base_image_key(f"{actor.actor_name}_{md5_hex(data)[:8]}", info.extension)
                    with contextlib.suppress(PreconditionFailed):
                        self.store.put_if_absent(
                            key,
                            data,
                            content_type=info.content_type,
                            metadata={"actor-id": actor.actor_id, "md5": md5_hex(data)},
                        )
        stored_key = key
        base_entry = {
            "filename": stored_key.rsplit("/", 1)[-1],
            "s3_url": self.store.public_url(stored_key),
            "status": "synced",
            "format": {"jpg": "jpeg"}.get(info.extension, info.extension),
            "key": stored_key,
        }

        def change(manifest: Manifest) -> bool:
            changed = False
            if not manifest.base_images:
                manifest.base_images.append(dict(base_entry))
                changed = True
            for field_name, value in (
                ("actor_type", actor.actor_type),
                ("actor_sex", actor.actor_sex),
            ):
                if field_name not in manifest.data and value:
                    manifest.data[field_name] = value
                    changed = True
            return changed

        update_manifest(
            self.store,
            actor.actor_id,
            change,
            create=lambda: new_manifest(
                actor_id=actor.actor_id,
                actor_name=actor.actor_name,
                actor_type=actor.type,
                actor_sex=actor.actor_sex,
            ),
        )
        return key

    def _actor_state(self, actor: Actor) -> tuple[_IndexAllocator, _EntryAppender]:
        with self._actors_lock:
            known = self._actors.get(actor.actor_id)
        if known is not None:
            return known
        fresh = (
            _IndexAllocator(self._start_index(actor)),
            _EntryAppender(self.store, actor.actor_id),
        )
        with self._actors_lock:
            return self._actors.setdefault(actor.actor_id, fresh)

    def _start_index(self, actor: Actor) -> int:
        manifest = read_manifest(self.store, actor.actor_id)
        highest = manifest.highest_index() if manifest else -1
        for obj in self.store.list(training_prefix(actor.actor_name)):
            index = index_of(obj.key.rsplit("/", 1)[-1])
            if index is not None:
                highest = max(highest, index)
        return highest + 1

    async def prepare_base(self, actor: Actor, ref: BaseImage) -> str:
        """Fetch and check the base image, create the actor's manifest if it has none, and
        return the store key of the base image (what a job keeps to run or resume)."""
        data, info, key = await self.load_base_image(ref)
        return await asyncio.to_thread(self._ensure_actor, actor, data, info, key)

    async def run(
        self,
        plan: JobPlan,
        base_image: BaseImage,
        *,
        seed: int | None = None,
        job_id: str | None = None,
        on_event: EventSink | None = None,
        ensure_actor: bool = True,
    ) -> JobResult:
        """Run ``plan``. ``ensure_actor=False`` when the caller knows the actor's manifest
        and base image are in place (queue workers: checked when the job was queued)."""
        job_id = job_id or uuid.uuid4().hex[:12]
        emit = on_event or (lambda _event: None)
        result = JobResult(
            job_id, plan.actor, [ItemResult(i.prompt_id, i.prompt, i.category) for i in plan.items]
        )
        emit(Event("job_started", job_id, result=result))

        data, info, key = await self.load_base_image(base_image)
        if ensure_actor or key is None:
            key = await asyncio.to_thread(self._ensure_actor, plan.actor, data, info, key)
        provider_data, provider_info = await asyncio.to_thread(downscale_for_provider, data, info)
        # A hosted model can fetch a presigned URL only from a store on the internet;
        # otherwise the provider gets the bytes (data URI or its files API).
        fetchable = provider_data is data and self.store.reachable_from_internet
        url = self.store.presigned_url(key) if key and fetchable else None
        indices, entries = await asyncio.to_thread(self._actor_state, plan.actor)
        state = _JobState(
            job_id=job_id,
            plan=plan,
            image=InputImage(provider_data, provider_info.content_type, url),
            base=data,
            indices=indices,
            entries=entries,
            seed=seed,
            emit=emit,
        )

        queue: asyncio.Queue[tuple[JobItem, ItemResult]] = asyncio.Queue()
        for pair in zip(plan.items, result.items, strict=True):
            queue.put_nowait(pair)

        async def worker() -> None:
            while not queue.empty() and result.fatal is None:
                item, item_result = queue.get_nowait()
                try:
                    await self._run_item(state, item, item_result)
                except ConfigError as exc:  # no use trying the other items
                    result.fatal = result.fatal or exc

        # Twice as many workers as slots: while some store what they got, the others
        # already hold the freed slots. Memory stays bounded by the worker count.
        workers = max(1, min(2 * self.slots.limit, len(plan.items)))
        try:
            # A TaskGroup, not gather: when the job is canceled it waits until every worker
            # has finished canceling (in-flight predictions canceled, paid images stored).
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        finally:
            for item_result in result.items:
                if item_result.state in ("queued", "running"):
                    item_result.state = "canceled"
                    metrics.record_canceled()
                    item_result.error = (
                        f"not started: {result.fatal}"
                        if result.fatal
                        else "canceled before it finished"
                    )
            result.finished_at = utc_now()
        emit(Event("job_finished", job_id, result=result))
        return result

    async def _run_item(self, state: _JobState, item: JobItem, result: ItemResult) -> None:
        plan, emit = state.plan, state.emit
        result.state = "running"
        result.seed = state.seed if state.seed is not None else random.randrange(2**31)
        emit(Event("item_started", state.job_id, item=result))
        params = GenerationParams(
            prompt=item.prompt,
            aspect_ratio=plan.aspect_ratio,
            seed=result.seed,
            output_format=self.settings.output_format,
            category=item.category,
        )
        try:
            async with metrics.slot_wait(self.slots.slot()):
                with metrics.provider_timer(self.provider.name):
                    generated = await self.provider.generate(state.image, params)
            result.cost = generated.cost
            # The image is paid for: keep it even if the job is canceled from here on.
            await asyncio.shield(asyncio.to_thread(self._keep, state, item, result, generated))
        except ActorMakerError as exc:
            metrics.record_failure(exc)
            self._fail(plan, result, str(exc), state.job_id, emit)
            if isinstance(exc, ConfigError):
                raise
            return
        except Exception as exc:  # a bug must not sink the other items
            metrics.record_failure(exc)
            log.exception("%s: %s failed unexpectedly", plan.actor.actor_id, item.prompt_id)
            self._fail(plan, result, f"internal error: {type(exc).__name__}", state.job_id, emit)
            return
        emit(Event("item_succeeded", state.job_id, item=result))

    @staticmethod
    def _fail(plan: JobPlan, result: ItemResult, error: str, job_id: str, emit: EventSink) -> None:
        result.state = "failed"
        result.error = error
        log.info("%s: %s failed: %s", plan.actor.actor_id, result.prompt_id, error)
        emit(Event("item_failed", job_id, item=result))

    def _keep(
        self, state: _JobState, item: JobItem, result: ItemResult, generated: GeneratedImage
    ) -> None:
        """Check, upload create-only at the next free index, add the entry: one thread,
        so a cancellation cannot stop it half way. A rejected image is stored too (it was
        paid for, and a person may overrule the checks); its entry says why."""
        info = inspect_image(
            generated.data,
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
            what="generated image",
        )
        plan = state.plan
        actor = plan.actor
        quality = (
            self.checker.check(
                generated.data,
                base=state.base,
                actor_type=actor.type,
                face_visible=item.face_visible,
                category=item.category,
                placeholder=generated.provider == "preview",
            ).record()
            if self.checker is not None
            else None
        )
        metadata = {
            "actor-id": actor.actor_id,
            "prompt-id": item.prompt_id,
            "prompt-sha256": hashlib.sha256(item.prompt.encode()).hexdigest()[:32],
            "job-id": state.job_id,
            "seed": str(generated.seed),
            "provider": generated.provider,
            "model": generated.model,
            "prediction-id": generated.prediction_id or "",
            "aspect-ratio": plan.aspect_ratio,
            "category": item.category or "",
        }
        while True:
            index = state.indices.take()
            key = training_key(actor.actor_name, index, info.extension)
            try:
                stored = self.store.put_if_absent(
                    key, generated.data, content_type=info.content_type, metadata=metadata
                )
                break
            except PreconditionFailed:
                mine = self._already_mine(key, metadata, len(generated.data))
                if mine is not None:  # our own write, retried after its answer was lost
                    stored = mine
                    break
                log.debug("%s is taken; trying the next index", key)
                state.indices.raise_to(self._start_index(actor))  # others wrote meanwhile
        filename = key.rsplit("/", 1)[-1]
        entry = self._entry(item, plan, generated, stored.modified, filename, key, state.job_id)
        entry["quality"] = quality
        entry = state.entries.append(entry)
        result.index, result.filename, result.key = index, filename, key
        result.s3_url = entry["s3_url"]
        result.entry = entry
        result.verdict = effective_verdict(entry)
        result.state = "succeeded"
        metrics.record_generated(generated.provider, generated.model)  # stored, even if canceled

    def _already_mine(self, key: str, metadata: dict[str, str], size: int) -> ObjectInfo | None:
        head = self.store.head(key)
        if head is None or head.size != size:
            return None
        same = all(head.metadata.get(k) == metadata[k] for k in ("job-id", "prompt-id", "seed"))
        return head if same else None

    def _entry(
        self,
        item: JobItem,
        plan: JobPlan,
        generated: GeneratedImage,
        modified: float,
        filename: str,
        key: str,
        job_id: str,
    ) -> dict[str, Any]:
        size = len(generated.data)
        return {
            "filename": filename,
            "s3_url": self.store.public_url(key),
            "key": key,
            "md5_hash": md5_hex(generated.data),
            "size_bytes": size,
            "size_mb": round(size / (1024 * 1024), 2),
            "modified_timestamp": modified,
            "modified_date": legacy_now(),
            "status": "synced",
            "prompt": item.prompt,
            "prompt_id": item.prompt_id,
            "category": item.category,
            "face_visible": item.face_visible,
            "aspect_ratio": plan.aspect_ratio,
            "generation": {**generated.provenance(), "job_id": job_id},
            "good": False,
            "quality": None,
            "caption": None,
            "created_at": utc_now(),
        }
