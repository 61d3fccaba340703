"""Quality checks: every generated image is checked before its entry counts.

* technical.py — decodes, size, blank/uniform, exposure, sharpness, and the pHash.
* duplicates.py — near-duplicates by pHash distance against the actor's accepted images,
  decided inside the one manifest update so two near-copies cannot both be accepted.
* identity.py — the face compared with the base image's (optional ``[quality]`` extra).

A check result becomes the entry's ``quality`` object:
``{verdict: accepted | rejected | review, reasons: [...], scores: {...}, checked_at}``,
plus ``override: {verdict, at, via}`` when a person decided otherwise.

Images of the ``preview`` provider (offline placeholders, stamped "PREVIEW - not training
data") are never training data: the checks reject them with the reason
:data:`PREVIEW_REASON`, and :func:`effective_verdict` says ``rejected`` for them whatever is
stored (older manifests, a person's override), so every count, balance and export agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Verdict = Literal["accepted", "rejected", "review"]
VERDICTS: tuple[Verdict, ...] = ("accepted", "rejected", "review")
#: The provider whose images are placeholders, and the reason they are rejected.
PREVIEW_PROVIDER = "preview"
PREVIEW_REASON = "preview placeholder"


@dataclass
class CheckResult:
    """What the checks found; ``verdict`` follows from the reasons."""

    rejections: list[str] = field(default_factory=list)
    #: Reasons that need a person's eye but are not grounds to reject.
    doubts: list[str] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        if self.rejections:
            return "rejected"
        return "review" if self.doubts else "accepted"

    def merge(self, other: CheckResult) -> CheckResult:
        return CheckResult(
            self.rejections + other.rejections,
            self.doubts + other.doubts,
            {**self.scores, **other.scores},
        )

    def record(self, checked_at: str | None = None) -> dict[str, Any]:
        """The entry's ``quality`` object."""
        return {
            "verdict": self.verdict,
            "reasons": self.rejections + self.doubts,
            "scores": self.scores,
            "checked_at": checked_at or datetime.now(UTC).isoformat(),
        }


def is_preview(entry: dict[str, Any]) -> bool:
    """Whether the entry's image is a preview placeholder (``generation.provider``)."""
    generation = entry.get("generation")
    return isinstance(generation, dict) and generation.get("provider") == PREVIEW_PROVIDER


def effective_verdict(entry: dict[str, Any]) -> Verdict | None:
    """A person's override if any, else the checks' verdict; ``None`` when never checked.
    Always ``rejected`` for a preview placeholder."""
    if is_preview(entry):
        return "rejected"
    quality = entry.get("quality")
    if not isinstance(quality, dict):
        return None
    override = quality.get("override")
    if isinstance(override, dict) and override.get("verdict") in VERDICTS:
        return override["verdict"]  # type: ignore[no-any-return]
    verdict = quality.get("verdict")
    return verdict if verdict in VERDICTS else None


def is_usable(entry: dict[str, Any], *, include_review: bool = False) -> bool:
    """Training data: stored, and accepted (or approved); never-checked legacy entries count.
    Never a preview placeholder."""
    if entry.get("status") not in (None, "synced"):
        return False
    verdict = effective_verdict(entry)
    return verdict in (None, "accepted") or (include_review and verdict == "review")
