"""An entry's key is followed only inside its actor's own prefixes, errors do not reveal the
local store's path, and a trash move never deletes what a concurrent manifest update lists
(#11.11). Real stores; the race is forced at the store's ``delete``."""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from actor_maker import actors
from actor_maker.config import Settings
from actor_maker.errors import InputError, NotFoundError
from actor_maker.export import export
from actor_maker.layout import training_key
from actor_maker.manifest import require_manifest, update_manifest
from actor_maker.store.local import LocalStore
from actor_maker.trash import TRASH_PREFIX

from .apiserver import serve_in_thread
from .helpers import sample_image, store_training_image

LIMITS: dict[str, Any] = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}
ME, OTHER = ("0400", "0400_me"), ("0401", "0401_other")


def image(seed: int) -> bytes:
    return sample_image((64, 64), seed=seed)


def add(store, actor, index: int) -> dict:
    return store_training_image(
        store,
        actor[0],
        actor[1],
        index,
        image(index + 10 * int(actor[0][-1])),
        metadata={"actor-id": actor[0]},
        prompt_id=f"p{index}",
        caption="a person",
        quality={"verdict": "ok", "reasons": []},
    )


def seed_pointing_outside(store) -> dict[str, bytes]:
    """ME's manifest has entries whose key (or URL) names OTHER's objects; returns OTHER's
    objects as stored."""
    for actor in (ME, OTHER):
        actors.create_actor(
            store, actor_id=actor[0], actor_name=actor[1], base_image=image(50), **LIMITS
        )
        add(store, actor, 0)
    add(store, OTHER, 1)
    theirs = training_key(OTHER[1], 1, "jpg")
    sneaky: list[dict[str, Any]] = [
        {"filename": "a_7.jpg", "key": theirs, "status": "synced"},
        {"filename": "b_8.jpg", "key": f"system_actors/training_data/{ME[1]}/../{OTHER[1]}/x.jpg"},
    ]
    if store.public_url(theirs):
        sneaky.append({"filename": "c_9.jpg", "s3_url": store.public_url(theirs)})
    for entry in sneaky:
        entry.update(caption="a person", quality={"verdict": "ok", "reasons": []})

    def change(manifest):
        manifest.training_data.extend(sneaky)
        return True

    update_manifest(store, ME[0], change)
    return {
        o.key: store.get(o.key).data
        for o in store.list("system_actors/")
        if OTHER[1] in o.key or OTHER[0] in o.key
    }


def assert_same(store, theirs: dict[str, bytes]) -> None:
    assert {k: store.get(k).data for k in theirs} == theirs


def test_export_reads_no_object_outside_the_actors_prefix(store, tmp_path):
    theirs = seed_pointing_outside(store)
    out = tmp_path / "ds.zip"
    report = export(store, [ME[0]], fmt="kohya", out=str(out), settings=Settings(_env_file=None))
    (actor,) = report.actors
    assert actor.images == 1
    reasons = {s.filename: s.reason for s in actor.skipped}
    assert reasons["a_7.jpg"] == "outside the actor's own prefix"
    assert "b_8.jpg" in reasons
    with zipfile.ZipFile(out) as archive:
        exported = {archive.read(n) for n in archive.namelist() if n.endswith(".jpg")}
    assert not exported & set(theirs.values())


@pytest.mark.parametrize("operation", ["delete-image", "delete-all", "delete-actor"])
def test_trash_moves_no_object_outside_the_actors_prefix(store, operation):
    theirs = seed_pointing_outside(store)
    if operation == "delete-image":
        actors.delete_image(store, ME[0], "a_7.jpg", via="cli")
    elif operation == "delete-all":
        actors.delete_all_images(store, ME[0], via="cli")
    else:
        actors.delete_actor(store, ME[0], confirm=ME[0], via="cli")
    assert_same(store, theirs)
    copied = [o.key for o in store.list(TRASH_PREFIX)]
    assert not any(OTHER[1] in k for k in copied)


def test_errors_do_not_reveal_the_local_stores_path(local_store, tmp_path):
    root = str(tmp_path / "store")
    with pytest.raises(NotFoundError) as missing:
        local_store.get("system_actors/nothing.jpg")
    assert root not in str(missing.value)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.jpg").write_bytes(image(1))
    (tmp_path / "store" / "system_actors").mkdir(parents=True)
    os.symlink(outside, tmp_path / "store" / "system_actors" / "link")
    with pytest.raises(InputError) as escaped:
        local_store.get("system_actors/link/x.jpg")
    assert root not in str(escaped.value) and str(outside) not in str(escaped.value)
    settings = Settings(_env_file=None, provider="preview", state_dir=tmp_path / "state")
    with (
        serve_in_thread(settings, store=local_store) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        for path in ("/api/files/system_actors/nothing.jpg", "/api/files/system_actors/link/x.jpg"):
            answer = client.get(path)
            assert answer.status_code in (404, 422), answer.text
            assert str(tmp_path) not in answer.text


class RacingStore(LocalStore):
    """A local store that runs ``hook`` around deleting one key: a manifest update by
    another writer landing exactly between the deleter's manifest change and its delete."""

    def __init__(self, root, key: str, *, after: bool) -> None:
        super().__init__(root)
        self.key, self.after = key, after
        self.hook: Callable[[], None] | None = None

    def delete(self, key: str) -> None:
        hook = self.hook if key == self.key else None
        if hook and not self.after:
            self.hook = None
            hook()
        super().delete(key)
        if hook and self.after:
            self.hook = None
            hook()


@pytest.mark.parametrize("after", [False, True], ids=["before-delete", "during-delete"])
def test_deleting_an_image_never_removes_what_a_concurrent_update_lists(tmp_path, after):
    key = training_key(ME[1], 0, "jpg")
    store = RacingStore(tmp_path / "store", key, after=after)
    actors.create_actor(store, actor_id=ME[0], actor_name=ME[1], base_image=image(50), **LIMITS)
    entry = add(store, ME, 0)

    def readd() -> None:  # e.g. a restore or an adopting reconcile, in another process
        update_manifest(store, ME[0], lambda m: m.add_entry(dict(entry)))

    store.hook = readd
    actors.delete_image(store, ME[0], entry["filename"], via="cli")
    assert require_manifest(store, ME[0]).find(entry["filename"]) is not None
    assert store.get(key).data == image(0)  # listed, so it is there


def test_concurrent_deletes_and_writers_leave_no_entry_without_its_object(local_store):
    store = local_store
    actors.create_actor(store, actor_id=ME[0], actor_name=ME[1], base_image=image(50), **LIMITS)
    doomed = [add(store, ME, i) for i in range(8)]
    errors: list[BaseException] = []

    def guard(fn):
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        return run

    def deleter(entry) -> None:
        actors.delete_image(store, ME[0], entry["filename"], via="cli")

    def writer() -> None:
        for i in range(20, 32):
            add(store, ME, i)

    threads = [threading.Thread(target=guard(lambda e=e: deleter(e))) for e in doomed]
    threads.append(threading.Thread(target=guard(writer)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    manifest = require_manifest(store, ME[0])
    assert sorted(e["filename"] for e in manifest.training_data) == [
        f"{ME[1]}_{i}.jpg" for i in range(20, 32)
    ]
    for entry in manifest.training_data:
        assert store.head(entry["key"]) is not None
    for entry in doomed:
        assert store.head(entry["key"]) is None
