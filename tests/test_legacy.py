"""import-legacy reads prompt metadata only inside --prompt-metadata (#11.11): names in the
legacy manifests are data, not paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actor_maker.legacy import import_legacy
from actor_maker.manifest import read_manifest
from actor_maker.store.local import LocalStore

SECRET_PROMPT = "read from outside the metadata directory"


def legacy_manifest(actor_id: str, name: str) -> dict[str, object]:
    return {
        "character_id": actor_id,
        "character_name": name,
        "training_data": [{"filename": "secret_0.jpg", "status": "local_only"}],
    }


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """manifests/, actors/ (the metadata dir) and, beside them, a secret metadata file."""
    paths = {name: tmp_path / name for name in ("manifests", "actors", "secret")}
    for path in paths.values():
        path.mkdir()
    meta = {"images": {"secret_0.jpg": {"prompt": SECRET_PROMPT}}}
    (paths["secret"] / "prompt_metadata.json").write_text(json.dumps(meta))
    (paths["secret"] / "training_data").mkdir()
    (paths["secret"] / "training_data" / "prompt_metadata.json").write_text(json.dumps(meta))
    (tmp_path / "secret.json").write_text(json.dumps(meta))
    return paths


@pytest.mark.parametrize(
    "name",
    ["../secret", "..", "ABSOLUTE", "a/../../secret", "..\\secret", "C:x"],
)
def test_a_name_that_is_a_path_is_refused_and_nothing_outside_is_read(layout, tmp_path, name):
    if name == "ABSOLUTE":  # the secret directory's absolute path
        name = str(layout["secret"])
    manifest = legacy_manifest("0901", name)
    (layout["manifests"] / "0901_manifest.json").write_text(json.dumps(manifest))
    store = LocalStore(tmp_path / "store")
    report = import_legacy(store, layout["manifests"], layout["actors"])
    assert report.created == [] and len(report.errors) == 1
    assert "not a plain name" in report.errors[0]
    assert read_manifest(store, "0901") is None


def test_a_link_out_of_the_metadata_directory_is_not_followed(layout, tmp_path):
    (layout["actors"] / "linked").symlink_to(layout["secret"], target_is_directory=True)
    manifest = legacy_manifest("0902", "linked")
    (layout["manifests"] / "0902_manifest.json").write_text(json.dumps(manifest))
    store = LocalStore(tmp_path / "store")
    report = import_legacy(store, layout["manifests"], layout["actors"])
    assert len(report.errors) == 1 and "outside --prompt-metadata" in report.errors[0]
    assert read_manifest(store, "0902") is None


def test_a_plain_name_inside_is_still_read(layout, tmp_path):
    (layout["actors"] / "0903_ok").mkdir()
    meta = {"images": {"secret_0.jpg": {"prompt": "inside"}}}
    (layout["actors"] / "0903_ok" / "prompt_metadata.json").write_text(json.dumps(meta))
    manifest = legacy_manifest("0903", "0903_ok")
    (layout["manifests"] / "0903_manifest.json").write_text(json.dumps(manifest))
    store = LocalStore(tmp_path / "store")
    report = import_legacy(store, layout["manifests"], layout["actors"])
    assert report.created == ["0903"] and report.errors == []
    stored = read_manifest(store, "0903")
    assert stored is not None and stored.training_data[0]["prompt"] == "inside"
