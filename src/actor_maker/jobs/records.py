"""Where job records, their event streams and their leases live.

One small base class, three implementations: ``SQLiteJobRecords`` (embedded mode: a
file, no server; several processes on one machine may share it), in distributed
mode a Redis one, and ``MemoryJobRecords`` for library use. The base owns ``list``
and ``count``; each backend answers them for one ``JobFilter``. The runner is the only
writer of a job it holds the lease for; anyone may read, list, and request a cancel.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from actor_maker.jobs.models import Job, JobEvent, JobState


@dataclass(frozen=True)
class JobFilter:
    """Which jobs ``list`` and ``count`` see: one actor's or all, in some states or all."""

    actor_id: str | None = None
    #: Without repeats; ``()`` matches nothing.
    states: tuple[JobState, ...] | None = None

    @classmethod
    def of(cls, actor_id: str | None, states: Sequence[JobState] | None) -> JobFilter:
        unique = None if states is None else tuple(dict.fromkeys(JobState(s) for s in states))
        return cls(actor_id, unique)

    def matches(self, job: Job) -> bool:
        return (self.actor_id is None or job.actor_id == self.actor_id) and (
            self.states is None or job.state in self.states
        )


class JobRecords(abc.ABC):
    @abc.abstractmethod
    def create(self, job: Job) -> Job:
        """Store a new job and return it; ``InputError`` if its id exists. When
        ``job.dedupe_key`` is set and the actor has a queued or running job with that key,
        store nothing and return that job: check and insert are one atomic step."""

    @abc.abstractmethod
    def get(self, job_id: str) -> Job | None:
        """The job, or ``None``."""

    @abc.abstractmethod
    def save(self, job: Job) -> None:
        """Replace the stored record with ``job`` (the lease holder's write)."""

    @abc.abstractmethod
    def modify(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        """Atomically read the job, let ``change`` edit it, and store it if ``change``
        returns True; retried on concurrent writes, so ``change`` must be a pure edit.
        Many workers update items of one job this way. ``None`` if there is no job."""

    def list(
        self,
        *,
        actor_id: str | None = None,
        states: Sequence[JobState] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Job]:
        """Newest first."""
        where = JobFilter.of(actor_id, states)
        if limit <= 0 or where.states == ():
            return []
        return self._list(where, limit, max(offset, 0))

    def count(
        self, *, actor_id: str | None = None, states: Sequence[JobState] | None = None
    ) -> int:
        """How many jobs ``list`` would page through."""
        where = JobFilter.of(actor_id, states)
        return 0 if where.states == () else self._count(where)

    @abc.abstractmethod
    def _list(self, where: JobFilter, limit: int, offset: int) -> builtins.list[Job]:
        """``list`` for ``limit`` > 0, ``offset`` >= 0 and ``where.states`` not empty."""

    @abc.abstractmethod
    def _count(self, where: JobFilter) -> int:
        """``count`` for ``where.states`` not empty."""

    @abc.abstractmethod
    def request_cancel(self, job_id: str) -> Job | None:
        """Set ``cancel_requested`` (seen by whichever process runs the job)."""

    @abc.abstractmethod
    def append_event(self, job_id: str, name: str, data: dict[str, object]) -> JobEvent:
        """Add an event; ``seq`` grows by one per job, starting at 1."""

    @abc.abstractmethod
    def events_since(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> builtins.list[JobEvent]:
        """The job's events after ``after_seq``, oldest first, at most ``limit``."""

    @abc.abstractmethod
    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Take the job if nobody holds an unexpired lease on it (or ``owner`` does)."""

    @abc.abstractmethod
    def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Extend ``owner``'s lease; ``False`` if it was lost."""

    @abc.abstractmethod
    def release_lease(self, job_id: str, owner: str) -> None:
        """End ``owner``'s lease (a lease another owner holds stays)."""

    @abc.abstractmethod
    def lease_owner(self, job_id: str) -> str | None:
        """The holder of an unexpired lease, or ``None``."""

    @abc.abstractmethod
    def orphaned(self) -> builtins.list[Job]:
        """Queued or running jobs whose lease is missing or expired."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of connections; the records stay where they are."""
