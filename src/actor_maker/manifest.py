"""Actor manifests: the model, the shapes we read and the one update path.

A manifest is kept as the raw JSON object it was read as, so fields this code
does not know survive every write unchanged and in order. ``Manifest`` adds
typed accessors; ``update_manifest`` is the only function that writes one:
read → modify → write-if-unchanged → retry on conflict.

Owned fields (rewritten on every write, derived from the entries):
``statistics.training_*`` and ``training_data_updated``. Everything else is
left as it was unless a change function sets it on purpose.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actor_maker.errors import (
    CorruptManifestError,
    InputError,
    ManifestConflictError,
    NotFoundError,
    PreconditionFailed,
)
from actor_maker.layout import index_of, manifest_key
from actor_maker.metrics import manifest_conflict
from actor_maker.store.base import ObjectStore
from actor_maker.timeutil import legacy_now as legacy_now
from actor_maker.timeutil import utc_now as utc_now
from actor_maker.validation import check_actor_id

log = logging.getLogger(__name__)

Entry = dict[str, Any]


class Manifest:
    """One actor's manifest: the raw JSON object plus the version it was read at."""

    def __init__(self, data: dict[str, Any], version: str | None = None) -> None:
        self.data = data
        self.version = version

    # --- identity ------------------------------------------------------------------
    @property
    def actor_id(self) -> str:
        return str(self.data.get("character_id", ""))

    @property
    def actor_name(self) -> str:
        return str(self.data.get("character_name", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.data.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def actor_type(self) -> str:
        return str(self.data.get("actor_type") or "person")

    @property
    def actor_sex(self) -> str | None:
        sex = self.data.get("actor_sex") or self.metadata.get("sex")
        return str(sex) if sex else None

    @property
    def description(self) -> str | None:
        value = self.metadata.get("description")
        return str(value) if value else None

    @property
    def outfit(self) -> str | None:
        value = self.metadata.get("outfit")
        return str(value) if value else None

    # --- entries -------------------------------------------------------------------
    @property
    def training_data(self) -> list[Entry]:
        entries = self.data.setdefault("training_data", [])
        assert isinstance(entries, list)
        return entries

    @property
    def base_images(self) -> list[dict[str, Any]]:
        images = self.data.setdefault("base_images", [])
        assert isinstance(images, list)
        return images

    def prompt_ids(self) -> set[str]:
        return {str(e["prompt_id"]) for e in self.training_data if e.get("prompt_id")}

    def find(self, filename: str) -> Entry | None:
        return next((e for e in self.training_data if e.get("filename") == filename), None)

    def job_entry(self, job_id: str, prompt_id: object) -> Entry | None:
        """The entry a job stored for a prompt (``generation.job_id``): one per job item."""
        for entry in self.training_data:
            generation = entry.get("generation")
            if (
                entry.get("prompt_id") == prompt_id
                and isinstance(generation, dict)
                and generation.get("job_id") == job_id
            ):
                return entry
        return None

    def highest_index(self) -> int:
        """Highest image index ever used: entries plus the recorded high-water mark."""
        seen = [index_of(str(e.get("filename", ""))) for e in self.training_data]
        indices = [i for i in seen if i is not None]
        mark = self.data.get("last_index")
        if isinstance(mark, int):
            indices.append(mark)
        return max(indices, default=-1)

    def add_entry(self, entry: Entry) -> bool:
        """Append ``entry``; ``False`` (and no change) when its filename is already there."""
        if self.find(str(entry["filename"])) is not None:
            return False
        self.training_data.append(entry)
        if index_of(str(entry["filename"])) is not None:
            self.data["last_index"] = self.highest_index()
        return True

    def copy(self) -> Manifest:
        return Manifest(copy.deepcopy(self.data), self.version)


def new_manifest(
    *,
    actor_id: str,
    actor_name: str,
    actor_type: str,
    actor_sex: str | None,
    description: str | None = None,
    outfit: str | None = None,
) -> Manifest:
    """The manifest the first generate for an unknown actor creates."""
    metadata: dict[str, Any] = {"id": actor_id, "name": actor_name}
    if actor_sex:
        metadata["sex"] = actor_sex
    if description:
        metadata["description"] = description
    if outfit:
        metadata["outfit"] = outfit
    return Manifest(
        {
            "character_id": actor_id,
            "character_name": actor_name,
            "metadata": metadata,
            "actor_type": actor_type,
            "actor_sex": actor_sex,
            "base_images": [],
            "statistics": {},
            "status": "success",
            "training_data": [],
            "training_data_updated": legacy_now(),
            "created_at": utc_now(),
        }
    )


def recompute_statistics(manifest: Manifest) -> None:
    """Rewrite the owned ``training_*`` statistics from the entries; keep the rest."""
    entries = manifest.training_data
    stats = manifest.data.get("statistics")
    if not isinstance(stats, dict):
        stats = manifest.data["statistics"] = {}
    size = sum(int(e.get("size_bytes") or 0) for e in entries)
    stats["training_images_count"] = len(entries)
    stats["training_data_size_bytes"] = size
    stats["training_data_size_mb"] = round(size / (1024 * 1024), 2)
    stats["training_synced_count"] = sum(1 for e in entries if e.get("status") == "synced")
    stats["training_local_only_count"] = sum(1 for e in entries if e.get("status") == "local_only")
    manifest.data["training_data_updated"] = legacy_now()


#: Entry fields we read, and the JSON types each may hold (``None`` is always allowed).
_ENTRY_FIELDS: dict[str, tuple[type, ...]] = {
    "key": (str,),
    "s3_url": (str,),
    "status": (str,),
    "prompt_id": (str,),
    "prompt": (str,),
    "category": (str,),
    "caption": (str,),
    "md5_hash": (str,),
    "size_bytes": (int,),
    "generation": (dict,),
    "quality": (dict,),
}
_BASE_FIELDS: dict[str, tuple[type, ...]] = {"filename": (str,), "key": (str,), "s3_url": (str,)}
#: Top-level fields we read: each must be absent, ``null`` or of these types.
_TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "character_id": (str,),
    "character_name": (str,),
    "metadata": (dict,),
    "statistics": (dict,),
    "last_index": (int,),
    "actor_type": (str,),
    "actor_sex": (str,),
}


def _shape_error(item: object, fields: dict[str, tuple[type, ...]]) -> str | None:
    """What is wrong with ``item``'s fields, or ``None`` when their types are ones we read."""
    if not isinstance(item, dict):
        return f"is a JSON {type(item).__name__}, not an object"
    for name, types in fields.items():
        value = item.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            return f"field {name!r} is a {type(value).__name__}"
    return None


def check_shape(data: dict[str, Any]) -> str | None:
    """Why a manifest's JSON does not have the shape this code reads, or ``None``."""
    problem = _shape_error(data, _TOP_FIELDS)
    if problem:
        return problem
    entries = data.get("training_data", [])
    if not isinstance(entries, list):
        return "training_data must be a list"
    for position, entry in enumerate(entries):
        problem = _shape_error(entry, _ENTRY_FIELDS)
        if problem is None and not (isinstance(entry.get("filename"), str) and entry["filename"]):
            problem = "has no filename string"
        if problem:
            return f"training_data[{position}] {problem}"
    bases = data.get("base_images", [])
    if not isinstance(bases, list):
        return "base_images must be a list"
    for position, base in enumerate(bases):
        problem = _shape_error(base, _BASE_FIELDS)
        if problem:
            return f"base_images[{position}] {problem}"
    return None


def parse_manifest(raw: bytes, *, key: str, version: str | None = None) -> Manifest:
    """Parse and check the shape of a manifest; ``CorruptManifestError`` names the key
    and what is wrong. A manifest that fails is never rewritten."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptManifestError(
            f"manifest {key} is not valid JSON ({exc}); left untouched"
        ) from exc
    if not isinstance(data, dict):
        raise CorruptManifestError(f"manifest {key} is not a JSON object; left untouched")
    problem = check_shape(data)
    if problem:
        raise CorruptManifestError(f"manifest {key}: {problem}; left untouched")
    return Manifest(data, version)


def serialize_manifest(manifest: Manifest) -> bytes:
    return (json.dumps(manifest.data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_manifest(store: ObjectStore, actor_id: str) -> Manifest | None:
    """The actor's manifest as stored now, or ``None`` when there is none."""
    key = manifest_key(actor_id)
    try:
        obj = store.get(key)
    except NotFoundError:
        return None
    return parse_manifest(obj.data, key=key, version=obj.info.version)


def require_manifest(store: ObjectStore, actor_id: str) -> Manifest:
    """The actor's manifest; ``NotFoundError`` (one message everywhere) when it has none,
    ``CorruptManifestError`` when it cannot be read."""
    check_actor_id(actor_id)
    manifest = read_manifest(store, actor_id)
    if manifest is None:
        raise NotFoundError(no_manifest(actor_id))
    return manifest


def no_manifest(actor_id: str) -> str:
    """The one message for an actor that has no manifest."""
    return f"actor {actor_id} does not exist (it has no manifest)"


def read_many(
    store: ObjectStore, actor_ids: Sequence[str], *, workers: int = 16
) -> tuple[list[Manifest], dict[str, str]]:
    """Read manifests concurrently, for batch commands: the readable ones in order, and
    actor id → why for each one that is missing or cannot be read (logged as a warning).
    One odd manifest never stops a batch."""

    def one(actor_id: str) -> Manifest | str:
        try:
            return require_manifest(store, actor_id)
        except (CorruptManifestError, NotFoundError, InputError) as exc:
            return str(exc)

    with ThreadPoolExecutor(max(1, min(workers, len(actor_ids)))) as pool:
        found = list(pool.map(one, actor_ids))
    manifests = [m for m in found if isinstance(m, Manifest)]
    skipped = {i: m for i, m in zip(actor_ids, found, strict=True) if isinstance(m, str)}
    for actor_id, why in skipped.items():
        log.warning("skipped actor %s: %s", actor_id, why)
    return manifests, skipped


#: A change function edits the manifest in place and says whether to write it.
Change = Callable[[Manifest], bool]


def update_manifest(
    store: ObjectStore,
    actor_id: str,
    change: Change,
    *,
    create: Callable[[], Manifest] | None = None,
    max_attempts: int = 60,
) -> Manifest:
    """The one write path: read → ``change`` → write-if-unchanged, retried on conflict.

    ``change`` runs on a fresh copy on every attempt, so it must be a pure edit
    of the manifest it is given. With ``create``, a missing manifest starts from
    ``create()`` and is written create-only; without it, a missing manifest is
    ``NotFoundError``. Returns the manifest as written (or as read when
    ``change`` returned ``False``).
    """
    key = manifest_key(actor_id)
    for attempt in range(max_attempts):
        current = read_manifest(store, actor_id)
        if current is None:
            if create is None:
                raise NotFoundError(no_manifest(actor_id))
            manifest = create()
        else:
            manifest = current
        if not change(manifest) and current is not None:
            return manifest
        recompute_statistics(manifest)
        body = serialize_manifest(manifest)
        try:
            if current is None:
                info = store.put_if_absent(key, body, content_type="application/json")
            else:
                assert current.version is not None
                info = store.put_if_version(
                    key, body, current.version, content_type="application/json"
                )
        except PreconditionFailed:
            manifest_conflict()
            delay = min(0.5, 0.005 * (2 ** min(attempt, 7))) * random.uniform(0.5, 1.5)
            log.debug("manifest %s changed underneath us (attempt %d); retrying", key, attempt + 1)
            time.sleep(delay)
            continue
        manifest.version = info.version
        return manifest
    raise ManifestConflictError(
        f"manifest {key} kept changing during {max_attempts} attempts to update it; try again"
    )
