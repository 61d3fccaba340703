"""The stand-in's trainings, models and LoRA predictions, over real HTTP with httpx."""

from __future__ import annotations

import io
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from actor_maker.testing.replicate_server import Faults, ReplicateStandIn
from actor_maker.testing.replicate_server.trainings import TRAINER_VERSION

from .conftest import STANDIN_TOKEN
from .helpers import sample_image
from .httpserver import PostReceiver

TRAININGS = f"/v1/models/ostris/flux-dev-lora-trainer/versions/{TRAINER_VERSION}/trainings"


@pytest.fixture
def client(standin: ReplicateStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=standin.base_url, headers={"Authorization": f"Bearer {STANDIN_TOKEN}"}
    ) as c:
        yield c


def new_model(client: httpx.Client) -> str:
    name = f"actor-{uuid.uuid4().hex[:8]}"
    body = {"owner": "stand-in", "name": name, "visibility": "private", "hardware": "gpu-t4"}
    assert client.post("/v1/models", json=body).status_code == 201
    return f"stand-in/{name}"


def upload_zip(client: httpx.Client) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for i in range(3):
            archive.writestr(f"a_{i}.jpg", sample_image((256, 256), seed=i))
    response = client.post("/v1/files", files={"content": ("a.zip", buf.getvalue())})
    return str(response.json()["urls"]["get"])


def finished(client: httpx.Client, training_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        body: dict[str, Any] = client.get(f"/v1/trainings/{training_id}").json()
        if body["status"] in ("succeeded", "failed", "canceled"):
            return body
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_models_get_create_conflict_and_owner(client, standin):
    assert client.get("/v1/models/stand-in/never-made").status_code == 404
    ref = new_model(client)
    model = client.get(f"/v1/models/{ref}").json()
    assert model["visibility"] == "private" and model["latest_version"] is None
    body = {"owner": "stand-in", "name": ref.split("/")[1], "visibility": "private"}
    assert client.post("/v1/models", json={**body, "hardware": "cpu"}).status_code == 409
    assert client.post("/v1/models", json=body).status_code == 422  # no hardware
    other = {**body, "owner": "someone-else", "hardware": "cpu"}
    assert client.post("/v1/models", json=other).status_code == 403
    assert standin.models_created == 1


def test_training_life_and_trained_version_predictions(client, standin):
    ref = new_model(client)
    body = {"destination": ref, "input": {"input_images": upload_zip(client), "steps": 100}}
    created = client.post(TRAININGS, json=body)
    assert created.status_code == 201 and created.json()["status"] == "starting"
    done = finished(client, created.json()["id"])
    assert done["status"] == "succeeded" and done["metrics"]["predict_time"] > 0
    assert "100/100" in done["logs"]
    version = done["output"]["version"]
    assert version.startswith(f"{ref}:")
    assert client.get(f"/v1/models/{ref}").json()["latest_version"]["id"] == version.split(":")[1]
    tar = httpx.get(done["output"]["weights"])
    assert tar.status_code == 200 and tar.headers["content-type"] == "application/x-tar"
    # A prediction on the trained version returns a list of image URLs.
    made = client.post(
        "/v1/predictions",
        json={"version": version, "input": {"prompt": "photo of TOK", "seed": 3}},
        headers={"Prefer": "wait=5"},
    ).json()
    assert made["status"] == "succeeded" and isinstance(made["output"], list)
    assert httpx.get(made["output"][0]).status_code == 200
    assert standin.trainings_created == 1


def test_training_create_refusals(client, standin):
    ref = new_model(client)
    images = upload_zip(client)
    missing = {"destination": "stand-in/not-there", "input": {"input_images": images}}
    assert client.post(TRAININGS, json=missing).status_code == 404
    wrong_version = TRAININGS.replace(TRAINER_VERSION, "0" * 64)
    ok_body = {"destination": ref, "input": {"input_images": images}}
    assert client.post(wrong_version, json=ok_body).status_code == 404
    bad = client.post(TRAININGS, json={"destination": ref, "input": {"steps": 0}})
    assert bad.status_code == 422
    assert {f["field"] for f in bad.json()["invalid_fields"]} == {
        "input.input_images",
        "input.steps",
    }
    assert standin.trainings_created == 0


def test_a_zip_without_images_fails_the_training(client):
    ref = new_model(client)
    url = client.post("/v1/files", files={"content": ("x.zip", b"not a zip")}).json()
    body = {"destination": ref, "input": {"input_images": url["urls"]["get"]}}
    done = finished(client, client.post(TRAININGS, json=body).json()["id"])
    assert done["status"] == "failed" and "not a zip" in done["error"]


def test_lora_prediction_with_unknown_weights_fails(client):
    made = client.post(
        "/v1/models/black-forest-labs/flux-dev-lora/predictions",
        json={"input": {"prompt": "x", "lora_weights": "https://example.com/none.safetensors"}},
        headers={"Prefer": "wait=5"},
    ).json()
    assert made["status"] == "failed" and "LoRA weights" in made["error"]


def test_lost_answer_fault_keeps_the_training(client, standin):
    standin.faults = Faults(lose_answer_first=1)
    ref = new_model(client)
    body = {"destination": ref, "input": {"input_images": upload_zip(client)}}
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(TRAININGS, json=body)
    assert standin.trainings_created == 1 and standin.lost_answers == 1
    listed = client.get("/v1/trainings").json()["results"]
    assert listed[0]["input"] == body["input"]


def test_webhooks_follow_the_events_filter_and_a_cancel_completes(client, standin):
    receiver = PostReceiver()
    try:
        standin.faults = Faults(training_step_s=0.05)
        ref = new_model(client)
        body = {
            "destination": ref,
            "input": {"input_images": upload_zip(client), "steps": 200},
            "webhook": receiver.url,
            "webhook_events_filter": ["start", "completed"],
        }
        training_id = client.post(TRAININGS, json=body).json()["id"]
        client.post(f"/v1/trainings/{training_id}/cancel")
        deadline = time.monotonic() + 5
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        receiver.httpd.shutdown()
    statuses = [httpx.Response(200, content=b).json()["status"] for _, b in receiver.received]
    assert statuses[0] in ("starting", "processing") and statuses[-1] == "canceled"
    ids = {h["webhook-id"] for h, _ in receiver.received}
    assert len(ids) == 2  # one message id per event
    assert [d.event for d in standin.webhook_deliveries][-2:] == ["start", "completed"]
