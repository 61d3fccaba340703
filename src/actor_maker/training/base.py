"""The trainer seam: an actor's exported dataset in, LoRA weights and sample images out.

Two implementations: ``replicate`` (Replicate's trainings API) and ``ai-toolkit`` (ostris
ai-toolkit run as a subprocess on this machine). The orchestration (``training/flow.py``)
exports the dataset in the trainer's ``export_format``, starts the training, records the
returned id in the actor's manifest *before* waiting (so a restarted job re-attaches
instead of paying again), polls ``status`` until it is final, then fetches the weights and
the sample images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from actor_maker.providers.base import Tracking


class TrainingState(StrEnum):
    starting = "starting"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def final(self) -> bool:
        return self in (TrainingState.succeeded, TrainingState.failed, TrainingState.canceled)


@dataclass(frozen=True)
class TrainingParams:
    """What the trainer is asked to do; derived from the dataset size (training/params.py)
    unless the user overrides a value."""

    steps: int
    rank: int
    learning_rate: float
    batch_size: int = 1
    resolution: str = "512,768,1024"


@dataclass(frozen=True)
class Dataset:
    """The exported training set, in the trainer's ``export_format``.

    ``path`` is a local zip (replicate-zip) or folder (ai-toolkit); ``url`` is a URL the
    trainer can fetch it from (an S3 presigned URL), when there is one. A trainer that needs
    a URL and gets none uploads ``path`` itself (Replicate: its files API).
    """

    path: Path
    images: int
    #: sha256 over the sorted (filename, md5, caption) of every image: what was trained.
    sha256: str
    url: str | None = None


@dataclass(frozen=True)
class TrainingRequest:
    actor_id: str
    #: The model version label, e.g. ``V3``; part of the weights' file name.
    version: str
    trigger_word: str
    dataset: Dataset
    params: TrainingParams
    #: Prompts and seeds of the validation samples (ai-toolkit renders them while training).
    sample_prompts: tuple[str, ...] = ()
    sample_seeds: tuple[int, ...] = ()
    #: Replicate: where the trained version goes, ``owner/name`` (created if missing).
    destination: str | None = None
    #: Replicate: the HTTPS URL Replicate should call on completion (optional).
    webhook_url: str | None = None

    def seeds(self) -> list[int]:
        """One seed per sample prompt: ``sample_seeds`` in order, then ``1000 + i`` for the
        prompts past them."""
        given = list(self.sample_seeds[: len(self.sample_prompts)])
        return given + [1000 + i for i in range(len(self.sample_prompts) - len(given))]


@dataclass
class TrainingStatus:
    training_id: str
    state: TrainingState
    #: 0..1 when the trainer says how far it is.
    progress: float | None = None
    #: The last lines of the trainer's log (secrets removed).
    logs_tail: str = ""
    error: str | None = None
    #: Replicate: ``output.weights`` (expires within the hour) and the destination version.
    weights_url: str | None = None
    model_version: str | None = None
    #: ai-toolkit: the ``.safetensors`` file it wrote.
    weights_path: Path | None = None
    #: Billed GPU time, when the trainer reports it (Replicate ``metrics.predict_time``).
    gpu_seconds: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


class Trainer(Protocol):
    """Where a LoRA is trained. Errors are ``actor_maker.errors`` types (``ProviderError``
    and subclasses for the remote side, ``InputError`` for refused input)."""

    #: ``replicate`` or ``ai-toolkit``.
    name: str
    #: The export format the trainer reads: ``replicate-zip`` or ``ai-toolkit``.
    export_format: str
    #: The trainer model (Replicate ``owner/name:version``) or the tool, for the record.
    model: str

    async def start(self, request: TrainingRequest) -> str:
        """Start a training and return its id. A create that may have been sent is never
        repeated blindly (the caller records the id before anything else)."""
        ...

    async def find_started(self, request: TrainingRequest, since: datetime) -> list[str]:
        """The ids of trainings for ``request`` created at ``since`` or later (whatever their
        dataset upload), newest first: a process that died before recording the answer of
        its create may have started one. ``[]`` when the trainer cannot tell."""
        ...

    async def status(self, training_id: str) -> TrainingStatus: ...

    async def cancel(self, training_id: str) -> None: ...

    async def weights(self, status: TrainingStatus) -> bytes:
        """The trained ``.safetensors`` bytes of a succeeded training."""
        ...

    async def samples(
        self, status: TrainingStatus, request: TrainingRequest, tracking: Sequence[Tracking] = ()
    ) -> list[bytes]:
        """One image per ``request.sample_prompts`` made with the trained weights.

        ``tracking[i]`` (when given) keeps hold of sample ``i``'s paid prediction across
        runs, as for images: ``on_created`` hears its id before the wait, ``resume`` is an id
        an earlier run noted (polled instead of paying again). A trainer that pays nothing
        per sample ignores it."""
        ...

    async def aclose(self) -> None: ...
