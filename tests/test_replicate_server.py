"""The Replicate stand-in itself, exercised over real HTTP with httpx."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpx
import pytest
from PIL import Image, ImageFilter, ImageStat

from actor_maker.testing.replicate_server import (
    E005_ERROR,
    GENERIC_MODEL_ERROR,
    Faults,
    ReplicateStandIn,
    _parse_prefer_wait,
    render_placeholder_image,
)

CREATE = "/v1/models/black-forest-labs/flux-kontext-pro/predictions"
BASE_IMAGE = "https://example.com/actors/alice_base.jpg"
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}


@pytest.fixture
def stand_in() -> Iterator[ReplicateStandIn]:
    with ReplicateStandIn() as server:
        yield server


@pytest.fixture
def client(stand_in: ReplicateStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stand_in.base_url,
        headers={"Authorization": "Bearer test-token"},
        timeout=10,
    ) as c:
        yield c


def create(
    client: httpx.Client,
    prompt: str = "Alice in a rainy street",
    *,
    wait: str | None = "wait=10",
    **extra: Any,
) -> httpx.Response:
    headers = {"Prefer": wait} if wait else {}
    body = {"input": {"prompt": prompt, "input_image": BASE_IMAGE, **extra}}
    return client.post(CREATE, json=body, headers=headers)


def poll(client: httpx.Client, prediction: dict[str, Any], limit: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while prediction["status"] not in TERMINAL:
        assert time.monotonic() < deadline, prediction
        time.sleep(0.02)
        prediction = client.get(prediction["urls"]["get"]).json()
    return prediction


def dhash(data: bytes) -> list[bool]:
    small = Image.open(io.BytesIO(data)).convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    px = small.tobytes()
    return [px[y * 9 + x] > px[y * 9 + x + 1] for y in range(8) for x in range(8)]


# --------------------------------------------------------------------------- happy paths


def test_blocking_create_returns_succeeded_with_a_downloadable_image(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    r = create(client, seed=7, safety_tolerance=2)
    assert r.status_code == 201
    p = r.json()
    assert p["status"] == "succeeded"
    for key in (
        "id",
        "model",
        "version",
        "input",
        "logs",
        "output",
        "error",
        "created_at",
        "started_at",
        "completed_at",
        "urls",
        "metrics",
        "data_removed",
    ):
        assert key in p, key
    assert p["model"] == "black-forest-labs/flux-kontext-pro"
    assert p["error"] is None and p["data_removed"] is False
    assert p["urls"]["get"] == f"{stand_in.base_url}/v1/predictions/{p['id']}"
    assert p["urls"]["cancel"] == f"{stand_in.base_url}/v1/predictions/{p['id']}/cancel"
    assert p["metrics"]["predict_time"] >= 0
    assert p["created_at"].endswith("Z") and p["completed_at"].endswith("Z")
    assert p["output"] == f"{stand_in.base_url}/files/out/{p['id']}.jpg"

    image = httpx.get(p["output"])  # no Authorization, like replicate.delivery
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(image.content)) as img:
        assert img.format == "JPEG" and img.size == (768, 768)

    recorded = stand_in.predictions[p["id"]]["input"]
    assert recorded == {
        "prompt": "Alice in a rainy street",
        "input_image": BASE_IMAGE,
        "seed": 7,
        "safety_tolerance": 2,
    }
    assert (stand_in.creates, stand_in.create_attempts) == (1, 1)
    assert client.get(p["urls"]["get"]).json()["status"] == "succeeded"


def test_create_without_wait_answers_starting_then_polls_to_succeeded(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    stand_in.faults.latency = 0.2
    r = create(client, wait=None)
    assert r.status_code == 201
    p = r.json()
    assert p["status"] == "starting" and p["output"] is None
    assert poll(client, p)["status"] == "succeeded"


def test_wait_cap_forces_polling_and_a_timed_out_wait_says_starting(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    stand_in.faults = Faults(latency=0.5, wait_cap=0.1)
    started = time.monotonic()
    p = create(client, wait="wait").json()
    assert time.monotonic() - started < 0.4
    assert p["status"] == "starting" and p["output"] is None
    seen = {client.get(p["urls"]["get"]).json()["status"]}
    final = poll(client, p)
    assert final["status"] == "succeeded" and final["output"]
    assert seen <= {"processing", "succeeded"}


def test_prefer_wait_seconds_is_honoured(stand_in: ReplicateStandIn, client: httpx.Client) -> None:
    stand_in.faults.latency = 1.0
    started = time.monotonic()
    p = create(client, wait="wait=0.3").json()
    assert 0.25 < time.monotonic() - started < 0.8
    assert p["status"] == "starting"


def test_processing_with_output_quirk(stand_in: ReplicateStandIn, client: httpx.Client) -> None:
    stand_in.faults.processing_with_output = True
    p = create(client).json()
    assert p["status"] == "processing" and p["output"].endswith(".jpg")
    assert client.get(p["urls"]["get"]).json()["status"] == "succeeded"


def test_create_by_version_on_the_predictions_endpoint(client: httpx.Client) -> None:
    body = {"version": "black-forest-labs/flux-kontext-pro", "input": {"prompt": "x"}}
    r = client.post("/v1/predictions", json=body, headers={"Prefer": "wait"})
    assert r.status_code == 201 and r.json()["status"] == "succeeded"
    r = client.post("/v1/predictions", json={"version": "nobody/nothing", "input": {}})
    assert r.status_code == 422


# --------------------------------------------------------------------------- faults


def test_throttling_answers_429_with_retry_after_then_accepts(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    stand_in.faults = Faults(throttle_first=2, retry_after=0.2)
    for _ in range(2):
        r = create(client)
        assert r.status_code == 429
        assert float(r.headers["Retry-After"]) == pytest.approx(0.2)
        assert r.json() == {
            "title": "Request was throttled",
            "status": 429,
            "detail": "Request was throttled. Expected available in 0.2 seconds.",
        }
    assert create(client).status_code == 201
    assert (stand_in.throttled, stand_in.creates, stand_in.create_attempts) == (2, 1, 3)

    stand_in.faults = Faults(throttle_first=1)  # a new Faults re-arms; integral → "1"
    r = create(client)
    assert r.headers["Retry-After"] == "1"
    assert r.json()["detail"] == "Request was throttled. Expected available in 1 second."


def test_server_errors_cycle_500_502_503(stand_in: ReplicateStandIn, client: httpx.Client) -> None:
    stand_in.faults.server_errors_first = 3
    answers = [create(client) for _ in range(4)]
    assert [r.status_code for r in answers] == [500, 502, 503, 201]
    assert answers[0].json()["status"] == 500
    assert answers[1].headers["content-type"].startswith("text/html")
    assert answers[2].json()["status"] == 503
    assert (stand_in.server_errors, stand_in.creates) == (3, 1)


def test_dropped_connection_then_success(stand_in: ReplicateStandIn, client: httpx.Client) -> None:
    stand_in.faults.drop_connection_first = 1
    with pytest.raises(httpx.RemoteProtocolError):
        create(client)
    assert create(client).status_code == 201
    assert (stand_in.dropped, stand_in.creates, stand_in.create_attempts) == (1, 1, 2)


def test_slow_create_times_out_the_client_but_the_prediction_exists(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    stand_in.faults.slow_create = 0.5
    with pytest.raises(httpx.ReadTimeout):
        client.post(CREATE, json={"input": {"prompt": "x"}}, timeout=httpx.Timeout(5, read=0.1))
    assert stand_in.creates == 1
    assert client.get("/v1/predictions").json()["results"][0]["input"]["prompt"] == "x"


def test_flagged_prompt_fails_with_e005(stand_in: ReplicateStandIn, client: httpx.Client) -> None:
    stand_in.faults.flag_prompts_containing = "swimsuit"
    p = create(client, "Alice in a swimsuit").json()
    assert p["status"] == "failed" and p["output"] is None
    assert p["error"] == E005_ERROR and "(E005)" in p["error"]
    assert create(client, "Alice in a coat").json()["status"] == "succeeded"


def test_generic_model_failure(stand_in: ReplicateStandIn, client: httpx.Client) -> None:
    stand_in.faults.fail_prompts_containing = "boom"
    p = create(client, "boom").json()
    assert p["status"] == "failed" and p["error"] == GENERIC_MODEL_ERROR
    assert httpx.get(f"{stand_in.base_url}/files/out/{p['id']}.jpg").status_code == 404


def test_cancel_stops_a_prediction_and_wakes_a_blocked_wait(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    stand_in.faults.latency = 5
    p = create(client, wait=None).json()
    r = client.post(p["urls"]["cancel"])
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    assert client.get(p["urls"]["get"]).json()["status"] == "canceled"
    assert stand_in.canceled == 1 and stand_in.in_flight == 0

    def running() -> list[dict[str, Any]]:
        listed = client.get("/v1/predictions").json()["results"]
        return [s for s in listed if s["status"] in ("starting", "processing")]

    answers: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: answers.append(create(client, wait="wait").json()))
    started = time.monotonic()
    waiter.start()
    while not running():
        assert time.monotonic() - started < 2
        time.sleep(0.01)
    client.post(running()[0]["urls"]["cancel"])
    waiter.join(timeout=3)
    assert answers and answers[0]["status"] == "canceled"
    assert time.monotonic() - started < 2
    # cancelling a finished prediction changes nothing
    assert client.post(p["urls"]["cancel"]).json()["status"] == "canceled"
    assert client.post("/v1/predictions/nope/cancel").status_code == 404


def test_output_url_expires_after_output_ttl(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    p = create(client).json()
    assert httpx.get(p["output"]).status_code == 200
    stand_in.faults.output_ttl = 0.1  # measured from completion, read on every request
    time.sleep(0.15)
    expired = httpx.get(p["output"])
    assert expired.status_code == 404 and expired.json()["status"] == 404
    later = client.get(p["urls"]["get"]).json()
    assert later["output"] is None and later["data_removed"] is True


# --------------------------------------------------------------------------- auth, files, errors


def test_auth_is_required_on_the_api(stand_in: ReplicateStandIn) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(stand_in.base_url + CREATE, json={"input": {"prompt": "x"}}, headers=headers)
        assert r.status_code == 401
        assert r.json() == {
            "title": "Unauthenticated",
            "status": 401,
            "detail": "You did not pass a valid authentication token",
        }
    assert stand_in.creates == 0
    ok = httpx.get(stand_in.base_url + "/v1/account", headers={"Authorization": "Token test-token"})
    assert ok.status_code == 200
    assert ok.json()["type"] == "user" and ok.json()["username"]


def test_files_api_upload_get_download_and_use_as_input(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 30, 30)).save(buf, format="PNG")
    data = buf.getvalue()
    r = client.post(
        "/v1/files",
        files={"content": ("alice.png", data, "image/png")},
        data={"metadata": '{"actor": "alice"}'},
    )
    assert r.status_code == 201
    f = r.json()
    assert f["size"] == len(data) and f["content_type"] == "image/png"
    assert f["name"] == "alice.png" and f["metadata"] == {"actor": "alice"}
    assert f["urls"]["get"] == f"{stand_in.base_url}/v1/files/{f['id']}"
    assert len(f["checksums"]["sha256"]) == 64 and f["expires_at"] > f["created_at"]
    assert stand_in.files[f["id"]] == data

    assert httpx.get(f["urls"]["get"]).status_code == 401
    assert client.get(f["urls"]["get"]).json()["id"] == f["id"]
    assert client.get(f["urls"]["get"] + "/download").content == data
    assert client.get("/v1/files").json()["results"][0]["id"] == f["id"]

    p = client.post(
        CREATE,
        headers={"Prefer": "wait"},
        json={
            "input": {
                "prompt": "x",
                "input_image": f["urls"]["get"],
                "aspect_ratio": "match_input_image",
            }
        },
    )
    out = Image.open(io.BytesIO(httpx.get(p.json()["output"]).content))
    assert out.size == (1024, 768)  # 4:3 like the upload, short side 768

    assert client.delete(f["urls"]["get"]).status_code == 204
    assert client.get(f["urls"]["get"]).status_code == 404
    assert client.post("/v1/files", content=b"raw").status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": {}}, "input"),
        ({"input": {"prompt": "  "}}, "input.prompt"),
        ({"input": {"prompt": 3}}, "input.prompt"),
        ({"input": {"prompt": "x", "input_image": "ftp://host/a.jpg"}}, "input.input_image"),
        (
            {"input": {"prompt": "x", "input_image": "data:image/png;base64,@@@"}},
            "input.input_image",
        ),
        ({"input": {"prompt": "x", "aspect_ratio": "7:5"}}, "input.aspect_ratio"),
        ({"input": {"prompt": "x", "output_format": "webp"}}, "input.output_format"),
        ({"input": {"prompt": "x", "seed": "12"}}, "input.seed"),
        ({"input": {"prompt": "x", "safety_tolerance": 9}}, "input.safety_tolerance"),
        ({"prompt": "x"}, "input"),
    ],
)
def test_invalid_input_is_422_with_the_field(
    stand_in: ReplicateStandIn, client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    r = client.post(CREATE, json=body)
    assert r.status_code == 422
    problem = r.json()
    assert problem["title"] == "Input validation failed" and problem["status"] == 422
    assert problem["invalid_fields"][0]["field"] == field
    assert field in problem["detail"]
    assert stand_in.creates == 0


def test_valid_data_uri_input_is_accepted_and_never_fetched(client: httpx.Client) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 600)).save(buf, format="JPEG")
    uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
    r = client.post(
        CREATE,
        headers={"Prefer": "wait"},
        json={"input": {"prompt": "x", "input_image": uri, "aspect_ratio": "match_input_image"}},
    )
    assert r.status_code == 201
    assert Image.open(io.BytesIO(httpx.get(r.json()["output"]).content)).size == (768, 1536)


def test_unknown_paths_models_and_bad_json(client: httpx.Client) -> None:
    for r in (
        client.post("/v1/models/acme/nope/predictions", json={"input": {"prompt": "x"}}),
        client.get("/v1/predictions/doesnotexist"),
        client.get("/v1/elsewhere"),
        client.get("/nowhere"),
    ):
        assert r.status_code == 404
        assert set(r.json()) >= {"title", "detail", "status"}
    bad = client.post(CREATE, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400


# --------------------------------------------------------------------------- concurrency


def test_max_in_flight_counts_overlapping_predictions(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    stand_in.faults.latency = 0.5
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda i: create(client, f"p{i}"), range(5)))
    assert all(r.json()["status"] == "succeeded" for r in answers)
    assert stand_in.max_in_flight == 5 and stand_in.in_flight == 0

    stand_in.reset_counters()
    stand_in.faults.latency = 0.05
    for i in range(5):
        assert create(client, f"q{i}").json()["status"] == "succeeded"
    assert stand_in.max_in_flight == 1
    assert stand_in.creates == 5
    assert ("POST", CREATE) in stand_in.requests_log


def test_many_concurrent_blocking_creates(stand_in: ReplicateStandIn) -> None:
    stand_in.faults.latency = 1.0  # as in the benchmarks: 32 blocking creates of 1-2 s
    limits = httpx.Limits(max_connections=64)
    with httpx.Client(
        base_url=stand_in.base_url,
        limits=limits,
        timeout=10,
        headers={"Authorization": "Bearer test-token"},
    ) as c:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(lambda i: create(c, f"scene {i % 4}"), range(32)))
        elapsed = time.monotonic() - started
    assert all(r.json()["status"] == "succeeded" for r in answers)
    assert stand_in.max_in_flight == 32
    assert elapsed < 4.0  # one after another would take 32 s


# --------------------------------------------------------------------------- images


def test_images_are_deterministic_and_differ_between_prompts(
    stand_in: ReplicateStandIn, client: httpx.Client
) -> None:
    def image(prompt: str, **extra: Any) -> bytes:
        return httpx.get(create(client, prompt, **extra).json()["output"]).content

    a1, a2 = image("Alice at the beach", seed=1), image("Alice at the beach", seed=1)
    b = image("Alice on a mountain", seed=1)
    assert a1 == a2
    assert sum(x != y for x, y in zip(dhash(a1), dhash(b), strict=True)) >= 12

    wide = Image.open(io.BytesIO(image("x", aspect_ratio="16:9", output_format="png")))
    assert wide.format == "PNG" and wide.size == (1365, 768)
    tall = Image.open(io.BytesIO(image("x", aspect_ratio="9:16")))
    assert tall.size == (768, 1365)


def test_images_look_like_photos_and_render_fast() -> None:
    started = time.process_time()  # CPU time: not skewed by other processes on a busy runner
    images = [render_placeholder_image(f"scene number {i}", None, (768, 768)) for i in range(10)]
    assert (time.process_time() - started) / len(images) < 0.03
    for data in images:
        img = Image.open(io.BytesIO(data)).convert("L")
        low, high = cast(tuple[int, int], img.getextrema())
        assert high - low > 120  # not blank
        assert ImageStat.Stat(img).stddev[0] > 15  # not uniform, some contrast
        assert ImageStat.Stat(img.filter(ImageFilter.FIND_EDGES)).mean[0] > 3  # sharp edges
    hashes = [dhash(data) for data in images]
    distances = [
        sum(x != y for x, y in zip(h1, h2, strict=True))
        for i, h1 in enumerate(hashes)
        for h2 in hashes[i + 1 :]
    ]
    assert min(distances) >= 6 and sum(distances) / len(distances) > 20


def test_prefer_header_parsing() -> None:
    assert _parse_prefer_wait(None) is None
    assert _parse_prefer_wait("respond-async") is None
    assert _parse_prefer_wait("wait") == 60
    assert _parse_prefer_wait("wait=5") == 5
    assert _parse_prefer_wait("wait=500") == 60
    assert _parse_prefer_wait("return=minimal, wait=0.5") == 0.5
