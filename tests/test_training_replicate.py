"""The Replicate trainer against the stand-in: trainings, models, weights, samples, webhooks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
import uuid
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from actor_maker.errors import InputError, ProviderError, ProviderTimeoutError
from actor_maker.providers.replicate_http import ReplicateHTTP
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn
from actor_maker.testing.weights import safetensors_metadata
from actor_maker.training.base import (
    Dataset,
    TrainingParams,
    TrainingRequest,
    TrainingState,
    TrainingStatus,
)
from actor_maker.training.replicate import ReplicateTrainer, parse_progress, verify_webhook

from .conftest import STANDIN_TOKEN
from .helpers import sample_image
from .httpserver import LoopbackServer, PostReceiver

TRAINER = "/v1/models/ostris/flux-dev-lora-trainer/versions/"
PROMPTS = ("photo of [trigger] on a bench", "photo of [trigger] in the rain")


def make_zip(path: Path, count: int = 10) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            archive.writestr(f"actor_{i}.jpg", sample_image((512, 512), seed=i * 17))
            archive.writestr(f"actor_{i}.txt", f"photo of TOK person, pose {i}")
    return path


def request(
    tmp_path: Path,
    *,
    destination: str | None = None,
    url: str | None = None,
    trigger: str = "TOK",
    steps: int = 200,
    webhook: str | None = None,
) -> TrainingRequest:
    path = tmp_path / "actor.zip"
    if not path.exists():
        make_zip(path)
    return TrainingRequest(
        actor_id="0012",
        version="V1",
        trigger_word=trigger,
        dataset=Dataset(path=path, images=10, sha256="0" * 64, url=url),
        params=TrainingParams(steps=steps, rank=8, learning_rate=4e-4),
        sample_prompts=PROMPTS,
        sample_seeds=(7, 8),
        destination=destination or f"stand-in/actor-{uuid.uuid4().hex[:10]}",
        webhook_url=webhook,
    )


def trainer(standin: ReplicateStandIn) -> ReplicateTrainer:
    http = ReplicateHTTP(
        token=STANDIN_TOKEN, base_url=standin.base_url, backoff_initial_s=0.01, backoff_max_s=0.05
    )
    return ReplicateTrainer(
        http, price_per_second=0.001525, poll_interval_s=0.02, sample_deadline_s=10
    )


async def until_final(t: ReplicateTrainer, training_id: str, limit: float = 15) -> TrainingStatus:
    deadline = time.monotonic() + limit
    while True:
        status = await t.status(training_id)
        if status.state.final:
            return status
        assert time.monotonic() < deadline, f"training still {status.state}"
        await asyncio.sleep(0.03)


def creates(standin: ReplicateStandIn) -> int:
    return sum(1 for m, p in standin.requests_log if m == "POST" and p.startswith(TRAINER))


def distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two images at 64×64 grey (0..255)."""

    def small(data: bytes) -> Image.Image:
        return Image.open(io.BytesIO(data)).convert("L").resize((64, 64))

    return float(ImageStat.Stat(ImageChops.difference(small(a), small(b))).mean[0])


async def test_train_poll_weights_and_samples(standin, tmp_path):
    t = trainer(standin)
    try:
        req = request(tmp_path)
        training_id = await t.start(req)
        status = await until_final(t, training_id)
        assert status.state is TrainingState.succeeded, status.error
        assert status.progress == 1.0 and "200/200" in status.logs_tail
        assert status.model_version and status.model_version.startswith(f"{req.destination}:")
        assert status.gpu_seconds and status.gpu_seconds > 0
        assert status.extra["cost"] == round(status.gpu_seconds * 0.001525, 6)
        weights = await t.weights(status)
        meta = safetensors_metadata(weights)
        assert meta is not None and meta["training_id"] == training_id
        assert meta["trigger_word"] == "TOK"
        samples = await t.samples(status, req)
    finally:
        await t.aclose()
    assert standin.trainings_created == 1 and standin.models_created == 1
    # No URL in the dataset: the zip went through the files API, and the training saw it.
    uploaded = list(standin.files.values())
    assert any(zipfile.is_zipfile(io.BytesIO(data)) for data in uploaded)
    sent = standin.book.get(training_id)
    assert sent is not None and sent.input["trigger_word"] == "TOK"
    assert sent.input["steps"] == 200 and sent.input["lora_rank"] == 8
    assert len(samples) == 2
    # The samples come from the trained LoRA: each looks like one of the training images.
    training_images = [sample_image((512, 512), seed=i * 17) for i in range(10)]
    for sample in samples:
        assert min(distance(sample, img) for img in training_images) < 25
    lora = [
        p
        for p in standin.predictions.values()
        if p["input"].get("lora_weights") == status.weights_url
    ]
    assert all(p["model"] == "black-forest-labs/flux-dev-lora" for p in lora)
    assert sorted(p["input"]["seed"] for p in lora) == [7, 8]
    assert all(p["input"]["prompt"].startswith("photo of TOK") for p in lora)


async def test_dataset_url_is_handed_over_without_upload(standin, tmp_path):
    server = LoopbackServer()
    zipped = make_zip(tmp_path / "given.zip", count=3).read_bytes()

    def serve(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(zipped)))
        handler.end_headers()
        handler.wfile.write(zipped)

    server.routes["/presigned.zip"] = serve
    t = trainer(standin)
    try:
        training_id = await t.start(request(tmp_path, url=server.url("/presigned.zip")))
        status = await until_final(t, training_id)
    finally:
        await t.aclose()
        server.httpd.shutdown()
    assert status.state is TrainingState.succeeded
    assert not any(m == "POST" and p == "/v1/files" for m, p in standin.requests_log)
    training = standin.book.get(training_id)
    assert training is not None and len(training.images) == 3


async def test_destination_model_is_created_once_and_private(standin, tmp_path):
    destination = f"stand-in/actor-{uuid.uuid4().hex[:10]}"
    for _ in range(2):  # two trainers: the second finds the model and does not create it
        t = trainer(standin)
        try:
            await until_final(t, await t.start(request(tmp_path, destination=destination)))
        finally:
            await t.aclose()
    assert standin.models_created == 1 and standin.trainings_created == 2
    model = httpx.get(
        f"{standin.base_url}/v1/models/{destination}",
        headers={"Authorization": f"Bearer {STANDIN_TOKEN}"},
    ).json()
    assert model["visibility"] == "private" and model["latest_version"]


async def test_429_and_5xx_are_retried_without_a_second_training(standin, tmp_path):
    standin.faults = Faults(throttle_first=2, retry_after=0.01, server_errors_first=3)
    t = trainer(standin)
    try:
        training_id = await t.start(request(tmp_path))
        assert (await until_final(t, training_id)).state is TrainingState.succeeded
    finally:
        await t.aclose()
    assert standin.throttled == 2 and standin.server_errors == 3
    assert creates(standin) == 6 and standin.trainings_created == 1


async def test_lost_create_answer_is_never_sent_again_and_the_training_is_adopted(
    standin, tmp_path
):
    standin.faults = Faults(lose_answer_first=1)
    t = trainer(standin)
    try:
        training_id = await t.start(request(tmp_path))
        assert (await until_final(t, training_id)).state is TrainingState.succeeded
    finally:
        await t.aclose()
    assert standin.lost_answers == 1
    assert creates(standin) == 1 and standin.trainings_created == 1
    assert standin.book.get(training_id) is not None


async def test_create_without_answer_and_without_training_is_refused_not_repeated(
    standin, tmp_path
):
    standin.faults = Faults(drop_connection_first=1)
    t = trainer(standin)
    try:
        with pytest.raises(ProviderTimeoutError, match="NOT sent again"):
            await t.start(request(tmp_path))
    finally:
        await t.aclose()
    assert creates(standin) == 1 and standin.trainings_created == 0


async def test_cancel(standin, tmp_path):
    standin.faults = Faults(training_step_s=0.05)  # 200 steps: 10 s
    t = trainer(standin)
    try:
        training_id = await t.start(request(tmp_path))
        await asyncio.sleep(0.2)
        running = await t.status(training_id)
        assert running.state is TrainingState.processing
        assert running.progress is not None and 0 <= running.progress < 1
        await t.cancel(training_id)
        status = await until_final(t, training_id, limit=2)
    finally:
        await t.aclose()
    assert status.state is TrainingState.canceled and status.weights_url is None


async def test_failed_training_reports_its_error_and_has_no_weights(standin, tmp_path):
    standin.faults = Faults(fail_trainings_containing="BROKEN")
    t = trainer(standin)
    try:
        status = await until_final(t, await t.start(request(tmp_path, trigger="BROKEN")))
        assert status.state is TrainingState.failed
        assert status.error and "out of memory" in status.error
        with pytest.raises(ProviderError, match="no weights"):
            await t.weights(status)
    finally:
        await t.aclose()


async def test_expired_weights_url_is_a_clear_error(standin, tmp_path):
    standin.faults = Faults(weights_ttl=0.0)
    t = trainer(standin)
    try:
        status = await until_final(t, await t.start(request(tmp_path)))
        with pytest.raises(ProviderError, match=r"weights .* gone \(HTTP 404\).*expire"):
            await t.weights(status)
    finally:
        await t.aclose()


async def test_bad_destination_is_refused_before_any_request(standin, tmp_path):
    t = trainer(standin)
    try:
        with pytest.raises(InputError, match="owner/name"):
            await t.start(request(tmp_path, destination="Not A Model"))
    finally:
        await t.aclose()
    assert standin.requests_log == []


def test_progress_is_read_from_the_last_step_line():
    assert parse_progress("a\nflux:  40%| 400/1000 [00:10]\nflux:  50%| 500/1000\n") == 0.5
    assert parse_progress("no steps here") is None


# --- webhooks ---------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[PostReceiver]:
    r = PostReceiver()
    yield r
    r.httpd.shutdown()


async def test_completed_webhook_is_signed_and_verifies(standin, tmp_path, receiver):
    t = trainer(standin)
    try:
        training_id = await t.start(request(tmp_path, webhook=receiver.url))
        await until_final(t, training_id)
    finally:
        await t.aclose()
    deadline = time.monotonic() + 5
    while not receiver.received and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(receiver.received) == 1  # webhook_events_filter: completed only
    headers, body = receiver.received[0]
    assert json.loads(body)["id"] == training_id and json.loads(body)["status"] == "succeeded"
    secret = httpx.get(
        f"{standin.base_url}/v1/webhooks/default/secret",
        headers={"Authorization": f"Bearer {STANDIN_TOKEN}"},
    ).json()["key"]
    assert secret.startswith("whsec_") and secret == standin.webhook_secret
    assert verify_webhook(secret, headers, body)
    # Forged: another body, another secret, an old or a future timestamp.
    assert not verify_webhook(secret, headers, body.replace(b"succeeded", b"failed"))
    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert not verify_webhook(other, headers, body)
    stamp = int(headers["webhook-timestamp"])
    assert not verify_webhook(secret, headers, body, now=stamp + 301)
    assert not verify_webhook(secret, headers, body, now=stamp - 301)
    assert verify_webhook(secret, headers, body, now=stamp + 299)


def _sign(secret: str, msg_id: str, stamp: int, body: bytes) -> str:
    import hmac

    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_verify_webhook_accepts_any_listed_signature_and_refuses_missing_headers():
    secret = "whsec_" + base64.b64encode(b"s" * 24).decode()
    now = int(time.time())
    body = b'{"id": "t1"}'
    good = _sign(secret, "msg_1", now, body)
    headers = {
        "Webhook-Id": "msg_1",
        "Webhook-Timestamp": str(now),
        "Webhook-Signature": f"v1,{base64.b64encode(b'x' * 32).decode()} v1,{good}",
    }
    assert verify_webhook(secret, headers, body)
    assert verify_webhook(secret, headers, body.decode())
    assert not verify_webhook(secret, {**headers, "Webhook-Signature": f"v2,{good}"}, body)
    assert not verify_webhook(secret, {**headers, "Webhook-Id": "msg_2"}, body)
    for name in headers:
        assert not verify_webhook(secret, {k: v for k, v in headers.items() if k != name}, body)
    assert not verify_webhook("whsec_not base64!", headers, body)
    assert not verify_webhook(secret, {**headers, "Webhook-Timestamp": "soon"}, body)
