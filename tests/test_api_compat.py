"""The old frontend's routes through real HTTP, with exactly the bodies and headers it sends.

uvicorn on loopback, the Replicate stand-in, and each store (moto S3, a local directory).
Requests are what the old frontend's ``fetch`` calls look like: relative ``/api/...`` URLs,
JSON bodies, no ``Authorization`` header, and actor ids sometimes sent as numbers.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import httpx
import pytest

from actor_maker import actors
from actor_maker.manifest import require_manifest, update_manifest
from actor_maker.pipeline import Actor, JobPlan
from actor_maker.prompts import load_library
from actor_maker.results import all_json
from actor_maker.testing.replicate_server import Faults, ReplicateStandIn

from .apiserver import serve_in_thread, standin_settings
from .helpers import found, sample_image

TOKEN = "r8_compat_secret"
ID = "0012"
NAME = "0012_european_30_male"
#: The library prompts a "generate all" still has to make; the others are in the manifest.
LEFT = ["photo-rain-platform", "bw-charcoal-portrait", "color-oil-portrait"]
FLAGGED = "Charcoal sketch"  # in bw-charcoal-portrait's text only
PROBLEM_KEYS = {"type", "title", "status", "detail"}


@pytest.fixture(scope="module")
def _standin():
    with ReplicateStandIn(token=TOKEN, image_size=(256, 256)) as server:
        yield server


@pytest.fixture
def standin(_standin):
    _standin.faults = Faults()
    _standin.reset_counters()
    return _standin


@pytest.fixture(params=["s3", "local"])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def client(tmp_path, standin, store):
    with serve(tmp_path, standin, store, TOKEN) as http:
        yield http


@contextmanager
def serve(tmp_path, standin, store, token):
    settings = standin_settings(tmp_path, standin, token, api_token=None)
    actors.create_actor(
        store,
        actor_id=ID,
        actor_name=NAME,
        actor_type="person",
        actor_sex="male",
        base_image=sample_image(),
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )
    with (
        serve_in_thread(settings, store=store) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        yield http


def base_url(client) -> str | None:
    """What the old frontend sends as base_image_url: what it read (null for a local store)."""
    return client.get(f"/api/actors/{ID}/training-data").json()["base_image_url"]


def single(client, prompt, **extra):
    body = {
        "actor_name": NAME,
        "base_image_url": base_url(client),
        "prompt": prompt,
        "actor_type": "person",
        "actor_sex": "male",
        "aspect_ratio": "1:1",
        "actor_id": 12,  # the old frontend sometimes adds it, as a number
        **extra,
    }
    return client.post(f"/api/actors/{ID}/training-data/generate-single", json=body)


def images(client) -> list[dict]:
    return client.get(f"/api/actors/{ID}/training-data").json()["training_images"]


def wait_finished(client, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def mark_done_except(store, left):
    """Entries (no objects) for every library prompt but ``left``: "generate all" skips them."""

    def change(manifest):
        for n, template in enumerate(load_library()):
            if template.id not in left:
                manifest.add_entry(
                    {"filename": f"{NAME}_{100 + n}.jpg", "prompt_id": template.id, "prompt": "x"}
                )
        return True

    update_manifest(store, ID, change)


def assert_old_failure(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS and body["status"] == status
    assert body["success"] is False and body["error"]
    return body


# --- generate-all-prompts ---------------------------------------------------------------


def test_generate_all_prompts_waits_and_answers_the_cli_shape(client, store, standin):
    mark_done_except(store, LEFT)
    standin.faults = Faults(flag_prompts_containing=FLAGGED)
    body = {"actor_name": NAME, "base_image_url": base_url(client), "actor_type": "person"}
    response = client.post(f"/api/actors/{ID}/training-data/generate-all-prompts", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    empty = JobPlan(Actor(ID, NAME), (), "m", 0.0, "1:1")
    assert result.keys() == all_json(empty.to_job(provider="replicate")).keys()
    assert (result["total"], result["successful"], result["failed"]) == (3, 2, 1)
    assert result["success"] is True and result["actor_id"] == ID
    assert len(result["skipped"]) == len(load_library()) - 3
    failed = [r for r in result["results"] if "error" in r]
    assert [r["prompt_id"] for r in failed] == ["bw-charcoal-portrait"]
    assert "E005" in failed[0]["error"]
    assert result["estimated_cost"] == pytest.approx(0.12) and result["cost"] > 0
    stored = {r["filename"] for r in result["results"] if "filename" in r}
    assert stored <= {i["filename"] for i in images(client)}


def test_generate_all_prompts_respond_async_and_asking_twice(client, store, standin):
    mark_done_except(store, LEFT[:1])
    standin.faults = Faults(latency=0.5)
    url = f"/api/actors/{ID}/training-data/generate-all-prompts"
    body = {"actor_name": NAME, "base_image_url": base_url(client)}
    response = client.post(url, json=body, headers={"Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["actor_id"] == ID and job["kind"] == "all" and job["total"] == 1
    again = client.post(url, json=body)  # while it runs: answered by the same job, waited for
    assert again.status_code == 200 and again.json()["job_id"] == job["id"]
    assert again.json()["successful"] == 1 and standin.creates == 1
    assert wait_finished(client, job["id"])["state"] == "succeeded"
    assert [i["prompt_id"] for i in images(client)][-1] == LEFT[0]


def test_generate_all_prompts_job_that_could_not_run_keeps_its_error_type(
    tmp_path, standin, s3_store
):
    """The status comes from the error that stopped the job (a refused token is
    configuration: 500 ConfigError), not a blanket 502."""
    with serve(tmp_path, standin, s3_store, "r8_refused_token") as client:
        mark_done_except(s3_store, LEFT[:1])
        response = client.post(
            f"/api/actors/{ID}/training-data/generate-all-prompts",
            json={"actor_name": NAME, "base_image_url": base_url(client)},
        )
        body = assert_old_failure(response, 500)
        job = client.get(f"/api/jobs/{body['job_id']}").json()
    assert body["error_type"] == "ConfigError" and job["error_type"] == "ConfigError"
    assert job["state"] == "failed" and "token" in body["error"].lower()


def test_generate_all_prompts_refusals_carry_success_false(client):
    response = client.post(
        f"/api/actors/{ID}/training-data/generate-all-prompts",
        json={"actor_name": "someone_else", "base_image_url": None},
    )
    assert "someone_else" in assert_old_failure(response, 422)["error"]


# --- generate-single ----------------------------------------------------------------------


def test_generate_single_success(client, store):
    response = single(client, "The {subject} studies a paper map at a bus stop")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and "error" not in body
    assert body["prompt"].startswith("The man studies")
    entry = require_manifest(store, ID).find(body["filename"])
    assert entry is not None and body["index"] == 0 and entry["prompt"] == body["prompt"]
    assert body["s3_url"] == entry.get("s3_url")  # None for a local store
    assert store.head(body["key"]) is not None


def test_generate_single_failures_are_not_200(client, store, standin):
    standin.faults = Faults(flag_prompts_containing="forbidden")
    body = assert_old_failure(single(client, "The {subject} does something forbidden"), 502)
    assert "E005" in body["error"] and body["job_id"]
    body = assert_old_failure(single(client, "The {subject} waits", aspect_ratio="7:3"), 422)
    assert "aspect ratio" in body["error"]
    assert require_manifest(store, ID).training_data == []
    response = single(client, "x" * 3000)  # over the schema's limit: the common 422 shape
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "prompt"


# --- recreate ------------------------------------------------------------------------------


def test_recreate_keeps_the_position_and_trashes_the_old_object(client, store):
    made = [single(client, f"The {{subject}} scene number {n}").json() for n in range(3)]
    old = made[1]
    body = {"actor_name": NAME, "filename": old["filename"], "base_image_url": base_url(client)}
    response = client.post(f"/api/actors/{ID}/training-data/recreate", json=body)
    assert response.status_code == 200, response.text
    new = response.json()
    assert new["success"] is True and new["replaced"] == old["filename"]
    assert new["filename"] not in {m["filename"] for m in made}
    assert new["prompt"] == old["prompt"] and new["index"] == 3
    listed = images(client)
    assert [i["filename"] for i in listed] == [
        made[0]["filename"],
        new["filename"],
        made[2]["filename"],
    ]
    assert store.head(old["key"]) is None and store.head(new["key"]) is not None
    trash = client.get("/api/trash", params={"actor_id": ID}).json()
    replaced = [t for t in trash if t["reason"] == "replaced"]
    assert [t["trash_id"] for t in replaced] == [new["trash_id"]]
    assert replaced[0]["entries"][0]["filename"] == old["filename"]
    assert require_manifest(store, ID).data["statistics"]["training_images_count"] == 3


def test_recreate_keeps_a_library_prompt_id_and_takes_a_new_prompt(client, store):
    job = client.post(
        "/api/training-data/generate",
        json={"images": [{"prompt_id": "photo-rain-platform"}], "styleId": ID},
    ).json()
    first = wait_finished(client, job["id"])["items"][0]
    url = f"/api/actors/{ID}/training-data/recreate"
    again = client.post(url, json={"actor_name": NAME, "filename": first["filename"]}).json()
    assert again["prompt_id"] == "photo-rain-platform"
    other = client.post(
        url,
        json={"actor_name": NAME, "filename": again["filename"], "prompt": "The {subject} naps"},
    ).json()
    assert other["prompt"] == "The man naps" and other["prompt_id"].startswith("custom-")
    assert [i["filename"] for i in images(client)] == [other["filename"]]


def test_recreate_without_a_prompt_to_use_is_422(client, store):
    update_manifest(store, ID, lambda m: m.add_entry({"filename": f"{NAME}_40.jpg"}))
    body = {"actor_name": NAME, "filename": f"{NAME}_40.jpg", "base_image_url": None}
    response = client.post(f"/api/actors/{ID}/training-data/recreate", json=body)
    assert "prompt" in assert_old_failure(response, 422)["error"]
    body["filename"] = f"{NAME}_41.jpg"
    response = client.post(f"/api/actors/{ID}/training-data/recreate", json=body)
    assert_old_failure(response, 404)


# --- delete, listing, flags ----------------------------------------------------------------


def test_delete_and_delete_all_update_statistics(client, store):
    made = [single(client, f"The {{subject}} pose {n}").json() for n in range(3)]
    gone = made[0]
    body = {"actor_name": NAME, "filename": gone["filename"], "s3_url": gone["s3_url"]}
    response = client.post(f"/api/actors/{ID}/training-data/delete", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == [gone["filename"]] and response.json()["success"]
    assert store.head(gone["key"]) is None
    assert require_manifest(store, ID).data["statistics"]["training_images_count"] == 2
    response = client.post(f"/api/actors/{ID}/training-data/delete-all", json={"actor_name": NAME})
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 2  # a count: the old frontend prints "Deleted 2 ..."
    assert sorted(response.json()["filenames"]) == sorted(m["filename"] for m in made[1:])
    manifest = require_manifest(store, ID)
    assert (
        manifest.training_data == [] and manifest.data["statistics"]["training_images_count"] == 0
    )
    trash = {t["trash_id"] for t in client.get("/api/trash").json()}
    assert response.json()["trash_id"] in trash


def test_training_data_listing(client, store):
    made = single(client, "The {subject} looks up").json()
    listing = client.get(f"/api/actors/{ID}/training-data").json()
    assert listing["actor_id"] == ID and listing["actor_name"] == NAME
    assert listing["has_base_image"] is True and listing["total_count"] == 1
    assert listing["manifest_updated"] and listing["base_image"]
    image = listing["training_images"][0]
    assert {
        "index",
        "filename",
        "s3_url",
        "status",
        "size_mb",
        "modified_date",
        "good",
        "prompt",
    } <= image.keys()
    assert image["filename"] == made["filename"] and image["good"] is False
    assert image["status"] == "synced" and image["prompt"] == made["prompt"]
    assert client.get(image["thumbnail"]).status_code in (200, 307)  # S3: a presigned URL
    if made["s3_url"] is None:  # a local store: the API serves the file itself
        assert client.get(image["url"]).content == store.get(made["key"]).data
        assert client.get(listing["base_image"]).status_code == 200
    else:
        assert image["url"].startswith("http")


def test_toggles(client, store):
    made = single(client, "The {subject} smiles").json()
    url = f"/api/actors/{ID}/training-data/{made['filename']}/toggle-good"
    assert client.post(url).json() == {"good": True}
    assert client.post(url).json() == {"good": False}
    assert client.post(f"/api/actors/{ID}/toggle-good").json() == {"good": True}
    assert require_manifest(store, ID).data["good"] is True
    url = "/api/training/training-data/toggle-good"
    assert client.post(url, json={"actorId": "0012"}).json() == {"good": True}
    assert client.post(url, json={"actorId": 12}).json() == {"good": False}  # a number: "0012"
    assert client.post(url, json={"actorId": 12.0}).json() == {"good": True}
    assert require_manifest(store, ID).data["training_data_good"] is True
    assert client.post(url, json={"actorId": 13}).status_code == 404
    assert client.post(url, json={"actorId": True}).status_code == 422
    assert client.post(f"/api/actors/{ID}/training-data/{NAME}_9.jpg/toggle-good").status_code == (
        404
    )


# --- prompts -----------------------------------------------------------------------------


def test_training_prompts_use_old_categories_and_the_subject(client):
    body = client.get(f"/api/actors/{ID}/training-prompts").json()
    assert body["descriptor"] == "man"
    assert {p["category"] for p in body["prompts"]} == {
        "photorealistic",
        "bw_stylized",
        "color_stylized",
    }
    assert len(body["prompts"]) == len(load_library())
    first = body["prompts"][0]
    assert first["id"] == "photo-rain-platform" and first["label"] == "Rain Platform"
    assert all("{subject}" not in p["prompt"] for p in body["prompts"])
    assert " man " in first["prompt"]


def test_prompt_usage_and_training_data_prompts(client):
    for _ in range(2):
        single(client, "The {subject} reads", aspect_ratio="3:4")
    single(client, "The {subject} writes")
    usage = client.get(f"/api/actors/{ID}/prompt-usage").json()
    assert usage == {"prompt_usage": {"The man reads": 2, "The man writes": 1}}
    prompts = client.get(f"/api/actors/{ID}/training-data/prompts").json()["prompts"]
    assert [(p["prompt"], p["aspect_ratio"]) for p in prompts] == [
        ("The man reads", "3:4"),
        ("The man reads", "3:4"),
        ("The man writes", "1:1"),
    ]
    assert all(p["filename"].startswith(NAME) for p in prompts)


# --- /api/training-data/generate ---------------------------------------------------------


def test_training_data_generate_library_prompts_make_a_subset_job(client, store):
    texts = {
        p["id"]: p["prompt"]
        for p in client.get(f"/api/actors/{ID}/training-prompts").json()["prompts"]
    }
    body = {
        "images": [
            {"prompt_id": "photo-rain-platform", "aspect_ratio": "3:4"},
            {"prompt": texts["color-oil-portrait"]},  # the text the old frontend showed
        ],
        "workflow": "lora-training",
        "settings": {"aspect_ratio": "3:4", "seed": 7, "steps": 30},
        "styleId": 12,
    }
    response = client.post("/api/training-data/generate", json=body)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["actor_id"] == ID and job["kind"] == "subset" and job["seed"] == 7
    assert [i["prompt_id"] for i in job["items"]] == ["photo-rain-platform", "color-oil-portrait"]
    assert job["context"]["workflow"] == "lora-training"
    assert job["context"]["settings"]["steps"] == 30
    assert wait_finished(client, job["id"])["state"] == "succeeded"
    entries = require_manifest(store, ID).training_data
    assert {e["aspect_ratio"] for e in entries} == {"3:4"}
    assert {e["generation"]["seed"] for e in entries} == {7}


def test_training_data_generate_free_prompts_and_refusals(client):
    body = {
        "images": [{"prompt": "The {subject} juggles"}, {"prompt_id": "photo-rain-platform"}],
        "styleId": "0012",
    }
    job = client.post("/api/training-data/generate", json=body).json()
    assert job["kind"] == "custom" and job["total"] == 2
    assert job["items"][0]["prompt"] == "The man juggles"
    wait_finished(client, job["id"])
    bad = [
        {"images": [{"prompt_id": "no-such-prompt"}], "styleId": ID},
        {
            "images": [
                {"prompt": "a", "aspect_ratio": "1:1"},
                {"prompt": "b", "aspect_ratio": "3:4"},
            ],
            "styleId": ID,
        },
        {"images": [{}], "styleId": ID},
        {"images": [], "styleId": ID},
    ]
    for payload in bad:
        assert client.post("/api/training-data/generate", json=payload).status_code == 422
    assert (
        client.post(
            "/api/training-data/generate", json={"images": [{"prompt": "a"}], "styleId": 99}
        ).status_code
        == 404
    )


def test_path_actor_ids_follow_the_cli_rules(client):
    assert client.get("/api/actors/bad%20id/training-data").status_code == 422
    assert client.get("/api/actors/0099/training-data").status_code == 404
    assert client.get("/api/actors/-x/prompt-usage").status_code == 422


# --- what the old frontend reads (#12.1-#12.6) ---------------------------------------------


def test_training_data_urls_load_and_go_back_as_the_base_image(client, store):
    """The old frontend shows `s3_url`/`base_image_url` and sends `base_image_url` back."""
    made = single(client, "The {subject} waves").json()  # sends base_url(client) back
    assert made["success"] is True
    listing = client.get(f"/api/actors/{ID}/training-data").json()
    manifest = require_manifest(store, ID)
    image, base = listing["training_images"][0], listing["base_image_url"]
    if manifest.training_data[0].get("s3_url") is None:  # a local store: our own URL
        root = str(client.base_url).rstrip("/")
        assert image["s3_url"] == f"{root}/api/files/{made['key']}"
        assert base == f"{root}/api/files/{manifest.base_images[0]['key']}"
        assert httpx.get(image["s3_url"]).content == store.get(made["key"]).data
        assert httpx.get(base).content == store.get(manifest.base_images[0]["key"]).data
    else:  # S3: the plain S3 URL, as stored
        assert image["s3_url"] == manifest.training_data[0]["s3_url"]
        assert base == manifest.base_images[0]["s3_url"]
        assert "?" not in image["s3_url"] and "?" not in base
    body = {"actor_name": NAME, "filename": made["filename"], "base_image_url": base}
    again = client.post(f"/api/actors/{ID}/training-data/recreate", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["s3_url"] == images(client)[0]["s3_url"]
    outside = single(client, "The {subject} waves", base_image_url="/api/files/../x.jpg")
    assert_old_failure(outside, 422)
    foreign = "https://storyboard-user-files.s3.amazonaws.com/old/x.jpg"

    def old_entries(manifest):
        manifest.add_entry({"filename": f"{NAME}_40.jpg", "status": "local_only", "s3_url": None})
        manifest.add_entry({"filename": f"{NAME}_41.jpg", "status": "synced", "s3_url": foreign})
        return True

    update_manifest(store, ID, old_entries)
    by_name = {i["filename"]: i["s3_url"] for i in images(client)}
    assert by_name[f"{NAME}_40.jpg"] is None  # no object anywhere: nothing to load
    assert by_name[f"{NAME}_41.jpg"] == foreign  # another bucket: kept as it is


def test_training_data_reports_training_data_good(client):
    listing = client.get(f"/api/actors/{ID}/training-data").json()
    assert listing["training_data_good"] is False
    client.post("/api/training/training-data/toggle-good", json={"actorId": ID})
    assert client.get(f"/api/actors/{ID}/training-data").json()["training_data_good"] is True


def test_actor_listing_has_poster_frames_and_no_empty_members(client):
    (actor,) = client.get("/api/actors").json()
    assert actor["id"] == ID and actor["sex"] == "male"
    assert all(value is not None and value != "" for value in actor.values()), actor
    assert not {"age", "ethnicity", "description", "outfit"} & actor.keys()
    frames = actor["poster_frames"]
    for size in ("webp_sm", "webp_md", "webp_lg", "png"):
        for variant in ("standard", "accelerated"):
            url = frames[variant][size]
            assert url.startswith("http"), url  # absolute: the old frontend may run elsewhere
            loaded = httpx.get(url, follow_redirects=True)
            assert loaded.status_code == 200 and loaded.content[:2] in (b"RI", b"\xff\xd8")


def test_a_library_prompt_picked_as_text_keeps_its_library_id(client, store):
    texts = {
        p["id"]: p["prompt"]
        for p in client.get(f"/api/actors/{ID}/training-prompts").json()["prompts"]
    }
    response = single(client, texts["color-oil-portrait"])
    assert response.status_code == 200, response.text
    entry = found(require_manifest(store, ID).find(response.json()["filename"]))
    assert (
        entry["prompt_id"] == "color-oil-portrait"
        and entry["prompt"] == texts["color-oil-portrait"]
    )
    free = single(client, texts["color-oil-portrait"] + " At dusk.").json()
    assert found(require_manifest(store, ID).find(free["filename"]))["prompt_id"].startswith(
        "custom-"
    )


@pytest.mark.parametrize(
    "path", [f"/api/actors/{ID}/regenerate-poster-frame", "/api/generate-base-image"]
)
def test_old_features_not_here_answer_501(client, store, path):
    before = sorted(o.key for o in store.list(""))
    response = client.post(path, json={"description": "a 30 year old man", "actor_id": ID})
    body = assert_old_failure(response, 501)
    assert "not part of" in body["error"]
    assert sorted(o.key for o in store.list("")) == before
