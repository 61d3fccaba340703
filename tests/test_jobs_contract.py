"""The ``JobRecords`` contract, run against every implementation: records, filters,
cancel, events and leases, in one process and across real OS processes.

SQLite runs on a file under ``tmp_path`` with a clock the test moves; Redis on the
real server (database 15) under a prefix of its own, with real time: each backend
lets a lease expire its own way through ``Backend.elapse``. What is specific to one
implementation lives in its own test module (``test_jobs_sqlite.py``); the few
Redis-only checks sit at the end of this one.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from actor_maker.errors import ConfigError, InputError, StoreError
from actor_maker.jobs.memory import MemoryJobRecords
from actor_maker.jobs.models import ItemState, Job, JobItem, JobState
from actor_maker.jobs.records import JobRecords
from actor_maker.jobs.redis import RedisJobRecords
from actor_maker.jobs.sqlite import SQLiteJobRecords

REDIS_URL = "redis://127.0.0.1:6379/15"
#: Real seconds per unit of lease time on Redis (SQLite's fake clock moves 1 s per unit).
REDIS_UNIT_S = 0.1
PROCESSES = 4
EVENTS_EACH = 50
TIMEOUT_S = 30
T0 = datetime(2025, 1, 1, tzinfo=UTC)

#: How another process opens the same records: ("sqlite", path) or ("redis", prefix).
Opener = tuple[str, str]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_records(opener: Opener) -> SQLiteJobRecords | RedisJobRecords:
    kind, where = opener
    if kind == "sqlite":
        return SQLiteJobRecords(where)
    return RedisJobRecords(REDIS_URL, prefix=where)


@dataclass
class Backend:
    """One implementation under test, and how time passes for its leases."""

    records: SQLiteJobRecords | RedisJobRecords
    opener: Opener
    clock: Clock

    @property
    def unit_s(self) -> float:
        return 1.0 if isinstance(self.records, SQLiteJobRecords) else REDIS_UNIT_S

    def ttl(self, units: float) -> float:
        """A lease time of ``units``, in seconds."""
        return units * self.unit_s

    def elapse(self, units: float) -> None:
        """Let ``units`` of lease time pass: move the fake clock, or wait for Redis."""
        if isinstance(self.records, SQLiteJobRecords):
            self.clock.now += units
        else:
            time.sleep(units * REDIS_UNIT_S)


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = Clock()
    records: SQLiteJobRecords | RedisJobRecords
    if request.param == "sqlite":
        path = str(tmp_path / "nested" / "jobs.db")
        records, opener = SQLiteJobRecords(path, clock=clock), ("sqlite", path)
    else:
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        records, opener = RedisJobRecords(REDIS_URL, prefix=prefix, clock=clock), ("redis", prefix)
    yield Backend(records, opener, clock)
    if isinstance(records, RedisJobRecords):
        cleanup = RedisJobRecords(REDIS_URL, prefix=opener[1])
        cleanup.clear()
        cleanup.close()
    records.close()


@pytest.fixture
def records(backend: Backend) -> SQLiteJobRecords | RedisJobRecords:
    return backend.records


def make_job(actor_id: str = "0001", minutes: int = 0, **fields: Any) -> Job:
    return Job(
        actor_id=actor_id,
        actor_name=f"{actor_id}_actor",
        model="flux-kontext-pro",
        provider="replicate",
        created_at=T0 + timedelta(minutes=minutes),
        **fields,
    )


def ids(found: list[Job]) -> list[str]:
    return [j.id for j in found]


def test_implements_the_protocol(records: SQLiteJobRecords | RedisJobRecords) -> None:
    store: JobRecords = records
    assert store is records


# -- records -----------------------------------------------------------------------------


def test_create_get_save_round_trip(records: JobRecords) -> None:
    job = make_job(
        items=[
            JobItem(prompt_id="a", prompt="rain", state=ItemState.succeeded, cost=0.04),
            JobItem(prompt_id="b", prompt="diner", state=ItemState.failed, error="E005"),
            JobItem(prompt_id="c", prompt="roof"),
        ],
        context={"workflow": "x", "nested": {"list": [1, 2.5, None]}},
    )
    records.create(job)
    assert records.get(job.id) == job
    assert records.get("job_missing") is None

    job.state = JobState.running
    job.items[2].state = ItemState.succeeded
    job.items[2].cost = 0.05
    records.save(job)
    got = records.get(job.id)
    assert got == job
    assert got is not None
    assert (got.total, got.succeeded, got.failed, got.cost) == (3, 2, 1, 0.09)
    assert got.model_dump()["cost"] == 0.09


def test_save_of_an_unknown_job_stores_it(records: JobRecords) -> None:
    job = make_job()
    records.save(job)
    assert records.get(job.id) == job
    assert ids(records.list()) == [job.id]


def test_duplicate_id_is_an_input_error(records: JobRecords) -> None:
    job = make_job()
    records.create(job)
    with pytest.raises(InputError, match=job.id):
        records.create(make_job(id=job.id, state=JobState.running))
    assert records.count() == 1
    assert records.count(states=[JobState.running]) == 0


def test_list_filters_orders_and_pages(records: JobRecords) -> None:
    jobs = [
        make_job("0001", 0, state=JobState.succeeded),
        make_job("0002", 1, state=JobState.queued),
        make_job("0001", 2, state=JobState.running),
        make_job("0001", 3, state=JobState.failed),
        make_job("0002", 4, state=JobState.running),
    ]
    for job in jobs:
        records.create(job)

    newest_first = [j.id for j in reversed(jobs)]
    assert ids(records.list()) == newest_first
    assert ids(records.list(limit=2)) == newest_first[:2]
    assert ids(records.list(limit=2, offset=2)) == newest_first[2:4]
    assert ids(records.list(offset=4)) == newest_first[4:]
    assert records.list(offset=5) == []
    assert ids(records.list(actor_id="0001")) == [jobs[3].id, jobs[2].id, jobs[0].id]
    assert ids(records.list(actor_id="0001", limit=1, offset=1)) == [jobs[2].id]
    running = [JobState.running, JobState.queued]
    assert ids(records.list(states=running)) == [jobs[4].id, jobs[2].id, jobs[1].id]
    assert ids(records.list(states=running, limit=2, offset=1)) == [jobs[2].id, jobs[1].id]
    assert ids(records.list(actor_id="0002", states=[JobState.running])) == [jobs[4].id]
    assert ids(records.list(actor_id="0001", states=running)) == [jobs[2].id]
    assert records.list(states=[]) == []
    assert records.list(actor_id="9999") == []

    assert records.count() == 5
    assert records.count(actor_id="0001") == 3
    assert records.count(states=running) == 3
    assert records.count(states=[]) == 0
    assert records.count(actor_id="0002", states=[JobState.queued]) == 1
    assert records.count(actor_id="0001", states=running) == 1
    assert records.count(actor_id="9999") == 0


def test_list_and_count_agree_on_odd_arguments(records: JobRecords) -> None:
    """The base class owns these rules (``JobRecords.list``/``count``), so every backend
    answers alike: no page for a limit under 1, a negative offset is the start, a state
    named twice counts once."""
    jobs = [make_job("0001", i, state=JobState.running) for i in range(3)]
    for job in jobs:
        records.create(job)
    newest_first = [j.id for j in reversed(jobs)]
    assert records.list(limit=0) == []
    assert records.list(limit=-1) == []
    assert ids(records.list(offset=-2)) == newest_first
    twice = [JobState.running, JobState.running]
    assert ids(records.list(states=twice)) == newest_first
    assert records.count(states=twice) == 3
    assert records.count(actor_id="0001", states=twice) == 3


def test_memory_records_list_like_the_stored_ones() -> None:
    test_list_filters_orders_and_pages(MemoryJobRecords())
    test_list_and_count_agree_on_odd_arguments(MemoryJobRecords())


def test_save_moves_a_job_between_filters(records: JobRecords) -> None:
    job = make_job("0001", state=JobState.queued)
    records.create(job)
    job.state = JobState.running
    records.save(job)
    job.state = JobState.succeeded
    job.actor_id = "0002"
    records.save(job)

    assert records.count() == 1
    assert records.count(states=[JobState.queued, JobState.running]) == 0
    assert ids(records.list(states=[JobState.succeeded])) == [job.id]
    assert records.count(actor_id="0001") == 0
    assert ids(records.list(actor_id="0002", states=[JobState.succeeded])) == [job.id]


def test_request_cancel_survives_a_save_of_a_stale_record(records: JobRecords) -> None:
    job = make_job()
    records.create(job)
    stale = records.get(job.id)
    assert stale is not None and not stale.cancel_requested

    canceled = records.request_cancel(job.id)
    assert canceled is not None and canceled.cancel_requested

    stale.state = JobState.running
    records.save(stale)  # the runner writes progress without having seen the cancel
    got = records.get(job.id)
    assert got is not None
    assert got.state == JobState.running
    assert got.cancel_requested
    assert records.list()[0].cancel_requested
    assert records.request_cancel("job_missing") is None
    assert records.get("job_missing") is None


def test_closed_records_raise_store_error(records: JobRecords) -> None:
    records.close()
    with pytest.raises(StoreError):
        records.get("job_x")


# -- events ------------------------------------------------------------------------------


def test_events_count_from_one_and_page(records: JobRecords) -> None:
    job = make_job()
    records.create(job)
    appended = [records.append_event(job.id, "progress", {"done": n}) for n in range(5)]
    assert [e.seq for e in appended] == [1, 2, 3, 4, 5]
    other = records.append_event("job_other", "job_started", {})
    assert other.seq == 1

    events = records.events_since(job.id, 0)
    assert events == appended
    assert [e.data["done"] for e in events] == [0, 1, 2, 3, 4]
    assert [e.seq for e in records.events_since(job.id, 3)] == [4, 5]
    assert [e.seq for e in records.events_since(job.id, 1, limit=2)] == [2, 3]
    assert records.events_since(job.id, 5) == []
    assert records.events_since("job_missing", 0) == []


def test_events_are_stamped_by_the_clock(backend: Backend) -> None:
    event = backend.records.append_event("job_x", "job_started", {"at": T0})
    assert event.created_at == datetime.fromtimestamp(backend.clock.now, UTC)
    assert event.data == {"at": "2025-01-01T00:00:00Z"}  # stored as JSON
    assert backend.records.events_since("job_x", 0) == [event]


def test_threads_share_one_instance(records: JobRecords) -> None:
    job = make_job()
    records.create(job)

    def append(n: int) -> int:
        return records.append_event(job.id, "progress", {"n": n}).seq

    with ThreadPoolExecutor(max_workers=8) as pool:
        seqs = list(pool.map(append, range(80)))
    assert sorted(seqs) == list(range(1, 81))


# -- leases ------------------------------------------------------------------------------


def test_lease_is_exclusive_until_it_expires(backend: Backend) -> None:
    records, ttl = backend.records, backend.ttl
    job = make_job()
    records.create(job)
    assert records.lease_owner(job.id) is None

    assert records.acquire_lease(job.id, "A", ttl_s=ttl(3))
    assert records.acquire_lease(job.id, "A", ttl_s=ttl(3))  # its holder may take it again
    assert not records.acquire_lease(job.id, "B", ttl_s=ttl(3))
    assert records.lease_owner(job.id) == "A"

    backend.elapse(1)
    assert records.renew_lease(job.id, "A", ttl_s=ttl(10))  # now expires at 11
    backend.elapse(4)  # past the first expiry (3), well before the renewed one
    assert not records.acquire_lease(job.id, "B", ttl_s=ttl(3))
    assert records.lease_owner(job.id) == "A"

    backend.elapse(7)  # past 11
    assert records.lease_owner(job.id) is None
    assert records.acquire_lease(job.id, "B", ttl_s=ttl(100))
    assert records.lease_owner(job.id) == "B"
    assert not records.renew_lease(job.id, "A", ttl_s=ttl(100))

    records.release_lease(job.id, "A")  # not A's to release
    assert records.lease_owner(job.id) == "B"
    records.release_lease(job.id, "B")
    assert records.lease_owner(job.id) is None
    assert records.acquire_lease(job.id, "A", ttl_s=ttl(100))
    assert not records.acquire_lease("job_missing", "A", ttl_s=ttl(100))
    assert records.lease_owner("job_missing") is None


def test_save_keeps_the_lease(records: JobRecords) -> None:
    job = make_job()
    records.create(job)
    assert records.acquire_lease(job.id, "A", ttl_s=30)
    job.state = JobState.running
    records.save(job)
    assert records.lease_owner(job.id) == "A"


def test_orphaned_lists_unfinished_jobs_without_a_live_lease(backend: Backend) -> None:
    records = backend.records
    queued = make_job(minutes=0, state=JobState.queued)
    running_expired = make_job(minutes=1, state=JobState.running)
    running_held = make_job(minutes=2, state=JobState.running)
    finished = make_job(minutes=3, state=JobState.succeeded)
    released = make_job(minutes=4, state=JobState.running)
    for job in (queued, running_expired, running_held, finished, released):
        records.create(job)
    assert records.acquire_lease(running_expired.id, "A", ttl_s=backend.ttl(1))
    assert records.acquire_lease(released.id, "A", ttl_s=backend.ttl(100))
    records.release_lease(released.id, "A")
    backend.elapse(3)
    assert records.acquire_lease(running_held.id, "B", ttl_s=backend.ttl(100))

    assert ids(records.orphaned()) == [queued.id, running_expired.id, released.id]


# -- real processes ----------------------------------------------------------------------


def race(target: Callable[..., None], opener: Opener, job_id: str) -> list[Any]:
    """Run ``target(opener, job_id, racer, barrier, results)`` in fresh processes."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(opener, job_id, racer, barrier, results))
        for racer in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        return [results.get(timeout=TIMEOUT_S) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=TIMEOUT_S)
            if proc.is_alive():
                proc.kill()


def append_events(opener: Opener, job_id: str, racer: int, barrier: Any, results: Any) -> None:
    records = open_records(opener)
    barrier.wait(timeout=TIMEOUT_S)
    seqs = [
        records.append_event(job_id, "progress", {"racer": racer}).seq for _ in range(EVENTS_EACH)
    ]
    records.close()
    results.put((racer, seqs))


def take_lease(opener: Opener, job_id: str, racer: int, barrier: Any, results: Any) -> None:
    records = open_records(opener)
    barrier.wait(timeout=TIMEOUT_S)
    won = records.acquire_lease(job_id, f"racer-{racer}", ttl_s=60)
    records.close()
    results.put((racer, won))


def test_processes_appending_events_get_every_seq_once(backend: Backend) -> None:
    job = make_job()
    backend.records.create(job)
    per_racer = dict(race(append_events, backend.opener, job.id))
    total = PROCESSES * EVENTS_EACH
    assert sorted(seq for seqs in per_racer.values() for seq in seqs) == list(range(1, total + 1))
    events = backend.records.events_since(job.id, 0)
    assert [e.seq for e in events] == list(range(1, total + 1))
    for racer, seqs in per_racer.items():  # each event is stored under the seq it was given
        assert [e.seq for e in events if e.data["racer"] == racer] == seqs


def test_processes_racing_for_a_lease_have_one_winner(backend: Backend) -> None:
    job = make_job()
    backend.records.create(job)
    outcomes = race(take_lease, backend.opener, job.id)
    winners = [racer for racer, won in outcomes if won]
    assert len(winners) == 1
    assert backend.records.lease_owner(job.id) == f"racer-{winners[0]}"


# -- Redis only ----------------------------------------------------------------------------


def test_redis_clear_deletes_only_its_prefix() -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    mine = RedisJobRecords(REDIS_URL, prefix=prefix)
    neighbour = RedisJobRecords(REDIS_URL, prefix=prefix + "x")
    try:
        for records in (mine, neighbour):
            job = make_job()
            records.create(job)
            records.append_event(job.id, "job_started", {})
            assert records.acquire_lease(job.id, "A", ttl_s=30)
        mine.clear()
        assert mine.count() == 0
        client = redis.Redis.from_url(REDIS_URL)
        assert list(client.scan_iter(match=f"{prefix}:*")) == []
        client.close()
        assert neighbour.count() == 1
    finally:
        neighbour.clear()
        mine.close()
        neighbour.close()


def test_redis_failures_are_one_line_store_errors_without_the_password() -> None:
    records = RedisJobRecords("redis://user:hunter2@127.0.0.1:1/0")
    with pytest.raises(StoreError) as caught:
        records.get("job_x")
    message = str(caught.value)
    assert "hunter2" not in message and "\n" not in message
    assert "redis://user:***@127.0.0.1:1/0" in message
    records.close()


def test_redis_rejects_a_url_that_is_not_redis() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisJobRecords("http://:hunter2@127.0.0.1/0")
    assert "hunter2" not in str(caught.value)


def test_modify_is_atomic_across_threads(records):
    import threading

    from actor_maker.jobs.models import ItemState, JobItem

    job = make_job(items=[JobItem(prompt_id=f"p{i}", prompt="x") for i in range(40)])
    records.create(job)

    def finish(index: int) -> None:
        def change(current):
            current.items[index].state = ItemState.succeeded
            return True

        records.modify(job.id, change)

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = records.get(job.id)
    assert stored.succeeded == 40
    assert records.modify("job_missing", lambda j: True) is None
