"""Job records in Redis: the distributed mode's ``JobRecords``.

Any number of API servers and workers on any number of machines share one Redis,
so any of them can read, list and stream any job. Every write that touches more
than one key is one Lua script, so Redis runs it atomically; nothing is decided
by a read in Python followed by a write. Keys (``p`` is the prefix)::

    p:job:{id}                hash: record (Job.model_dump_json()), actor_id, state,
                              created_at, cancel_requested ("0"/"1", sticky)
    p:jobs                    sorted set of job ids by created_at (unix seconds)
    p:actor:{actor_id}:jobs   the same, one actor's jobs
    p:state:{state}:jobs      the same, the jobs in one state
    p:events:{id}             list of events (JSON); an event's seq is its position + 1
    p:lease:{id}              the lease holder's name, expiring by itself (PX)

``cancel_requested`` lives beside the record, not only in it: anyone may set it and
a lease holder's ``save`` of a stale record never clears it. Events are appended
with one ``RPUSH``, whose reply (the new length) is the seq: 1..n with no gaps
however many processes append, as long as nobody trims the list. Ties in
``created_at`` are ordered by job id. Needs Redis 6.2 or newer (``ZINTER``).

The client built from the URL does not retry a command: a reply lost to a
dropped connection may belong to a command that ran, and sending ``create`` or
``append_event`` again would report a false duplicate or add an event twice.
Such a failure reaches the caller as ``StoreError``.
"""

from __future__ import annotations

import builtins
import heapq
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic_core import to_json
from redis.backoff import NoBackoff
from redis.retry import Retry

from actor_maker.errors import ConfigError, InputError, StoreError
from actor_maker.jobs.models import Job, JobEvent, JobState
from actor_maker.jobs.records import JobFilter, JobRecords

#: Seconds to wait for a connection, and for the reply to a command.
CONNECT_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 10.0
#: Keys asked for per SCAN step, and deleted per UNLINK, by ``clear``.
SCAN_BATCH = 500

_UNFINISHED = (JobState.queued, JobState.running)

# KEYS: job hash, p:jobs, new actor set, new state set, dedupe slot (p:active:{actor}:{key}).
# ARGV: record, actor_id, state, created_at, cancel_requested, id, prefix, "create"|"save",
#       dedupe key ("" for none).
# A create whose dedupe slot names a queued or running job returns that job's id instead.
# The old actor's and state's sets are named from the stored hash (standalone Redis only).
_PUT = """
local old = redis.call('HMGET', KEYS[1], 'actor_id', 'state', 'cancel_requested')
if old[1] then
  if ARGV[8] == 'create' then return 0 end
  if old[1] ~= ARGV[2] then
    redis.call('ZREM', ARGV[7] .. ':actor:' .. old[1] .. ':jobs', ARGV[6])
  end
  if old[2] ~= ARGV[3] then
    redis.call('ZREM', ARGV[7] .. ':state:' .. old[2] .. ':jobs', ARGV[6])
  end
end
if ARGV[8] == 'create' and ARGV[9] ~= '' then
  local holder = redis.call('GET', KEYS[5])
  if holder then
    local state = redis.call('HGET', ARGV[7] .. ':job:' .. holder, 'state')
    if state == 'queued' or state == 'running' then return holder end
  end
  redis.call('SET', KEYS[5], ARGV[6])
end
local cancel = ARGV[5]
if old[3] == '1' then cancel = '1' end
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'actor_id', ARGV[2], 'state', ARGV[3],
           'created_at', ARGV[4], 'cancel_requested', cancel)
for i = 2, 4 do redis.call('ZADD', KEYS[i], ARGV[4], ARGV[6]) end
return 1
"""

# KEYS: job hash. Returns the record, or nil for an unknown job.
_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'cancel_requested', '1')
return redis.call('HGET', KEYS[1], 'record')
"""

# KEYS: job hash, lease. ARGV: owner, ttl in ms.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lease. ARGV: owner, ttl in ms.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease. ARGV: owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisJobRecords(JobRecords):
    """``JobRecords`` in the Redis at ``url``, every key under ``prefix:``.

    ``client`` replaces the one built from ``url`` (which is then only named in
    error messages) and stays open on ``close``. ``clock`` stamps events.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "actor-maker",
        clock: Callable[[], float] = time.time,
        client: redis.Redis | None = None,
    ) -> None:
        self._where = _redact(url)
        self._secret = _password(url)
        self._prefix = prefix
        self._clock = clock
        self._closed = False
        self._owns_client = client is None
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url,
                    decode_responses=True,
                    socket_connect_timeout=CONNECT_TIMEOUT_S,
                    socket_timeout=COMMAND_TIMEOUT_S,
                    retry=Retry(NoBackoff(), 0),
                )
            except ValueError as exc:
                raise ConfigError(f"not a usable Redis URL: {self._where}") from exc
        self._client = client
        self._put = client.register_script(_PUT)
        self._cancel = client.register_script(_CANCEL)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    # -- keys and errors -------------------------------------------------------------

    def _job_key(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def _actor_key(self, actor_id: str) -> str:
        return f"{self._prefix}:actor:{actor_id}:jobs"

    def _state_key(self, state: JobState | str) -> str:
        return f"{self._prefix}:state:{JobState(state).value}:jobs"

    def _events_key(self, job_id: str) -> str:
        return f"{self._prefix}:events:{job_id}"

    def _lease_key(self, job_id: str) -> str:
        return f"{self._prefix}:lease:{job_id}"

    @property
    def _all_key(self) -> str:
        return f"{self._prefix}:jobs"

    @contextmanager
    def _errors(self) -> Iterator[redis.Redis]:
        """The client; translates Redis failures into a one-line ``StoreError``."""
        if self._closed:
            raise StoreError(f"job records at {self._where} are closed")
        try:
            yield self._client
        except redis.RedisError as exc:
            message = " ".join(str(exc).split())
            if self._secret:
                message = message.replace(self._secret, "***")
            raise StoreError(
                f"job records at {self._where}: {type(exc).__name__}: {message}"
            ) from exc

    # -- records ---------------------------------------------------------------------

    def _write(self, job: Job, mode: str) -> object:
        keys = [
            self._job_key(job.id),
            self._all_key,
            self._actor_key(job.actor_id),
            self._state_key(job.state),
            f"{self._prefix}:active:{job.actor_id}:{job.dedupe_key or ''}",
        ]
        args = [
            job.model_dump_json(),
            job.actor_id,
            job.state.value,
            repr(job.created_at.timestamp()),
            "1" if job.cancel_requested else "0",
            job.id,
            self._prefix,
            mode,
            job.dedupe_key or "",
        ]
        with self._errors():
            reply: object = self._put(keys=keys, args=args)
            return reply

    def create(self, job: Job) -> Job:
        """Store a new job, or return the actor's active job with the same dedupe key (one
        script: checked and created atomically); ``InputError`` if its id exists."""
        reply = self._write(job, "create")
        if isinstance(reply, bytes | str):
            holder = self.get(_text(reply))
            if holder is not None:
                return holder
            reply = 0
        if not reply:
            raise InputError(f"job {job.id} already exists")
        return job

    def get(self, job_id: str) -> Job | None:
        with self._errors() as client:
            record, cancel = client.hmget(self._job_key(job_id), ["record", "cancel_requested"])
        return _job(record, cancel)

    def save(self, job: Job) -> None:
        """Replace the stored record; keeps the lease and a requested cancel."""
        self._write(job, "save")

    def modify(self, job_id: str, change: Callable[[Job], bool]) -> Job | None:
        """Optimistic: WATCH the record, change it, save it in MULTI; retry on a race."""
        key = self._job_key(job_id)
        with self._errors() as client:
            while True:
                with client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(key)  # type: ignore[no-untyped-call]
                        record, cancel = pipe.hmget(key, ["record", "cancel_requested"])
                        job = _job(record, cancel)
                        if job is None:
                            return None
                        old_state = job.state
                        if not change(job):
                            return job
                        pipe.multi()
                        pipe.hset(
                            key,
                            mapping={
                                "record": job.model_dump_json(),
                                "state": job.state.value,
                                # _job() already folded the stored flag into the record
                                "cancel_requested": "1" if job.cancel_requested else "0",
                            },
                        )
                        if job.state != old_state:
                            score = job.created_at.timestamp()
                            pipe.zrem(self._state_key(old_state), job.id)
                            pipe.zadd(self._state_key(job.state), {job.id: score})
                        pipe.execute()
                        return job
                    except redis.WatchError:
                        continue

    def _jobs(self, ids: Sequence[str]) -> builtins.list[Job]:
        """The records of ``ids``, in order, skipping any deleted meanwhile."""
        if not ids:
            return []
        with self._errors() as client:
            pipe = client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self._job_key(job_id), ["record", "cancel_requested"])
            rows = pipe.execute()
        return [job for record, cancel in rows if (job := _job(record, cancel)) is not None]

    def _newest(
        self, actor_id: str | None, states: Sequence[JobState], stop: int | None
    ) -> builtins.list[str]:
        """Ids in ``states`` (of ``actor_id``), newest first: the first ``stop``, or all."""
        end = -1 if stop is None else stop - 1
        with self._errors() as client:
            pipe = client.pipeline(transaction=True)  # one snapshot of the indexes
            for state in states:
                if actor_id is None:
                    pipe.zrevrange(self._state_key(state), 0, end, withscores=True)
                else:
                    keys = [self._actor_key(actor_id), self._state_key(state)]
                    pipe.zinter(keys, aggregate="MAX", withscores=True)
            ranked: builtins.list[list[tuple[Any, float]]] = pipe.execute()
        merged = heapq.merge(
            *(sorted(found, key=_rank, reverse=True) for found in ranked), key=_rank, reverse=True
        )
        return [_text(member) for member, _ in merged][:stop]

    def _list(self, where: JobFilter, limit: int, offset: int) -> builtins.list[Job]:
        if where.states is None:
            with self._errors() as client:
                members = client.zrevrange(self._filter_key(where), offset, offset + limit - 1)
            ids = [_text(m) for m in members]
        else:
            ids = self._newest(where.actor_id, where.states, offset + limit)[offset:]
        return self._jobs(ids)

    def _count(self, where: JobFilter) -> int:
        if where.states is None:
            with self._errors() as client:
                return int(client.zcard(self._filter_key(where)))
        if where.actor_id is not None:
            return len(self._newest(where.actor_id, where.states, None))
        with self._errors() as client:
            pipe = client.pipeline(transaction=True)
            for state in where.states:
                pipe.zcard(self._state_key(state))
            return sum(int(n) for n in pipe.execute())

    def _filter_key(self, where: JobFilter) -> str:
        """The index of every job, or of one actor's jobs (``where`` has no states)."""
        return self._all_key if where.actor_id is None else self._actor_key(where.actor_id)

    def request_cancel(self, job_id: str) -> Job | None:
        """Set ``cancel_requested`` (seen by whichever process runs the job)."""
        with self._errors():
            record = self._cancel(keys=[self._job_key(job_id)])
        return _job(record, "1")

    # -- events ----------------------------------------------------------------------

    def append_event(self, job_id: str, name: str, data: dict[str, object]) -> JobEvent:
        """Add an event; ``seq`` grows by one per job, starting at 1."""
        created = self._clock()
        payload = to_json({"name": name, "data": data, "created_at": created}).decode()
        with self._errors() as client:
            seq = int(client.rpush(self._events_key(job_id), payload))
        return _event(job_id, seq, payload)

    def events_since(
        self, job_id: str, after_seq: int, limit: int = 1000
    ) -> builtins.list[JobEvent]:
        after_seq = max(after_seq, 0)
        if limit <= 0:
            return []
        with self._errors() as client:
            entries = client.lrange(self._events_key(job_id), after_seq, after_seq + limit - 1)
        return [_event(job_id, after_seq + n, _text(e)) for n, e in enumerate(entries, 1)]

    # -- leases ----------------------------------------------------------------------

    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Take the job if nobody holds an unexpired lease on it (or ``owner`` does)."""
        keys = [self._job_key(job_id), self._lease_key(job_id)]
        with self._errors():
            return bool(self._acquire(keys=keys, args=[owner, _ms(ttl_s)]))

    def renew_lease(self, job_id: str, owner: str, ttl_s: float) -> bool:
        """Extend ``owner``'s lease; ``False`` if it expired, was released or taken."""
        with self._errors():
            return bool(self._renew(keys=[self._lease_key(job_id)], args=[owner, _ms(ttl_s)]))

    def release_lease(self, job_id: str, owner: str) -> None:
        with self._errors():
            self._release(keys=[self._lease_key(job_id)], args=[owner])

    def lease_owner(self, job_id: str) -> str | None:
        """The holder of an unexpired lease, or ``None``."""
        with self._errors() as client:
            owner = client.get(self._lease_key(job_id))
        return None if owner is None else _text(owner)

    def orphaned(self) -> builtins.list[Job]:
        """Queued or running jobs whose lease is missing or expired, oldest first."""
        ids = self._newest(None, _UNFINISHED, None)[::-1]
        if not ids:
            return []
        with self._errors() as client:
            pipe = client.pipeline(transaction=False)
            for job_id in ids:
                pipe.exists(self._lease_key(job_id))
            held = pipe.execute()
        jobs = self._jobs([job_id for job_id, n in zip(ids, held, strict=True) if not n])
        return [job for job in jobs if job.state in _UNFINISHED]

    # -- housekeeping ----------------------------------------------------------------

    def clear(self) -> None:
        """Delete every key under the prefix (SCAN in batches, never KEYS)."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._prefix) + ":*"
        with self._errors() as client:
            batch: builtins.list[Any] = []
            for key in client.scan_iter(match=pattern, count=SCAN_BATCH):
                batch.append(key)
                if len(batch) >= SCAN_BATCH:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)

    def close(self) -> None:
        """Close the connection pool (unless the client was passed in); later calls
        raise ``StoreError``."""
        self._closed = True
        if self._owns_client:
            self._client.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _rank(entry: tuple[Any, float]) -> tuple[float, bytes]:
    """Sort key of a sorted-set entry, as Redis orders them: score, then member bytes."""
    member, score = entry
    return score, member if isinstance(member, bytes) else str(member).encode()


def _job(record: object, cancel: object) -> Job | None:
    """The stored record, with the hash's word on ``cancel_requested``."""
    if record is None:
        return None
    job = Job.model_validate_json(_text(record))
    job.cancel_requested = _text(cancel) == "1"
    return job


def _event(job_id: str, seq: int, payload: str) -> JobEvent:
    entry = json.loads(payload)
    return JobEvent(
        seq=seq,
        job_id=job_id,
        name=entry["name"],
        data=entry["data"],
        created_at=datetime.fromtimestamp(entry["created_at"], UTC),
    )


def _ms(ttl_s: float) -> int:
    """A lease TTL in whole milliseconds, at least one (``PX 0`` is an error)."""
    return max(1, math.ceil(ttl_s * 1000))


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def _redact(url: str) -> str:
    """``url`` with its password replaced by ``***`` (or only its scheme if unparsable)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return url.partition("://")[0] + "://…"
