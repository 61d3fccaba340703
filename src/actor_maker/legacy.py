"""Importing the old system's manifest files and prompt metadata into the store.

Touches no image. Safe to run twice: an actor whose manifest is already in the
store keeps it; only prompts missing from its entries are filled in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from actor_maker.errors import ActorMakerError, InputError
from actor_maker.layout import MANIFEST_SUFFIX
from actor_maker.manifest import Manifest, parse_manifest, update_manifest
from actor_maker.store.base import ObjectStore
from actor_maker.validation import check_actor_id


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    prompts_added: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _plain_name(actor_name: str) -> str:
    """A name from the legacy data, used as one path component: no separators, no ``.``/``..``,
    no drive or control characters (the data is not trusted to point at files)."""
    if (
        actor_name in (".", "..")
        or any(c in actor_name for c in "/\\:")
        or any(ord(c) < 32 or ord(c) == 127 for c in actor_name)
    ):
        raise InputError(
            f"actor name {actor_name!r} is not a plain name (path separators, '..', drives); "
            "prompt metadata is only looked up by name inside --prompt-metadata"
        )
    return actor_name


def _prompt_metadata_file(directory: Path, actor_name: str) -> Path | None:
    """The old layouts: ``{name}/prompt_metadata.json``, ``{name}/training_data/…``
    or ``{name}.json``, only inside ``directory`` (a symlink out of it is refused too)."""
    name = _plain_name(actor_name)
    root = directory.resolve()
    for candidate in (
        directory / name / "prompt_metadata.json",
        directory / name / "training_data" / "prompt_metadata.json",
        directory / f"{name}.json",
    ):
        if not candidate.is_file():
            continue
        if not candidate.resolve().is_relative_to(root):
            raise InputError(
                f"{candidate.relative_to(directory)} leads outside --prompt-metadata; not read"
            )
        return candidate
    return None


def load_prompt_metadata(path: Path) -> dict[str, str]:
    """``{"images": {filename: {"prompt": ...}}}`` → ``{filename: prompt}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from exc
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        raise InputError(f"{path}: expected an object with 'images'")
    return {
        str(name): str(meta["prompt"])
        for name, meta in images.items()
        if isinstance(meta, dict) and isinstance(meta.get("prompt"), str) and meta["prompt"]
    }


def fold_prompts(manifest: Manifest, prompts: dict[str, str]) -> int:
    """Set ``prompt`` on entries that lack one; returns how many were set."""
    added = 0
    for entry in manifest.training_data:
        prompt = prompts.get(str(entry.get("filename")))
        if prompt and not entry.get("prompt"):
            entry["prompt"] = prompt
            added += 1
    return added


def import_legacy(
    store: ObjectStore, manifests_dir: Path, prompt_metadata_dir: Path | None = None
) -> ImportReport:
    if not manifests_dir.is_dir():
        raise InputError(f"{manifests_dir} is not a directory")
    if prompt_metadata_dir is not None and not prompt_metadata_dir.is_dir():
        raise InputError(f"{prompt_metadata_dir} is not a directory")
    report = ImportReport()
    for path in sorted(manifests_dir.glob(f"*{MANIFEST_SUFFIX}")):
        try:
            _import_one(store, path, prompt_metadata_dir, report)
        except ActorMakerError as exc:
            report.errors.append(f"{path.name}: {exc}")
    return report


def _import_one(
    store: ObjectStore, path: Path, prompt_dir: Path | None, report: ImportReport
) -> None:
    legacy = parse_manifest(path.read_bytes(), key=str(path))
    actor_id = check_actor_id(legacy.actor_id or path.name[: -len(MANIFEST_SUFFIX)])
    prompts: dict[str, str] = {}
    if prompt_dir is not None and legacy.actor_name:
        meta_file = _prompt_metadata_file(prompt_dir, legacy.actor_name)
        if meta_file is not None:
            prompts = load_prompt_metadata(meta_file)
    created = False

    def create() -> Manifest:
        nonlocal created
        created = True
        return Manifest(json.loads(path.read_bytes()))

    added = 0

    def change(manifest: Manifest) -> bool:
        nonlocal added
        added = fold_prompts(manifest, prompts)
        return added > 0

    update_manifest(store, actor_id, change, create=create)
    (report.created if created else report.existing).append(actor_id)
    if added:
        report.prompts_added[actor_id] = added
