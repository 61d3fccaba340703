"""Actor operations shared by the API and the CLI, against the local store and S3."""

import json
import threading
from typing import Any

import pytest

from actor_maker import actors
from actor_maker.errors import (
    InputError,
    InvalidImageError,
    NameTakenError,
    NotFoundError,
    UnknownActorTypeError,
)
from actor_maker.layout import base_image_key, manifest_key, training_key, training_prefix
from actor_maker.manifest import Manifest, read_manifest, require_manifest, update_manifest
from actor_maker.trash import TRASH_PREFIX, restore

from .helpers import fixture_manifest, found, sample_image, store_training_image

LIMITS: dict[str, Any] = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}
ID, NAME = "0500", "0500_test_actor"


def small_image(seed: int) -> bytes:
    return sample_image((64, 64), seed=seed)


def make_actor(store, images: int = 3):
    actors.create_actor(
        store,
        actor_id=ID,
        actor_name=NAME,
        actor_sex="female",
        description="short grey hair",
        base_image=small_image(99),
        **LIMITS,
    )
    return [add_image(store, i) for i in range(images)]


def add_image(store, index: int, *, seed: int | None = None, prompt_id: str | None = None):
    """Store an image create-only and add its entry, as the pipeline does."""
    return store_training_image(
        store,
        ID,
        NAME,
        index,
        small_image(index if seed is None else seed),
        metadata={"prompt-id": f"p{index}"},
        prompt=f"prompt number {index % 2}",
        prompt_id=prompt_id or f"p{index % 2}",
        good=False,
    )


def keys_in(store) -> dict[str, str]:
    return {info.key: info.version for info in store.list("system_actors/")}


def filenames(store, actor_id=ID) -> list[str]:
    return [e["filename"] for e in require_manifest(store, actor_id).training_data]


# --- create / update ----------------------------------------------------------------------


def test_create_actor_stores_base_image_and_manifest(store):
    manifest = actors.create_actor(
        store,
        actor_id=ID,
        actor_name=NAME,
        actor_type="Robot",
        actor_sex="Male",
        description="chrome plating",
        outfit="a red scarf",
        base_image=small_image(1),
        **LIMITS,
    )
    key = base_image_key(NAME, "jpg")
    assert store.get(key).data == small_image(1)
    stored = require_manifest(store, ID)
    assert stored.data == manifest.data
    assert stored.actor_type == "robot" and stored.actor_sex == "male"
    assert stored.description == "chrome plating" and stored.outfit == "a red scarf"
    assert stored.base_images == [
        {
            "filename": f"{NAME}_base.jpg",
            "s3_url": store.public_url(key),
            "status": "synced",
            "format": "jpeg",
            "key": key,
        }
    ]
    assert stored.data["statistics"]["training_images_count"] == 0


def test_create_actor_refuses_existing_actor_and_a_taken_name(store):
    make_actor(store, images=0)
    with pytest.raises(InputError, match="exists already"):
        actors.create_actor(
            store, actor_id=ID, actor_name=NAME, base_image=small_image(99), **LIMITS
        )
    before = keys_in(store)
    with pytest.raises(NameTakenError, match="is taken by actor 0500"):
        actors.create_actor(
            store, actor_id="0501", actor_name=NAME, base_image=small_image(5), **LIMITS
        )
    assert keys_in(store) == before


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"actor_id": "../0500"}, InputError),
        ({"actor_name": "a/b"}, InputError),
        ({"actor_type": "dragon"}, UnknownActorTypeError),
        ({"base_image": b"not an image"}, InvalidImageError),
    ],
)
def test_create_actor_refuses_bad_input_and_writes_nothing(local_store, kwargs, error):
    args = {"actor_id": ID, "actor_name": NAME, "base_image": small_image(1), **kwargs}
    with pytest.raises(error):
        actors.create_actor(local_store, **args, **LIMITS)
    assert keys_in(local_store) == {}


def test_update_actor_sets_fields_and_adds_a_new_base_image(store):
    make_actor(store, images=1)
    manifest = actors.update_actor(
        store,
        ID,
        actor_type="creature",
        actor_sex="",
        description="",
        outfit="a cape",
        base_image=small_image(7),
        **LIMITS,
    )
    assert manifest.actor_type == "creature" and manifest.actor_sex is None
    assert "description" not in manifest.metadata and manifest.outfit == "a cape"
    assert [b["filename"] for b in manifest.base_images] == [
        f"{NAME}_base_2.jpg",
        f"{NAME}_base.jpg",
    ]
    assert store.get(base_image_key(NAME, "jpg")).data == small_image(99)  # never overwritten
    assert store.get(manifest.base_images[0]["key"]).data == small_image(7)
    assert filenames(store) == [f"{NAME}_0.jpg"]  # entries untouched
    # The same image again is recognised, not stored a third time.
    again = actors.update_actor(store, ID, base_image=small_image(7), **LIMITS)
    assert [b["filename"] for b in again.base_images] == [f"{NAME}_base_2.jpg", f"{NAME}_base.jpg"]
    assert again.outfit == "a cape"


def test_update_unknown_actor_is_not_found(store):
    with pytest.raises(NotFoundError):
        actors.update_actor(store, "0999", outfit="x", **LIMITS)


# --- deleting -------------------------------------------------------------------------------


def test_delete_image_moves_object_and_entry_to_trash(store):
    entries = make_actor(store)
    record = actors.delete_image(store, ID, entries[1]["filename"], via="api")
    assert filenames(store) == [entries[0]["filename"], entries[2]["filename"]]
    assert store.head(entries[1]["key"]) is None
    assert record.entries == [entries[1]] and record.reason == "delete" and record.via == "api"
    assert [o["key"] for o in record.objects] == [entries[1]["key"]]
    trash_copy = f"{TRASH_PREFIX}{record.trash_id}/{entries[1]['key']}"
    assert store.get(trash_copy).data == small_image(1)
    assert store.head(trash_copy).metadata == {"prompt-id": "p1"}
    manifest = require_manifest(store, ID)
    assert manifest.data["statistics"]["training_images_count"] == 2
    assert manifest.highest_index() == 2  # the index stays used


def test_delete_image_unknown_or_tricky_filename_writes_nothing(store):
    make_actor(store, images=1)
    before = keys_in(store)
    with pytest.raises(NotFoundError):
        actors.delete_image(store, ID, f"{NAME}_9.jpg", via="cli")
    for bad in ("../0500_manifest.json", "a/b.jpg", "..", ""):
        with pytest.raises(InputError):
            actors.delete_image(store, ID, bad, via="cli")
    with pytest.raises(InputError):
        actors.delete_image(store, "../x", f"{NAME}_0.jpg", via="cli")
    assert keys_in(store) == before


@pytest.mark.parametrize("actor_id", ["0004", "0022"])
def test_delete_legacy_entry_without_object_here_removes_only_the_entry(store, actor_id):
    legacy = fixture_manifest(actor_id)
    store.put_if_absent(manifest_key(actor_id), json.dumps(legacy).encode())
    first = legacy["training_data"][0]
    before = keys_in(store)
    record = actors.delete_image(store, actor_id, first["filename"], via="ui")
    assert record.objects == [] and record.entries == [first]
    after = require_manifest(store, actor_id)
    assert after.find(first["filename"]) is None
    assert len(after.training_data) == len(legacy["training_data"]) - 1
    assert after.data["lora_model"] == legacy["lora_model"]  # unknown fields survive
    new_keys = set(keys_in(store)) - set(before)
    assert all(k.startswith(f"{TRASH_PREFIX}{record.trash_id}/") for k in new_keys)
    restore(store, record.trash_id)
    assert require_manifest(store, actor_id).find(first["filename"]) == first


def test_delete_all_images(store):
    entries = make_actor(store)
    record = actors.delete_all_images(store, ID, via="cli")
    assert filenames(store) == []
    assert list(store.list(training_prefix(NAME))) == []
    assert record.reason == "delete-all" and record.entries == entries
    assert len(record.objects) == 3
    assert store.head(base_image_key(NAME, "jpg")) is not None  # the actor stays


def test_delete_actor_needs_confirmation(store):
    make_actor(store, images=1)
    before = keys_in(store)
    with pytest.raises(InputError, match="confirm"):
        actors.delete_actor(store, ID, confirm="0501", via="api")
    assert keys_in(store) == before


def test_delete_actor_moves_everything_to_trash(store):
    entries = make_actor(store, images=2)
    manifest = require_manifest(store, ID)
    record = actors.delete_actor(store, ID, confirm=ID, via="api")
    assert read_manifest(store, ID) is None
    assert [k for k in keys_in(store) if not k.startswith(TRASH_PREFIX)] == []
    assert record.manifest == manifest.data and record.entries == entries
    assert {o["key"] for o in record.objects} == {
        manifest_key(ID),
        base_image_key(NAME, "jpg"),
        *(e["key"] for e in entries),
    }


# --- replacing ------------------------------------------------------------------------------


def test_replace_entry_keeps_position_and_trashes_the_old_object(store):
    entries = make_actor(store)
    new = add_image(store, 3, seed=30)  # stored and added as the pipeline would ...

    def drop_last(manifest):  # ... then taken out again: replace_entry puts it in place
        del manifest.training_data[-1]
        return True

    update_manifest(store, ID, drop_last)
    record = actors.replace_entry(store, ID, entries[1]["filename"], new, via="ui")
    assert filenames(store) == [entries[0]["filename"], new["filename"], entries[2]["filename"]]
    assert record.reason == "replaced" and record.entries == [entries[1]]
    assert store.head(entries[1]["key"]) is None
    assert store.get(f"{TRASH_PREFIX}{record.trash_id}/{entries[1]['key']}").data == small_image(1)
    assert store.get(new["key"]).data == small_image(30)


def test_replace_entry_refusals(store):
    entries = make_actor(store, images=2)
    before = keys_in(store)
    unstored = dict(entries[0], filename=f"{NAME}_7.jpg", key=training_key(NAME, 7, "jpg"))
    with pytest.raises(InputError, match="store the new image"):
        actors.replace_entry(store, ID, entries[0]["filename"], unstored, via="ui")
    with pytest.raises(InputError, match="new filename"):
        actors.replace_entry(store, ID, entries[0]["filename"], entries[0], via="ui")
    with pytest.raises(InputError, match="already"):  # the new entry is in the manifest already
        actors.replace_entry(store, ID, entries[0]["filename"], entries[1], via="ui")
    with pytest.raises(NotFoundError):
        actors.replace_entry(store, ID, f"{NAME}_8.jpg", entries[1], via="ui")
    assert keys_in(store) == before


# --- flags ----------------------------------------------------------------------------------


def test_set_good_sets_and_toggles(store):
    entries = make_actor(store, images=1)
    name = entries[0]["filename"]
    assert actors.set_good(store, ID, name) is True
    assert actors.set_good(store, ID, name) is False
    assert actors.set_good(store, ID, name, True) is True
    assert actors.set_good(store, ID, name, True) is True
    assert found(require_manifest(store, ID).find(name))["good"] is True
    with pytest.raises(NotFoundError):
        actors.set_good(store, ID, f"{NAME}_9.jpg")


def test_concurrent_set_good_never_loses_a_toggle(store):
    entries = make_actor(store, images=6)
    barrier = threading.Barrier(len(entries))
    errors: list[BaseException] = []

    def toggle(name: str) -> None:
        try:
            barrier.wait()
            actors.set_good(store, ID, name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=toggle, args=(e["filename"],)) for e in entries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(e.get("good") is True for e in require_manifest(store, ID).training_data)


def test_actor_flags_toggle(store):
    make_actor(store, images=0)
    assert actors.toggle_actor_good(store, ID) is True
    assert actors.toggle_training_data_good(store, ID) is True
    assert actors.toggle_actor_good(store, ID) is False
    data = require_manifest(store, ID).data
    assert data["good"] is False and data["training_data_good"] is True


def test_prompt_usage_counts():
    manifest = Manifest(
        {
            "training_data": [
                {"filename": "a_0.jpg", "prompt": "rain", "prompt_id": "p-rain"},
                {"filename": "a_1.jpg", "prompt": "rain", "prompt_id": "p-rain"},
                {"filename": "a_2.jpg", "prompt": "snow", "prompt_id": "p-snow"},
                {"filename": "a_3.jpg", "prompt": None},
                {"filename": "a_4.jpg"},
            ]
        }
    )
    assert actors.prompt_usage(manifest) == {"rain": 2, "snow": 1}
    assert actors.prompt_id_usage(manifest) == {"p-rain": 2, "p-snow": 1}
