"""Trainings over HTTP (real uvicorn): the preview trainer on the local store and S3, the
Replicate trainer end to end against the stand-in, bad input refused, webhooks verified."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from actor_maker.config import Settings
from actor_maker.manifest import read_manifest
from actor_maker.store.base import ObjectStore
from actor_maker.testing.replicate_server.webhooks import new_secret, signed_headers
from actor_maker.training import models

from .apiserver import serve_in_thread, standin_settings
from .conftest import STANDIN_TOKEN
from .training_helpers import ACTOR, seed_actor


def preview_settings(tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "trainer": "preview",
        "preview_training_s": 0.5,
        "poll_interval_s": 0.05,
        "slot_dir": tmp_path / "slots",
        "state_dir": tmp_path / "state",
        **extra,
    }
    return Settings(**values)


def events_until_done(api: httpx.Client, actor_id: str) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    name = ""
    with api.stream("GET", f"/api/actors/{actor_id}/trainings/events", timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
                if name in ("training_finished", "training_failed"):
                    break
    return events


def test_train_over_http_then_mark_good(store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(store)
    settings = preview_settings(tmp_path)
    with (
        serve_in_thread(settings, store=store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        dry = api.post(f"/api/actors/{ACTOR}/trainings", json={"dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["image_count"] == 13 and dry.json()["estimated_cost"] == 0
        first = api.post(f"/api/actors/{ACTOR}/trainings", json={})
        second = api.post(f"/api/actors/{ACTOR}/trainings", json={})  # a double click
        assert first.status_code == 202, first.text
        assert second.status_code == 200 and second.json()["version"] == "V1"
        events = events_until_done(api, ACTOR)
        names = [n for n, _ in events]
        assert names[0] == "plan" and "training_started" in names and "progress" in names
        assert names[-1] == "training_finished" and events[-1][1]["status"] == "trained"
        listed = api.get(f"/api/actors/{ACTOR}/models").json()
        assert [m["version"] for m in listed] == ["V1"] and listed[0]["score"]["share"] == 1.0
        sample = api.get(listed[0]["samples"][0]["url"])
        assert sample.status_code == 200 and sample.content[:2] == b"\xff\xd8"
        good = api.post(f"/api/actors/{ACTOR}/models/V1/mark-good")
        assert good.status_code == 200 and good.json()["status"] == "good"
        assert api.get(f"/api/actors/{ACTOR}/models").json()[0]["is_lora_model"] is True
    manifest = read_manifest(store, ACTOR)
    assert manifest is not None and manifest.data["lora_model"]["version"] == "V1"
    assert len(list((tmp_path / "state" / "preview-trainer").iterdir())) == 1


@pytest.mark.parametrize(
    ("actor", "body", "status", "detail"),
    [
        ("9999", {}, 404, "unknown actor"),
        (ACTOR, {"steps": 50}, 422, "steps"),
        (ACTOR, {"trainer": "kohya"}, 422, "--trainer kohya"),
        (ACTOR, {"trainer": "preview", "max_cost": -1}, 422, "max_cost"),
    ],
)
def test_bad_input_is_refused_with_nothing_paid(
    local_store: ObjectStore,
    tmp_path: Path,
    actor: str,
    body: dict[str, Any],
    status: int,
    detail: str,
) -> None:
    seed_actor(local_store)
    before = read_manifest(local_store, ACTOR)
    with (
        serve_in_thread(preview_settings(tmp_path), store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        response = api.post(f"/api/actors/{actor}/trainings", json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.text
    after = read_manifest(local_store, ACTOR)
    assert before is not None and after is not None and after.data == before.data
    assert not (tmp_path / "state" / "preview-trainer").exists()


def test_too_few_images_is_refused(local_store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(local_store, usable=9, preview=0)
    with (
        serve_in_thread(preview_settings(tmp_path), store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        response = api.post(f"/api/actors/{ACTOR}/trainings", json={})
    assert response.status_code == 422 and "at least 10" in response.json()["detail"]


def test_webhook_signature_accepted_and_forged_refused(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    secret = new_secret()
    settings = preview_settings(tmp_path, replicate_webhook_secret=secret, api_token="t" * 32)
    body = json.dumps({"id": "r8_training", "status": "succeeded"}).encode()
    now = int(time.time())
    with (
        serve_in_thread(settings, store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        good = api.post(
            "/api/webhooks/replicate", content=body, headers=signed_headers(secret, "m1", now, body)
        )
        assert good.status_code == 204  # no API token needed: the signature is the proof
        forged = signed_headers(new_secret(), "m2", now, body)
        assert api.post("/api/webhooks/replicate", content=body, headers=forged).status_code == 401
        tampered = signed_headers(secret, "m3", now, body)
        assert (
            api.post("/api/webhooks/replicate", content=body + b" ", headers=tampered).status_code
            == 401
        )
        stale = signed_headers(secret, "m4", now - 3600, body)
        assert api.post("/api/webhooks/replicate", content=body, headers=stale).status_code == 401
        unsigned = api.post("/api/webhooks/replicate", content=body)
        assert unsigned.status_code == 401


def test_replicate_trainer_end_to_end_against_the_standin(
    store: ObjectStore, tmp_path: Path, standin: Any
) -> None:
    seed_actor(store, usable=12, rejected=1, preview=2)
    settings = standin_settings(
        tmp_path, standin, STANDIN_TOKEN, trainer="replicate", training_owner="stand-in"
    )
    with (
        serve_in_thread(settings, store=store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        started = api.post(f"/api/actors/{ACTOR}/trainings", json={"steps": 200})
        assert started.status_code == 202, started.text
        assert 0 < started.json()["plan"]["estimated_cost"] < settings.max_job_cost
        events = events_until_done(api, ACTOR)
        assert events[-1][0] == "training_finished", events[-1]
        record = events[-1][1]
    assert standin.trainings_created == 1
    # The trainer got exactly the 12 usable images: no rejected one, no preview placeholder.
    zips = [d for d in standin.files.values() if zipfile.is_zipfile(io.BytesIO(d))]
    with zipfile.ZipFile(io.BytesIO(zips[-1])) as archive:
        images = [n for n in archive.namelist() if n.endswith(".jpg")]
    assert len(images) == 12 == record["image_count"]
    assert record["trainer"] == "replicate" and record["training_id"]
    assert record["status"] in ("trained", "needs_review")
    weights = store.get(models.weights_key("0012_european_30_female", "V1")).data
    assert record["md5_hash"] and record["size_bytes"] == len(weights)
    assert len(record["samples"]) == settings.training_samples
    assert record["cost"]["actual"] > 0


def test_server_restart_reattaches_to_the_running_training(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    seed_actor(local_store)
    settings = preview_settings(tmp_path, preview_training_s=4.0)
    trainings = tmp_path / "state" / "preview-trainer"
    with (
        serve_in_thread(settings, store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        assert api.post(f"/api/actors/{ACTOR}/trainings", json={}).status_code == 202
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            manifest = read_manifest(local_store, ACTOR)
            record = models.active_model(manifest) if manifest else None
            if record and record.get("training_id"):
                break
            time.sleep(0.05)
    # The server is gone; the training went on at the trainer and is in the manifest.
    manifest = read_manifest(local_store, ACTOR)
    assert manifest is not None and models.models_of(manifest)[0]["status"] == "training"
    with (
        serve_in_thread(settings, store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        again = api.post(f"/api/actors/{ACTOR}/trainings", json={})
        assert again.status_code == 202 and again.json()["plan"]["reattach"]
        events = events_until_done(api, ACTOR)
        assert "training_reattached" in [n for n, _ in events]
        assert events[-1][1]["status"] == "trained"
    assert len(list(trainings.iterdir())) == 1  # one training paid for


def test_cancel_over_http_changes_only_the_record(local_store: ObjectStore, tmp_path: Path) -> None:
    seed_actor(local_store)
    before = read_manifest(local_store, ACTOR)
    settings = preview_settings(tmp_path, preview_training_s=30.0)
    with (
        serve_in_thread(settings, store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        assert api.post(f"/api/actors/{ACTOR}/trainings/cancel").status_code == 404
        assert api.post(f"/api/actors/{ACTOR}/trainings", json={}).status_code == 202
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            manifest = read_manifest(local_store, ACTOR)
            record = models.active_model(manifest) if manifest else None
            if record and record.get("training_id"):
                break
            time.sleep(0.05)
        canceled = api.post(f"/api/actors/{ACTOR}/trainings/cancel")
        assert canceled.status_code == 200, canceled.text
        events = events_until_done(api, ACTOR)
        assert events[-1][0] == "training_finished" and events[-1][1]["status"] == "canceled"
    after = read_manifest(local_store, ACTOR)
    assert before is not None and after is not None
    changed = {k for k in after.data if after.data.get(k) != before.data.get(k)}
    assert changed <= {"custom_lora_models", "custom_lora_models_updated", "training_data_updated"}
    assert list(local_store.list(models.LORA_PREFIX)) == []
