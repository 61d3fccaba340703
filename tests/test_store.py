"""The ObjectStore contract, run against the local directory and moto S3, plus each
store's own behaviour (URLs for S3, files and sidecars for the local directory)."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from actor_maker.errors import (
    ActorMakerError,
    InputError,
    NotFoundError,
    PreconditionFailed,
    StoreError,
)
from actor_maker.store.base import MAX_METADATA_BYTES, ObjectStore
from actor_maker.store.local import LocalStore
from actor_maker.store.s3 import S3Store
from actor_maker.testing.s3server import MotoS3

from .conftest import S3_REGION

KEY = "system_actors/manifests/0001_manifest.json"


def test_missing_key(store: ObjectStore) -> None:
    assert store.head(KEY) is None
    with pytest.raises(NotFoundError):
        store.get(KEY)


def test_round_trip(store: ObjectStore) -> None:
    meta = {"prompt-id": "p7", "job_id": "j1"}
    put = store.put_if_absent(KEY, b'{"a": 1}', content_type="application/json", metadata=meta)

    got = store.get(KEY)
    head = store.head(KEY)

    assert got.data == b'{"a": 1}'
    assert head is not None
    for info in (put, got.info, head):
        assert info.key == KEY
        assert info.size == 8
        assert info.version == put.version
        assert info.metadata == meta
        assert info.content_type == "application/json"
        assert info.modified > 0


def test_put_if_absent_never_overwrites(store: ObjectStore) -> None:
    store.put_if_absent(KEY, b"first")
    with pytest.raises(PreconditionFailed):
        store.put_if_absent(KEY, b"second")
    assert store.get(KEY).data == b"first"


def test_put_if_version_replaces(store: ObjectStore) -> None:
    first = store.put_if_absent(KEY, b"one", metadata={"n": "1"})
    second = store.put_if_version(KEY, b"two", first.version, metadata={"n": "2"})

    got = store.get(KEY)
    assert got.data == b"two"
    assert got.info.version == second.version
    assert got.info.metadata == {"n": "2"}


def test_version_changes_on_each_write(store: ObjectStore) -> None:
    versions = [store.put_if_absent(KEY, b"0").version]
    for n in range(1, 4):
        versions.append(store.put_if_version(KEY, str(n).encode(), versions[-1]).version)
    assert len(set(versions)) == 4


def test_stale_version_refused(store: ObjectStore) -> None:
    stale = store.put_if_absent(KEY, b"one").version
    store.put_if_version(KEY, b"two", stale)
    with pytest.raises(PreconditionFailed):
        store.put_if_version(KEY, b"three", stale)
    assert store.get(KEY).data == b"two"


def test_put_if_version_of_missing_key(store: ObjectStore) -> None:
    with pytest.raises(PreconditionFailed):
        store.put_if_version(KEY, b"data", hashlib.md5(b"data").hexdigest())
    assert store.head(KEY) is None


def test_list(store: ObjectStore) -> None:
    keys = ["a/b/1", "a/b/2", "a/bc/3", "a/c", "z"]
    for key in keys:
        store.put_if_absent(key, key.encode(), metadata={"x": "y"})

    listed = list(store.list("a/b"))

    assert [info.key for info in listed] == ["a/b/1", "a/b/2", "a/bc/3"]
    for info in listed:
        head = store.head(info.key)
        assert head is not None
        assert (info.size, info.version) == (head.size, head.version)
        assert info.metadata == {}
    assert [info.key for info in store.list("a/b/")] == ["a/b/1", "a/b/2"]
    assert [info.key for info in store.list("")] == sorted(keys)
    assert list(store.list("nothing/here")) == []


def test_delete(store: ObjectStore) -> None:
    store.put_if_absent(KEY, b"one", metadata={"a": "b"})
    store.delete(KEY)
    store.delete(KEY)  # absent: not an error

    assert store.head(KEY) is None
    assert store.put_if_absent(KEY, b"two").metadata == {}
    assert store.get(KEY).info.metadata == {}


def test_put_file_creates_and_replaces(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "export.zip"
    source.write_bytes(b"first")
    info = store.put_file(KEY, source, content_type="application/zip", metadata={"a": "b"})
    got = store.get(KEY)
    assert got.data == b"first" and got.info.version == info.version
    assert got.info.content_type == "application/zip" and got.info.metadata == {"a": "b"}
    assert info.version == hashlib.md5(b"first").hexdigest() and info.size == 5

    source.write_bytes(b"second, longer")
    again = store.put_file(KEY, source)
    assert store.get(KEY).data == b"second, longer" and again.version != info.version
    assert [i.key for i in store.list("")] == [KEY]  # no temporary object left behind


def test_put_file_streams_a_big_file(store: ObjectStore, tmp_path: Path) -> None:
    """17 MB: multipart on S3 (two parts), copied block by block by the local store."""
    source = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with source.open("wb") as fh:
        for _ in range(17):
            fh.write(block)
    tracemalloc.start()
    try:
        info = store.put_file("exports/big.bin", source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 17 << 20
    if isinstance(store, S3Store):
        # (moto runs in this process, so its memory would count: no peak measured here)
        assert info.version.endswith("-2")  # a multipart ETag
    else:
        assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
        assert info.version == hashlib.md5(source.read_bytes()).hexdigest()
    assert store.get("exports/big.bin").data == source.read_bytes()


def test_put_file_errors_are_store_errors(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        store.put_file(KEY, tmp_path / "absent.zip")
    assert store.head(KEY) is None
    with pytest.raises(InputError):
        store.put_file("../escape", tmp_path / "absent.zip")


def test_put_file_to_a_missing_bucket(moto_server: MotoS3, tmp_path: Path) -> None:
    source = tmp_path / "a.zip"
    source.write_bytes(b"zip")
    store = S3Store("no-such-bucket", client=moto_server.client)
    with pytest.raises(StoreError, match="NoSuchBucket") as caught:
        store.put_file("a.zip", source)
    assert "\n" not in str(caught.value)


def test_metadata_too_big_refused(store: ObjectStore) -> None:
    with pytest.raises(InputError, match="limit"):
        store.put_if_absent(KEY, b"x", metadata={"big": "v" * MAX_METADATA_BYTES})
    with pytest.raises(InputError):
        store.put_if_absent(KEY, b"x", metadata={"Upper": "v"})
    assert store.head(KEY) is None


BAD_KEYS = ["", "../x", "a/../../x", "a//b", "/abs", "a/./b", "a\\b", "a\x00b", "a\nb", "tab\there"]
OPERATIONS: dict[str, Callable[[ObjectStore, str], object]] = {
    "get": lambda s, k: s.get(k),
    "head": lambda s, k: s.head(k),
    "put_if_absent": lambda s, k: s.put_if_absent(k, b"x"),
    "put_if_version": lambda s, k: s.put_if_version(k, b"x", "0" * 32),
    "delete": lambda s, k: s.delete(k),
}


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_bad_keys_refused_before_anything_is_written(
    store: ObjectStore, key: str, operation: str
) -> None:
    with pytest.raises(InputError):
        OPERATIONS[operation](store, key)
    assert list(store.list("")) == []


# --- S3 only ---------------------------------------------------------------------

BUCKET = "story-boards-assets"


def aws_store(prefix: str = "") -> S3Store:
    return S3Store(
        BUCKET, prefix, region="us-west-1", access_key_id="testing", secret_access_key="testing"
    )


def test_public_url_matches_the_original_data() -> None:
    store = aws_store()
    assert (
        store.public_url("system_actors/base_images/x.jpg")
        == "https://story-boards-assets.s3.us-west-1.amazonaws.com/system_actors/base_images/x.jpg"
    )
    assert aws_store("team/a").public_url("k.jpg") == (
        "https://story-boards-assets.s3.us-west-1.amazonaws.com/team/a/k.jpg"
    )
    assert store.description == "s3://story-boards-assets/"


def test_public_url_with_endpoint(s3_store: S3Store, moto_server: MotoS3, s3_bucket: str) -> None:
    url = s3_store.public_url("a b/c+d.jpg")
    assert url == f"{moto_server.endpoint_url}/{s3_bucket}/a%20b/c%2Bd.jpg"
    assert s3_store.key_for_url(url) == "a b/c+d.jpg"


@pytest.mark.parametrize(
    "url",
    [
        f"s3://{BUCKET}/team/a/x/y.jpg",
        f"https://{BUCKET}.s3.us-west-1.amazonaws.com/team/a/x/y.jpg",
        f"https://{BUCKET}.s3.eu-central-1.amazonaws.com/team/a/x/y.jpg",
        f"https://{BUCKET}.s3.amazonaws.com/team/a/x/y.jpg",
        f"https://{BUCKET}.s3-accelerate.amazonaws.com/team/a/x/y.jpg",
        f"https://{BUCKET}.s3.us-west-1.amazonaws.com/team/a/x/y.jpg?X-Amz-Signature=abc",
        f"https://{BUCKET}.s3.us-west-1.amazonaws.com/team/a/x%2Fy.jpg",
    ],
)
def test_key_for_url_recognises(url: str) -> None:
    assert aws_store("team/a").key_for_url(url) == "x/y.jpg"


@pytest.mark.parametrize(
    "url",
    [
        "s3://other-bucket/team/a/x.jpg",
        "https://other-bucket.s3.us-west-1.amazonaws.com/team/a/x.jpg",
        f"https://{BUCKET}-2.s3.amazonaws.com/team/a/x.jpg",
        f"https://{BUCKET}.s3.us-west-1.amazonaws.com.evil.com/team/a/x.jpg",
        f"https://{BUCKET}.s3.us-west-1.amazonaws.com/team/b/x.jpg",
        f"https://{BUCKET}.s3.us-west-1.amazonaws.com/team/a/../../x.jpg",
        f"https://{BUCKET}.s3.us-west-1.amazonaws.com/team/a/",
        f"https://example.com/{BUCKET}/team/a/x.jpg",
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_key_for_url_refuses(url: str) -> None:
    assert aws_store("team/a").key_for_url(url) is None


def test_key_for_url_with_endpoint(s3_store: S3Store, moto_server: MotoS3, s3_bucket: str) -> None:
    endpoint = moto_server.endpoint_url
    assert s3_store.key_for_url(f"{endpoint}/{s3_bucket}/a/b.jpg?x=1") == "a/b.jpg"
    assert s3_store.key_for_url(f"s3://{s3_bucket}/a/b.jpg") == "a/b.jpg"
    assert s3_store.key_for_url(f"{endpoint}/other-bucket/a/b.jpg") is None
    assert s3_store.key_for_url(f"{endpoint}/{s3_bucket}x/a/b.jpg") is None


def test_presigned_url_is_fetchable(s3_store: S3Store) -> None:
    s3_store.put_if_absent("img/1.jpg", b"jpeg bytes")
    url = s3_store.presigned_url("img/1.jpg", expires_in=60)
    assert url is not None
    assert httpx.get(url).content == b"jpeg bytes"


def test_prefix_is_applied_and_stripped(moto_server: MotoS3, s3_bucket: str) -> None:
    # Built without ``client=``, so this also checks the store's own client set-up.
    store = S3Store(
        s3_bucket,
        "/team/a/",
        region=S3_REGION,
        endpoint_url=moto_server.endpoint_url,
        access_key_id="testing",
        secret_access_key="testing",
    )
    store.put_if_absent("x/1", b"1")
    raw = moto_server.client.list_objects_v2(Bucket=s3_bucket)
    assert [obj["Key"] for obj in raw["Contents"]] == ["team/a/x/1"]
    assert [info.key for info in store.list("")] == ["x/1"]
    assert store.description == f"s3://{s3_bucket}/team/a"


def test_version_is_the_etag_without_quotes(
    s3_store: S3Store, moto_server: MotoS3, s3_bucket: str
) -> None:
    info = s3_store.put_if_absent("k", b"data")
    raw = moto_server.client.head_object(Bucket=s3_bucket, Key="k")
    assert raw["ETag"] == f'"{info.version}"'
    assert s3_store.put_if_version("k", b"new", f'"{info.version}"').version != info.version


def test_missing_bucket_is_a_store_error(moto_server: MotoS3) -> None:
    store = S3Store("no-such-bucket", client=moto_server.client)
    with pytest.raises(StoreError, match="NoSuchBucket") as caught:
        store.get("k")
    assert type(caught.value) is StoreError
    with pytest.raises(StoreError):
        list(store.list(""))


def test_connection_errors_are_wrapped_without_secrets() -> None:
    client = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cr3t", region_name="us-east-1"
    ).client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    store = S3Store("bucket", client=client, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(StoreError) as caught:
        store.put_if_absent("k", b"x")
    message = str(caught.value)
    assert "\n" not in message
    assert "s3cr3t" not in message
    assert isinstance(caught.value.__cause__, Exception)
    assert not isinstance(caught.value.__cause__, ActorMakerError)


# --- local only ------------------------------------------------------------------


def test_objects_are_plain_files_with_hidden_sidecars(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "new" / "root")
    assert store.head("a") is None
    assert list(store.list("")) == []
    assert not (tmp_path / "new").exists()

    info = store.put_if_absent("dir/a.txt", b"hello", metadata={"k": "v"})

    root = tmp_path / "new" / "root"
    assert (root / "dir" / "a.txt").read_bytes() == b"hello"
    assert (root / ".meta" / "dir" / "a.txt.json").is_file()
    assert info.version == hashlib.md5(b"hello").hexdigest()
    (root / "dir" / ".a.txt.tmp-deadbeef").write_bytes(b"left by a crash")
    assert [i.key for i in store.list("")] == ["dir/a.txt"]
    assert store.description == f"directory {root}"


def test_version_follows_hand_edits(local_store: LocalStore, tmp_path: Path) -> None:
    old = local_store.put_if_absent("k", b"one").version
    (tmp_path / "store" / "k").write_bytes(b"edited")

    head = local_store.head("k")
    assert head is not None
    assert head.version == hashlib.md5(b"edited").hexdigest()
    with pytest.raises(PreconditionFailed):
        local_store.put_if_version("k", b"two", old)


@pytest.mark.parametrize("key", [".meta/k.json", ".locks/k.lock", "a/.b.tmp-0123"])
def test_reserved_keys_refused(local_store: LocalStore, key: str) -> None:
    with pytest.raises(InputError, match="reserved"):
        local_store.put_if_absent(key, b"x")


def test_paths_stay_under_root(local_store: LocalStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(outside, root / "link")

    with pytest.raises(InputError, match="outside"):
        local_store.get("link/secret")
    with pytest.raises(InputError, match="outside"):
        local_store.put_if_absent("link/new", b"x")
    assert list(local_store.list("")) == []
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_os_errors_are_wrapped(local_store: LocalStore) -> None:
    local_store.put_if_absent("a", b"file")
    with pytest.raises(StoreError, match="cannot write 'a/b'"):
        local_store.put_if_absent("a/b", b"x")
    assert local_store.head("a/b") is None
    with pytest.raises(NotFoundError):
        local_store.get("a/b")


@pytest.mark.parametrize(
    ("endpoint", "reachable"),
    [
        (None, True),
        ("https://s3.eu-central-1.wasabisys.com", True),
        ("http://s3.example.com", False),
        ("https://127.0.0.1:9000", False),
        ("https://10.0.0.5", False),
        ("https://localhost:9000", False),
        ("https://minio.local", False),
        ("https://minio", False),
    ],
)
def test_s3_reachability_from_a_hosted_model(endpoint, reachable):
    store = S3Store("bucket", endpoint_url=endpoint, access_key_id="a", secret_access_key="b")
    assert store.reachable_from_internet is reachable
    assert LocalStore("/tmp/x").reachable_from_internet is False


def test_location_of_a_folder(store: ObjectStore) -> None:
    """A prefix ending in ``/`` names a folder (``actor-maker demo`` prints one)."""
    where = store.location("system_actors/training_data/demo/")
    assert where.rstrip("/").endswith("system_actors/training_data/demo")
    assert store.location("system_actors/x.json").endswith("system_actors/x.json")
    with pytest.raises(InputError):
        store.location("a//b/")


class _ReadOnly(LocalStore):
    """Reads of a local store, none of its writes: the base class's write primitives."""

    _create = ObjectStore._create
    _replace = ObjectStore._replace
    _upload = ObjectStore._upload


def test_a_store_without_write_primitives_is_read_only(tmp_path: Path) -> None:
    """``ObjectStore`` owns the ``put`` methods (and their metadata check); a backend
    supplies ``_create``/``_replace``/``_upload``, and one that does not refuses writes."""
    LocalStore(tmp_path).put_if_absent("a/b.txt", b"x")
    view = _ReadOnly(tmp_path)
    assert view.get("a/b.txt").data == b"x"
    with pytest.raises(InputError):  # the base checks metadata first, for every backend
        view.put_if_absent("a/c.txt", b"y", metadata={"Bad Key": "v"})
    source = tmp_path / "source.bin"
    source.write_bytes(b"z")
    for write in (
        lambda: view.put_if_absent("a/c.txt", b"y"),
        lambda: view.put_if_version("a/b.txt", b"y", view.get("a/b.txt").info.version),
        lambda: view.put_file("a/d.bin", source),
    ):
        with pytest.raises(StoreError, match="read-only"):
            write()
    assert view.head("a/c.txt") is None and view.get("a/b.txt").data == b"x"
