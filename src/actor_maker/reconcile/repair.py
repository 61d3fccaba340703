"""The safe fixes: adopt orphans, repair entries, drop duplicate copies, trash orphans."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime

from actor_maker.errors import ActorMakerError
from actor_maker.images import md5_hex
from actor_maker.manifest import (
    Change,
    Entry,
    Manifest,
    utc_now,
)
from actor_maker.reconcile.report import ORPHAN_REASON, Report
from actor_maker.reconcile.survey import _canonical, _plain_md5, _stat_drift, _Survey, locate
from actor_maker.store.base import ObjectInfo, ObjectStore
from actor_maker.trash import move_to_trash

# --- repairs ------------------------------------------------------------------------------


def _iso(timestamp: float, *, legacy: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.replace(tzinfo=None).isoformat() if legacy else moment.isoformat()


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def adopted_entry(store: ObjectStore, head: ObjectInfo, data: bytes, via: str) -> Entry:
    """The entry of an orphan, rebuilt from its metadata, its head and its bytes."""
    meta = head.metadata
    size = len(data)
    return {
        "filename": head.key.rsplit("/", 1)[-1],
        "s3_url": store.public_url(head.key),
        "key": head.key,
        "md5_hash": md5_hex(data),
        "size_bytes": size,
        "size_mb": round(size / (1024 * 1024), 2),
        "modified_timestamp": head.modified,
        "modified_date": _iso(head.modified, legacy=True),
        "status": "synced",
        "prompt": None,  # only its hash is on the object
        "prompt_id": meta.get("prompt-id"),
        "category": meta.get("category") or None,
        "aspect_ratio": meta.get("aspect-ratio") or None,
        "generation": {
            "provider": meta.get("provider") or None,
            "model": meta.get("model") or None,
            "seed": _int_or_none(meta.get("seed")),
            "prediction_id": meta.get("prediction-id") or None,
            "job_id": meta.get("job-id") or None,
            "prompt_sha256": meta.get("prompt-sha256") or None,
        },
        "good": False,
        "quality": None,
        "caption": None,
        "created_at": _iso(head.modified),
        "adopted_at": utc_now(),
        "adopted_via": via,
    }


@dataclass
class _Plan:
    """What the one manifest change applies; decided before it, re-checked inside it."""

    adopt: dict[str, Entry]
    gone: set[str]
    #: key → (size, md5) of objects whose entries disagree with them.
    facts: dict[str, tuple[int, str]]
    actions: list[str] = field(default_factory=list)
    adopted: set[str] = field(default_factory=set)
    corrected: set[tuple[str, str]] = field(default_factory=set)
    marked: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)
    stats: bool = False


def _plan(store: ObjectStore, survey: _Survey, via: str) -> _Plan:
    report = survey.report
    adopt: dict[str, Entry] = {}
    for orphan in report.orphans:
        if orphan.adoptable and not orphan.recent:
            try:
                data = store.get(orphan.key).data
            except ActorMakerError as exc:
                report.errors.append(f"could not read orphan {orphan.key}: {exc}")
                continue
            adopt[orphan.key] = adopted_entry(store, survey.orphan_heads[orphan.key], data, via)
    facts: dict[str, tuple[int, str]] = {}
    for mismatch in report.mismatched:
        if mismatch.key in facts:
            continue
        info = survey.objects[mismatch.key]
        md5 = _plain_md5(info.version)
        if md5 is None:  # a multipart ETag: the md5 comes from the bytes
            try:
                md5 = md5_hex(store.get(mismatch.key).data)
            except ActorMakerError as exc:
                report.errors.append(f"could not read {mismatch.key}: {exc}")
                continue
        facts[mismatch.key] = (info.size, md5)
    return _Plan(adopt, set(survey.gone), facts)


def _change(store: ObjectStore, plan: _Plan) -> Change:
    def change(manifest: Manifest) -> bool:
        plan.actions = []
        plan.adopted, plan.corrected, plan.marked, plan.dropped = set(), set(), set(), set()
        plan.stats = False
        _drop_copies(store, manifest, plan)
        for entry in manifest.training_data:
            _repair_entry(store, entry, manifest.actor_name, plan)
        _adopt(store, manifest, plan)
        if _stat_drift(manifest):
            plan.stats = True
            plan.actions.append("recomputed the training statistics")
        return bool(plan.actions)

    return change


def _drop_copies(store: ObjectStore, manifest: Manifest, plan: _Plan) -> None:
    """Drop entries that repeat an earlier in-store entry exactly; external ones stay."""
    seen: set[str] = set()
    kept: list[Entry] = []
    for entry in manifest.training_data:
        canonical = _canonical(entry)
        if locate(store, entry, manifest.actor_name)[0] is not None and canonical in seen:
            filename = str(entry.get("filename"))
            plan.dropped.add(filename)
            plan.actions.append(f"dropped an exact duplicate entry of {filename}")
            continue
        seen.add(canonical)
        kept.append(entry)
    manifest.data["training_data"] = kept


def _repair_entry(store: ObjectStore, entry: Entry, name: str, plan: _Plan) -> None:
    key = locate(store, entry, name)[0]
    if key is None:
        return
    filename = str(entry.get("filename"))
    if key in plan.gone:
        if entry.get("status") != "missing":
            entry["status"] = "missing"
            entry["missing_since"] = utc_now()
            plan.marked.add(key)
            plan.actions.append(f"marked {filename} missing (its object {key} is gone)")
        return
    if key not in plan.facts:
        return
    size, md5 = plan.facts[key]
    if entry.get("size_bytes") != size:
        plan.actions.append(f"size_bytes of {filename}: {entry.get('size_bytes')} → {size}")
        entry["size_bytes"] = size
        entry["size_mb"] = round(size / (1024 * 1024), 2)
        plan.corrected.add((key, "size_bytes"))
    if entry.get("md5_hash") != md5:
        plan.actions.append(f"md5_hash of {filename}: {entry.get('md5_hash')} → {md5}")
        entry["md5_hash"] = md5
        plan.corrected.add((key, "md5_hash"))
    if entry.get("status") == "missing":
        entry["status"] = "synced"
        entry.pop("missing_since", None)
        plan.corrected.add((key, "status"))
        plan.actions.append(f"{filename} is back in the store: status missing → synced")


def _adopt(store: ObjectStore, manifest: Manifest, plan: _Plan) -> None:
    claimed = {locate(store, e, manifest.actor_name)[0] for e in manifest.training_data}
    for key, entry in plan.adopt.items():
        if key not in claimed and manifest.add_entry(copy.deepcopy(entry)):
            plan.adopted.add(key)
            plan.actions.append(f"adopted {key} as {entry['filename']}")


def _record(report: Report, plan: _Plan) -> None:
    """Mark the report's items with what the written change did."""
    report.fixed.extend(plan.actions)
    for orphan in report.orphans:
        if orphan.key in plan.adopted:
            orphan.action = "adopted"
    for missing in report.missing:
        if missing.key in plan.marked:
            missing.action = "marked missing"
    for mismatch in report.mismatched:
        if (mismatch.key, mismatch.field) in plan.corrected:
            mismatch.action = "corrected"
    for dup in report.duplicates:
        if dup.filename in plan.dropped:
            dup.action = "dropped exact copies"
    if plan.stats or plan.actions:  # any write recomputes them
        for stat in report.statistics:
            stat.action = "recomputed"


def _trash_orphans(store: ObjectStore, report: Report, written: Manifest, via: str) -> None:
    """Move the orphans nobody can account for to the trash, in one trash folder."""
    still_claimed = {locate(store, e, written.actor_name)[0] for e in written.training_data}
    names = {str(e.get("filename")) for e in written.training_data}
    victims = [
        o
        for o in report.orphans
        if o.action is None
        and o.owned  # by the object's own metadata, never by its name prefix alone
        and not (o.adoptable or o.recent or o.claimed)
        and o.key not in still_claimed
        and o.key.rsplit("/", 1)[-1] not in names
    ]
    if not victims:
        return
    try:
        record = move_to_trash(
            store,
            keys=[o.key for o in victims],
            actor_id=report.actor_id,
            actor_name=report.actor_name,
            reason=ORPHAN_REASON,
            via=via,
        )
    except ActorMakerError as exc:
        report.errors.append(f"could not move orphans to the trash: {exc}")
        return
    moved = {str(o["key"]) for o in record.objects}
    for orphan in victims:
        if orphan.key in moved and store.head(orphan.key) is None:
            orphan.action = f"moved to the trash ({record.trash_id})"
            report.fixed.append(f"moved orphan {orphan.key} to the trash ({record.trash_id})")
