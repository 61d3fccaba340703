"""``SQLiteJobRecords``: records, cancel, events and leases, in one process and across
real OS processes sharing the file."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actor_maker.errors import InputError, StoreError
from actor_maker.jobs.models import ItemState, Job, JobItem, JobState
from actor_maker.jobs.records import JobRecords
from actor_maker.jobs.sqlite import SQLiteJobRecords

PROCESSES = 4
EVENTS_EACH = 50
TIMEOUT_S = 30
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def records(tmp_path: Path, clock: Clock) -> Iterator[SQLiteJobRecords]:
    store = SQLiteJobRecords(tmp_path / "nested" / "jobs.db", clock=clock)
    yield store
    store.close()


def make_job(actor_id: str = "0001", minutes: int = 0, **fields: Any) -> Job:
    return Job(
        actor_id=actor_id,
        actor_name=f"{actor_id}_actor",
        model="flux-kontext-pro",
        provider="replicate",
        created_at=T0 + timedelta(minutes=minutes),
        **fields,
    )


def test_implements_the_protocol(records: SQLiteJobRecords) -> None:
    store: JobRecords = records
    assert store is records


# -- records -----------------------------------------------------------------------------


def test_create_get_save_round_trip(records: SQLiteJobRecords) -> None:
    job = make_job(
        items=[
            JobItem(prompt_id="a", prompt="rain", state=ItemState.succeeded, cost=0.04),
            JobItem(prompt_id="b", prompt="diner", state=ItemState.failed, error="E005"),
            JobItem(prompt_id="c", prompt="roof"),
        ],
        context={"workflow": "x"},
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


def test_duplicate_id_is_an_input_error(records: SQLiteJobRecords) -> None:
    job = make_job()
    records.create(job)
    with pytest.raises(InputError, match=job.id):
        records.create(make_job(id=job.id))
    assert records.count() == 1


def test_list_filters_orders_and_pages(records: SQLiteJobRecords) -> None:
    jobs = [
        make_job("0001", 0, state=JobState.succeeded),
        make_job("0002", 1, state=JobState.queued),
        make_job("0001", 2, state=JobState.running),
        make_job("0001", 3, state=JobState.failed),
        make_job("0002", 4, state=JobState.running),
    ]
    for job in jobs:
        records.create(job)

    def ids(found: list[Job]) -> list[str]:
        return [j.id for j in found]

    newest_first = [j.id for j in reversed(jobs)]
    assert ids(records.list()) == newest_first
    assert ids(records.list(limit=2)) == newest_first[:2]
    assert ids(records.list(limit=2, offset=2)) == newest_first[2:4]
    assert ids(records.list(offset=4)) == newest_first[4:]
    assert ids(records.list(actor_id="0001")) == [jobs[3].id, jobs[2].id, jobs[0].id]
    running = [JobState.running, JobState.queued]
    assert ids(records.list(states=running)) == [jobs[4].id, jobs[2].id, jobs[1].id]
    assert ids(records.list(actor_id="0002", states=[JobState.running])) == [jobs[4].id]
    assert records.list(states=[]) == []

    assert records.count() == 5
    assert records.count(actor_id="0001") == 3
    assert records.count(states=running) == 3
    assert records.count(actor_id="0002", states=[JobState.queued]) == 1
    assert records.count(actor_id="9999") == 0


def test_request_cancel_survives_a_save_of_a_stale_record(records: SQLiteJobRecords) -> None:
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


# -- events ------------------------------------------------------------------------------


def test_events_count_from_one_and_page(records: SQLiteJobRecords) -> None:
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


# -- leases ------------------------------------------------------------------------------


def test_lease_is_exclusive_until_it_expires(records: SQLiteJobRecords, clock: Clock) -> None:
    job = make_job()
    records.create(job)
    assert records.lease_owner(job.id) is None

    assert records.acquire_lease(job.id, "A", ttl_s=30)
    assert records.acquire_lease(job.id, "A", ttl_s=30)  # its holder may take it again
    assert not records.acquire_lease(job.id, "B", ttl_s=30)
    assert records.lease_owner(job.id) == "A"

    clock.now += 20
    assert records.renew_lease(job.id, "A", ttl_s=30)  # now expires at +50
    clock.now += 25
    assert not records.acquire_lease(job.id, "B", ttl_s=30)

    clock.now += 10
    assert records.lease_owner(job.id) is None
    assert records.acquire_lease(job.id, "B", ttl_s=30)
    assert records.lease_owner(job.id) == "B"
    assert not records.renew_lease(job.id, "A", ttl_s=30)

    records.release_lease(job.id, "A")  # not A's to release
    assert records.lease_owner(job.id) == "B"
    records.release_lease(job.id, "B")
    assert records.lease_owner(job.id) is None
    assert records.acquire_lease(job.id, "A", ttl_s=30)
    assert not records.acquire_lease("job_missing", "A", ttl_s=30)


def test_save_keeps_the_lease(records: SQLiteJobRecords) -> None:
    job = make_job()
    records.create(job)
    assert records.acquire_lease(job.id, "A", ttl_s=30)
    job.state = JobState.running
    records.save(job)
    assert records.lease_owner(job.id) == "A"


def test_orphaned_lists_unfinished_jobs_without_a_live_lease(
    records: SQLiteJobRecords, clock: Clock
) -> None:
    queued = make_job(minutes=0, state=JobState.queued)
    running_expired = make_job(minutes=1, state=JobState.running)
    running_held = make_job(minutes=2, state=JobState.running)
    finished = make_job(minutes=3, state=JobState.succeeded)
    for job in (queued, running_expired, running_held, finished):
        records.create(job)
    assert records.acquire_lease(running_expired.id, "A", ttl_s=10)
    clock.now += 20
    assert records.acquire_lease(running_held.id, "B", ttl_s=10)

    assert [j.id for j in records.orphaned()] == [queued.id, running_expired.id]


def test_closed_records_raise_store_error(tmp_path: Path) -> None:
    records = SQLiteJobRecords(tmp_path / "jobs.db")
    records.close()
    with pytest.raises(StoreError):
        records.get("job_x")


def test_unwritable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError):
        SQLiteJobRecords(tmp_path / "file" / "jobs.db")


def test_threads_share_one_instance(records: SQLiteJobRecords) -> None:
    job = make_job()
    records.create(job)

    def append(n: int) -> int:
        return records.append_event(job.id, "progress", {"n": n}).seq

    with ThreadPoolExecutor(max_workers=8) as pool:
        seqs = list(pool.map(append, range(80)))
    assert sorted(seqs) == list(range(1, 81))


# -- real processes ----------------------------------------------------------------------


def race(target: Callable[..., None], path: str, job_id: str) -> list[Any]:
    """Run ``target(path, job_id, racer, barrier, results)`` in fresh processes."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(path, job_id, racer, barrier, results))
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


def append_events(path: str, job_id: str, racer: int, barrier: Any, results: Any) -> None:
    records = SQLiteJobRecords(path)
    barrier.wait(timeout=TIMEOUT_S)
    seqs = [
        records.append_event(job_id, "progress", {"racer": racer}).seq for _ in range(EVENTS_EACH)
    ]
    records.close()
    results.put(seqs)


def take_lease(path: str, job_id: str, racer: int, barrier: Any, results: Any) -> None:
    records = SQLiteJobRecords(path)
    barrier.wait(timeout=TIMEOUT_S)
    won = records.acquire_lease(job_id, f"racer-{racer}", ttl_s=60)
    records.close()
    results.put((racer, won))


@pytest.fixture
def shared_job(tmp_path: Path) -> Iterator[tuple[str, str, SQLiteJobRecords]]:
    path = str(tmp_path / "jobs.db")
    records = SQLiteJobRecords(path)  # creates the file in WAL mode before the racers open it
    job = make_job()
    records.create(job)
    yield path, job.id, records
    records.close()


def test_processes_appending_events_get_every_seq_once(
    shared_job: tuple[str, str, SQLiteJobRecords],
) -> None:
    path, job_id, records = shared_job
    per_racer = race(append_events, path, job_id)
    total = PROCESSES * EVENTS_EACH
    assert sorted(seq for seqs in per_racer for seq in seqs) == list(range(1, total + 1))
    assert [e.seq for e in records.events_since(job_id, 0)] == list(range(1, total + 1))


def test_processes_racing_for_a_lease_have_one_winner(
    shared_job: tuple[str, str, SQLiteJobRecords],
) -> None:
    path, job_id, records = shared_job
    outcomes = race(take_lease, path, job_id)
    winners = [racer for racer, won in outcomes if won]
    assert len(winners) == 1
    assert records.lease_owner(job_id) == f"racer-{winners[0]}"
