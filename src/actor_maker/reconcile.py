"""Reconcile: prove that an actor's manifest and the store agree, and repair what is safe.

``reconcile`` surveys one actor (read-only) and reports each kind of drift:

- **orphans**: objects under the actor's training prefix that no entry names; an orphan is
  *adoptable* when its own metadata (written by the pipeline before the manifest update)
  names this actor, a prompt id and a job or prediction id; it is *owned* when its
  metadata names this actor's id;
- **missing**: entries that point into this store whose object is gone;
- **mismatched**: entries whose ``size_bytes`` / ``md5_hash`` disagree with the object
  (md5 only where the object's version is a plain md5: S3 multipart ETags are skipped),
  or that are marked ``missing`` while their object is back;
- **duplicates**: filenames that appear in more than one entry;
- **statistics**: owned ``training_*`` statistics that disagree with the entries.

Entries that point into another bucket, or have no ``s3_url`` (the old system's
``local_only``), are listed as **external** and never touched.

With ``fix`` one ``update_manifest`` change adopts adoptable orphans, marks entries
whose object is missing ``status: "missing"`` (entries are never deleted), corrects
size/md5 from the object, drops exact duplicate entries and (by writing) recomputes the
statistics. Objects are never deleted: with ``delete_orphans`` the owned orphans that
cannot be adopted are moved to the trash (reason ``orphan``), from where ``trash restore``
brings them back. Orphans whose metadata names another actor or no actor (an actor that
reuses a name, an upload by hand) are reported and never moved: a name prefix alone never
selects an object for deletion. Orphans younger than ``min_age`` seconds may be uploads whose
manifest update is still in flight: they are reported and left alone.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from actor_maker.errors import ActorMakerError, CorruptManifestError, InputError
from actor_maker.images import md5_hex
from actor_maker.layout import ACTOR_ID_FIELD, actor_ids, entry_key, training_prefix
from actor_maker.manifest import (
    Change,
    Entry,
    Manifest,
    recompute_statistics,
    require_manifest,
    update_manifest,
    utc_now,
)
from actor_maker.store.base import ObjectInfo, ObjectStore, check_key
from actor_maker.trash import VIAS, move_to_trash
from actor_maker.validation import check_actor_id, check_actor_name

log = logging.getLogger(__name__)

#: Orphans younger than this (seconds) may be uploads whose manifest update is in flight.
DEFAULT_MIN_AGE = 60.0
#: The trash reason of orphans moved by ``delete_orphans``.
ORPHAN_REASON = "orphan"

_PLAIN_MD5 = re.compile(r"[0-9a-f]{32}")


# --- the report ----------------------------------------------------------------------


@dataclass
class Orphan:
    key: str
    size: int
    adoptable: bool
    #: Why it cannot be adopted (or why it was left alone), else ``None``.
    reason: str | None = None
    #: Stored less than ``min_age`` ago: reported, never adopted or moved.
    recent: bool = False
    #: Its filename is an entry's already (e.g. a ``local_only`` one): never moved.
    claimed: bool = False
    #: Its metadata names this actor: the only orphans ``delete_orphans`` may move.
    owned: bool = False
    action: str | None = None


@dataclass
class Missing:
    filename: str
    key: str
    position: int
    status: str | None
    action: str | None = None


@dataclass
class Mismatch:
    filename: str
    key: str
    position: int
    field: str
    recorded: Any
    actual: Any
    action: str | None = None


@dataclass
class Duplicate:
    filename: str
    count: int
    #: How many different entries carry the filename (1: exact copies only).
    distinct: int
    external: bool = False
    action: str | None = None

    @property
    def identical(self) -> bool:
        return self.distinct == 1


@dataclass
class External:
    filename: str
    status: str | None
    s3_url: str | None
    reason: str


@dataclass
class StatisticDrift:
    name: str
    recorded: Any
    actual: Any
    action: str | None = None


@dataclass
class Report:
    actor_id: str
    actor_name: str
    orphans: list[Orphan] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    mismatched: list[Mismatch] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    statistics: list[StatisticDrift] = field(default_factory=list)
    external: list[External] = field(default_factory=list)
    #: What ``fix`` did, one line each.
    fixed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """Nothing drifted (external entries are not drift)."""
        return not any(self.found().values()) and not self.errors

    def found(self) -> dict[str, int]:
        return {
            "orphans": len(self.orphans),
            "missing": len(self.missing),
            "mismatched": len(self.mismatched),
            "duplicates": len(self.duplicates),
            "statistics": len(self.statistics),
        }

    def left(self) -> dict[str, int]:
        """Drift still there after this run: missing objects stay missing even when marked,
        and duplicates whose entries differ stay until a person picks one."""
        return {
            "orphans": sum(1 for o in self.orphans if o.action is None),
            "missing": len(self.missing),
            "mismatched": sum(1 for m in self.mismatched if m.action is None),
            "duplicates": sum(1 for d in self.duplicates if d.distinct > 1 or d.action is None),
            "statistics": sum(1 for s in self.statistics if s.action is None),
        }

    @property
    def ok(self) -> bool:
        """Consistent, or everything found was fixed."""
        return not any(self.left().values()) and not self.errors

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for item, dup in zip(data["duplicates"], self.duplicates, strict=True):
            item["identical"] = dup.identical
        data.update(consistent=self.consistent, ok=self.ok, found=self.found(), left=self.left())
        return data


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


# --- entry points ---------------------------------------------------------------------


def _check_options(fix: bool, delete_orphans: bool, via: str, min_age: float) -> None:
    if delete_orphans and not fix:
        raise InputError("--delete-orphans needs --fix")
    if via not in VIAS:
        raise InputError(f"unknown via {via!r}; one of {', '.join(VIAS)}")
    if min_age < 0:
        raise InputError("--min-age must not be negative")


def reconcile(
    store: ObjectStore,
    actor_id: str,
    *,
    fix: bool = False,
    delete_orphans: bool = False,
    via: str = "cli",
    min_age: float = DEFAULT_MIN_AGE,
) -> Report:
    """Compare one actor's manifest with the store; with ``fix``, repair what is safe.

    Without ``fix`` nothing is written. ``NotFoundError`` when the actor has no
    manifest, ``CorruptManifestError`` when it is not valid (left untouched).
    """
    _check_options(fix, delete_orphans, via, min_age)
    check_actor_id(actor_id)
    manifest = require_manifest(store, actor_id)
    try:
        check_actor_name(manifest.actor_name)
    except InputError as exc:
        raise CorruptManifestError(f"manifest of actor {actor_id}: {exc}; left untouched") from exc
    survey = _survey(store, manifest, actor_id, min_age)
    report = survey.report
    if not fix:
        return report
    plan = _plan(store, survey, via)
    written = update_manifest(store, actor_id, _change(store, plan))
    _record(report, plan)
    if delete_orphans:
        _trash_orphans(store, report, written, via)
    if report.fixed:
        log.info("reconciled actor %s: %s", actor_id, "; ".join(report.fixed))
    return report


def reconcile_all(
    store: ObjectStore,
    *,
    fix: bool = False,
    delete_orphans: bool = False,
    via: str = "cli",
    min_age: float = DEFAULT_MIN_AGE,
) -> list[Report]:
    """``reconcile`` every actor; an actor that cannot be reconciled (a corrupt
    manifest, an invalid id) gets a report with the error and the others go on."""
    _check_options(fix, delete_orphans, via, min_age)
    reports = []
    for actor_id in actor_ids(store):
        try:
            reports.append(
                reconcile(
                    store,
                    actor_id,
                    fix=fix,
                    delete_orphans=delete_orphans,
                    via=via,
                    min_age=min_age,
                )
            )
        except ActorMakerError as exc:
            reports.append(Report(actor_id, "", errors=[str(exc)]))
    return reports
