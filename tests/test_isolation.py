"""Actors are isolated (#11.8): names are unique per store, and what one actor's destructive
operations touch is chosen by its own manifest and the objects' actor-id metadata, never by
a name prefix. Real stores (a directory and moto S3), real HTTP, the real CLI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from actor_maker import actors
from actor_maker.cli import main
from actor_maker.config import Settings
from actor_maker.errors import NameTakenError
from actor_maker.images import inspect_image
from actor_maker.layout import actor_ids, manifest_key, store_base_image, training_key
from actor_maker.manifest import new_manifest, serialize_manifest
from actor_maker.pipeline import Actor, Pipeline
from actor_maker.providers.preview import PreviewProvider
from actor_maker.reconcile import reconcile
from actor_maker.slots import ProcessSlots
from actor_maker.trash import TRASH_PREFIX

from .apiserver import serve_in_thread
from .helpers import sample_image, store_training_image

LIMITS: dict[str, Any] = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}
#: ``0012_a`` and ``0012_ab`` share a prefix; ``0014`` reuses ``0012_a`` (legacy data written
#: before names were unique).
A, AB, REUSED = ("0012", "0012_a"), ("0013", "0012_ab"), ("0014", "0012_a")
#: An object under ``0012_a/`` that no manifest names and whose metadata names nobody.
STRAY = training_key("0012_a", 90, "jpg")


def image(seed: int) -> bytes:
    return sample_image((64, 64), seed=seed)


def _images(store, actor_id: str, name: str, first: int) -> None:
    for index in range(first, first + 3):
        store_training_image(
            store,
            actor_id,
            name,
            index,
            image(index),
            metadata={"actor-id": actor_id, "prompt-id": f"p{index}", "job-id": "j"},
            prompt_id=f"p{index}",
        )


def seed(store) -> None:
    for (actor_id, name), first in ((A, 0), (AB, 0)):
        actors.create_actor(
            store, actor_id=actor_id, actor_name=name, base_image=image(first + 50), **LIMITS
        )
        _images(store, actor_id, name, first)
    # The reused name, as the old system could leave it: its own base image and images under
    # the same training prefix, told apart by the actor id in their metadata.
    actor_id, name = REUSED
    data = image(77)
    legacy = new_manifest(actor_id=actor_id, actor_name=name, actor_type="person", actor_sex=None)
    legacy.base_images.append(
        store_base_image(store, actor_id, name, data, inspect_image(data, **LIMITS))
    )
    store.put_if_absent(manifest_key(actor_id), serialize_manifest(legacy))
    _images(store, actor_id, name, 10)
    # An orphan of actor 0012 itself (ours by metadata, not adoptable), and a stray.
    store.put_if_absent(training_key("0012_a", 5, "jpg"), image(5), metadata={"actor-id": "0012"})
    store.put_if_absent(STRAY, image(90))


def objects(store) -> dict[str, bytes]:
    return {
        o.key: store.get(o.key).data
        for o in store.list("system_actors/")
        if not o.key.startswith(TRASH_PREFIX)
    }


def owned_by(store, actor_id: str) -> set[str]:
    """Keys whose metadata names ``actor_id``, plus its manifest."""
    return {
        o.key
        for o in store.list("system_actors/")
        if (store.head(o.key).metadata.get("actor-id") == actor_id)
        and not o.key.startswith(TRASH_PREFIX)
    } | {manifest_key(actor_id)}


OPERATIONS = {
    "delete-actor": lambda s, i: actors.delete_actor(s, i, confirm=i, via="cli"),
    "delete-all": lambda s, i: actors.delete_all_images(s, i, via="cli"),
    "reconcile-delete-orphans": lambda s, i: reconcile(
        s, i, fix=True, delete_orphans=True, min_age=0
    ),
}


@pytest.mark.parametrize("victim", [A[0], REUSED[0]])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_destructive_operation_leaves_every_other_actor_byte_identical(store, operation, victim):
    seed(store)
    before = objects(store)
    others = set(before) - owned_by(store, victim)
    OPERATIONS[operation](store, victim)
    after = objects(store)
    assert {k: after.get(k) for k in others} == {k: before[k] for k in others}
    assert after[STRAY] == image(90)  # under the shared prefix, named by nobody: never moved


def test_deleting_an_actor_takes_its_own_objects_and_nothing_else(store):
    seed(store)
    mine = owned_by(store, A[0])
    actors.delete_actor(store, A[0], confirm=A[0], via="cli")
    left = set(objects(store))
    assert not (mine & left)
    assert {training_key("0012_a", i, "jpg") for i in (10, 11, 12)} <= left


def test_a_second_actor_with_a_taken_name_is_refused_everywhere(store, tmp_path):
    seed(store)
    before = objects(store)
    with pytest.raises(NameTakenError, match="taken by actor 0013"):
        actors.create_actor(store, actor_id="0020", actor_name=AB[1], base_image=image(1), **LIMITS)
    pipeline = Pipeline(
        settings=Settings(_env_file=None),
        store=store,
        provider=PreviewProvider(),
        slots=ProcessSlots(1),
    )
    with pytest.raises(NameTakenError):  # the implicit create of a first job
        pipeline._ensure_actor(
            Actor("0020", AB[1]), image(1), inspect_image(image(1), **LIMITS), None
        )
    assert objects(store) == before


def test_api_answers_409_for_a_taken_name(local_store, tmp_path):
    seed(local_store)
    before = objects(local_store)
    settings = Settings(_env_file=None, provider="preview", state_dir=tmp_path / "state")
    with (
        serve_in_thread(settings, store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        files = {"base_image": ("base.jpg", image(1), "image/jpeg")}
        created = client.post(
            "/api/actors", data={"actor_id": "0020", "actor_name": AB[1]}, files=files
        )
        assert created.status_code == 409, created.text
        assert created.headers["content-type"].startswith("application/problem+json")
        assert "taken by actor 0013" in created.json()["detail"]
        job = client.post(
            "/api/actors/0021/jobs",
            json={
                "actor_name": A[1],
                "kind": "all",
                "base_image_url": "https://example.com/never-fetched.jpg",
            },
        )
        assert job.status_code == 409, job.text
        assert client.get("/api/jobs").json() == []
    assert objects(local_store) == before


def test_cli_exits_2_for_a_taken_name(local_store, clean_env, tmp_path, capsys):
    clean_env.setenv("ACTOR_MAKER_STORE", str(tmp_path / "store"))
    clean_env.setenv("ACTOR_MAKER_STATE_DIR", str(tmp_path / "state"))
    seed(local_store)
    before = objects(local_store)
    base = tmp_path / "base.jpg"
    base.write_bytes(image(3))
    with pytest.raises(SystemExit) as info:
        main(
            [
                "generate-all",
                "0020",
                AB[1],
                str(base),
                "--only",
                "photo-rain-platform",
                "--provider",
                "preview",
            ]
        )
    out, err = capsys.readouterr()
    assert info.value.code == 2, out + err
    assert "taken by actor 0013" in err and "Traceback" not in err
    assert objects(local_store) == before


def test_concurrent_creates_of_one_name_leave_one_actor(store):
    """Twelve creates of one name at the same instant (twelve ids): the name's create-only
    marker lets exactly one through, on the local store and on S3."""
    from concurrent.futures import ThreadPoolExecutor

    def create(i: int) -> str:
        try:
            actors.create_actor(
                store,
                actor_id=f"07{i:02d}",
                actor_name="0700_shared_name",
                base_image=image(i),
                max_bytes=10**7,
                max_pixels=10**8,
            )
        except NameTakenError:
            return "taken"
        return "created"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(create, range(12)))
    assert outcomes.count("created") == 1, outcomes
    assert len([i for i in actor_ids(store) if i.startswith("07")]) == 1


def test_a_deleted_actors_name_is_free_again(local_store):
    actors.create_actor(
        local_store,
        actor_id="0710",
        actor_name="0710_x",
        base_image=image(1),
        max_bytes=10**7,
        max_pixels=10**8,
    )
    actors.delete_actor(local_store, "0710", confirm="0710", via="cli")
    actors.create_actor(
        local_store,
        actor_id="0711",
        actor_name="0710_x",
        base_image=image(2),
        max_bytes=10**7,
        max_pixels=10**8,
    )
    with pytest.raises(NameTakenError):
        actors.create_actor(
            local_store,
            actor_id="0712",
            actor_name="0710_x",
            base_image=image(3),
            max_bytes=10**7,
            max_pixels=10**8,
        )
