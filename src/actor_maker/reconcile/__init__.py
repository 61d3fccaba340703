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

import logging

from actor_maker.errors import ActorMakerError, CorruptManifestError, InputError
from actor_maker.layout import actor_ids
from actor_maker.manifest import require_manifest, update_manifest
from actor_maker.reconcile.repair import _change, _plan, _record, _trash_orphans
from actor_maker.reconcile.report import DEFAULT_MIN_AGE, ORPHAN_REASON, Report
from actor_maker.reconcile.survey import _survey
from actor_maker.store.base import ObjectStore
from actor_maker.trash import VIAS
from actor_maker.validation import check_actor_id, check_actor_name

__all__ = ["DEFAULT_MIN_AGE", "ORPHAN_REASON", "Report", "reconcile", "reconcile_all"]

log = logging.getLogger(__name__)


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
