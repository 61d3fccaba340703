"""The trash: moves, records, restore (also onto a reused index), purge and the CLI."""

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actor_maker import actors, trash
from actor_maker.cli import app, main
from actor_maker.cli import trash as trash_cli
from actor_maker.errors import InputError, NotFoundError
from actor_maker.layout import base_image_key, manifest_key, training_key
from actor_maker.manifest import read_manifest, require_manifest, update_manifest
from actor_maker.store.local import LocalStore
from actor_maker.trash import TRASH_PREFIX, list_trash, move_to_trash, purge, restore

from .helpers import sample_image, store_training_image

LIMITS: dict[str, Any] = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}
ID, NAME = "0600", "0600_trash_actor"


def image(seed: int) -> bytes:
    return sample_image((64, 64), seed=seed)


def add_image(store, index: int, seed: int):
    return store_training_image(
        store, ID, NAME, index, image(seed), metadata={"seed": str(seed)}, prompt_id=f"p{index}"
    )


def make_actor(store, images: int = 3):
    actors.create_actor(
        store, actor_id=ID, actor_name=NAME, base_image=image(99), outfit="a hat", **LIMITS
    )
    return [add_image(store, i, seed=i) for i in range(images)]


def objects(store) -> dict[str, bytes]:
    return {info.key: store.get(info.key).data for info in store.list("system_actors/")}


def outside_trash(store) -> dict[str, bytes]:
    return {k: v for k, v in objects(store).items() if not k.startswith(TRASH_PREFIX)}


def test_move_to_trash_copies_with_metadata_then_deletes(store):
    entries = make_actor(store, images=1)
    key = entries[0]["key"]
    listed = move_to_trash(
        store, keys=[key], actor_id=ID, actor_name=NAME, reason="delete", via="cli"
    )
    assert store.get(key).data == image(0)  # the manifest still lists it: left in place
    trash.discard(store, listed.trash_id)
    update_manifest(store, ID, lambda m: bool(m.data.update(training_data=[])) or True)
    record = move_to_trash(
        store, keys=[key], actor_id=ID, actor_name=NAME, reason="delete", via="cli"
    )
    assert store.head(key) is None
    assert trash.trash_id_valid(record.trash_id)
    copy = store.get(f"{TRASH_PREFIX}{record.trash_id}/{key}")
    assert copy.data == image(0)
    assert copy.info.metadata == {"seed": "0"} and copy.info.content_type == "image/jpeg"
    stored = json.loads(store.get(f"{TRASH_PREFIX}{record.trash_id}/record.json").data)
    assert set(stored) == {
        "trash_id",
        "deleted_at",
        "reason",
        "actor_id",
        "actor_name",
        "via",
        "objects",
        "entries",
        "manifest",
    }
    assert datetime.fromisoformat(stored["deleted_at"]).utcoffset() == timedelta(0)
    assert stored["objects"][0]["key"] == key and stored["objects"][0]["size"] == len(image(0))
    assert stored["objects"][0]["content_type"] == "image/jpeg"
    assert stored["manifest"] is None
    assert list_trash(store) == [record]


def test_move_refuses_bad_reason_via_and_keys(store):
    refused: list[dict[str, Any]] = [
        {"reason": "oops", "via": "cli", "keys": []},
        {"reason": "delete", "via": "mail", "keys": []},
        {"reason": "delete", "via": "cli", "keys": ["system_actors/../x"]},
        {"reason": "delete", "via": "cli", "keys": [f"{TRASH_PREFIX}x/y"]},
    ]
    for kwargs in refused:
        with pytest.raises(InputError):
            move_to_trash(store, actor_id=ID, actor_name=NAME, **kwargs)
    assert objects(store) == {}


def test_delete_then_restore_gives_back_entries_and_bytes(store):
    make_actor(store)
    before_manifest = require_manifest(store, ID)
    before_objects = outside_trash(store)
    first = actors.delete_image(store, ID, f"{NAME}_1.jpg", via="ui")
    second = actors.delete_all_images(store, ID, via="ui")
    assert [r.trash_id for r in list_trash(store)] == [second.trash_id, first.trash_id]
    restore(store, second.trash_id)
    restore(store, first.trash_id)
    after = require_manifest(store, ID)
    assert sorted(after.training_data, key=lambda e: e["filename"]) == sorted(
        before_manifest.training_data, key=lambda e: e["filename"]
    )
    assert after.data["statistics"] == before_manifest.data["statistics"]
    assert outside_trash(store) == {
        k: v for k, v in before_objects.items() if k != manifest_key(ID)
    } | {manifest_key(ID): outside_trash(store)[manifest_key(ID)]}
    assert list_trash(store) == [] and objects(store).keys() == outside_trash(store).keys()


def test_restore_onto_a_reused_index_takes_the_next_free_one(store):
    entries = make_actor(store)
    record = actors.delete_image(store, ID, f"{NAME}_1.jpg", via="cli")
    # In the meantime index 1 was used again (e.g. by an old manifest without a high-water
    # mark) and a later image took index 3.
    newer = add_image(store, 1, seed=11)
    add_image(store, 3, seed=13)
    restored = restore(store, record.trash_id)
    assert store.get(newer["key"]).data == image(11)  # the newer image is untouched
    [entry] = restored.entries
    assert entry["filename"] == f"{NAME}_4.jpg"
    assert entry["key"] == training_key(NAME, 4, "jpg")
    assert entry["s3_url"] == store.public_url(entry["key"])
    assert store.get(entry["key"]).data == image(1)
    assert store.head(entry["key"]).metadata == {"seed": "1"}
    manifest = require_manifest(store, ID)
    assert manifest.find(f"{NAME}_4.jpg") == entry
    assert manifest.find(f"{NAME}_1.jpg") == newer
    assert {k: v for k, v in entry.items() if k not in ("filename", "key", "s3_url")} == {
        k: v for k, v in entries[1].items() if k not in ("filename", "key", "s3_url")
    }


def test_restore_after_a_crash_between_copy_and_delete_makes_no_duplicate(store):
    entries = make_actor(store, images=2)
    # A crash after the trash copy and record, before anything else: originals intact.
    record = trash.copy_to_trash(
        store,
        keys=[entries[1]["key"]],
        actor_id=ID,
        actor_name=NAME,
        reason="delete",
        via="cli",
        entries=[entries[1]],
    )
    before = outside_trash(store)
    restore(store, record.trash_id)
    assert outside_trash(store).keys() == before.keys()
    assert require_manifest(store, ID).training_data == entries


def test_delete_actor_then_restore_recreates_the_manifest(store):
    make_actor(store)
    before_manifest = require_manifest(store, ID)
    before_objects = outside_trash(store)
    record = actors.delete_actor(store, ID, confirm=ID, via="cli")
    assert read_manifest(store, ID) is None
    restore(store, record.trash_id)
    after = require_manifest(store, ID)
    for field in ("training_data", "base_images", "metadata", "statistics", "last_index"):
        assert after.data[field] == before_manifest.data[field]
    assert outside_trash(store).keys() == before_objects.keys()
    images = {k: v for k, v in before_objects.items() if k != manifest_key(ID)}
    assert {k: outside_trash(store)[k] for k in images} == images
    assert list_trash(store) == []


def test_restore_actor_into_a_newly_created_one_merges(store):
    entries = make_actor(store, images=2)
    record = actors.delete_actor(store, ID, confirm=ID, via="api")
    actors.create_actor(store, actor_id=ID, actor_name=NAME, base_image=image(50), **LIMITS)
    newer = add_image(store, 0, seed=40)
    restore(store, record.trash_id)
    manifest = require_manifest(store, ID)
    assert [e["filename"] for e in manifest.training_data] == [
        newer["filename"],
        f"{NAME}_2.jpg",  # the old _0, moved past the taken index
        entries[1]["filename"],
    ]
    assert store.get(training_key(NAME, 2, "jpg")).data == image(0)
    # Both base images are there; the old one went to a numbered key.
    assert store.get(base_image_key(NAME, "jpg")).data == image(50)
    assert store.get(f"system_actors/base_images/{NAME}_base_2.jpg").data == image(99)
    assert [b["filename"] for b in manifest.base_images] == [
        f"{NAME}_base.jpg",
        f"{NAME}_base_2.jpg",
    ]


def test_restore_refuses_unknown_and_tricky_ids(store):
    make_actor(store, images=1)
    before = objects(store)
    with pytest.raises(NotFoundError):
        restore(store, "20250101T000000000000Z-0123abcd")  # well formed, unknown
    for bad in (
        "../manifests/0600_manifest.json",
        "20250101T000000000000Z-0123abcd/../../x",
        "",
        "record.json",
    ):
        with pytest.raises(InputError):
            restore(store, bad)
        assert not trash.trash_id_valid(bad) or bad.startswith("2025")
    assert objects(store) == before


def test_restore_of_an_image_needs_the_actor(store):
    entries = make_actor(store, images=1)
    record = actors.delete_image(store, ID, entries[0]["filename"], via="cli")
    whole = actors.delete_actor(store, ID, confirm=ID, via="cli")
    with pytest.raises(InputError, match="no manifest"):
        restore(store, record.trash_id)
    restore(store, whole.trash_id)
    restore(store, record.trash_id)
    assert require_manifest(store, ID).training_data == entries


def test_purge_by_age(store, monkeypatch):
    make_actor(store, images=2)
    now = datetime.now(UTC)
    old_id = trash.new_trash_id(now - timedelta(days=40))
    monkeypatch.setattr(trash, "new_trash_id", lambda: old_id)
    old = actors.delete_image(store, ID, f"{NAME}_0.jpg", via="cli")
    monkeypatch.undo()
    recent = actors.delete_image(store, ID, f"{NAME}_1.jpg", via="cli")
    assert old.trash_id == old_id
    assert purge(store, older_than_days=30, now=now) == [old_id]
    assert [r.trash_id for r in list_trash(store)] == [recent.trash_id]
    assert not any(k.startswith(f"{TRASH_PREFIX}{old_id}/") for k in objects(store))
    assert purge(store, now=now + timedelta(days=29)) == []
    assert purge(store, older_than_days=0.5, now=now + timedelta(days=1)) == [recent.trash_id]
    assert list_trash(store) == []


def test_trash_id_valid():
    assert trash.trash_id_valid(trash.new_trash_id())
    ids = [
        trash.new_trash_id(datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=s)) for s in (0, 1)
    ]
    assert sorted(ids) == ids
    for bad in (None, 5, "", "..", "2025", "20250101T000000000000Z-0123abcd/x", "a" * 31):
        assert not trash.trash_id_valid(bad)


def test_list_trash_filters_by_actor(store):
    make_actor(store, images=1)
    mine = actors.delete_image(store, ID, f"{NAME}_0.jpg", via="cli")
    other = move_to_trash(
        store, keys=[], actor_id="0601", actor_name="other", reason="delete", via="api"
    )
    assert list_trash(store) == [other, mine]
    assert list_trash(store, actor_id=ID) == [mine]


# --- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def trash_commands():
    """``trash`` on the CLI; registered here until cli/__init__.py registers it itself."""
    groups = app.registered_groups
    added = [] if any(g.name == "trash" for g in groups) else [len(groups)]
    if added:
        trash_cli.register(app)
    yield
    for index in added:
        del groups[index]


@pytest.fixture
def cli_store(clean_env, tmp_path, trash_commands):
    clean_env.setenv("ACTOR_MAKER_STORE", str(tmp_path / "store"))
    return LocalStore(tmp_path / "store")


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_cli_trash_list_and_restore(cli_store, capsys):
    entries = make_actor(cli_store, images=2)
    record = actors.delete_image(cli_store, ID, entries[0]["filename"], via="cli")
    code, out, _ = cli(capsys, "trash", "list", "--json")
    assert code == 0 and [r["trash_id"] for r in json.loads(out)] == [record.trash_id]
    code, out, _ = cli(capsys, "trash", "list", "--actor", "0999", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = cli(capsys, "trash", "list")
    assert code == 0 and record.trash_id in out and "1 deletion(s)" in out
    code, out, _ = cli(capsys, "trash", "restore", record.trash_id)
    assert code == 0 and "restored 1 object and 1 entry" in out
    assert require_manifest(cli_store, ID).find(entries[0]["filename"]) is not None
    code, _, err = cli(capsys, "trash", "restore", "../../etc")
    assert code == 2 and err.startswith("error: invalid trash id")


def test_cli_trash_purge(cli_store, capsys, monkeypatch):
    make_actor(cli_store, images=1)
    old_id = trash.new_trash_id(datetime.now(UTC) - timedelta(days=40))
    monkeypatch.setattr(trash, "new_trash_id", lambda: old_id)
    actors.delete_image(cli_store, ID, f"{NAME}_0.jpg", via="cli")
    # Not on a terminal and no --yes: refused, nothing deleted.
    code, _, err = cli(capsys, "trash", "purge")
    assert code == 2 and "--yes" in err
    assert len(list_trash(cli_store)) == 1
    # On a terminal: asks; "n" keeps everything.
    monkeypatch.setattr(trash_cli, "_on_terminal", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = cli(capsys, "trash", "purge")
    assert code == 1 and "nothing purged" in out
    assert len(list_trash(cli_store)) == 1
    code, out, _ = cli(capsys, "trash", "purge", "--older-than-days", "50", "--yes")
    assert code == 0 and "nothing in the trash is older than 50" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, _ = cli(capsys, "trash", "purge")
    assert code == 0 and "purged 1 deletion(s)" in out
    assert list_trash(cli_store) == []
