"""Reconcile: a store seeded with every kind of drift, on both stores; report, fix, CLI."""

import json
from collections import Counter

import pytest

from actor_maker.cli import main
from actor_maker.errors import CorruptManifestError, InputError, NotFoundError
from actor_maker.images import md5_hex
from actor_maker.layout import manifest_key, training_key, training_prefix
from actor_maker.manifest import (
    new_manifest,
    recompute_statistics,
    require_manifest,
    serialize_manifest,
)
from actor_maker.reconcile import reconcile, reconcile_all
from actor_maker.store.local import LocalStore
from actor_maker.store.s3 import S3Store
from actor_maker.trash import list_trash, restore

from .conftest import S3_REGION
from .helpers import fixture_manifest, found, sample_image

#: Fixture 0022: four entries in another bucket, ten ``local_only`` ones.
ID, NAME = "0022", "0022_european_95_female"


def image(seed: int) -> bytes:
    return sample_image((64, 64), seed=seed)


def key_of(index: int, name: str = NAME) -> str:
    return training_key(name, index, "jpg")


def filename_of(index: int, name: str = NAME) -> str:
    return key_of(index, name).rsplit("/", 1)[-1]


def put(store, index: int, seed: int, metadata=None, name: str = NAME) -> bytes:
    data = image(seed)
    store.put_if_absent(key_of(index, name), data, content_type="image/jpeg", metadata=metadata)
    return data


def entry(store, index: int, data: bytes, name: str = NAME, **extra):
    key = key_of(index, name)
    return {
        "filename": filename_of(index, name),
        "s3_url": store.public_url(key),
        "key": key,
        "md5_hash": md5_hex(data),
        "size_bytes": len(data),
        "size_mb": 0.0,
        "status": "synced",
        "prompt_id": f"p{index}",
        **extra,
    }


def pipeline_metadata(index: int, actor_id: str = ID, **extra) -> dict[str, str]:
    return {
        "actor-id": actor_id,
        "prompt-id": f"photo-{index}",
        "prompt-sha256": "ab" * 16,
        "job-id": f"job-{index}",
        "seed": "1234",
        "provider": "preview",
        "model": "preview/placeholder",
        "prediction-id": "",
        "aspect-ratio": "1:1",
        "category": "photoreal",
        **extra,
    }


def write_manifest(store, data: dict) -> None:
    store.put_if_absent(manifest_key(str(data["character_id"])), json.dumps(data).encode())


def seed_drift(store) -> dict:
    """Fixture 0022 plus every kind of drift; returns the manifest as written."""
    data = fixture_manifest(ID)
    entries = data["training_data"]
    ok = put(store, 100, 100)
    plain = entry(store, 100, ok)
    if store.public_url(key_of(100)):  # an S3 entry named by its URL only
        del plain["key"]
    entries.append(plain)
    entries.append(entry(store, 101, image(101)))  # its object is missing
    entries.append(entry(store, 102, put(store, 102, 102), size_bytes=1))
    entries.append(entry(store, 103, put(store, 103, 103), md5_hash="0" * 32))
    same = entry(store, 104, put(store, 104, 104))
    entries += [same, dict(same)]
    differing = entry(store, 105, put(store, 105, 105))
    entries += [differing, {**differing, "good": True}]
    put(store, 106, 106, metadata=pipeline_metadata(106))  # adoptable orphan
    put(store, 107, 107)  # foreign orphan: no metadata
    data["statistics"]["training_data_size_mb"] = 999.0
    write_manifest(store, data)
    return data


def snapshot(store) -> dict[str, str]:
    return {info.key: info.version for info in store.list("system_actors/")}


# --- report --------------------------------------------------------------------------


def test_report_lists_each_drift_exactly_and_changes_nothing(store):
    seed_drift(store)
    before = snapshot(store)
    report = reconcile(store, ID, min_age=0)
    assert snapshot(store) == before
    assert {o.key: o.adoptable for o in report.orphans} == {key_of(106): True, key_of(107): False}
    assert [(m.filename, m.key) for m in report.missing] == [(filename_of(101), key_of(101))]
    assert sorted((m.filename, m.field) for m in report.mismatched) == [
        (filename_of(102), "size_bytes"),
        (filename_of(103), "md5_hash"),
    ]
    assert sorted((d.filename, d.count, d.identical) for d in report.duplicates) == [
        (filename_of(104), 2, True),
        (filename_of(105), 2, False),
    ]
    drift = {s.name: (s.recorded, s.actual) for s in report.statistics}
    assert drift["training_images_count"] == (14, 22)
    assert drift["training_data_size_mb"][0] == 999.0
    assert Counter(e.reason for e in report.external) == {"local_only": 10, "another bucket": 4}
    assert report.fixed == [] and report.errors == []
    assert not report.consistent and not report.ok
    data = report.to_json()
    json.dumps(data)  # JSON-able
    assert data["found"] == {
        "orphans": 2,
        "missing": 1,
        "mismatched": 2,
        "duplicates": 2,
        "statistics": len(drift),
    }


def test_fix_repairs_the_safe_kinds_and_leaves_external_entries_alone(store):
    legacy = seed_drift(store)
    objects = snapshot(store)
    report = reconcile(store, ID, fix=True, min_age=0)
    assert report.errors == []
    manifest = require_manifest(store, ID)
    entries = manifest.training_data
    # external entries: byte-identical and in their order
    names = {e["filename"] for e in fixture_manifest(ID)["training_data"]}
    assert [json.dumps(e) for e in entries if e["filename"] in names] == [
        json.dumps(e) for e in fixture_manifest(ID)["training_data"]
    ]
    by_name = Counter(e["filename"] for e in entries)
    assert by_name[filename_of(104)] == 1  # exact copy dropped
    assert by_name[filename_of(105)] == 2  # different entries: both kept
    missing = found(manifest.find(filename_of(101)))
    assert missing["status"] == "missing" and missing["missing_since"]
    assert found(manifest.find(filename_of(102)))["size_bytes"] == len(image(102))
    assert found(manifest.find(filename_of(103)))["md5_hash"] == md5_hex(image(103))
    adopted = found(manifest.find(filename_of(106)))
    assert adopted["key"] == key_of(106)
    assert adopted["s3_url"] == store.public_url(key_of(106))
    assert adopted["md5_hash"] == md5_hex(image(106))
    assert adopted["size_bytes"] == len(image(106))
    assert adopted["prompt_id"] == "photo-106" and adopted["prompt"] is None
    assert adopted["category"] == "photoreal" and adopted["aspect_ratio"] == "1:1"
    assert adopted["generation"]["job_id"] == "job-106"
    assert adopted["generation"]["seed"] == 1234
    assert adopted["generation"]["provider"] == "preview"
    assert adopted["generation"]["prediction_id"] is None
    assert adopted["status"] == "synced" and adopted["good"] is False
    assert adopted["quality"] is None and adopted["caption"] is None
    assert adopted["adopted_at"]
    assert manifest.find(filename_of(107)) is None  # foreign: only listed
    probe = manifest.copy()
    recompute_statistics(probe)
    for name, value in probe.data["statistics"].items():
        if name.startswith("training_"):
            assert manifest.data["statistics"][name] == value
    # one exact copy dropped, one orphan adopted
    assert manifest.data["statistics"]["training_images_count"] == len(legacy["training_data"])
    # no object was deleted or overwritten
    after = snapshot(store)
    assert {k: v for k, v in after.items() if k != manifest_key(ID)} == {
        k: v for k, v in objects.items() if k != manifest_key(ID)
    }
    assert report.left() == {
        "orphans": 1,
        "missing": 1,
        "mismatched": 0,
        "duplicates": 1,
        "statistics": 0,
    }
    assert not report.ok
    assert any("adopted" in line for line in report.fixed)

    # the second run finds nothing to write
    version = require_manifest(store, ID).version
    again = reconcile(store, ID, fix=True, min_age=0)
    assert again.fixed == [] and again.errors == []
    assert require_manifest(store, ID).version == version
    assert [o.key for o in again.orphans] == [key_of(107)]
    assert [m.filename for m in again.missing] == [filename_of(101)]
    assert again.mismatched == [] and again.statistics == []
    assert [d.filename for d in again.duplicates] == [filename_of(105)]


def test_delete_orphans_moves_only_orphans_whose_metadata_names_the_actor(store):
    seed_drift(store)
    put(store, 108, 108, metadata={"actor-id": ID})  # ours, but not adoptable
    put(store, 109, 109, metadata={"actor-id": "0999"})  # another actor's (a reused name)
    with pytest.raises(InputError):
        reconcile(store, ID, delete_orphans=True)
    report = reconcile(store, ID, fix=True, delete_orphans=True, min_age=0)
    assert store.head(key_of(108)) is None
    assert store.get(key_of(107)).data == image(107)  # no metadata: never by prefix alone
    assert store.get(key_of(109)).data == image(109)
    assert store.head(key_of(106)) is not None  # adopted, not moved
    (record,) = list_trash(store, actor_id=ID)
    assert record.reason == "orphan" and record.via == "cli"
    assert [o["key"] for o in record.objects] == [key_of(108)]
    actions = {o.key: o.action for o in report.orphans}
    assert found(actions[key_of(108)]).startswith("moved to the trash")
    restore(store, record.trash_id)
    assert store.get(key_of(108)).data == image(108)
    assert [o.key for o in reconcile(store, ID, min_age=0).orphans] == [
        key_of(107),
        key_of(108),
        key_of(109),
    ]


def test_young_orphans_are_reported_and_left_alone(store):
    seed_drift(store)
    report = reconcile(store, ID, fix=True, delete_orphans=True)  # default min_age
    assert {o.key for o in report.orphans if o.recent} == {key_of(106), key_of(107)}
    assert all(o.action is None for o in report.orphans)
    assert store.head(key_of(107)) is not None
    assert require_manifest(store, ID).find(filename_of(106)) is None
    assert list_trash(store) == []


def test_adoptable_needs_this_actor_a_prompt_and_a_job(store):
    aid, name = "0700", "0700_orphans"
    manifest = new_manifest(actor_id=aid, actor_name=name, actor_type="person", actor_sex=None)
    manifest.training_data.append(
        {"filename": filename_of(4, name), "s3_url": None, "status": "local_only"}
    )
    store.put_if_absent(manifest_key(aid), serialize_manifest(manifest))
    put(store, 1, 1, pipeline_metadata(1, "0701"), name)  # another actor's
    put(store, 2, 2, pipeline_metadata(2, aid, **{"job-id": "", "prediction-id": "x"}), name)
    put(store, 3, 3, pipeline_metadata(3, aid, **{"prompt-id": ""}), name)
    put(store, 4, 4, pipeline_metadata(4, aid), name)  # a local_only entry's filename
    store.put_if_absent(f"{training_prefix(name)}sub/x.jpg", image(5))
    report = reconcile(store, aid, min_age=0)
    reasons = {o.key.rsplit("/", 1)[-1]: (o.adoptable, o.reason or "") for o in report.orphans}
    assert reasons[filename_of(1, name)][0] is False
    assert "0701" in reasons[filename_of(1, name)][1]
    assert reasons[filename_of(2, name)] == (True, "")
    assert reasons[filename_of(3, name)][0] is False
    assert reasons[filename_of(4, name)][0] is False
    assert "local_only" in reasons[filename_of(4, name)][1]
    assert reasons["x.jpg"][0] is False
    fixed = reconcile(store, aid, fix=True, delete_orphans=True, min_age=0)
    assert {o.key: o.action for o in fixed.orphans}[key_of(2, name)] == "adopted"
    assert store.head(key_of(4, name)) is not None  # claimed by an entry's name: never moved
    assert store.get(key_of(1, name)).data == image(1)  # another actor's: never moved
    assert store.head(key_of(3, name)) is None  # ours, not adoptable: moved to the trash
    after = require_manifest(store, aid)
    assert after.training_data[0] == manifest.training_data[0]
    assert found(after.find(filename_of(2, name)))["generation"]["prediction_id"] == "x"


def test_unknown_and_corrupt_manifests(store):
    with pytest.raises(NotFoundError):
        reconcile(store, "0999")
    with pytest.raises(InputError):
        reconcile(store, "../x")
    store.put_if_absent(manifest_key("0998"), b"{not json")
    with pytest.raises(CorruptManifestError):
        reconcile(store, "0998")
    seed_drift(store)
    reports = {r.actor_id: r for r in reconcile_all(store, min_age=0)}
    assert reports["0998"].errors and not reports["0998"].ok
    assert len(reports[ID].orphans) == 2
    assert store.get(manifest_key("0998")).data == b"{not json"


def test_the_old_systems_bucket_maps_its_entries_into_the_store(moto_server):
    """Fixture 0006 in a store on its own bucket: synced entries are in the store."""
    bucket = "story-boards-assets"
    client = moto_server.client
    if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        moto_server.make_bucket(bucket)
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    store = S3Store(bucket, region=S3_REGION, endpoint_url=moto_server.endpoint_url, client=client)
    data = fixture_manifest("0006")
    write_manifest(store, data)
    name = data["character_name"]
    synced = [e for e in data["training_data"] if e["status"] == "synced"]
    for i, e in enumerate(synced[:3]):  # seed a few of its objects
        store.put_if_absent(f"{training_prefix(name)}{e['filename']}", image(i))
    report = reconcile(store, "0006", min_age=0)
    assert len(report.external) == 4 and {e.reason for e in report.external} == {"local_only"}
    assert len(report.missing) == len(synced) - 3
    assert {m.filename for m in report.mismatched} == {e["filename"] for e in synced[:3]}
    assert report.orphans == []
    reconcile(store, "0006", fix=True, min_age=0)
    after = require_manifest(store, "0006")
    local = [e for e in data["training_data"] if e["status"] == "local_only"]
    assert [e for e in after.training_data if e["status"] == "local_only"] == local
    assert sum(1 for e in after.training_data if e["status"] == "missing") == len(synced) - 3
    assert after.data["statistics"]["training_synced_count"] == 3
    assert after.data["lora_model"] == data["lora_model"]  # unknown fields kept


def test_multipart_etags_are_not_taken_for_md5(s3_store, moto_server, s3_bucket):
    aid, name = "0710", "0710_multipart"
    manifest = new_manifest(actor_id=aid, actor_name=name, actor_type="person", actor_sex=None)
    client = moto_server.client
    datas = {}
    for index in (1, 2):
        datas[index] = data = image(index)
        key = key_of(index, name)
        upload = client.create_multipart_upload(Bucket=s3_bucket, Key=key)
        part = client.upload_part(
            Bucket=s3_bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data
        )
        client.complete_multipart_upload(
            Bucket=s3_bucket,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )
        assert "-" in s3_store.head(key).version
    manifest.training_data.append(entry(s3_store, 1, datas[1], name))
    manifest.training_data.append(entry(s3_store, 2, datas[2], name, size_bytes=3, md5_hash="x"))
    recompute_statistics(manifest)
    s3_store.put_if_absent(manifest_key(aid), serialize_manifest(manifest))
    report = reconcile(s3_store, aid, min_age=0)
    assert [(m.filename, m.field) for m in report.mismatched] == [
        (filename_of(2, name), "size_bytes")
    ]
    reconcile(s3_store, aid, fix=True, min_age=0)
    fixed = found(require_manifest(s3_store, aid).find(filename_of(2, name)))
    assert fixed["size_bytes"] == len(datas[2]) and fixed["md5_hash"] == md5_hex(datas[2])
    assert reconcile(s3_store, aid, min_age=0).consistent


# --- the command line ------------------------------------------------------------------


@pytest.fixture
def cli_env(request, store, clean_env, tmp_path):
    """The environment that makes the CLI open the same store as ``store``."""
    if isinstance(store, LocalStore):
        clean_env.setenv("ACTOR_MAKER_STORE", str(tmp_path / "store"))
    else:
        moto = request.getfixturevalue("moto_server")
        clean_env.setenv("ACTOR_MAKER_STORE", f"s3://{request.getfixturevalue('s3_bucket')}")
        clean_env.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
        clean_env.setenv("AWS_ACCESS_KEY_ID", "testing")
        clean_env.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
        clean_env.setenv("AWS_DEFAULT_REGION", S3_REGION)
    return store


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_cli_reports_and_exit_codes(cli_env, capsys):
    store = cli_env
    seed_drift(store)
    before = snapshot(store)
    code, out, _ = cli(capsys, "reconcile", ID, "--min-age", "0")
    assert code == 1
    for word in ("orphan", "missing", "mismatch", "duplicate", "statistic", "14 external"):
        assert word in out
    assert key_of(107) in out and filename_of(101) in out
    code, out, _ = cli(capsys, "reconcile", ID, "--json", "--min-age", "0")
    assert code == 1
    assert json.loads(out)["found"]["orphans"] == 2
    code, out, _ = cli(capsys, "reconcile", "--all", "--json", "--min-age", "0")
    assert code == 1 and [r["actor_id"] for r in json.loads(out)] == [ID]
    assert snapshot(store) == before
    for bad in (
        [],
        [ID, "--all"],
        [ID, "--delete-orphans"],
        ["0999"],
        ["../x"],
        [ID, "--min-age", "-1"],
    ):
        code, _, err = cli(capsys, "reconcile", *bad)
        assert code == 2, bad
        assert "Traceback" not in err
    assert snapshot(store) == before
    code, out, _ = cli(capsys, "reconcile", ID, "--fix", "--min-age", "0")
    assert code == 1  # a foreign orphan, a missing object and differing duplicates remain
    assert "adopted" in out


def test_cli_fix_exits_zero_once_everything_is_fixed(cli_env, capsys):
    store = cli_env
    aid, name = "0720", "0720_fixable"
    manifest = new_manifest(actor_id=aid, actor_name=name, actor_type="person", actor_sex=None)
    manifest.training_data.append(entry(store, 1, put(store, 1, 1, name=name), name, size_bytes=9))
    store.put_if_absent(manifest_key(aid), serialize_manifest(manifest))
    put(store, 2, 2, pipeline_metadata(2, aid), name)
    put(store, 3, 3, {"actor-id": aid}, name=name)
    assert cli(capsys, "reconcile", aid, "--fix", "--min-age", "0")[0] == 1  # foreign orphan
    code, out, _ = cli(capsys, "reconcile", aid, "--fix", "--delete-orphans", "--min-age", "0")
    assert code == 0 and "trash" in out
    code, out, _ = cli(capsys, "reconcile", aid)
    assert code == 0 and "consistent" in out
    code, out, _ = cli(capsys, "reconcile", "--all")
    assert code == 0 and "1 actor: 1 consistent" in out
