"""Fixtures shared by the test suite: stores on a temporary directory and on moto S3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from actor_maker.store.base import ObjectStore
from actor_maker.store.local import LocalStore
from actor_maker.store.s3 import S3Store
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn
from actor_maker.testing.s3server import MotoS3, start_moto_server

from .helpers import REDIS_LIMITS_URL
from .helpers import S3_REGION as S3_REGION  # tests import it from here too

#: Modules whose tests start several OS processes (workers, CLIs, servers) and time them:
#: under pytest-xdist (`-n auto --dist loadgroup`) they run one after another on one worker,
#: so two of them never compete for the CPUs; every other module stays whole on one worker,
#: so its module-scoped servers start once.
PROCESS_MODULES = frozenset(
    {
        "test_api_restart",
        "test_concurrent_writers",
        "test_processes",
        "test_queue",
        "test_queue_limits",
        "test_store_concurrency",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        group = "processes" if module in PROCESS_MODULES else module
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True, scope="session")
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default request-slot directory lives under XDG_CACHE_HOME: give each test session
    (each xdist worker) its own, so parallel sessions never share slots."""
    import os

    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3]:
    """One moto S3 server on loopback for the whole session."""
    with start_moto_server() as server:
        yield server


@pytest.fixture
def s3_bucket(moto_server: MotoS3) -> str:
    """A fresh, empty bucket on the session's moto server."""
    return moto_server.make_bucket(f"test-{uuid.uuid4().hex[:16]}")


@pytest.fixture
def s3_store(moto_server: MotoS3, s3_bucket: str) -> S3Store:
    # Sharing the server's client saves building one per test (about 0.2 s each).
    return S3Store(
        s3_bucket,
        region=S3_REGION,
        endpoint_url=moto_server.endpoint_url,
        client=moto_server.client,
    )


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each store in turn, for contract tests."""
    chosen: ObjectStore = request.getfixturevalue(f"{request.param}_store")
    return chosen


@pytest.fixture(autouse=True, scope="session")
def _quiet_moto_request_log() -> None:
    """moto's werkzeug server logs every request at INFO; keep test output readable."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No settings from the developer's environment; the working directory is a fresh temp
    dir (no stray .env, the default store lands there); request slots of our own."""
    import os

    for key in list(os.environ):
        if (
            key.startswith(("ACTOR_MAKER_", "AWS_", "REPLICATE_"))
            or key == "MAX_CONCURRENT_REQUESTS"
        ):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACTOR_MAKER_SLOT_DIR", str(tmp_path / "slots"))
    return monkeypatch


@pytest.fixture(scope="session")
def _redis_up() -> None:
    try:
        redis.Redis.from_url(REDIS_LIMITS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_LIMITS_URL}: {exc}")


@pytest.fixture
def redis_prefix(_redis_up: None, request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix in ``REDIS_LIMITS_URL`` of this test's own; its keys are deleted afterwards."""
    name = f"test-{request.node.name[5:30]}-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(REDIS_LIMITS_URL)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


#: The Replicate stand-in's token in tests (never a real one).
STANDIN_TOKEN = "r8_test_secret_token_value"


@pytest.fixture(scope="session")
def _standin_server() -> Iterator[ReplicateStandIn]:
    with ReplicateStandIn(token=STANDIN_TOKEN) as server:
        yield server


@pytest.fixture
def standin(_standin_server: ReplicateStandIn) -> ReplicateStandIn:
    """The session's Replicate stand-in, with no faults and fresh counters."""
    _standin_server.faults = Faults()
    _standin_server.reset_counters()
    return _standin_server
