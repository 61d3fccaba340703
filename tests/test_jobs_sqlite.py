"""What only ``SQLiteJobRecords`` does: the file, its folder, WAL mode, reopening.

Everything ``JobRecords`` promises (records, filters, cancel, events, leases, and
real processes sharing the file) is in ``test_jobs_contract.py``, run against both
implementations.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actor_maker.errors import StoreError
from actor_maker.jobs.models import Job
from actor_maker.jobs.sqlite import SQLiteJobRecords


def make_job() -> Job:
    return Job(
        actor_id="0001",
        actor_name="0001_actor",
        model="flux-kontext-pro",
        provider="replicate",
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_creates_the_file_and_its_folders_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "jobs.db"
    records = SQLiteJobRecords(path)
    records.close()
    assert path.is_file()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_a_reopened_file_keeps_records_events_and_leases(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    job = make_job()
    first = SQLiteJobRecords(path)
    first.create(job)
    first.append_event(job.id, "job_started", {})
    assert first.acquire_lease(job.id, "A", ttl_s=60)
    first.close()

    again = SQLiteJobRecords(path)
    try:
        assert again.get(job.id) == job
        assert [e.seq for e in again.events_since(job.id, 0)] == [1]
        assert again.lease_owner(job.id) == "A"
    finally:
        again.close()


def test_unwritable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError):
        SQLiteJobRecords(tmp_path / "file" / "jobs.db")


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        SQLiteJobRecords(path)
