"""The image provider seam: one base image + one prompt → one new image."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Protocol

#: Called with a prediction's id as soon as the provider has started it (before waiting).
OnCreated = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class InputImage:
    """The base image as the provider should see it (already downscaled if needed)."""

    data: bytes
    content_type: str
    #: A URL the model can fetch (e.g. presigned), or ``None`` when there is none.
    url: str | None = None


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    aspect_ratio: str
    seed: int
    output_format: str = "jpg"
    #: The prompt's library category, when it has one (the preview provider greys bw_stylized).
    category: str | None = None


@dataclass(frozen=True)
class Tracking:
    """How a recorded job keeps hold of the prediction it pays for, across runs."""

    #: A prediction an earlier run started: it is polled (and its output downloaded if it
    #: has not expired) instead of paying for a new one.
    resume: str | None = None
    #: Hears the id of the prediction started, before the wait.
    on_created: OnCreated | None = None


#: A call nobody records (tests, samples, the doctor): nothing to resume, nobody to tell.
UNTRACKED = Tracking()


@dataclass(frozen=True)
class GeneratedImage:
    """The downloaded output plus its provenance, recorded in the manifest entry."""

    data: bytes
    provider: str
    model: str
    seed: int
    prediction_id: str | None
    started_at: str
    finished_at: str
    cost: float | None

    def provenance(self) -> dict[str, object]:
        """Every field but the image bytes, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "data"}


class ImageProvider(Protocol):
    """What the pipeline needs from an image model."""

    name: str
    model: str
    #: Costs nothing (no price needed to plan a job).
    free: bool
    #: Makes placeholders, not training data (the quality checks mark them so).
    placeholder: bool

    async def generate(
        self, image: InputImage, params: GenerationParams, tracking: Tracking = UNTRACKED
    ) -> GeneratedImage:
        """Generate one image and return its bytes, downloaded already.

        ``tracking.on_created`` hears the id of the prediction started, before the wait;
        ``tracking.resume`` is such an id from an earlier run: that prediction is polled (and
        its output downloaded if it has not expired) instead of paying for a new one.

        Raises ``ContentFlaggedError`` (final), ``ProviderTimeoutError`` or
        ``ProviderError``; retries of transient failures happen inside. When the
        calling task is cancelled, an in-flight prediction is cancelled too.
        """
        ...

    async def check(self) -> str:
        """One cheap call proving the provider is usable; returns a description."""
        ...

    async def aclose(self) -> None: ...


class CreateGate(Protocol):
    """Pacing shared by everyone who creates predictions (distributed mode: every worker).

    The provider calls ``before_create`` right before it sends a create and ``throttled``
    when a create was answered 429, so one worker's 429 slows every worker down.
    """

    async def before_create(self) -> None:
        """Wait until a create may be sent: no slow-down in force and within the rate."""
        ...

    async def throttled(self, retry_after: float | None) -> None:
        """A create was answered 429 (``retry_after``: the server's hint, in seconds)."""
        ...
