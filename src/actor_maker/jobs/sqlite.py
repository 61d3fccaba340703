"""Job records in one SQLite file: the embedded mode's ``JobRecords``.

Safe for threads (one connection per thread) and for several processes on one
machine sharing the file: WAL mode lets readers run beside the writer, a busy
timeout makes writers queue instead of failing, and every write is one
``BEGIN IMMEDIATE`` transaction, so the event sequence and the lease are decided
by SQLite's write lock, never by a read-then-write race.

The ``record`` column holds ``Job.model_dump_json()``; the columns beside it
(state, actor, creation time) exist for filtering and ordering. Two columns are
owned by the table rather than by the record: the lease (``lease_owner``,
``lease_expires``, in unix seconds) and ``cancel_requested``, which anyone may
set and which a lease holder's ``save`` of a stale record never clears.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic_core import to_json

from actor_maker.errors import InputError, StoreError
from actor_maker.jobs.models import Job, JobEvent, JobState
from actor_maker.jobs.records import JobFilter, JobRecords

#: How long a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS = 5000

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    actor_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    lease_owner TEXT,
    lease_expires REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at DESC);
CREATE INDEX IF NOT EXISTS jobs_by_actor ON jobs (actor_id, created_at DESC);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at DESC);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
"""

#: At most one queued or running job per actor and dedupe key: SQLite refuses the second
#: insert, so "is one running?" and "create it" cannot race (added to older files too).
ONE_ACTIVE = """
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs (actor_id, dedupe_key)
WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running')
"""

_JOB_COLUMNS = "record, cancel_requested"

_UNFINISHED = (JobState.queued.value, JobState.running.value)


class SQLiteJobRecords(JobRecords):
    """``JobRecords`` in a SQLite file at ``path`` (created with its parent folders)."""

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._path = Path(path)
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: builtins.list[sqlite3.Connection] = []
        self._closed = False
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {self._path}: {exc}") from exc
        self._init_schema()

    # -- connections and transactions ------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=BUSY_TIMEOUT_MS / 1000,  # sets SQLite's busy_timeout
            isolation_level=None,  # autocommit; transactions are explicit
            check_same_thread=False,  # only its thread uses it, but close() may run elsewhere
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL stays consistent; fewer fsyncs
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise StoreError(f"job records at {self._path} are closed")
            conn = self._open()
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate sqlite3 failures into ``StoreError``."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"job records at {self._path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: takes the write lock up front."""
        with self._errors():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.commit()
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

    def _read(self, sql: str, params: Sequence[object] = ()) -> builtins.list[sqlite3.Row]:
        with self._errors():
            return self._conn().execute(sql, params).fetchall()

    def _init_schema(self) -> None:
        with self._errors():
            conn = self._conn()
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
        with self._write() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
            if "dedupe_key" not in columns:
                conn.execute("ALTER TABLE jobs ADD COLUMN dedupe_key TEXT")
            conn.execute(ONE_ACTIVE)

    # -- records ---------------------------------------------------------------------

    def create(self, job: Job) -> Job:
        """Store a new job, or return the actor's active job with the same dedupe key
        (decided by the unique index inside one transaction); ``InputError`` if the id
        exists."""
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO jobs (id, actor_id, state, created_at, cancel_requested, record,"
                    " dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (*_job_values(job), job.dedupe_key),
                )
            except sqlite3.IntegrityError as exc:
                if job.dedupe_key is not None:
                    row = conn.execute(
                        f"SELECT {_JOB_COLUMNS} FROM jobs WHERE actor_id = ? AND dedupe_key = ?"
                        " AND state IN (?, ?)",
                        (job.actor_id, job.dedupe_key, *_UNFINISHED),
                    ).fetchone()
                    if row is not None:
                        return _job(row)
                raise InputError(f"job {job.id} already exists") from exc
        return job

    def get(self, job_id: str) -> Job | None:
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def save(self, job: Job) -> None:
        """Replace the stored record; keeps the lease and a requested cancel."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO jobs (id, actor_id, state, created_at, cancel_requested, record)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " actor_id = excluded.actor_id, state = excluded.state,"
                " created_at = excluded.created_at, record = excluded.record,"
                " cancel_requested = cancel_requested OR excluded.cancel_requested",
                _job_values(job),
            )

    def modify(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        """Read, change and write in one ``BEGIN IMMEDIATE`` transaction."""
        with self._write() as conn:
            row = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                return None
            job = _job(row)
            if change(job):
                conn.execute(
                    "UPDATE jobs SET actor_id = ?, state = ?, record = ?,"
                    " cancel_requested = cancel_requested OR ? WHERE id = ?",
                    (
                        job.actor_id,
                        job.state.value,
                        job.model_dump_json(),
                        int(job.cancel_requested),
                        job_id,
                    ),
                )
            return job

    def _list(self, where: JobFilter, limit: int, offset: int) -> builtins.list[Job]:
        clause, params = _where(where)
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM jobs {clause}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_job(row) for row in rows]

    def _count(self, where: JobFilter) -> int:
        clause, params = _where(where)
        rows = self._read(f"SELECT COUNT(*) AS n FROM jobs {clause}", params)
        return int(rows[0]["n"])

    def request_cancel(self, job_id: str) -> Job | None:
        """Set ``cancel_requested`` (seen by whichever process runs the job)."""
        with self._write() as conn:
            conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
        return self.get(job_id)

    # -- events ----------------------------------------------------------------------

    def append_event(self, job_id: str, name: str, data: dict[str, object]) -> JobEvent:
        """Add an event; ``seq`` grows by one per job, starting at 1."""
        created = self._clock()
        payload = to_json(data).decode()
        with self._write() as conn:
            (seq,) = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?", (job_id,)
            ).fetchone()
            conn.execute(
                "INSERT INTO events (job_id, seq, name, data, created_at) VALUES (?, ?, ?, ?, ?)",
                (job_id, seq, name, payload, created),
            )
        return JobEvent(
            seq=seq, job_id=job_id, name=name, data=json.loads(payload), created_at=_utc(created)
        )

    def events_since(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> builtins.list[JobEvent]:
        rows = self._read(
            "SELECT seq, name, data, created_at FROM events"
            " WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after_seq, limit),
        )
        return [
            JobEvent(
                seq=row["seq"],
                job_id=job_id,
                name=row["name"],
                data=json.loads(row["data"]),
                created_at=_utc(row["created_at"]),
            )
            for row in rows
        ]

    # -- leases ----------------------------------------------------------------------

    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Take the job if nobody holds an unexpired lease on it (or ``owner`` does)."""
        now = self._clock()
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET lease_owner = ?, lease_expires = ? WHERE id = ?"
                " AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires < ?)",
                (owner, now + ttl_s, job_id, owner, now),
            )
            return cursor.rowcount == 1

    def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Extend ``owner``'s lease; ``False`` if someone else took it (or it was released)."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET lease_expires = ? WHERE id = ? AND lease_owner = ?",
                (self._clock() + ttl_s, job_id, owner),
            )
            return cursor.rowcount == 1

    def release_lease(self, job_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL"
                " WHERE id = ? AND lease_owner = ?",
                (job_id, owner),
            )

    def lease_owner(self, job_id: str) -> str | None:
        """The holder of an unexpired lease, or ``None``."""
        rows = self._read(
            "SELECT lease_owner FROM jobs WHERE id = ?"
            " AND lease_owner IS NOT NULL AND lease_expires >= ?",
            (job_id, self._clock()),
        )
        return str(rows[0]["lease_owner"]) if rows else None

    def orphaned(self) -> builtins.list[Job]:
        """Queued or running jobs whose lease is missing or expired, oldest first."""
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN (?, ?)"
            " AND (lease_owner IS NULL OR lease_expires < ?) ORDER BY created_at, rowid",
            (*_UNFINISHED, self._clock()),
        )
        return [_job(row) for row in rows]

    def close(self) -> None:
        """Close every thread's connection; later calls raise ``StoreError``."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


def _job_values(job: Job) -> tuple[object, ...]:
    return (
        job.id,
        job.actor_id,
        job.state.value,
        job.created_at.timestamp(),
        int(job.cancel_requested),
        job.model_dump_json(),
    )


def _job(row: sqlite3.Row) -> Job:
    """The stored record, with the table's word on ``cancel_requested``."""
    job = Job.model_validate_json(row["record"])
    job.cancel_requested = bool(row["cancel_requested"])
    return job


def _where(where: JobFilter) -> tuple[str, builtins.list[object]]:
    """A ``WHERE`` clause (or nothing) and its parameters for ``list`` and ``count``."""
    clauses: builtins.list[str] = []
    params: builtins.list[object] = []
    if where.actor_id is not None:
        clauses.append("actor_id = ?")
        params.append(where.actor_id)
    if where.states is not None:
        clauses.append(f"state IN ({', '.join('?' * len(where.states))})")
        params.extend(s.value for s in where.states)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
