import http.client
import io
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from actor_maker.config import Settings
from actor_maker.errors import InputError, InvalidImageError, NotFoundError
from actor_maker.thumbnails import (
    THUMBNAIL_SIZE,
    ensure_thumbnail,
    make_thumbnail,
    thumbnail_key,
)

from .apiserver import serve_in_thread
from .helpers import sample_image

IMAGE = "system_actors/training_data/0100_a/0100_a_3.jpg"


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


@pytest.mark.parametrize(
    ("image", "thumb"),
    [
        (IMAGE, "system_actors/thumbnails/training_data/0100_a/0100_a_3.jpg.webp"),
        (
            "system_actors/base_images/0100_a_base.png",
            "system_actors/thumbnails/base_images/0100_a_base.png.webp",
        ),
    ],
)
def test_thumbnail_keys_live_in_a_parallel_tree(image, thumb):
    assert thumbnail_key(image) == thumb
    assert not thumb.startswith("system_actors/training_data/")


@pytest.mark.parametrize(
    "key",
    [
        "other/a.jpg",
        "system_actors",
        "system_actors/../x.jpg",
        "system_actors//a.jpg",
        "/system_actors/a.jpg",
        "system_actors/thumbnails/training_data/a.jpg.webp",
        "",
    ],
)
def test_thumbnail_key_refuses_keys_outside_the_images(key):
    with pytest.raises(InputError):
        thumbnail_key(key)


@pytest.mark.parametrize(
    ("size", "mode", "fmt", "expected"),
    [
        ((1200, 600), "RGB", "JPEG", (384, 192)),
        ((500, 1000), "RGB", "JPEG", (192, 384)),
        ((800, 800), "RGBA", "PNG", (384, 384)),
        ((200, 100), "RGB", "PNG", (200, 100)),  # small images are not enlarged
    ],
)
def test_make_thumbnail_fits_within_the_box_as_webp(size, mode, fmt, expected):
    img = Image.new(mode, size, (200, 30, 30, 0) if mode == "RGBA" else (200, 30, 30))
    buf = io.BytesIO()
    img.save(buf, fmt)
    thumb = decoded(make_thumbnail(buf.getvalue()))
    assert thumb.format == "WEBP"
    assert thumb.size == expected
    assert max(thumb.size) <= THUMBNAIL_SIZE
    assert thumb.mode == "RGB"
    if mode == "RGBA":  # fully transparent pixels become white, not black
        pixel = thumb.convert("RGB").getpixel((10, 10))
        assert isinstance(pixel, tuple)
        r, g, b = pixel
        assert min(r, g, b) > 240


def test_make_thumbnail_applies_exif_orientation():
    img = Image.new("RGB", (800, 400), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert decoded(make_thumbnail(buf.getvalue())).size == (192, 384)


def test_make_thumbnail_refuses_what_is_not_an_image():
    with pytest.raises(InvalidImageError):
        make_thumbnail(b"not an image at all")


def test_ensure_thumbnail_creates_once_and_reuses(store):
    store.put_if_absent(IMAGE, sample_image((900, 600)), content_type="image/jpeg")
    key = ensure_thumbnail(store, IMAGE)
    assert key == thumbnail_key(IMAGE)
    first = store.head(key)
    assert first is not None
    assert first.content_type == "image/webp"
    assert first.metadata["source-version"] == store.head(IMAGE).version
    assert decoded(store.get(key).data).size == (384, 256)

    assert ensure_thumbnail(store, IMAGE) == key
    again = store.head(key)
    assert again is not None and again.version == first.version
    assert again.modified == first.modified
    # the training prefix holds only the image
    listed = [o.key for o in store.list("system_actors/training_data/")]
    assert listed == [IMAGE]


def test_ensure_thumbnail_follows_an_image_stored_again_under_its_key(store):
    store.put_if_absent(IMAGE, sample_image((900, 600)), content_type="image/jpeg")
    key = ensure_thumbnail(store, IMAGE)
    old = store.head(key).version
    store.delete(IMAGE)
    store.put_if_absent(IMAGE, sample_image((300, 600), seed=5), content_type="image/jpeg")
    assert ensure_thumbnail(store, IMAGE) == key
    assert store.head(key).version != old
    assert decoded(store.get(key).data).size == (192, 384)


def test_ensure_thumbnail_of_a_missing_image(store):
    with pytest.raises(NotFoundError):
        ensure_thumbnail(store, IMAGE)
    assert store.head(thumbnail_key(IMAGE)) is None


# --- over HTTP ---------------------------------------------------------------------------


def settings(tmp_path):
    return Settings(
        _env_file=None,
        store=str(tmp_path / "unused-store"),
        state_dir=tmp_path / "state",
        provider="preview",
    )


def test_thumbnail_route_serves_webp_from_the_local_store(local_store, tmp_path):
    local_store.put_if_absent(IMAGE, sample_image((1000, 500)), content_type="image/jpeg")
    with serve_in_thread(settings(tmp_path), store=local_store) as base:
        response = httpx.get(f"{base}/api/thumbnails/{IMAGE}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/webp"
        assert response.headers["cache-control"] == "private, max-age=86400"
        assert response.headers["x-content-type-options"] == "nosniff"
        etag = response.headers["etag"]
        assert decoded(response.content).size == (384, 192)
        # made once: the second request serves the same object
        assert httpx.get(f"{base}/api/thumbnails/{IMAGE}").headers["etag"] == etag
        # the original is still served unchanged by the files route
        original = httpx.get(f"{base}/api/files/{IMAGE}")
        assert original.status_code == 200
        assert original.headers["content-type"] == "image/jpeg"
        assert original.headers["cache-control"] == "private, max-age=3600"
    assert local_store.head(thumbnail_key(IMAGE)) is not None


def test_thumbnail_route_redirects_to_a_presigned_url_on_s3(s3_store, tmp_path):
    s3_store.put_if_absent(IMAGE, sample_image((600, 1200)), content_type="image/jpeg")
    with serve_in_thread(settings(tmp_path), store=s3_store) as base:
        response = httpx.get(f"{base}/api/thumbnails/{IMAGE}")
        assert response.status_code == 307
        location = response.headers["location"]
        assert "training_data" in location and "Signature" in location
        fetched = httpx.get(location)
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/webp"
        assert decoded(fetched.content).size == (192, 384)


def raw_get(base: str, path: str) -> tuple[int, str, bytes]:
    """GET with the path sent exactly as written (no client-side normalization)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read()
    finally:
        conn.close()


REFUSED = [
    "/api/thumbnails/../secret.jpg",
    "/api/thumbnails/%2e%2e/secret.jpg",
    "/api/thumbnails/system_actors/../secret.jpg",
    "/api/thumbnails/system_actors/%2e%2e/secret.jpg",
    "/api/thumbnails/system_actors/training_data/%2e%2e/%2e%2e/secret.jpg",
    "/api/thumbnails/system_actors/manifests/0100_manifest.json",
    "/api/thumbnails/secret.jpg",
    "/api/thumbnails/system_actors/thumbnails/training_data/0100_a/0100_a_3.jpg.webp",
    "/api/thumbnails/system_actors/training_data/0100_a/missing.jpg",
    "/api/files/%2e%2e/secret.jpg",
]


def test_thumbnail_route_refuses_paths_outside_the_images(local_store, tmp_path):
    local_store.put_if_absent(IMAGE, sample_image(), content_type="image/jpeg")
    local_store.put_if_absent("secret.jpg", sample_image(), content_type="image/jpeg")
    local_store.put_if_absent("system_actors/manifests/0100_manifest.json", b"{}")
    with serve_in_thread(settings(tmp_path), store=local_store) as base:
        for path in REFUSED:
            status, content_type, body = raw_get(base, path)
            assert (path, status, content_type) == (path, 404, "application/problem+json")
            assert b'"status":404' in body
        assert raw_get(base, f"/api/thumbnails/{IMAGE}")[:2] == (200, "image/webp")
    # nothing was made for the refused paths
    assert [o.key for o in local_store.list("system_actors/thumbnails/")] == [thumbnail_key(IMAGE)]


def test_deleting_an_image_drops_its_thumbnail_and_restore_remakes_it(store):
    import json

    from actor_maker import actors, trash
    from actor_maker.layout import manifest_key
    from actor_maker.thumbnails import ensure_thumbnail

    key = "system_actors/training_data/t_actor/t_actor_0.jpg"
    store.put_if_absent(key, sample_image())
    manifest = {
        "character_id": "0042",
        "character_name": "t_actor",
        "training_data": [
            {"filename": "t_actor_0.jpg", "key": key, "size_bytes": 1, "status": "synced"}
        ],
    }
    store.put_if_absent(manifest_key("0042"), json.dumps(manifest).encode())
    thumb = ensure_thumbnail(store, key)
    record = actors.delete_image(store, "0042", "t_actor_0.jpg", via="cli")
    assert store.head(thumb) is None and store.head(key) is None
    trash.restore(store, record.trash_id)
    assert ensure_thumbnail(store, key) == thumb and store.head(thumb) is not None
