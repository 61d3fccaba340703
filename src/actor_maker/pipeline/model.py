"""What a job is about before it runs: the actor, the plan, the base image reference.

The job and its items themselves are ``jobs.models.Job``/``JobItem``: one type from the
plan to the record the API serves and the CLI prints.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from actor_maker import prompts as prompt_lib
from actor_maker.jobs.models import Job, JobItem
from actor_maker.manifest import Manifest
from actor_maker.validation import check_actor_id, check_actor_name


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

    @classmethod
    def of(cls, job: Job) -> Actor:
        return cls(job.actor_id, job.actor_name, job.actor_type, job.actor_sex)


@dataclass(frozen=True)
class JobPlan:
    """What a job would generate and cost; nothing fetched, written or spent yet."""

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

    def to_job(self, **fields: Any) -> Job:
        """A new job record for this plan (``provider`` and the rest come from the caller)."""
        return Job(
            actor_id=self.actor.actor_id,
            actor_name=self.actor.actor_name,
            actor_type=self.actor.actor_type,
            actor_sex=self.actor.actor_sex,
            items=[item.model_copy() for item in self.items],
            aspect_ratio=self.aspect_ratio,
            model=self.model,
            estimated_cost=self.estimated_cost,
            already_done=list(self.already_done),
            **fields,
        )


@dataclass(frozen=True)
class StoredBase:
    """A base image already in the store, by key (what jobs remember across restarts)."""

    key: str


#: What a job's base image can be given as: a URL, the bytes, or a key in the store.
BaseImage = str | bytes | StoredBase


def custom_prompt_id(text: str) -> str:
    return "custom-" + hashlib.sha256(text.encode()).hexdigest()[:10]
