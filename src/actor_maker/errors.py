"""The exception tree of Actor Maker.

Everything raised on purpose by this package derives from ``ActorMakerError``;
foreign exceptions (botocore, httpx, OSError) are wrapped at the store and
provider boundaries with ``raise ... from exc`` so callers above them only
ever see this tree::

    ActorMakerError
    ├── InputError                 bad input, refused before anything happens (exit 2, HTTP 422)
    │   ├── UnsafeURLError         URL scheme or address not allowed
    │   ├── InvalidImageError      not an image, too big, too many pixels
    │   └── UnknownActorTypeError
    ├── ConfigError                settings that cannot work (exit 2, HTTP 500)
    ├── ManifestError
    │   ├── CorruptManifestError   not valid JSON / not a manifest; left untouched
    │   └── ManifestConflictError  gave up after too many concurrent-update retries
    ├── NotFoundError              an actor, object or prompt that does not exist (HTTP 404)
    ├── ConflictError              clashes with the current state, e.g. a running job (HTTP 409)
    │   └── NameTakenError         another actor has this name (exit 2)
    ├── StoreError                 the object store failed (network, permissions)
    │   └── PreconditionFailed     put-if-absent / put-if-version lost the race
    ├── ProviderError              the image model failed for one item
    │   ├── ContentFlaggedError    E005 "flagged as sensitive": final, not retried
    │   ├── ProviderTimeoutError   the per-image deadline passed or a sent create timed out
    │   └── RetryableProviderError 429 / 5xx / connection refused: worth another try
    ├── SlotTimeoutError           no request slot became free in time
    ├── BudgetError                the estimated cost is over the ceiling (exit 2)
    └── FetchError                 the base image could not be downloaded
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """How the CLI ends: every ``raise typer.Exit`` and ``sys.exit`` uses one of these."""

    OK = 0
    #: Some items failed (the others were stored), or a check found problems.
    FAILED = 1
    #: Bad input or configuration: nothing was done.
    USAGE = 2
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


class ActorMakerError(Exception):
    """Root of every error this package raises on purpose."""

    #: HTTP status used when this error reaches the API edge.
    status: int = 500
    #: Process exit code used when this error reaches the CLI edge.
    exit_code: int = ExitCode.FAILED

    def __init_subclass__(
        cls, *, status: int | None = None, exit_code: int | None = None, **kwargs: Any
    ) -> None:
        """A subclass states its own ``status``/``exit_code`` in its class line, e.g.
        ``class NotFoundError(ActorMakerError, status=404, exit_code=ExitCode.USAGE)``;
        what it leaves out it inherits."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if exit_code is not None:
            cls.exit_code = exit_code


class InputError(ActorMakerError, status=422, exit_code=ExitCode.USAGE):
    """Bad input, refused before anything happens."""


class UnsafeURLError(InputError):
    """A URL scheme or address that is not allowed."""


class InvalidImageError(InputError):
    """Not an image, too big, or too many pixels."""


class UnknownActorTypeError(InputError):
    """An actor type the prompt library does not know."""


class ConfigError(ActorMakerError, status=500, exit_code=ExitCode.USAGE):
    """Settings that cannot work."""


class ManifestError(ActorMakerError):
    """A manifest that cannot be read or written."""


class CorruptManifestError(ManifestError, status=409, exit_code=ExitCode.USAGE):
    """Not valid JSON or not a manifest; left untouched."""


class ManifestConflictError(ManifestError, status=503):
    """Gave up after too many concurrent-update retries."""


class NotFoundError(ActorMakerError, status=404, exit_code=ExitCode.USAGE):
    """An actor, object or prompt that does not exist."""


class StoreError(ActorMakerError, status=502, exit_code=ExitCode.USAGE):
    """The store is unreachable or refuses us: at the CLI edge that is configuration."""


class PreconditionFailed(StoreError, status=409):
    """A put-if-absent or put-if-version lost the race."""


class ProviderError(ActorMakerError, status=502):
    """The image model failed for one item."""


class ContentFlaggedError(ProviderError):
    """E005 "flagged as sensitive": final, not retried."""


class ProviderTimeoutError(ProviderError):
    """The per-image deadline passed, or a sent create timed out."""


class RetryableProviderError(ProviderError):
    """A failure worth retrying; ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, throttled: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        #: A 429: the service asked us to slow down, so it does not use up the retries.
        self.throttled = throttled


class SlotTimeoutError(ActorMakerError, status=503):
    """No request slot became free in time."""


class BudgetError(ActorMakerError, status=422, exit_code=ExitCode.USAGE):
    """The estimated cost is over the ceiling."""


class FetchError(ActorMakerError, status=422, exit_code=ExitCode.USAGE):
    """The base image could not be downloaded."""


class ConflictError(ActorMakerError, status=409, exit_code=ExitCode.USAGE):
    """The request conflicts with the current state (a job another process runs, a finished job)."""


def error_class(name: str | None) -> type[ActorMakerError]:
    """The class of this tree called ``name`` (job records keep an error's type by name)."""

    def walk(cls: type[ActorMakerError]) -> type[ActorMakerError] | None:
        if cls.__name__ == name:
            return cls
        for sub in cls.__subclasses__():
            found = walk(sub)
            if found is not None:
                return found
        return None

    return walk(ActorMakerError) or ActorMakerError


class NameTakenError(ConflictError):
    """Another actor of the store has this name (names are unique per store)."""
