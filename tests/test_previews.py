"""Preview placeholders are never training data (issue 12.11): rejected by the checks, not
usable in any count, refused by export, and removed by ``actor-maker clean-previews``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from actor_maker import actors as actor_ops
from actor_maker.api.actor_index import summarize
from actor_maker.cli import main
from actor_maker.errors import InputError
from actor_maker.layout import training_key
from actor_maker.manifest import Manifest, require_manifest, update_manifest
from actor_maker.quality import PREVIEW_REASON, effective_verdict, is_usable
from actor_maker.quality.review import set_override
from actor_maker.store.local import LocalStore
from actor_maker.trash import list_trash

from .apiserver import serve_in_thread
from .helpers import local_settings, sample_image

ACTOR, NAME = "0710", "0710_preview_actor"


@pytest.fixture
def env(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    clean_env.setenv("ACTOR_MAKER_STORE", str(tmp_path / "store"))
    clean_env.setenv("ACTOR_MAKER_PROVIDER", "preview")
    return clean_env


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[Any, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def make_actor(store: LocalStore, actor_id: str = ACTOR, name: str = NAME) -> None:
    actor_ops.create_actor(
        store,
        actor_id=actor_id,
        actor_name=name,
        actor_sex="female",
        base_image=sample_image(),
        max_bytes=20 * 1024 * 1024,
        max_pixels=40_000_000,
    )


def add_real_image(store: LocalStore, index: int = 90) -> str:
    """An image a real model made (accepted by the checks), beside the previews."""
    filename = f"{NAME}_{index}.jpg"
    key = training_key(NAME, index, "jpg")
    store.put_if_absent(key, sample_image(seed=index))

    def change(manifest: Manifest) -> bool:
        manifest.add_entry(
            {
                "filename": filename,
                "key": key,
                "s3_url": None,
                "status": "synced",
                "prompt_id": "photo-real",
                "category": "photoreal",
                "generation": {"provider": "replicate", "model": "flux"},
                "quality": {"verdict": "accepted", "reasons": [], "scores": {}},
            }
        )
        return True

    update_manifest(store, ACTOR, change)
    return filename


@pytest.fixture
def previews(env: pytest.MonkeyPatch, tmp_path: Path, capsys) -> LocalStore:
    """An actor with 4 preview images, made through the CLI with the preview provider."""
    store = LocalStore(tmp_path / "store")
    make_actor(store)
    code, _, err = cli(capsys, "balance", ACTOR, "--size", "4", "--fill", "--json")
    assert code == 0, err
    return store


def test_preview_images_are_rejected_and_never_usable(previews, capsys):
    manifest = require_manifest(previews, ACTOR)
    assert manifest is not None and len(manifest.training_data) == 4
    for entry in manifest.training_data:
        assert entry["quality"]["verdict"] == "rejected"
        assert PREVIEW_REASON in entry["quality"]["reasons"]
        assert not is_usable(entry, include_review=True)
    # the UI's counts
    summary = summarize(manifest)
    assert summary["usable_count"] == 0 and summary["rejected_count"] == 4
    # check, run again on demand, says so too
    code, out, err = cli(capsys, "check", ACTOR, "--json")
    assert code == 0, err
    assert {(r["verdict"], PREVIEW_REASON in r["reasons"]) for r in json.loads(out)} == {
        ("rejected", True)
    }
    # balance
    code, out, _ = cli(capsys, "balance", ACTOR, "--size", "4", "--json")
    assert json.loads(out)["usable"] == 0 and json.loads(out)["missing"] == 4


def test_a_stored_accepted_verdict_does_not_make_a_preview_usable():
    """Manifests written before the rule, and overrides, still never count a preview."""
    entry = {
        "filename": "x_1.jpg",
        "status": "synced",
        "generation": {"provider": "preview"},
        "quality": {"verdict": "accepted", "override": {"verdict": "accepted"}},
    }
    assert effective_verdict(entry) == "rejected" and not is_usable(entry)


def test_a_preview_cannot_be_approved(previews):
    filename = require_manifest(previews, ACTOR).training_data[0]["filename"]
    with pytest.raises(InputError, match="preview placeholder"):
        set_override(previews, ACTOR, filename, "accepted", via="cli")
    set_override(previews, ACTOR, filename, "rejected", via="cli")  # rejecting is fine


def test_export_refuses_an_actor_with_only_previews(previews, tmp_path, capsys):
    out = tmp_path / "datasets"
    code, _, err = cli(capsys, "export", ACTOR, "--format", "kohya", "--out", str(out))
    assert code == 2
    assert err.startswith("error: ") and "Traceback" not in err
    assert f"actor-maker clean-previews {ACTOR}" in err and "--provider replicate" in err
    assert not out.exists()  # refused before anything was written


def test_clean_previews_moves_them_to_the_trash(previews, tmp_path, capsys):
    real = add_real_image(previews)
    # with a real image beside them, the export takes it and leaves the previews out
    code, out, err = cli(
        capsys, "export", ACTOR, "--format", "kohya", "--out", str(tmp_path / "d"), "--json"
    )
    assert code == 0, err
    (actor,) = json.loads(out)["actors"]
    assert actor["images"] == 1
    assert {s["reason"] for s in actor["skipped"]} == {PREVIEW_REASON}

    code, out, err = cli(capsys, "clean-previews", ACTOR)
    assert code == 0, err
    assert "4 preview image(s) moved to the trash" in out
    manifest = require_manifest(previews, ACTOR)
    assert [e["filename"] for e in manifest.training_data] == [real]
    assert list(previews.list(f"system_actors/training_data/{NAME}/")) != []
    keys = {i.key for i in previews.list(f"system_actors/training_data/{NAME}/")}
    assert keys == {training_key(NAME, 90, "jpg")}
    (record,) = list_trash(previews, actor_id=ACTOR)
    assert len(record.entries) == 4 and len(record.objects) == 4
    # again: nothing left to clean
    code, out, err = cli(capsys, "clean-previews", ACTOR)
    assert code == 0 and "0 preview image(s)" in out


def test_clean_previews_all_and_bad_input(previews, capsys):
    make_actor(previews, "0711", "0711_other_actor")
    code, _, err = cli(capsys, "balance", "0711", "--size", "2", "--fill")
    assert code == 0, err
    code, out, err = cli(capsys, "clean-previews", "--all")
    assert code == 0, err
    assert "6 preview image(s) moved in all" in out
    for actor_id in (ACTOR, "0711"):
        assert require_manifest(previews, actor_id).training_data == []
    for args in ([], [ACTOR, "--all"], ["../x"], ["0799"]):
        code, _, err = cli(capsys, "clean-previews", *args)
        assert code == 2 and err.startswith("error: "), args


def test_api_counts_and_export_refuse_previews(previews, tmp_path):
    settings = local_settings(tmp_path, provider="preview")
    with serve_in_thread(settings, store=previews) as url, httpx.Client(base_url=url) as api:
        (actor,) = [a for a in api.get("/api/actors").json() if a["id"] == ACTOR]
        assert actor["usable_count"] == 0 and actor["rejected_count"] == 4
        response = api.post(f"/api/actors/{ACTOR}/exports", json={"format": "replicate-zip"})
        assert response.status_code == 422
        assert f"actor-maker clean-previews {ACTOR}" in response.json()["detail"]
