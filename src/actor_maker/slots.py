"""Request slots: the bound on provider calls in flight.

``ProcessSlots`` bounds one process (an asyncio semaphore). ``MachineSlots``
bounds every ``actor-maker`` process on one machine together: a slot is an
exclusive OS lock on one of N lock files (portalocker's bounded semaphore),
released by the kernel if the holder dies. Distributed mode adds a
Redis-backed implementation of the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import portalocker

from actor_maker.errors import SlotTimeoutError


class RequestSlots(Protocol):
    limit: int

    def slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one slot for the duration of the ``async with`` block."""
        ...


class ProcessSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sem = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._sem:
            yield


def default_slot_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "actor-maker" / "slots"


class MachineSlots:
    """At most ``limit`` slots held across all processes sharing ``directory``."""

    def __init__(
        self,
        limit: int,
        directory: Path | None = None,
        *,
        name: str = "provider",
        timeout_s: float = 600.0,
        poll_s: float = 0.05,
    ) -> None:
        self.limit = limit
        self.directory = directory or default_slot_dir()
        self.name = name
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._local = asyncio.Semaphore(limit)

    def _try_acquire(self) -> portalocker.BoundedSemaphore | None:
        sem = portalocker.BoundedSemaphore(
            self.limit,
            name=self.name,
            directory=str(self.directory),
            timeout=0,
            fail_when_locked=False,
        )
        return sem if sem.acquire() is not None else None

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._local:
            self.directory.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + self.timeout_s
            held = self._try_acquire()
            while held is None:
                if time.monotonic() > deadline:
                    raise SlotTimeoutError(
                        f"no request slot became free within {self.timeout_s:.0f} s: "
                        f"all {self.limit} slot(s) in {self.directory} are held by other "
                        "actor-maker processes (raise MAX_CONCURRENT_REQUESTS or wait for them)"
                    )
                await asyncio.sleep(self.poll_s)
                held = self._try_acquire()
            try:
                yield
            finally:
                held.release()
