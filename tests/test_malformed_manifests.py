"""Malformed-but-valid-JSON manifests (#11.5): refused when parsed, never rewritten, and one
odd manifest affects only its own actor: the list, the batch commands and the other actors
go on. Real HTTP (uvicorn on loopback), the real CLI, a real store."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from actor_maker import actors
from actor_maker.cli import main
from actor_maker.config import Settings
from actor_maker.errors import CorruptManifestError
from actor_maker.layout import manifest_key
from actor_maker.manifest import parse_manifest, update_manifest

from .apiserver import serve_in_thread
from .helpers import sample_image, store_training_image

LIMITS: dict[str, Any] = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}
GOOD = ("0100", "0100_good")
ENTRY = {"filename": "x_1.jpg", "status": "synced"}

#: Each is valid JSON, and each once took a list, a job or a check down.
CORPUS: dict[str, object] = {
    "base-image-string": {"base_images": ["x"]},
    "training-data-object": {"training_data": {}},
    "entry-not-object": {"training_data": [5]},
    "entry-filename-number": {"training_data": [{"filename": 7}]},
    "entry-no-filename": {"training_data": [{"status": "synced"}]},
    "statistics-number": {"statistics": 5},
    "size-string": {"training_data": [{**ENTRY, "size_bytes": "big"}]},
    "quality-string": {"training_data": [{**ENTRY, "quality": "good"}]},
    "generation-list": {"training_data": [{**ENTRY, "generation": [1]}]},
    "key-list": {"training_data": [{**ENTRY, "key": ["a"]}]},
    "base-key-number": {"base_images": [{"filename": "b.jpg", "key": 3}]},
    "metadata-string": {"metadata": "tall"},
    "name-number": {"character_name": 12},
    "last-index-string": {"last_index": "9"},
    "top-level-list": [],
    "top-level-null": None,
}


def _raw(body: object, actor_id: str) -> bytes:
    if isinstance(body, dict):
        body = {"character_id": actor_id, "character_name": f"{actor_id}_odd", **body}
    return json.dumps(body).encode()


def seed(store) -> dict[str, bytes]:
    """The good actor plus one actor per corpus entry; returns the odd manifests' bytes."""
    actors.create_actor(
        store, actor_id=GOOD[0], actor_name=GOOD[1], base_image=sample_image((64, 64)), **LIMITS
    )
    store_training_image(
        store,
        GOOD[0],
        GOOD[1],
        0,
        sample_image((64, 64), seed=3),
        metadata={"actor-id": GOOD[0]},
        prompt_id="p0",
    )
    odd = {}
    for n, body in enumerate(CORPUS.values()):
        actor_id = f"{200 + n:04d}"
        odd[actor_id] = _raw(body, actor_id)
        store.put_if_absent(manifest_key(actor_id), odd[actor_id])
    return odd


def assert_untouched(store, odd: dict[str, bytes]) -> None:
    for actor_id, raw in odd.items():
        assert store.get(manifest_key(actor_id)).data == raw


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_parse_refuses_the_shape_and_update_never_overwrites(name, local_store):
    raw = _raw(CORPUS[name], "0300")
    with pytest.raises(CorruptManifestError, match="left untouched"):
        parse_manifest(raw, key="k")
    local_store.put_if_absent(manifest_key("0300"), raw)
    with pytest.raises(CorruptManifestError):
        update_manifest(local_store, "0300", lambda m: True)
    assert local_store.get(manifest_key("0300")).data == raw


def test_the_actor_list_shows_odd_actors_with_an_error(store, tmp_path):
    odd = seed(store)
    settings = Settings(_env_file=None, provider="preview", state_dir=tmp_path / "state")
    with (
        serve_in_thread(settings, store=store) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        listed = client.get("/api/actors", params={"per_page": 1000})
        assert listed.status_code == 200, listed.text
        by_id = {a["id"]: a for a in listed.json()}
        assert set(by_id) == {GOOD[0], *odd}
        assert "error" not in by_id[GOOD[0]] and by_id[GOOD[0]]["training_count"] == 1
        for actor_id in odd:
            assert by_id[actor_id]["error"], actor_id
            assert str(tmp_path) not in by_id[actor_id]["error"]
        searched = client.get("/api/actors", params={"q": "good"})
        assert [a["id"] for a in searched.json()] == [GOOD[0]]
        for actor_id in odd:
            for path in (f"/api/actors/{actor_id}", f"/api/actors/{actor_id}/training-data"):
                answer = client.get(path)
                assert answer.status_code == 409, (path, answer.text)
                assert answer.headers["content-type"].startswith("application/problem+json")
        assert client.get(f"/api/actors/{GOOD[0]}/training-data").status_code == 200
    assert_untouched(store, odd)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    code = info.value.code
    return int(code) if code is not None else 0, out, err


def test_batch_commands_skip_odd_actors_with_a_warning(local_store, clean_env, tmp_path, capsys):
    clean_env.setenv("ACTOR_MAKER_STORE", str(tmp_path / "store"))
    clean_env.setenv("ACTOR_MAKER_STATE_DIR", str(tmp_path / "state"))
    odd = seed(local_store)
    code, out, err = cli(capsys, "export", "--all", "-f", "kohya", "-o", str(tmp_path / "ds"))
    assert code == 0, out + err
    assert (tmp_path / "ds" / GOOD[1]).is_dir()
    assert all(f"skipped {i}" in " ".join(err.split()) for i in odd)
    code, out, err = cli(capsys, "enqueue", "--all", "--dry-run", "--provider", "preview")
    assert code == 0, out + err
    assert "1 actor(s)" in out and all(i in err for i in odd)
    code, out, err = cli(capsys, "reconcile", "--all", "--min-age", "0")
    assert "Traceback" not in err
    assert GOOD[0] in out and all(i in out + err for i in odd)
    for text in (out, err):
        assert str(tmp_path) not in text
    assert_untouched(local_store, odd)
