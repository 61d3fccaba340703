"""Where job records, their event streams and their leases live.

One small interface, two implementations: ``SQLiteJobRecords`` (embedded mode: a
file, no server; several processes on one machine may share it) and, in
distributed mode, a Redis one. The runner is the only writer of a job it holds
the lease for; anyone may read, list, and request a cancel.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Protocol

from actor_maker.jobs.models import Job, JobEvent, JobState


class JobRecords(Protocol):
    def create(self, job: Job) -> Job:
        """Store a new job and return it; ``InputError`` if its id exists. When
        ``job.dedupe_key`` is set and the actor has a queued or running job with that key,
        store nothing and return that job: check and insert are one atomic step."""
        ...

    def get(self, job_id: str) -> Job | None: ...

    def save(self, job: Job) -> None:
        """Replace the stored record with ``job`` (the lease holder's write)."""
        ...

    def modify(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        """Atomically read the job, let ``change`` edit it, and store it if ``change``
        returns True; retried on concurrent writes, so ``change`` must be a pure edit.
        Many workers update items of one job this way. ``None`` if there is no job."""
        ...

    def list(
        self,
        *,
        actor_id: str | None = None,
        states: Sequence[JobState] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Job]:
        """Newest first."""
        ...

    def count(
        self, *, actor_id: str | None = None, states: Sequence[JobState] | None = None
    ) -> int:
        """How many jobs ``list`` would page through."""
        ...

    def request_cancel(self, job_id: str) -> Job | None:
        """Set ``cancel_requested`` (seen by whichever process runs the job)."""
        ...

    def append_event(self, job_id: str, name: str, data: dict[str, object]) -> JobEvent:
        """Add an event; ``seq`` grows by one per job, starting at 1."""
        ...

    def events_since(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> builtins.list[JobEvent]: ...

    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Take the job if nobody holds an unexpired lease on it (or ``owner`` does)."""
        ...

    def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Extend ``owner``'s lease; ``False`` if it was lost."""
        ...

    def release_lease(self, job_id: str, owner: str) -> None: ...

    def lease_owner(self, job_id: str) -> str | None:
        """The holder of an unexpired lease, or ``None``."""
        ...

    def orphaned(self) -> builtins.list[Job]:
        """Queued or running jobs whose lease is missing or expired."""
        ...

    def close(self) -> None: ...
