"""Prometheus metrics, in the default registry that ``GET /metrics`` serves.

Call sites stay one line: ``record_generated(provider, model)``, ``record_failure(exc)``,
``with provider_timer(name): ...``, ``async with slot_wait(slots.slot()): ...``,
``manifest_conflict()``, ``observe_job_span(state, started, finished)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from actor_maker.errors import (
    BudgetError,
    ConfigError,
    ContentFlaggedError,
    FetchError,
    InputError,
    ManifestError,
    NotFoundError,
    ProviderError,
    ProviderTimeoutError,
    SlotTimeoutError,
    StoreError,
)

#: Every value the ``reason`` label of ``actor_maker_images_failed_total`` takes.
FAILURE_REASONS = (
    "flagged",
    "timeout",
    "provider",
    "store",
    "input",
    "config",
    "canceled",
    "internal",
)

#: Provider calls take seconds to minutes; slot waits and jobs span a wider range.
_PROVIDER_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_WAIT_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600)
_JOB_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)

IMAGES_GENERATED = Counter(
    "actor_maker_images_generated_total",
    "Images generated and stored.",
    ["provider", "model"],
)
IMAGES_FAILED = Counter(
    "actor_maker_images_failed_total",
    "Items that failed, by reason.",
    ["reason"],
)
PROVIDER_SECONDS = Histogram(
    "actor_maker_provider_seconds",
    "Latency of one provider.generate call (successful or not).",
    ["provider"],
    buckets=_PROVIDER_BUCKETS,
)
SLOT_WAIT_SECONDS = Histogram(
    "actor_maker_slot_wait_seconds",
    "Time spent waiting for a request slot.",
    buckets=_WAIT_BUCKETS,
)
MANIFEST_CONFLICTS = Counter(
    "actor_maker_manifest_conflicts_total",
    "Manifest compare-and-swap conflicts retried.",
)
JOB_SECONDS = Histogram(
    "actor_maker_job_seconds",
    "Duration of finished jobs, by final state.",
    ["state"],
    buckets=_JOB_BUCKETS,
)

for _reason in FAILURE_REASONS:  # export zeros, so rate() works from the first failure
    IMAGES_FAILED.labels(reason=_reason)


def failure_reason(exc: BaseException) -> str:
    """The ``reason`` label for an item that failed with ``exc`` (one of ``FAILURE_REASONS``)."""
    if isinstance(exc, ContentFlaggedError):
        return "flagged"
    if isinstance(exc, ProviderTimeoutError | SlotTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, ProviderError):
        return "provider"
    if isinstance(exc, StoreError | ManifestError):
        return "store"
    if isinstance(exc, ConfigError):
        return "config"
    if isinstance(exc, InputError | FetchError | BudgetError | NotFoundError):
        return "input"
    if isinstance(exc, asyncio.CancelledError):
        return "canceled"
    return "internal"


def record_generated(provider: str, model: str) -> None:
    IMAGES_GENERATED.labels(provider=provider, model=model).inc()


def record_failure(exc: BaseException) -> None:
    IMAGES_FAILED.labels(reason=failure_reason(exc)).inc()


def record_canceled() -> None:
    """An item canceled before it finished (in flight or never started)."""
    IMAGES_FAILED.labels(reason="canceled").inc()


def observe_provider(provider: str, seconds: float) -> None:
    PROVIDER_SECONDS.labels(provider=provider).observe(seconds)


@contextlib.contextmanager
def provider_timer(provider: str) -> Iterator[None]:
    """Observe the block's duration as one provider call, unless it was canceled."""
    start = time.perf_counter()
    try:
        yield
    except asyncio.CancelledError:
        raise
    except BaseException:
        observe_provider(provider, time.perf_counter() - start)
        raise
    observe_provider(provider, time.perf_counter() - start)


def observe_slot_wait(seconds: float) -> None:
    SLOT_WAIT_SECONDS.observe(seconds)


@contextlib.asynccontextmanager
async def slot_wait(slot: contextlib.AbstractAsyncContextManager[None]) -> AsyncIterator[None]:
    """``async with slot_wait(slots.slot()):`` holds the slot and observes how long it took
    to get it."""
    start = time.perf_counter()
    async with slot:
        observe_slot_wait(time.perf_counter() - start)
        yield


def manifest_conflict() -> None:
    MANIFEST_CONFLICTS.inc()


def observe_job(state: str, seconds: float) -> None:
    JOB_SECONDS.labels(state=state).observe(max(0.0, seconds))


def observe_job_span(state: str, started: datetime, finished: datetime) -> None:
    """A job that ran from ``started`` to ``finished`` (naive times are taken as UTC)."""
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (started, finished))
    observe_job(state, (end - start).total_seconds())
