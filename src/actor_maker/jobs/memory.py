"""Job records in this process's memory: a ``JobRecords`` for library use and unit tests.

Nothing survives the process and nothing is shared with another one, so the CLI and the
API never use it; ``Pipeline.run`` does when its caller gives no records. It passes the
same contract tests as the SQLite and Redis records.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic_core import to_json

from actor_maker.errors import InputError
from actor_maker.jobs.models import Job, JobEvent, JobState
from actor_maker.jobs.records import JobFilter, JobRecords

_UNFINISHED = (JobState.queued, JobState.running)


class MemoryJobRecords(JobRecords):
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[str, str] = {}  # id → record JSON (a copy per read, like a store)
        self._cancel: set[str] = set()
        self._events: dict[str, builtins.list[JobEvent]] = {}
        self._leases: dict[str, tuple[str, float]] = {}

    def _load(self, job_id: str) -> Job | None:
        raw = self._jobs.get(job_id)
        if raw is None:
            return None
        job = Job.model_validate_json(raw)
        job.cancel_requested = job.cancel_requested or job_id in self._cancel
        return job

    def create(self, job: Job) -> Job:
        with self._lock:
            if job.id in self._jobs:
                raise InputError(f"job {job.id} already exists")
            if job.dedupe_key is not None:
                for other in self._all():
                    if (
                        other.actor_id == job.actor_id
                        and other.dedupe_key == job.dedupe_key
                        and other.state in _UNFINISHED
                    ):
                        return other
            self._jobs[job.id] = job.model_dump_json()
            return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._load(job_id)

    def save(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job.model_dump_json()

    def modify(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        with self._lock:
            job = self._load(job_id)
            if job is not None and change(job):
                self._jobs[job_id] = job.model_dump_json()
                if job.cancel_requested:
                    self._cancel.add(job_id)
            return job

    def _all(self) -> builtins.list[Job]:
        jobs = [j for j in (self._load(i) for i in self._jobs) if j is not None]
        return sorted(jobs, key=lambda j: j.created_at, reverse=True)

    def _filtered(self, where: JobFilter) -> builtins.list[Job]:
        return [j for j in self._all() if where.matches(j)]

    def _list(self, where: JobFilter, limit: int, offset: int) -> builtins.list[Job]:
        with self._lock:
            return self._filtered(where)[offset : offset + limit]

    def _count(self, where: JobFilter) -> int:
        with self._lock:
            return len(self._filtered(where))

    def request_cancel(self, job_id: str) -> Job | None:
        with self._lock:
            if job_id in self._jobs:
                self._cancel.add(job_id)
            return self._load(job_id)

    def append_event(self, job_id: str, name: str, data: dict[str, object]) -> JobEvent:
        with self._lock:
            events = self._events.setdefault(job_id, [])
            event = JobEvent(
                seq=len(events) + 1,
                job_id=job_id,
                name=name,
                data=_plain(data),
                created_at=datetime.fromtimestamp(self._clock(), UTC),
            )
            events.append(event)
            return event

    def events_since(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> builtins.list[JobEvent]:
        with self._lock:
            return self._events.get(job_id, [])[max(0, after_seq) :][:limit]

    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        with self._lock:
            if job_id not in self._jobs:
                return False
            holder = self.lease_owner(job_id)
            if holder is not None and holder != owner:
                return False
            self._leases[job_id] = (owner, self._clock() + ttl_s)
            return True

    def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        with self._lock:
            if self._leases.get(job_id, ("", 0.0))[0] != owner:
                return False
            self._leases[job_id] = (owner, self._clock() + ttl_s)
            return True

    def release_lease(self, job_id: str, owner: str) -> None:
        with self._lock:
            if self._leases.get(job_id, ("", 0.0))[0] == owner:
                del self._leases[job_id]

    def lease_owner(self, job_id: str) -> str | None:
        with self._lock:
            owner, expires = self._leases.get(job_id, ("", 0.0))
            return owner if owner and expires >= self._clock() else None

    def orphaned(self) -> builtins.list[Job]:
        with self._lock:
            jobs = [
                j
                for j in self._filtered(JobFilter(states=_UNFINISHED))
                if self.lease_owner(j.id) is None
            ]
            return sorted(jobs, key=lambda j: j.created_at)

    def close(self) -> None:
        return None


def _plain(data: dict[str, object]) -> dict[str, object]:
    """Events hold JSON, as the stored records' do (no live objects shared)."""
    import json

    plain: dict[str, object] = json.loads(to_json(data))
    return plain
