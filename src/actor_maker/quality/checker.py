"""Running the checks for the pipeline and for re-checks on demand.

``QualityChecker.check`` runs the per-image checks (technical, identity) in the
calling thread; the near-duplicate decision is separate (``decide_duplicates``)
because it must see the manifest as it is at the moment of the update.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from actor_maker.quality import PREVIEW_REASON, CheckResult, effective_verdict
from actor_maker.quality.duplicates import duplicate_check
from actor_maker.quality.technical import technical_check

#: Actor types whose face is compared with the base image's.
FACE_TYPES = ("person", "human")
STYLIZED = ("bw_stylized", "color_stylized")


class QualityChecker:
    def __init__(self, *, identity: bool = True, identity_threshold: float | None = None) -> None:
        self._identity: Any = None
        self._identity_wanted = identity
        self.identity_threshold = identity_threshold
        if identity:
            from actor_maker.quality.identity import (
                DEFAULT_THRESHOLD,
                FaceIdentity,
                identity_available,
            )

            if identity_available():
                self._identity = FaceIdentity()
                if self.identity_threshold is None:
                    self.identity_threshold = DEFAULT_THRESHOLD
        self._bases: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def identity_enabled(self) -> bool:
        return self._identity is not None

    def _base_embedding(self, base: bytes) -> Any:
        digest = hashlib.sha256(base).hexdigest()
        with self._lock:
            if digest in self._bases:
                return self._bases[digest]
        embedding = self._identity.embed(base)
        with self._lock:
            self._bases[digest] = embedding
            while len(self._bases) > 64:
                self._bases.popitem(last=False)
        return embedding

    def check(
        self,
        data: bytes,
        *,
        base: bytes | None,
        actor_type: str,
        face_visible: bool,
        category: str | None,
        placeholder: bool = False,
    ) -> CheckResult:
        """Technical checks, then identity for people (skipped when the image is unusable).
        The preview provider's placeholders are rejected: they are never training data."""
        result = technical_check(data)
        if placeholder:
            result.rejections.append(PREVIEW_REASON)
            result.scores["identity"] = "skipped (preview placeholder)"
            return result
        if (
            result.rejections
            or self._identity is None
            or actor_type not in FACE_TYPES
            or base is None
        ):
            if self._identity is None and actor_type in FACE_TYPES:
                result.scores["identity"] = (
                    "not checked (pip install 'actor-maker[quality]')"
                    if self._identity_wanted
                    else "not checked (turned off)"
                )
            return result
        identity = self._identity.check(
            self._base_embedding(base),
            data,
            face_visible=face_visible,
            stylized=category in STYLIZED or category is None,
            threshold=self.identity_threshold,
        )
        return result.merge(identity)


def accepted_hashes(entries: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(filename, pHash) of the entries that count as accepted training images."""
    found = []
    for entry in entries:
        quality = entry.get("quality")
        if effective_verdict(entry) != "accepted" or not isinstance(quality, dict):
            continue
        phash = (quality.get("scores") or {}).get("phash")
        if phash:
            found.append((str(entry["filename"]), str(phash)))
    return found


def decide_duplicate(entry: dict[str, Any], existing: Iterable[dict[str, Any]]) -> None:
    """Reject ``entry`` in place when it nearly copies an accepted one of ``existing``.

    Called inside the one manifest update, so the comparison is against the manifest as
    it is at that moment: of two near-copies finishing together, only one is accepted.
    """
    quality = entry.get("quality")
    if not isinstance(quality, dict) or effective_verdict(entry) != "accepted":
        return
    phash = (quality.get("scores") or {}).get("phash")
    if not phash:
        return
    others = [(f, h) for f, h in accepted_hashes(existing) if f != entry.get("filename")]
    verdict = duplicate_check(str(phash), others)
    if verdict.rejections:
        quality["verdict"] = "rejected"
        quality["reasons"] = [*quality.get("reasons", []), *verdict.rejections]
        quality.setdefault("scores", {}).update(verdict.scores)
