import json

import pytest

from actor_maker.errors import CorruptManifestError, NotFoundError
from actor_maker.layout import index_of, manifest_key
from actor_maker.manifest import (
    Manifest,
    new_manifest,
    parse_manifest,
    read_manifest,
    recompute_statistics,
    serialize_manifest,
    update_manifest,
)
from actor_maker.store.local import LocalStore

from .helpers import MANIFESTS, fixture_manifest

OWNED_STATS = {
    "training_images_count",
    "training_data_size_bytes",
    "training_data_size_mb",
    "training_synced_count",
    "training_local_only_count",
}
FIXTURE_IDS = sorted(p.name.split("_")[0] for p in MANIFESTS.glob("*_manifest.json"))


def test_all_fixtures_present():
    assert len(FIXTURE_IDS) == 10


@pytest.mark.parametrize("actor_id", FIXTURE_IDS)
def test_fixture_round_trips_without_write_changes(actor_id):
    raw = (MANIFESTS / f"{actor_id}_manifest.json").read_bytes()
    manifest = parse_manifest(raw, key="k")
    assert json.loads(serialize_manifest(manifest)) == json.loads(raw)
    # key order is kept too
    assert list(json.loads(serialize_manifest(manifest))) == list(json.loads(raw))


@pytest.mark.parametrize("actor_id", FIXTURE_IDS)
def test_update_keeps_every_unowned_field(tmp_path, actor_id):
    store = LocalStore(tmp_path)
    original = fixture_manifest(actor_id)
    store.put_if_absent(manifest_key(actor_id), json.dumps(original).encode())
    new_entry = {
        "filename": f"{original['character_name']}_999.jpg",
        "size_bytes": 10,
        "status": "synced",
    }
    update_manifest(store, actor_id, lambda m: m.add_entry(dict(new_entry)))
    after = read_manifest(store, actor_id)
    assert after is not None
    for key, value in original.items():
        if key in ("training_data_updated", "statistics", "training_data"):
            continue
        assert after.data[key] == value, key
    # old entries unchanged, new one appended
    assert after.data["training_data"][:-1] == original["training_data"]
    assert after.data["training_data"][-1] == new_entry
    # unowned statistics unchanged, owned ones derived
    for key, value in original["statistics"].items():
        if key not in OWNED_STATS:
            assert after.data["statistics"][key] == value
    stats = after.data["statistics"]
    entries = after.data["training_data"]
    assert stats["training_images_count"] == len(entries)
    assert stats["training_data_size_bytes"] == sum(e["size_bytes"] for e in entries)
    assert stats["training_synced_count"] == sum(e["status"] == "synced" for e in entries)
    assert stats["training_local_only_count"] == sum(e["status"] == "local_only" for e in entries)
    # legacy timestamp keeps its naive ISO format
    assert "+" not in after.data["training_data_updated"]
    assert after.data["last_index"] == 999


def test_statistics_that_disagree_are_recomputed():
    manifest = Manifest(fixture_manifest("0012"))
    assert manifest.data["statistics"]["training_images_count"] == 17
    recompute_statistics(manifest)
    assert manifest.data["statistics"]["training_images_count"] == 3
    assert manifest.data["statistics"]["total_files"] == 1  # not ours: untouched


def test_legacy_actor_type_and_sex():
    manifest = Manifest(fixture_manifest("0022"))
    assert manifest.actor_type == "person"
    assert manifest.actor_sex == "female"
    assert manifest.outfit and manifest.description


def test_highest_index_spans_extensions_and_gaps():
    manifest = Manifest(fixture_manifest("0004"))
    indices = [index_of(e["filename"]) for e in manifest.training_data]
    assert manifest.highest_index() == max(i for i in indices if i is not None)
    assert index_of("x_12.PNG") == 12
    assert index_of("x_base.jpg") is None


def test_high_water_mark_survives_deleted_entries():
    manifest = new_manifest(actor_id="1", actor_name="a", actor_type="person", actor_sex=None)
    manifest.add_entry({"filename": "a_7.jpg"})
    manifest.training_data.clear()
    assert manifest.highest_index() == 7


def test_add_entry_is_idempotent():
    manifest = new_manifest(actor_id="1", actor_name="a", actor_type="person", actor_sex=None)
    assert manifest.add_entry({"filename": "a_0.jpg"})
    assert not manifest.add_entry({"filename": "a_0.jpg"})
    assert len(manifest.training_data) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        b'{"training_data": {}}',
        b'{"training_data": [{"no": "filename"}]}',
        b'{"character_id": 12}',
        b"\xff\xfe",
    ],
)
def test_corrupt_manifest_is_reported_and_left_untouched(tmp_path, raw):
    store = LocalStore(tmp_path)
    store.put_if_absent(manifest_key("0001"), raw)
    with pytest.raises(CorruptManifestError, match=r"manifests/0001_manifest\.json"):
        update_manifest(store, "0001", lambda m: m.add_entry({"filename": "x_1.jpg"}))
    assert store.get(manifest_key("0001")).data == raw


def test_update_without_create_refuses_missing(tmp_path):
    with pytest.raises(NotFoundError):
        update_manifest(LocalStore(tmp_path), "0001", lambda m: True)


def test_change_returning_false_does_not_write(tmp_path):
    store = LocalStore(tmp_path)
    store.put_if_absent(manifest_key("0012"), json.dumps(fixture_manifest("0012")).encode())
    before = store.get(manifest_key("0012"))
    update_manifest(store, "0012", lambda m: False)
    assert store.get(manifest_key("0012")).info.version == before.info.version


def test_fixture_copy_matches_shared():
    from .helpers import ORIGINAL, SHARED_ORIGINAL

    if not SHARED_ORIGINAL.is_dir():
        pytest.skip("../shared is not beside this checkout")
    for path in SHARED_ORIGINAL.rglob("*.json"):
        assert (ORIGINAL / path.relative_to(SHARED_ORIGINAL)).read_bytes() == path.read_bytes()
