"""The composition root: ``Runtime(settings)`` builds the store, job records, providers,
request slots and pipelines once; the CLI, the API and the queue workers take it instead
of wiring by hand."""

from __future__ import annotations

import functools
from collections import OrderedDict
from pathlib import Path
from typing import Any

from actor_maker import prompts as prompt_lib
from actor_maker.config import Settings
from actor_maker.decoding import configure_decoding
from actor_maker.errors import ConfigError
from actor_maker.fetch import AddressPolicy
from actor_maker.jobs.records import JobRecords
from actor_maker.pipeline import Pipeline
from actor_maker.pipeline.storing import IndexSource, local_indices
from actor_maker.providers.base import CreateGate, ImageProvider
from actor_maker.providers.preview import PreviewProvider
from actor_maker.quality.checker import QualityChecker
from actor_maker.slots import MachineSlots, RequestSlots
from actor_maker.store import ObjectStore, open_store
from actor_maker.validation import check_model


def make_provider(
    settings: Settings,
    name: str | None = None,
    model: str | None = None,
    *,
    gate: CreateGate | None = None,
) -> ImageProvider:
    """The configured provider; ``gate`` paces Replicate creates across workers."""
    name = name or settings.provider_name
    if name == "preview":
        return PreviewProvider()
    if name != "replicate":
        raise ConfigError(f"unknown provider {name!r}; use replicate or preview")
    from actor_maker.providers.replicate import ReplicateProvider
    from actor_maker.providers.replicate_http import ReplicateHTTP

    model = model or settings.model
    return ReplicateProvider(
        ReplicateHTTP.from_settings(settings, "the replicate provider"),
        model=model,
        price=settings.price_of(model),
        deadline_s=settings.image_deadline_s,
        poll_interval_s=settings.poll_interval_s,
        wait_s=settings.create_wait_s,
        safety_tolerance=settings.safety_tolerance,
        gate=gate,
    )


@functools.cache
def _checker(identity: bool, threshold: float | None) -> QualityChecker:
    return QualityChecker(identity=identity, identity_threshold=threshold)


def make_checker(settings: Settings) -> QualityChecker | None:
    """The process's checker (face models load once), or ``None`` with checks off."""
    if not settings.checks:
        return None
    return _checker(settings.identity_check, settings.identity_threshold)


def open_records(settings: Settings) -> JobRecords:
    """Where jobs are recorded: Redis with a queue configured, else the SQLite file that
    the API, the CLI and ``actor-maker jobs`` share."""
    if settings.redis_url:
        from actor_maker.jobs.redis import RedisJobRecords

        return RedisJobRecords(settings.redis_url, prefix=settings.queue_prefix)
    from actor_maker.jobs.sqlite import SQLiteJobRecords

    return SQLiteJobRecords(settings.state_dir / "jobs.sqlite3")


#: Pipelines kept per runtime (one per provider and model); the oldest unused one goes.
MAX_PIPELINES = 8


class Runtime:
    """Everything one process shares, built lazily from one ``Settings``.

    ``store``, ``records``, ``slots`` and ``policy`` may be given (tests, the worker's
    Redis-held slots); the rest is built from the settings on first use.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore | None = None,
        records: JobRecords | None = None,
        provider: str | None = None,
        slots: RequestSlots | None = None,
        policy: AddressPolicy | None = None,
        gate: CreateGate | None = None,
        prompts_file: Path | None = None,
    ) -> None:
        self.settings = settings
        configure_decoding(settings.max_concurrent_decodes)  # pixels are a per-process resource
        self._store = store
        self._records = records
        #: The provider jobs use unless they name another (``--provider``).
        self.provider_name = provider or settings.provider_name
        self._slots = slots
        self.policy = policy or AddressPolicy(allow_private=settings.allow_private_urls)
        self.gate = gate
        self.prompts_file = prompts_file
        self._pipelines: OrderedDict[tuple[str, str], Pipeline] = OrderedDict()
        #: Evicted pipelines whose clients are closed with the runtime (a job may still
        #: hold one).
        self._retired: list[Pipeline] = []
        self._indices: IndexSource | None = None
        self._indices_client: Any = None

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    @property
    def records(self) -> JobRecords:
        if self._records is None:
            self._records = open_records(self.settings)
        return self._records

    @property
    def slots(self) -> RequestSlots:
        if self._slots is None:
            self._slots = MachineSlots(
                self.settings.max_concurrent_requests,
                self.settings.slot_dir,
                timeout_s=self.settings.slot_timeout_s,
            )
        return self._slots

    @property
    def indices(self) -> IndexSource:
        """Where image indices come from: one counter per actor in Redis in distributed
        mode (every worker shares it), else this process's own."""
        if self._indices is None:
            if self.settings.redis_url:
                from actor_maker.queue.indices import open_indices

                self._indices, self._indices_client = open_indices(
                    self.settings.redis_url, prefix=self.settings.queue_prefix
                )
            else:
                self._indices = local_indices
        return self._indices

    @functools.cached_property
    def library(self) -> list[prompt_lib.PromptTemplate] | None:
        """The ``prompts_file`` library, read and checked once for every pipeline; ``None``
        for the built-in one."""
        return prompt_lib.load_library(self.prompts_file) if self.prompts_file else None

    def pipeline(self, model: str | None = None, provider: str | None = None) -> Pipeline:
        """The pipeline for a provider and model, built once. The model is validated before
        anything is built, and at most ``MAX_PIPELINES`` are kept, so requests naming many
        models cannot grow the process."""
        name = provider or self.provider_name
        if model is not None and model != self.settings.model and name != "preview":
            check_model(model, self.settings.prices)
        model = model or self.settings.model
        key = (name, model)
        if key in self._pipelines:
            self._pipelines.move_to_end(key)
            return self._pipelines[key]
        chosen = make_provider(self.settings, name, model, gate=self.gate)
        self._pipelines[key] = Pipeline(
            settings=self.settings,
            store=self.store,
            provider=chosen,
            slots=self.slots,
            indices=self.indices,
            policy=self.policy,
            library=self.library,
            checker=make_checker(self.settings),
        )
        while len(self._pipelines) > MAX_PIPELINES:
            _, evicted = self._pipelines.popitem(last=False)
            self._retired.append(evicted)
        return self._pipelines[key]

    async def aclose(self) -> None:
        """Close the providers' HTTP clients and the job records."""
        for pipeline in [*self._pipelines.values(), *self._retired]:
            await pipeline.provider.aclose()
        self._pipelines.clear()
        self._retired.clear()
        if self._records is not None:
            self._records.close()
        if self._indices_client is not None:
            self._indices_client.close()
