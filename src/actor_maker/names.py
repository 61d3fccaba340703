"""Actor names are unique in a store (invariant 9).

Each name has a create-only marker, ``system_actors/.names/{name}``, holding the id of the
actor that has it (and naming it in its ``actor-id`` metadata): between two concurrent
creates of one name, the store decides. A marker whose actor no longer has the name is
taken over; actors made before markers existed are found by reading the manifests.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from actor_maker.errors import ActorMakerError, NameTakenError, NotFoundError, PreconditionFailed
from actor_maker.layout import ACTOR_ID_FIELD, actor_ids, name_key
from actor_maker.manifest import read_manifest
from actor_maker.store.base import ObjectStore
from actor_maker.validation import is_actor_id

log = logging.getLogger(__name__)

#: A marker whose actor has no manifest yet is a create in progress for this long; older,
#: it is left over from a create that died, and the name is free.
CREATING_S = 60.0


def actor_named(store: ObjectStore, actor_name: str, *, other_than: str = "") -> str | None:
    """The id of an actor of ``store`` named ``actor_name`` (other than ``other_than``),
    or ``None``. Manifests that cannot be read are skipped."""
    ids = [i for i in actor_ids(store) if i != other_than]

    def name_of(actor_id: str) -> str | None:
        try:
            manifest = read_manifest(store, actor_id)
        except ActorMakerError:
            return None
        return manifest.actor_name if manifest else None

    with ThreadPoolExecutor(16) as pool:
        for actor_id, name in zip(ids, pool.map(name_of, ids), strict=True):
            if name == actor_name:
                return actor_id
    return None


def check_name_free(store: ObjectStore, actor_name: str, actor_id: str) -> None:
    """Names are unique in a store: ``NameTakenError`` when another actor has this one.

    The name's create-only marker decides between concurrent creates (one wins, on any
    number of machines); a marker whose actor no longer has the name is taken over. Actors
    made before markers existed have none, so a new marker is checked against them too."""
    key = name_key(actor_name)
    try:
        store.put_if_absent(key, actor_id.encode(), metadata=_owner(actor_id))
    except PreconditionFailed:
        _take_over_marker(store, key, actor_name, actor_id)
        return
    owner = actor_named(store, actor_name, other_than=actor_id)
    if owner is not None:  # an older actor without a marker: the marker becomes its own
        marker = store.get(key)
        with contextlib.suppress(PreconditionFailed):
            store.put_if_version(key, owner.encode(), marker.info.version, metadata=_owner(owner))
        raise NameTakenError(f"actor name {actor_name} is taken by actor {owner}")


def _owner(actor_id: str) -> dict[str, str]:
    return {ACTOR_ID_FIELD: actor_id}


def release_name(store: ObjectStore, actor_name: str, actor_id: str) -> None:
    """The actor is gone: its name's marker goes too (only if it still names this actor)."""
    key = name_key(actor_name)
    with contextlib.suppress(NotFoundError):
        if store.get(key).data.decode(errors="replace") == actor_id:
            store.delete(key)


def _take_over_marker(store: ObjectStore, key: str, actor_name: str, actor_id: str) -> None:
    try:
        marker = store.get(key)
    except NotFoundError:  # removed meanwhile: try again from the start
        check_name_free(store, actor_name, actor_id)
        return
    owner = marker.data.decode(errors="replace")
    if owner == actor_id:
        return
    try:
        current = read_manifest(store, owner) if is_actor_id(owner) else None
    except ActorMakerError:
        current = None
    if current is not None and current.actor_name == actor_name:
        raise NameTakenError(f"actor name {actor_name} is taken by actor {owner}")
    if current is None and time.time() - marker.info.modified < CREATING_S:
        # its actor is being created right now (the marker comes before the manifest)
        raise NameTakenError(f"actor name {actor_name} is taken by actor {owner}")
    try:  # the actor that had it is gone or renamed: the name is free
        store.put_if_version(key, actor_id.encode(), marker.info.version, metadata=_owner(actor_id))
    except PreconditionFailed as exc:
        raise NameTakenError(f"actor name {actor_name} was just taken by another actor") from exc


def restore_name(store: ObjectStore, actor_name: str, actor_id: str) -> None:
    """A deleted actor came back from the trash: its name's marker too, unless another actor
    took the name meanwhile (then both have it, and that is logged)."""
    try:
        check_name_free(store, actor_name, actor_id)
    except NameTakenError as exc:
        log.warning("restored actor %s: %s", actor_id, exc)
