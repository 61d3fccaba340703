"""Real OS processes racing on one store: create-only writes have exactly one winner,
and read → put_if_version → retry loses no update (invariants 1 and 2)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actor_maker.errors import PreconditionFailed
from actor_maker.store.base import ObjectStore
from actor_maker.store.local import LocalStore
from actor_maker.store.s3 import S3Store
from actor_maker.testing.s3server import MotoS3

PROCESSES = 4
KEYS = 20
INCREMENTS = 25
TIMEOUT_S = 60

#: How a child process opens the store: ("local", root) or ("s3", bucket, endpoint_url).
Spec = tuple[str, ...]


@pytest.fixture(params=["local", "s3"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Spec:
    if request.param == "local":
        return ("local", str(tmp_path / "store"))
    server: MotoS3 = request.getfixturevalue("moto_server")
    return ("s3", request.getfixturevalue("s3_bucket"), server.endpoint_url)


def open_store(spec: Spec) -> ObjectStore:
    if spec[0] == "local":
        return LocalStore(spec[1])
    _, bucket, endpoint_url = spec
    return S3Store(
        bucket,
        region="us-east-1",
        endpoint_url=endpoint_url,
        access_key_id="testing",
        secret_access_key="testing",
    )


def race(target: Callable[..., None], spec: Spec) -> list[Any]:
    """Run ``target(spec, racer, barrier, results)`` in fresh processes; their results."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(spec, racer, barrier, results))
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


def create_keys(spec: Spec, racer: int, barrier: Any, results: Any) -> None:
    """Try to create every race key; report the keys this racer won."""
    store = open_store(spec)
    barrier.wait(timeout=TIMEOUT_S)
    won = []
    for n in range(KEYS):
        try:
            store.put_if_absent(f"race/{n}", f"racer {racer}".encode())
            won.append(n)
        except PreconditionFailed:
            pass
    results.put((racer, won))


def increment(spec: Spec, racer: int, barrier: Any, results: Any) -> None:
    """Add one to the counter INCREMENTS times; report how many conflicts were retried."""
    store = open_store(spec)
    barrier.wait(timeout=TIMEOUT_S)
    conflicts = 0
    for _ in range(INCREMENTS):
        while True:
            current = store.get("counter")
            try:
                store.put_if_version(
                    "counter", str(int(current.data) + 1).encode(), current.info.version
                )
                break
            except PreconditionFailed:
                conflicts += 1
    results.put(conflicts)


def test_put_if_absent_has_exactly_one_winner(spec: Spec) -> None:
    outcomes = race(create_keys, spec)

    winners = {n: racer for racer, won in outcomes for n in won}
    assert sum(len(won) for _, won in outcomes) == KEYS  # nobody else "won" a taken key
    assert sorted(winners) == list(range(KEYS))
    store = open_store(spec)
    for n, racer in winners.items():
        assert store.get(f"race/{n}").data == f"racer {racer}".encode()


def test_put_if_version_loses_no_update(spec: Spec) -> None:
    open_store(spec).put_if_absent("counter", b"0")

    race(increment, spec)

    assert open_store(spec).get("counter").data == str(PROCESSES * INCREMENTS).encode()
