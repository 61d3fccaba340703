"""The HTTP API through real HTTP: uvicorn on loopback, the Replicate stand-in, moto S3."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from actor_maker.config import Settings
from actor_maker.manifest import require_manifest
from actor_maker.testing.replicate_server import Faults

from .apiserver import read_sse, serve_in_thread, standin_settings
from .conftest import STANDIN_TOKEN
from .helpers import sample_image

TOKEN = STANDIN_TOKEN
THREE = ["photo-rain-platform", "bw-charcoal-portrait", "color-oil-portrait"]


def settings_for(tmp_path, standin, **extra) -> Settings:
    values = {"job_lease_s": 3, "store": str(tmp_path / "store"), **extra}
    return standin_settings(tmp_path, standin, TOKEN, **values)


@pytest.fixture
def api(tmp_path, standin, s3_store):
    settings = settings_for(tmp_path, standin)
    with (
        serve_in_thread(settings, store=s3_store) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


def create_actor(client, actor_id="0500", name="0500_api_actor", sex="female"):
    files = {"base_image": ("base.jpg", sample_image(), "image/jpeg")}
    data = {
        "actor_id": actor_id,
        "actor_name": name,
        "actor_type": "person",
        "actor_sex": sex,
        "description": "a tall woman with short grey hair",
        "outfit": "a green raincoat",
    }
    response = client.post("/api/actors", data=data, files=files)
    assert response.status_code == 201, response.text
    return response.json()


def wait_finished(client, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_job_end_to_end_with_live_events(api, standin, s3_store):
    manifest = create_actor(api)
    assert manifest["base_images"][0]["key"].startswith("system_actors/base_images/")
    standin.faults = Faults(latency=0.3, flag_prompts_containing="Charcoal")
    job = api.post("/api/actors/0500/jobs", json={"prompt_ids": THREE}).json()
    assert {
        "id",
        "actor_id",
        "state",
        "total",
        "succeeded",
        "failed",
        "items",
        "estimated_cost",
        "cost",
    } <= set(job)
    assert job["estimated_cost"] == pytest.approx(0.12)
    events = []
    with api.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for name, data in read_sse(stream):
            events.append((name, json.loads(data)))
    names = [n for n, _ in events]
    assert names[0] == "progress" and names[-1] == "job_finished"
    assert names.count("item_succeeded") == 2 and names.count("item_failed") == 1
    entry = next(d for n, d in events if n == "item_succeeded")  # the new manifest entry
    assert entry["filename"].startswith("0500_api_actor_") and entry["prompt_id"] in THREE
    failed = next(d for n, d in events if n == "item_failed")
    assert "E005" in failed["error"]
    final = events[-1][1]
    assert final["state"] == "partially_failed" and final["succeeded"] == 2 and final["failed"] == 1
    assert final["cost"] == pytest.approx(0.08)
    stored = require_manifest(s3_store, "0500")
    assert len(stored.training_data) == 2
    # a late client gets the current state, then job_finished, and the stream closes
    with api.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        late = [n for n, _ in read_sse(stream)]
    assert late == ["progress", "job_finished"]


def test_several_clients_watch_one_job(api, standin):
    create_actor(api)
    standin.faults = Faults(latency=0.3)
    job = api.post("/api/actors/0500/jobs", json={"prompt_ids": THREE[:2]}).json()
    import concurrent.futures

    def watch():
        with api.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
            return [n for n, _ in read_sse(stream)]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        seen = list(pool.map(lambda _: watch(), range(3)))
    for names in seen:
        assert names[-1] == "job_finished"


def test_generate_all_twice_returns_the_running_job(api, standin):
    create_actor(api)
    standin.faults = Faults(latency=0.5)
    first = api.post("/api/actors/0500/jobs", json={})
    second = api.post("/api/actors/0500/jobs", json={})
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    api.post(f"/api/jobs/{first.json()['id']}/cancel")
    assert wait_finished(api, first.json()["id"])["state"] == "canceled"


def test_cancel_stops_new_work_and_cancels_in_flight(api, standin, s3_store):
    create_actor(api)
    standin.faults = Faults(latency=1.5, wait_cap=0.1)
    job = api.post("/api/actors/0500/jobs", json={}).json()
    deadline = time.monotonic() + 10
    while standin.creates < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    canceled = api.post(f"/api/jobs/{job['id']}/cancel").json()
    assert canceled["state"] == "canceled"
    assert standin.canceled >= 1
    creates = standin.creates
    time.sleep(0.5)
    assert standin.creates == creates  # nothing new started
    assert all(i["state"] in ("canceled", "succeeded") for i in canceled["items"])


def test_retry_failed_runs_only_the_failed_items(api, standin):
    create_actor(api)
    standin.faults = Faults(flag_prompts_containing="Charcoal")
    job = wait_finished(
        api, api.post("/api/actors/0500/jobs", json={"prompt_ids": THREE}).json()["id"]
    )
    assert job["failed"] == 1
    standin.faults = Faults()
    retry = api.post(f"/api/jobs/{job['id']}/retry-failed")
    assert retry.status_code == 201
    done = wait_finished(api, retry.json()["id"])
    assert [i["prompt_id"] for i in done["items"]] == ["bw-charcoal-portrait"]
    assert done["state"] == "succeeded"
    listed = api.get("/api/jobs", params={"actor_id": "0500"})
    assert listed.headers["X-Total-Count"] == "2"


def test_actors_list_is_the_bare_array_with_paging_headers(api):
    for n in range(3):
        create_actor(api, f"06{n:02d}", f"06{n:02d}_actor", "male")
    page = api.get("/api/actors", params={"per_page": 2, "page": 1})
    assert page.status_code == 200 and isinstance(page.json(), list) and len(page.json()) == 2
    assert page.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in page.headers["Link"]
    actor = page.json()[0]
    assert {"id", "name", "sex", "outfit"} <= set(actor)
    assert actor["base_image"]  # a URL a browser can load
    thumbnail = api.get(actor["base_thumbnail"], follow_redirects=True)
    assert thumbnail.status_code == 200 and thumbnail.content[8:12] == b"WEBP"
    assert api.get("/api/actors", params={"q": "0601"}).headers["X-Total-Count"] == "1"


def test_prompts_with_usage(api):
    create_actor(api)
    wait_finished(
        api, api.post("/api/actors/0500/jobs", json={"prompt_ids": THREE[:1]}).json()["id"]
    )
    prompts = api.get("/api/prompts", params={"actor_id": "0500"}).json()
    used = {p["id"]: p["used"] for p in prompts}
    assert used["photo-rain-platform"] == 1 and used["bw-charcoal-portrait"] == 0
    assert all("{subject}" not in p["prompt"] for p in prompts)


def test_patch_and_delete_with_confirmation_then_restore(api, s3_store):
    create_actor(api)
    patched = api.patch("/api/actors/0500", data={"outfit": "a blue coat", "actor_sex": "female"})
    assert patched.status_code == 200 and patched.json()["metadata"]["outfit"] == "a blue coat"
    refused = api.delete("/api/actors/0500")
    assert refused.status_code == 422
    deleted = api.delete("/api/actors/0500", params={"confirm": "0500"})
    assert deleted.status_code == 200
    assert api.get("/api/actors/0500").status_code == 404
    trash_id = deleted.json()["trash_id"]
    assert any(t["trash_id"] == trash_id for t in api.get("/api/trash").json())
    assert api.post(f"/api/trash/{trash_id}/restore").status_code == 200
    assert api.get("/api/actors/0500").json()["metadata"]["outfit"] == "a blue coat"


def test_error_shape(api):
    for response, status in (
        (api.get("/api/actors/9999"), 404),
        (api.get("/api/jobs/job_nope"), 404),
        (api.post("/api/actors/0500/jobs", json={"aspect_ratio": 7}), 422),
        (api.post("/api/actors/0500/jobs", json={"prompts": ["x" * 3000]}), 422),
        (api.get("/api/actors/..%2F..%2Fetc"), 404),
    ):
        assert response.status_code == status, response.text
        body = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    invalid = api.post("/api/actors/0500/jobs", json={"seed": "abc"}).json()
    assert invalid["detail"].startswith("seed")


def test_bad_input_spends_nothing(api, standin, s3_store):
    files = {"base_image": ("notes.txt", b"not an image", "text/plain")}
    data = {"actor_id": "0700", "actor_name": "0700_x"}
    response = api.post("/api/actors", data=data, files=files)
    assert response.status_code == 422 and "not a readable image" in response.json()["detail"]
    for body in (
        {"actor_id": "../x", "actor_name": "n"},
        {"actor_id": "0700", "actor_name": "a/b"},
    ):
        response = api.post(
            "/api/actors", data=body, files={"base_image": ("b.jpg", sample_image(), "image/jpeg")}
        )
        assert response.status_code == 422
    private = api.post("/api/actors", data={**data, "base_image_url": "http://127.0.0.1:9/x.jpg"})
    assert private.status_code == 422 and "private" in private.json()["detail"]
    assert standin.create_attempts == 0 and list(s3_store.list("")) == []


def test_body_size_limit(api):
    response = api.post(
        "/api/actors/0500/jobs",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_files_are_served_without_escaping_the_store(tmp_path, standin, local_store):
    with (
        serve_in_thread(settings_for(tmp_path, standin), store=local_store) as url,
        httpx.Client(base_url=url) as api,
    ):
        manifest = create_actor(api)
        key = manifest["base_images"][0]["key"]
        image = api.get(f"/api/files/{key}")
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert "max-age" in image.headers["cache-control"] and image.content == sample_image()
        for path in (
            "system_actors/../../etc/passwd",
            "..%2F..%2Fetc%2Fpasswd",
            "system_actors/manifests/0500_manifest.json",
            "%2Fetc%2Fpasswd",
            "system_actors/.meta/x.jpg",
        ):
            response = api.get(f"/api/files/{path}")
            assert response.status_code == 404, path


def test_s3_files_redirect_to_short_lived_urls(api, s3_store):
    manifest = create_actor(api)
    response = api.get(f"/api/files/{manifest['base_images'][0]['key']}", follow_redirects=False)
    assert response.status_code == 307
    assert "Signature" in response.headers["location"]
    assert httpx.get(response.headers["location"]).content == sample_image()


def test_token_protects_everything_but_healthz(tmp_path, standin, local_store):
    settings = settings_for(tmp_path, standin, api_token="s3cret-token-0123456")
    with serve_in_thread(settings, store=local_store) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        for path in ("/api/actors", "/api/jobs", "/docs", "/openapi.json", "/metrics"):
            response = httpx.get(url + path)
            assert response.status_code == 401, path
            assert response.json()["status"] == 401
        assert httpx.get(f"{url}/api/actors?token=s3cret-token-0123456").status_code == 401
        assert (
            httpx.get(f"{url}/api/actors", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        assert (
            httpx.get(
                f"{url}/api/actors", headers={"Authorization": "Bearer s3cret-token-0123456"}
            ).status_code
            == 200
        )
        with httpx.Client(base_url=url) as browser:
            assert browser.post("/api/session", json={"token": "nope"}).status_code == 401
            signed_in = browser.post("/api/session", json={"token": "s3cret-token-0123456"})
            assert signed_in.status_code == 204
            cookie = signed_in.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            assert "s3cret-token-0123456" not in signed_in.headers["set-cookie"]
            assert browser.get("/api/actors").status_code == 200
            browser.delete("/api/session")
            browser.cookies.clear()
            assert browser.get("/api/actors").status_code == 401


def test_openapi_documents_the_routes(api):
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/api/actors",
        "/api/actors/{actor_id}/jobs",
        "/api/jobs/{job_id}/events",
        "/api/jobs/{job_id}/cancel",
        "/api/prompts",
        "/healthz",
        "/metrics",
    ):
        assert path in paths, path


def test_budget_is_refused_before_anything_runs(api, standin):
    create_actor(api)
    response = api.post("/api/actors/0500/jobs", json={"prompt_ids": THREE, "max_cost": 0.05})
    assert response.status_code == 422 and "over the ceiling" in response.json()["detail"]
    assert standin.create_attempts == 0
    assert api.get("/api/jobs").json() == []


def test_upload_size_limit(tmp_path, standin, local_store):
    settings = settings_for(tmp_path, standin, max_image_bytes=50_000)
    with serve_in_thread(settings, store=local_store) as url:
        big = b"\xff\xd8" + b"0" * 200_000
        response = httpx.post(
            f"{url}/api/actors",
            data={"actor_id": "0900", "actor_name": "0900_x"},
            files={"base_image": ("big.jpg", big, "image/jpeg")},
        )
        assert response.status_code == 413
        assert list(local_store.list("")) == []


def test_cors_is_off_by_default_and_configurable(tmp_path, standin, local_store):
    preflight = {"Origin": "https://studio.example", "Access-Control-Request-Method": "POST"}
    with serve_in_thread(settings_for(tmp_path, standin), store=local_store) as url:
        response = httpx.options(f"{url}/api/actors", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    allowed = settings_for(tmp_path, standin, cors_origins=["https://studio.example"])
    with serve_in_thread(allowed, store=local_store) as url:
        response = httpx.options(f"{url}/api/actors", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://studio.example"


def test_late_client_resumes_after_last_event_id(api, standin):
    create_actor(api)
    job = api.post("/api/actors/0500/jobs", json={"prompt_ids": THREE[:2]}).json()
    wait_finished(api, job["id"])
    with api.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        assert [n for n, _ in read_sse(stream)] == ["progress", "job_finished"]
    # a finished job's progress event says so
    with api.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        first = next(read_sse(stream))
    assert json.loads(first[1])["state"] == "succeeded"


#: as bytes: b"\xb2" arrives as "²" (headers are latin-1), a digit to str.isdigit but not to int
MALFORMED_EVENT_IDS = [b"\xb2", b"9" * 5000, b"abc", b"-1", b"1.5", b"0x10", b""]


def test_malformed_last_event_id_streams_from_the_start(api, standin):
    """A Last-Event-ID that is no plain number is ignored: the stream starts from the first
    event (job_started, recorded before this client came), never a broken response (#11.11)."""
    create_actor(api)
    standin.faults = Faults(latency=0.5)
    job = api.post("/api/actors/0500/jobs", json={"prompt_ids": THREE[:2]}).json()
    time.sleep(0.3)  # job_started is recorded before any client connects
    for header in MALFORMED_EVENT_IDS[:4]:
        with api.stream(
            "GET", f"/api/jobs/{job['id']}/events", headers={"Last-Event-ID": header}
        ) as stream:
            assert stream.status_code == 200
            events = read_sse(stream)
            assert next(events)[0] == "progress"
            assert next(events)[0] == "job_started", header
    wait_finished(api, job["id"])
    for header in MALFORMED_EVENT_IDS:
        with api.stream(
            "GET", f"/api/jobs/{job['id']}/events", headers={"Last-Event-ID": header}
        ) as stream:
            assert stream.status_code == 200
            assert [n for n, _ in read_sse(stream)] == ["progress", "job_finished"], header


def test_generate_all_is_deduplicated_even_behind_other_jobs(api, standin):
    create_actor(api)
    standin.faults = Faults(latency=0.6)
    everything = api.post("/api/actors/0500/jobs", json={}).json()
    custom = api.post("/api/actors/0500/jobs", json={"prompts": ["The {subject} waves."]})
    assert custom.status_code == 201
    again = api.post("/api/actors/0500/jobs", json={})
    assert again.status_code == 200 and again.json()["id"] == everything["id"]
    for job_id in (everything["id"], custom.json()["id"]):
        api.post(f"/api/jobs/{job_id}/cancel")


def test_chunked_body_over_the_limit_is_413(api):
    def chunks():
        for _ in range(40):
            yield b" " * 65536

    response = api.post(
        "/api/actors/0500/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["title"] == "Payload too large"


def test_cors_preflight_works_with_a_token(tmp_path, standin, local_store):
    settings = settings_for(
        tmp_path, standin, api_token="tok-123-abcdefghijk", cors_origins=["https://studio.example"]
    )
    origin = {"Origin": "https://studio.example"}
    with serve_in_thread(settings, store=local_store) as url:
        preflight = httpx.options(
            f"{url}/api/actors",
            headers={
                **origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        listed = httpx.get(
            f"{url}/api/actors", headers={**origin, "Authorization": "Bearer tok-123-abcdefghijk"}
        )
        assert listed.status_code == 200
        assert "X-Total-Count" in listed.headers["access-control-expose-headers"]
        refused = httpx.get(f"{url}/api/actors", headers=origin)
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "https://studio.example"


def test_error_types_are_slugs(api):
    assert api.get("/api/jobs/nope").json()["type"] == "about:blank#not-found"
    assert api.get("/api/jobs", params={"page": 0}).json()["type"] == "about:blank#invalid-input"
    assert api.get("/api/jobs", params={"page": 10**20}).status_code == 422


def test_progress_tells_items_waiting_for_a_slot_from_running_ones(tmp_path, standin, s3_store):
    """One request slot: an item counts as running once its prediction started, which the
    next one can only do after the first prediction ended; until then it waits (#12.14)."""
    settings = settings_for(tmp_path, standin, max_concurrent_requests=1)
    standin.faults = Faults(latency=0.6)
    with (
        serve_in_thread(settings, store=s3_store) as url,
        httpx.Client(base_url=url, timeout=30) as api,
    ):
        create_actor(api)
        job = api.post("/api/actors/0500/jobs", json={"prompt_ids": THREE}).json()
        events = []
        with api.stream(
            "GET", f"/api/jobs/{job['id']}/events", headers={"Last-Event-ID": "0"}
        ) as stream:
            for name, data in read_sse(stream):
                events.append((name, json.loads(data), time.monotonic()))
    progress = [(data, at) for name, data, at in events if name == "progress" and "total" in data]
    for counts, _ in progress:
        assert counts["running"] + counts["waiting"] + counts["done"] == counts["total"]
    # a progress after each start, each prediction started and each finish
    assert len(progress) >= 1 + 3 * 3, [n for n, _, _ in events]
    # while the first prediction runs (0.6 s), the next item cannot start one: it waits
    first = next(at for name, _, at in events if name == "item_started")
    early = [counts for counts, at in progress if first <= at < first + 0.4]
    assert early and all(c["running"] <= 1 for c in early), early
    assert any(c["waiting"] >= 2 for c in early), early
    assert max(counts["running"] for counts, _ in progress) <= 2  # one predicting, one storing
    assert progress[-1][0]["running"] == progress[-1][0]["waiting"] == 0
