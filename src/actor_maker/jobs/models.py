"""Job records: what was asked, what happened, what it cost.

A job is one generation request (all prompts, a subset, custom prompts or one
prompt) for one actor. Its record is the API's view of it and the runner's
memory across restarts; ``JobRecords`` (records.py) stores it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, computed_field


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    partially_failed = "partially_failed"
    failed = "failed"
    canceled = "canceled"

    @property
    def finished(self) -> bool:
        return self not in (JobState.queued, JobState.running)


class ItemState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


class JobKind(StrEnum):
    all = "all"  # every library prompt the manifest lacks
    subset = "subset"  # chosen library prompts
    custom = "custom"  # free-text prompts (one or more)


def now() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return "job_" + uuid.uuid4().hex[:16]


#: The fields of an item that say what to make (as opposed to what happened).
ITEM_INPUT = {"prompt_id", "prompt", "category", "face_visible"}

#: How much of a prompt the old scripts' JSON results show.
PREVIEW_CHARS = 100

#: Kinds of job of which an actor has at most one queued or running at a time: a second
#: request answers with the running one (never paying twice for a double click).
DEDUPE_ALL = "all"
DEDUPE_BALANCE = "balance"


class JobItem(BaseModel):
    prompt_id: str
    prompt: str
    category: str | None = None
    face_visible: bool = True
    state: ItemState = ItemState.queued
    error: str | None = None
    filename: str | None = None
    index: int | None = None
    key: str | None = None
    s3_url: str | None = None
    seed: int | None = None
    cost: float | None = None
    #: The quality checks' verdict on the stored image: accepted, rejected or review.
    verdict: str | None = None
    #: The provider's id of the prediction started for it, recorded as soon as the create
    #: answers: a resumed item polls that prediction instead of paying for another.
    prediction_id: str | None = None
    #: Who is working on it (one delivery or one runner), and when they last said so.
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    #: How many runs have claimed it. Never claimed (and no prediction noted): no run can
    #: have stored anything for it, so nothing needs looking up before generating.
    attempts: int = 0

    @property
    def open(self) -> bool:
        return self.state in (ItemState.queued, ItemState.running)

    @property
    def prompt_preview(self) -> str:
        text = self.prompt
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


class Job(BaseModel):
    id: str = Field(default_factory=new_job_id)
    actor_id: str
    actor_name: str
    actor_type: str | None = None
    actor_sex: str | None = None
    kind: JobKind = JobKind.all
    state: JobState = JobState.queued
    items: list[JobItem] = Field(default_factory=list)
    aspect_ratio: str = "1:1"
    seed: int | None = None
    model: str
    provider: str
    max_cost: float | None = None
    estimated_cost: float = 0.0
    #: Where the base image is: a store key (preferred, survives restarts) …
    base_image_key: str | None = None
    #: … or the URL it was given as, without its query string (for people to read).
    base_image_url: str | None = None
    error: str | None = None
    #: The error class of ``error`` (e.g. ``ConfigError``): the API's status comes from it.
    error_type: str | None = None
    #: At most one queued or running job per actor and ``dedupe_key`` (see ``DEDUPE_*``).
    dedupe_key: str | None = None
    #: Library prompts the plan skipped because the manifest had them already.
    already_done: list[str] = Field(default_factory=list)
    cancel_requested: bool = False
    #: Free-form context from the caller (the old frontend's workflow/settings).
    context: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=now)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return len(self.items)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def succeeded(self) -> int:
        return sum(1 for i in self.items if i.state == ItemState.succeeded)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed(self) -> int:
        return sum(1 for i in self.items if i.state in (ItemState.failed, ItemState.canceled))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost(self) -> float:
        return round(sum(i.cost or 0.0 for i in self.items), 4)

    def progress(self) -> dict[str, Any]:
        """The data of a ``progress`` event: state and counts."""
        return {"state": self.state.value, **self.counts()}

    def counts(self) -> dict[str, int]:
        """``running``: items whose prediction has started (the provider is making the
        image, or it is being stored); ``waiting``: items not started yet, a claimed one
        included while it waits for a request slot."""
        done = sum(1 for i in self.items if not i.open)
        running = sum(1 for i in self.items if i.state == ItemState.running and i.prediction_id)
        return {
            "total": self.total,
            "done": done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "running": running,
            "waiting": self.total - done - running,
        }

    def item(self, prompt_id: str) -> JobItem | None:
        return next((i for i in self.items if i.prompt_id == prompt_id), None)

    def settle(self) -> bool:
        """Finish the job if every item is done; True when this call finished it."""
        if self.state.finished or any(
            i.state in (ItemState.queued, ItemState.running) for i in self.items
        ):
            return False
        self.state = self.final_state()
        if self.error and self.state == JobState.succeeded:
            self.state = JobState.failed
        self.finished_at = now()
        return True

    def retry(self) -> Job:
        """A new job with this one's failed and canceled items."""
        failed = [i for i in self.items if i.state in (ItemState.failed, ItemState.canceled)]
        per_item = self.estimated_cost / max(1, self.total)
        return self.model_copy(
            update={
                "id": new_job_id(),
                "state": JobState.queued,
                "items": [JobItem(**i.model_dump(include=ITEM_INPUT)) for i in failed],
                "error": None,
                "error_type": None,
                "dedupe_key": None,
                "already_done": [],
                "cancel_requested": False,
                "created_at": now(),
                "started_at": None,
                "finished_at": None,
                "estimated_cost": round(len(failed) * per_item, 4),
                "context": {**self.context, "retry_of": self.id},
            }
        )

    def final_state(self) -> JobState:
        """The state a finished run leaves the job in, from its items."""
        if self.cancel_requested:
            return JobState.canceled
        if not self.items or self.succeeded == self.total:
            return JobState.succeeded
        if self.succeeded == 0:
            return JobState.failed
        return JobState.partially_failed


class JobEvent(BaseModel):
    """One entry of a job's event stream (Server-Sent Events name + JSON data)."""

    seq: int
    job_id: str
    name: str  # job_started, item_started, item_succeeded, item_failed, progress, job_finished
    data: dict[str, Any]
    created_at: datetime = Field(default_factory=now)
