"""The read-only survey: where each entry's object is, and the objects no entry names."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from actor_maker.errors import InputError
from actor_maker.layout import ACTOR_ID_FIELD, entry_key, training_prefix
from actor_maker.manifest import (
    Entry,
    Manifest,
    recompute_statistics,
)
from actor_maker.reconcile.report import (
    _PLAIN_MD5,
    Duplicate,
    External,
    Mismatch,
    Missing,
    Orphan,
    Report,
    StatisticDrift,
)
from actor_maker.store.base import ObjectInfo, ObjectStore, check_key

# --- where an entry's object is ------------------------------------------------------


def locate(store: ObjectStore, entry: Entry, name: str) -> tuple[str | None, str | None]:
    """``(key, None)`` for an entry of actor ``name`` whose object is in ``store`` under the
    actor's own training prefix; ``(None, why)`` for an external one (``local_only``, no
    ``s3_url``, another bucket) or one that points outside the actor's own prefix."""
    if entry.get("status") == "local_only":
        return None, "local_only"
    key, url = entry.get("key"), entry.get("s3_url")
    if isinstance(key, str) and key:
        try:
            check_key(key)
        except InputError:
            return None, "invalid key"
    elif isinstance(url, str) and url:
        if store.key_for_url(url) is None:
            return None, "another bucket"
    else:
        return None, "no s3_url"
    found = entry_key(store, entry, name)
    return (found, None) if found else (None, "outside the actor's own prefix")


def _plain_md5(version: str) -> str | None:
    return version if _PLAIN_MD5.fullmatch(version) else None


def _canonical(entry: Entry) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str)


def _stat_drift(manifest: Manifest) -> list[StatisticDrift]:
    recorded = manifest.data.get("statistics")
    recorded = recorded if isinstance(recorded, dict) else {}
    probe = manifest.copy()
    recompute_statistics(probe)
    actual = probe.data["statistics"]
    return [
        StatisticDrift(name, recorded.get(name), value)
        for name, value in actual.items()
        if name.startswith("training_") and recorded.get(name) != value
    ]


# --- the survey (read-only) -----------------------------------------------------------


@dataclass
class _Survey:
    report: Report
    prefix: str
    #: Keys of in-store entries whose object exists → what the store says about it.
    objects: dict[str, ObjectInfo]
    #: Keys of in-store entries whose object is gone.
    gone: set[str]
    #: Orphan key → its head (metadata filled in).
    orphan_heads: dict[str, ObjectInfo]


def _survey(store: ObjectStore, manifest: Manifest, actor_id: str, min_age: float) -> _Survey:
    name = manifest.actor_name
    report = Report(actor_id, name)
    prefix = training_prefix(name)
    listed = {info.key: info for info in store.list(prefix)}
    objects: dict[str, ObjectInfo] = {}
    gone: set[str] = set()
    by_name: dict[str, list[tuple[Entry, str | None]]] = {}
    for position, entry in enumerate(manifest.training_data):
        filename = str(entry.get("filename"))
        key, why = locate(store, entry, name)
        by_name.setdefault(filename, []).append((entry, why))
        if key is None:
            report.external.append(
                External(filename, entry.get("status"), entry.get("s3_url"), str(why))
            )
            continue
        info = listed.get(key) or store.head(key)
        if info is None:
            gone.add(key)
            report.missing.append(Missing(filename, key, position, entry.get("status")))
            continue
        objects[key] = info
        report.mismatched.extend(_mismatches(entry, filename, key, position, info))
    for filename, group in by_name.items():
        if len(group) > 1:
            distinct = len({_canonical(e) for e, _ in group})
            external = any(why is not None for _, why in group)
            report.duplicates.append(Duplicate(filename, len(group), distinct, external))
    report.statistics = _stat_drift(manifest)
    claimed = set(objects) | gone
    heads: dict[str, ObjectInfo] = {}
    now = time.time()
    for key in sorted(set(listed) - claimed):
        head = store.head(key)
        if head is None:
            continue  # gone since the listing
        heads[key] = head
        report.orphans.append(_orphan(head, prefix, actor_id, by_name, now, min_age))
    return _Survey(report, prefix, objects, gone, heads)


def _mismatches(
    entry: Entry, filename: str, key: str, position: int, info: ObjectInfo
) -> list[Mismatch]:
    found = []
    if entry.get("size_bytes") != info.size:
        found.append(
            Mismatch(filename, key, position, "size_bytes", entry.get("size_bytes"), info.size)
        )
    md5 = _plain_md5(info.version)
    if md5 is not None and entry.get("md5_hash") != md5:
        found.append(Mismatch(filename, key, position, "md5_hash", entry.get("md5_hash"), md5))
    if entry.get("status") == "missing":
        found.append(Mismatch(filename, key, position, "status", "missing", "synced"))
    return found


def _orphan(
    head: ObjectInfo,
    prefix: str,
    actor_id: str,
    by_name: Mapping[str, list[tuple[Entry, str | None]]],
    now: float,
    min_age: float,
) -> Orphan:
    filename = head.key[len(prefix) :]
    meta = head.metadata
    orphan = Orphan(
        head.key, head.size, adoptable=False, owned=meta.get(ACTOR_ID_FIELD) == actor_id
    )
    if "/" in filename:
        orphan.reason = "not directly under the training prefix"
    elif filename in by_name:
        orphan.claimed = True
        whys = sorted({why or "in this store" for _, why in by_name[filename]})
        orphan.reason = f"its filename is an entry's already ({', '.join(whys)})"
    elif meta.get("actor-id") != actor_id:
        names = f"actor {meta['actor-id']!r}" if meta.get("actor-id") else "no actor"
        orphan.reason = f"its metadata names {names}"
    elif not meta.get("prompt-id") or not (meta.get("job-id") or meta.get("prediction-id")):
        orphan.reason = "its metadata has no prompt-id and job-id/prediction-id"
    else:
        orphan.adoptable = True
    age = now - head.modified
    if age < min_age:
        orphan.recent = True
        orphan.reason = (
            f"stored {max(age, 0):.0f} s ago: its manifest update may still be in flight"
            + (f"; {orphan.reason}" if orphan.reason else "")
        )
    return orphan
