"""Nothing is paid for twice (issue 11, item 1): concurrent "generate all" and balance
requests start one job, decided atomically by the job records. Counts are read at the
Replicate stand-in: what a user would be billed for. (Takeover under CPU load and resume
after kill -9 are in test_api_restart.py.)"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from actor_maker.jobs.memory import MemoryJobRecords
from actor_maker.jobs.models import DEDUPE_ALL, Job, JobKind
from actor_maker.jobs.sqlite import SQLiteJobRecords
from actor_maker.testing.replicate_server import Faults

from .apiserver import serve_in_thread
from .test_api import create_actor, settings_for, wait_finished

LIBRARY_SIZE = 49


def _job(actor_id: str = "0900") -> Job:
    return Job(
        actor_id=actor_id,
        actor_name=f"{actor_id}_x",
        kind=JobKind.all,
        model="m/m",
        provider="preview",
        dedupe_key=DEDUPE_ALL,
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_twenty_threads_creating_one_actors_generate_all_store_one_job(kind, tmp_path):
    records = MemoryJobRecords() if kind == "memory" else SQLiteJobRecords(tmp_path / "j.db")
    with ThreadPoolExecutor(20) as pool:
        stored = list(pool.map(lambda _i: records.create(_job()).id, range(20)))
    assert len(set(stored)) == 1
    assert records.count() == 1
    other = records.create(_job("0901"))  # another actor is not affected
    assert other.id != stored[0]


def _create_in_process(path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(SQLiteJobRecords(path).create(_job()).id)


def test_processes_creating_one_actors_generate_all_store_one_job(tmp_path):
    path = str(tmp_path / "jobs.sqlite3")
    SQLiteJobRecords(path).close()
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_create_in_process, args=(path, queue)) for _ in range(6)]
    for proc in procs:
        proc.start()
    ids = {queue.get(timeout=60) for _ in procs}
    for proc in procs:
        proc.join(timeout=30)
    assert len(ids) == 1


def test_twenty_concurrent_generate_all_requests_pay_for_49_images(tmp_path, standin, s3_store):
    standin.faults = Faults(latency=0.05)
    settings = settings_for(tmp_path, standin)
    with (
        serve_in_thread(settings, store=s3_store) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        create_actor(client)

        def post(_: int) -> str:
            with httpx.Client(base_url=url, timeout=60) as own:
                response = own.post("/api/actors/0500/jobs", json={})
                assert response.status_code in (200, 201), response.text
                return str(response.json()["id"])

        with ThreadPoolExecutor(20) as pool:
            ids = set(pool.map(post, range(20)))
        assert len(ids) == 1
        (job_id,) = ids
        job = wait_finished(client, job_id, timeout=120)
        assert job["state"] == "succeeded" and job["succeeded"] == LIBRARY_SIZE
        assert len(client.get("/api/jobs", params={"actor_id": "0500"}).json()) == 1
    assert standin.creates == LIBRARY_SIZE


def test_five_concurrent_balance_fills_start_one_job(tmp_path, standin, s3_store):
    standin.faults = Faults(latency=0.3)
    settings = settings_for(tmp_path, standin)
    with serve_in_thread(settings, store=s3_store) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            create_actor(client)

        def post(_: int) -> str:
            with httpx.Client(base_url=url, timeout=60) as own:
                response = own.post("/api/actors/0500/balance", json={"size": 24})
                assert response.status_code in (200, 201, 202), response.text
                return str(response.json()["id"])

        with ThreadPoolExecutor(5) as pool:
            ids = set(pool.map(post, range(5)))
        assert len(ids) == 1
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_finished(client, ids.pop(), timeout=120)
    assert standin.creates == 24
