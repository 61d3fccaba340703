"""Jobs survive their server: kill -9 mid-job, start again, the job finishes without
duplicates; a job a live server runs is never taken over by another."""

from __future__ import annotations

import multiprocessing
import time

import httpx
import pytest

from actor_maker.manifest import require_manifest
from actor_maker.store.local import LocalStore
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn

from .apiserver import ServerProcess
from .helpers import cli_environ, run_cli, sample_image

TOKEN = "r8_restart_token"
PROMPTS = [
    "photo-rain-platform",
    "photo-diner-morning",
    "photo-rooftop-dusk",
    "photo-desert-highway",
    "bw-charcoal-portrait",
    "color-oil-portrait",
]


@pytest.fixture
def standin():
    with ReplicateStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture
def env(tmp_path, standin):
    return cli_environ(
        tmp_path,
        ACTOR_MAKER_JOB_LEASE="1.5",
        ACTOR_MAKER_POLL_INTERVAL="0.05",
        MAX_CONCURRENT_REQUESTS="2",
        REPLICATE_API_TOKEN=TOKEN,
        REPLICATE_BASE_URL=standin.base_url,
    )


def start_job(server: ServerProcess) -> str:
    files = {"base_image": ("b.jpg", sample_image(), "image/jpeg")}
    created = httpx.post(
        f"{server.base_url}/api/actors",
        data={"actor_id": "0800", "actor_name": "0800_x"},
        files=files,
    )
    assert created.status_code == 201, created.text
    job = httpx.post(f"{server.base_url}/api/actors/0800/jobs", json={"prompt_ids": PROMPTS})
    assert job.status_code == 201, job.text
    return str(job.json()["id"])


def wait_job(base_url, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{base_url}/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_killed_server_job_is_resumed_by_the_next_one_without_duplicates(env, tmp_path, standin):
    standin.faults = Faults(latency=0.4)
    first = ServerProcess(env, str(tmp_path))
    try:
        job_id = start_job(first)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # some images stored, some not yet
            job = httpx.get(f"{first.base_url}/api/jobs/{job_id}").json()
            if 1 <= job["succeeded"] < len(PROMPTS) - 2:
                break
            time.sleep(0.05)
        first.kill()
    finally:
        first.stop()
    done_before = job["succeeded"]
    assert 1 <= done_before < len(PROMPTS)
    second = ServerProcess(env, str(tmp_path))
    try:
        final = wait_job(second.base_url, job_id)
    finally:
        second.stop()
    assert final["state"] == "succeeded", final
    manifest = require_manifest(LocalStore(tmp_path / "store"), "0800")
    prompt_ids = [e["prompt_id"] for e in manifest.training_data]
    assert sorted(prompt_ids) == sorted(PROMPTS), "each prompt exactly once"
    assert len({e["filename"] for e in manifest.training_data}) == len(PROMPTS)


def test_a_live_servers_job_is_never_taken_over(env, tmp_path, standin):
    standin.faults = Faults(latency=2.0)  # 3 waves of 2 s: longer than several lease periods
    first = ServerProcess(env, str(tmp_path))
    second = ServerProcess(env, str(tmp_path))
    try:
        job_id = start_job(first)
        time.sleep(2 * 1.5)  # the second server's watchdog looks several times meanwhile
        refused = httpx.post(f"{second.base_url}/api/jobs/{job_id}/resume")
        assert refused.status_code == 409 and "being run by" in refused.json()["detail"]
        final = wait_job(second.base_url, job_id)  # any server can read it
        assert final["state"] == "succeeded"
    finally:
        first.stop()
        second.stop()
    manifest = require_manifest(LocalStore(tmp_path / "store"), "0800")
    assert sorted(e["prompt_id"] for e in manifest.training_data) == sorted(PROMPTS)
    jobs = {e["generation"]["job_id"] for e in manifest.training_data}
    assert jobs == {job_id}


def test_serve_refuses_a_public_address_without_a_token(env, tmp_path):
    proc = run_cli(env, "serve", "--host", "0.0.0.0", cwd=tmp_path, timeout=30)
    assert proc.returncode == 2 and "ACTOR_MAKER_API_TOKEN" in proc.stderr


def _burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    while not stop.is_set():
        sum(i * i for i in range(10_000))


@pytest.fixture
def busy_cpu():
    """Two processes burning CPU beside the test, as on a loaded 2-core machine."""
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    burners = [ctx.Process(target=_burn, args=(stop,)) for _ in range(2)]
    for proc in burners:
        proc.start()
    yield
    stop.set()
    for proc in burners:
        proc.join(timeout=10)


def test_a_live_job_is_never_taken_over_with_the_cpu_busy(env, tmp_path, standin, busy_cpu):
    standin.faults = Faults(latency=2.0)  # 3 waves of 2 s: several lease periods
    first = ServerProcess(env, str(tmp_path))
    second = ServerProcess(env, str(tmp_path))
    try:
        job_id = start_job(first)
        final = wait_job(second.base_url, job_id, timeout=90)
        assert final["state"] == "succeeded", (
            final.get("error"),
            [i.get("error") for i in final["items"]],
        )
    finally:
        first.stop()
        second.stop()
    assert standin.creates == len(PROMPTS), "a prompt was paid for twice"
    manifest = require_manifest(LocalStore(tmp_path / "store"), "0800")
    assert sorted(e["prompt_id"] for e in manifest.training_data) == sorted(PROMPTS)


def test_resume_after_kill_polls_the_predictions_in_flight(env, tmp_path, standin):
    standin.faults = Faults(latency=1.5)
    first = ServerProcess(env, str(tmp_path))
    try:
        job_id = start_job(first)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # predictions started, none finished yet
            job = httpx.get(f"{first.base_url}/api/jobs/{job_id}").json()
            if sum(1 for i in job["items"] if i.get("prediction_id")) >= 2:
                break
            time.sleep(0.02)
        in_flight = [i["prompt_id"] for i in job["items"] if i.get("prediction_id")]
        assert in_flight, job
        first.kill()
    finally:
        first.stop()
    second = ServerProcess(env, str(tmp_path))
    try:
        final = wait_job(second.base_url, job_id, timeout=90)
    finally:
        second.stop()
    assert final["state"] == "succeeded", final
    assert standin.creates == len(PROMPTS), "predictions in flight were paid twice"
    manifest = require_manifest(LocalStore(tmp_path / "store"), "0800")
    assert sorted(e["prompt_id"] for e in manifest.training_data) == sorted(PROMPTS)
    resumed = {i["prompt_id"]: i["prediction_id"] for i in final["items"]}
    for prompt_id in in_flight:
        assert resumed[prompt_id] == next(
            i["prediction_id"] for i in job["items"] if i["prompt_id"] == prompt_id
        )


def test_resume_after_expired_outputs_pays_only_for_those(env, tmp_path, standin):
    """Outputs removed before the resumed run could download them are the only repeats."""
    standin.faults = Faults(latency=0.8, output_ttl=0.5)
    first = ServerProcess(env, str(tmp_path))
    try:
        job_id = start_job(first)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            job = httpx.get(f"{first.base_url}/api/jobs/{job_id}").json()
            if sum(1 for i in job["items"] if i.get("prediction_id")) >= 2:
                break
            time.sleep(0.02)
        first.kill()
    finally:
        first.stop()
    time.sleep(2.5)  # the dead run's outputs finish and expire meanwhile
    second = ServerProcess(env, str(tmp_path))
    try:
        final = wait_job(second.base_url, job_id, timeout=90)
    finally:
        second.stop()
    assert final["state"] == "succeeded", final
    started_before = sum(1 for i in job["items"] if i.get("prediction_id"))
    assert len(PROMPTS) <= standin.creates <= len(PROMPTS) + started_before
    manifest = require_manifest(LocalStore(tmp_path / "store"), "0800")
    assert sorted(e["prompt_id"] for e in manifest.training_data) == sorted(PROMPTS)
