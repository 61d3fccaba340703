import asyncio
import time

import httpx
import pytest
from prometheus_client import REGISTRY

from actor_maker import metrics
from actor_maker.config import Settings
from actor_maker.errors import (
    BudgetError,
    ConfigError,
    ContentFlaggedError,
    CorruptManifestError,
    FetchError,
    InvalidImageError,
    PreconditionFailed,
    ProviderError,
    ProviderTimeoutError,
    RetryableProviderError,
    SlotTimeoutError,
    StoreError,
)
from actor_maker.layout import manifest_key
from actor_maker.manifest import new_manifest, serialize_manifest, update_manifest
from actor_maker.pipeline import Actor, Pipeline
from actor_maker.slots import ProcessSlots

from .apiserver import serve_in_thread
from .fakes import CountingProvider
from .helpers import sample_image

ACTOR = Actor("0200", "0200_metrics_actor", "person", "female")
BASE = sample_image()
PROMPTS = ["photo-rain-platform", "bw-charcoal-portrait", "color-oil-portrait"]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot() -> dict[str, float]:
    return {
        "generated": value(
            "actor_maker_images_generated_total", provider="fake", model="fake/model"
        ),
        "flagged": value("actor_maker_images_failed_total", reason="flagged"),
        "canceled": value("actor_maker_images_failed_total", reason="canceled"),
        "provider_calls": value("actor_maker_provider_seconds_count", provider="fake"),
        "provider_seconds": value("actor_maker_provider_seconds_sum", provider="fake"),
        "slot_waits": value("actor_maker_slot_wait_seconds_count"),
        "slot_wait_seconds": value("actor_maker_slot_wait_seconds_sum"),
    }


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before[k], 6) for k in before}


def make(store, provider, limit=4):
    return Pipeline(
        settings=Settings(_env_file=None, prices={"fake/model": 0.04}),
        store=store,
        provider=provider,
        slots=ProcessSlots(limit),
    )


async def test_a_pipeline_run_counts_images_failures_and_latencies(local_store):
    pipeline = make(local_store, CountingProvider(latency=0.05, flag="charcoal"), limit=1)
    before = snapshot()
    result = await pipeline.run(pipeline.plan_all(ACTOR, only=PROMPTS), BASE)
    assert result.succeeded == 2
    delta = moved(before, snapshot())
    assert delta["generated"] == 2
    assert delta["flagged"] == 1
    assert delta["canceled"] == 0
    assert delta["provider_calls"] == 3
    assert delta["provider_seconds"] >= 3 * 0.05
    assert delta["slot_waits"] == 3
    # one slot, two workers: someone waited for about one provider call
    assert delta["slot_wait_seconds"] >= 0.04


async def test_canceled_items_count_as_canceled(local_store):
    pipeline = make(local_store, CountingProvider(latency=5), limit=1)
    before = snapshot()
    task = asyncio.create_task(pipeline.run(pipeline.plan_all(ACTOR, only=PROMPTS), BASE))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    delta = moved(before, snapshot())
    assert delta["canceled"] == 3
    assert delta["generated"] == 0
    assert delta["provider_calls"] == 0  # canceled calls say nothing about latency


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ContentFlaggedError("E005"), "flagged"),
        (ProviderTimeoutError("deadline"), "timeout"),
        (SlotTimeoutError("no slot"), "timeout"),
        (RetryableProviderError("503"), "provider"),
        (ProviderError("failed"), "provider"),
        (StoreError("denied"), "store"),
        (PreconditionFailed("lost"), "store"),
        (CorruptManifestError("bad json"), "store"),
        (InvalidImageError("not an image"), "input"),
        (FetchError("404"), "input"),
        (BudgetError("too dear"), "input"),
        (ConfigError("bad token"), "config"),
        (asyncio.CancelledError(), "canceled"),
        (KeyError("bug"), "internal"),
    ],
)
def test_failure_reasons(exc, reason):
    assert metrics.failure_reason(exc) == reason
    assert reason in metrics.FAILURE_REASONS
    before = value("actor_maker_images_failed_total", reason=reason)
    metrics.record_failure(exc)
    assert value("actor_maker_images_failed_total", reason=reason) == before + 1


def test_a_manifest_conflict_is_counted(local_store):
    key = manifest_key(ACTOR.actor_id)
    manifest = new_manifest(
        actor_id=ACTOR.actor_id, actor_name=ACTOR.actor_name, actor_type="person", actor_sex=None
    )
    local_store.put_if_absent(key, serialize_manifest(manifest))
    calls = []

    def change(manifest):
        calls.append(manifest.version)
        if len(calls) == 1:  # another writer gets in between our read and our write
            theirs = manifest.copy()
            theirs.data["note_theirs"] = 1
            local_store.put_if_version(key, serialize_manifest(theirs), manifest.version)
        manifest.data["note_ours"] = 1
        return True

    before = value("actor_maker_manifest_conflicts_total")
    written = update_manifest(local_store, ACTOR.actor_id, change)
    assert value("actor_maker_manifest_conflicts_total") == before + 1
    assert len(calls) == 2
    assert written.data["note_theirs"] == written.data["note_ours"] == 1


def test_job_durations_and_metrics_over_http(local_store, tmp_path):
    settings = Settings(
        _env_file=None,
        store=str(tmp_path / "unused-store"),
        state_dir=tmp_path / "state",
        provider="preview",
    )
    before = value("actor_maker_job_seconds_count", state="succeeded")
    generated_before = value(
        "actor_maker_images_generated_total", provider="preview", model="preview"
    )
    with (
        serve_in_thread(settings, store=local_store) as base,
        httpx.Client(base_url=base) as client,
    ):
        created = client.post(
            "/api/actors",
            data={"actor_id": ACTOR.actor_id, "actor_name": ACTOR.actor_name},
            files={"base_image": ("base.jpg", BASE, "image/jpeg")},
        )
        assert created.status_code == 201, created.text
        started = client.post(
            f"/api/actors/{ACTOR.actor_id}/jobs", json={"prompt_ids": PROMPTS[:2]}
        )
        assert started.status_code == 201, started.text
        job_id = started.json()["id"]
        deadline = time.monotonic() + 15
        while (job := client.get(f"/api/jobs/{job_id}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["state"] == "succeeded", job

        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        for name in (
            "actor_maker_images_generated_total",
            "actor_maker_images_failed_total",
            "actor_maker_provider_seconds_bucket",
            "actor_maker_slot_wait_seconds_count",
            "actor_maker_manifest_conflicts_total",
            "actor_maker_job_seconds_count",
        ):
            assert name in response.text
        assert 'actor_maker_images_failed_total{reason="flagged"}' in response.text
    assert value("actor_maker_job_seconds_count", state="succeeded") == before + 1
    assert (
        value("actor_maker_images_generated_total", provider="preview", model="preview")
        == generated_before + 2
    )
