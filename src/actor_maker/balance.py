"""Balance: an actor's usable images per category against a target mix and size.

:func:`report` counts the usable images (:func:`~actor_maker.quality.is_usable`) of each
library category and works out how many each category should have: ``size`` split by the
mix, rounded so the counts add up to ``size`` (largest remainders). :func:`fill_items`
picks the prompts that would make up what is missing. Both are pure: the caller reads the
manifest and runs the items (``actor-maker balance --fill``, ``POST /api/actors/{id}/balance``).

What :func:`fill_items` picks, per category and in library order:

1. prompts no image was made from yet;
2. prompts whose only images were rejected (a near-duplicate, a blurred image): made again;
3. then prompts already used, least used first, again and again as needed.

A prompt made again gets a new prompt id, ``{id}~2``, ``{id}~3``, … (the next one the
manifest does not have), so it is never taken for "already done", and the item has no seed
of its own: the pipeline draws a fresh one per item.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from actor_maker import prompts as prompt_lib
from actor_maker.errors import InputError
from actor_maker.jobs.models import JobItem
from actor_maker.manifest import Manifest
from actor_maker.prompts import CATEGORIES, ScenePrompt
from actor_maker.quality import effective_verdict, is_usable

#: Entries whose category is none of the library's (custom prompts, the old system's images).
OTHER = "other"
DEFAULT_SIZE = 24
DEFAULT_MIX: dict[str, float] = {"photoreal": 0.65, "bw_stylized": 0.20, "color_stylized": 0.15}
DEFAULT_TARGET = "65/20/15"
MAX_SIZE = 1000
#: Between a prompt id and its reuse number: ``photo-rain-platform~2``.
REUSE_SEP = "~"
_TOLERANCE = 0.01  # percentage points the three shares may miss 100 by


def parse_mix(text: str) -> dict[str, float]:
    """``"65/20/15"`` → ``{"photoreal": 0.65, "bw_stylized": 0.2, "color_stylized": 0.15}``.

    Three non-negative numbers, in the order of :data:`CATEGORIES`, adding up to 100.
    """
    parts = [p.strip() for p in str(text).split("/")]
    expected = "/".join(CATEGORIES)
    if len(parts) != len(CATEGORIES):
        raise InputError(
            f"target {text!r}: give {len(CATEGORIES)} percentages as {expected}, e.g. "
            f"{DEFAULT_TARGET}"
        )
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise InputError(
            f"target {text!r}: percentages must be numbers, e.g. {DEFAULT_TARGET}"
        ) from exc
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise InputError(f"target {text!r}: percentages must be zero or more")
    if abs(sum(values) - 100) > _TOLERANCE:
        raise InputError(f"target {text!r}: percentages add up to {sum(values):g}, not 100")
    return {category: value / 100 for category, value in zip(CATEGORIES, values, strict=True)}


def format_mix(mix: dict[str, float]) -> str:
    """The other way round: ``{"photoreal": 0.65, …}`` → ``"65/20/15"``."""
    return "/".join(f"{round(mix.get(c, 0.0) * 100, 4):g}" for c in CATEGORIES)


@dataclass
class Target:
    """How many usable images an actor should have, and how they split by category."""

    size: int = DEFAULT_SIZE
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not 1 <= self.size <= MAX_SIZE:
            raise InputError(f"size {self.size}: give a number of images from 1 to {MAX_SIZE}")
        unknown = sorted(set(self.mix) - set(CATEGORIES))
        if unknown:
            raise InputError(
                f"target: unknown categor(ies) {', '.join(unknown)} "
                f"(expected {', '.join(CATEGORIES)})"
            )
        shares = [self.mix.get(c, 0.0) for c in CATEGORIES]
        if any(not math.isfinite(s) or s < 0 for s in shares) or abs(sum(shares) - 1) > 1e-4:
            raise InputError("target: the shares must be zero or more and add up to 100%")

    def wanted(self) -> dict[str, int]:
        """``size`` split by the mix, rounded by largest remainder: each category gets the
        whole part of its share, and the images left over go one each to the categories with
        the largest fractions (ties in the order of :data:`CATEGORIES`). The counts add up to
        ``size``; 24 at 65/20/15 is 16/5/3."""
        exact = {c: Fraction(self.mix.get(c, 0.0)).limit_denominator(10**6) for c in CATEGORIES}
        total = sum(exact.values(), Fraction(0))
        quotas = {c: exact[c] / total * self.size for c in CATEGORIES}
        counts = {c: math.floor(q) for c, q in quotas.items()}
        left = self.size - sum(counts.values())
        # sorted() is stable: equal remainders keep the order of CATEGORIES
        by_remainder = sorted(CATEGORIES, key=lambda c: counts[c] - quotas[c])
        for category in by_remainder[:left]:
            counts[category] += 1
        return counts


def category_of(entry: dict[str, Any]) -> str:
    category = entry.get("category")
    return category if isinstance(category, str) and category in CATEGORIES else OTHER


def base_prompt_id(prompt_id: str) -> str:
    """``photo-rain-platform~3`` → ``photo-rain-platform`` (ids without a reuse number as is)."""
    base, sep, number = prompt_id.rpartition(REUSE_SEP)
    return base if sep and base and number.isdigit() else prompt_id


@dataclass(frozen=True)
class CategoryCount:
    category: str
    usable: int
    #: Waiting for a person's decision: not usable (yet), not missing either.
    review: int
    rejected: int
    wanted: int

    @property
    def missing(self) -> int:
        return max(0, self.wanted - self.usable)


@dataclass(frozen=True)
class BalanceReport:
    actor_id: str
    target: Target
    #: One row per library category, then :data:`OTHER` (never wanted, never missing).
    rows: tuple[CategoryCount, ...]

    def row(self, category: str) -> CategoryCount:
        return next(r for r in self.rows if r.category == category)

    @property
    def missing(self) -> dict[str, int]:
        return {r.category: r.missing for r in self.rows if r.category != OTHER}

    @property
    def total_usable(self) -> int:
        return sum(r.usable for r in self.rows)

    @property
    def total_missing(self) -> int:
        return sum(self.missing.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "actor_id": self.actor_id,
            "target": format_mix(self.target.mix),
            "mix": {c: self.target.mix.get(c, 0.0) for c in CATEGORIES},
            "size": self.target.size,
            "usable": self.total_usable,
            "missing": self.total_missing,
            "categories": [
                {
                    "category": r.category,
                    "usable": r.usable,
                    "review": r.review,
                    "rejected": r.rejected,
                    "wanted": r.wanted,
                    "missing": r.missing,
                }
                for r in self.rows
            ],
        }


def report(manifest: Manifest, target: Target) -> BalanceReport:
    """Usable, awaiting review and rejected images per category, against ``target``."""
    usable: Counter[str] = Counter()
    review: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for entry in manifest.training_data:
        category = category_of(entry)
        if is_usable(entry):
            usable[category] += 1
        elif entry.get("status") in (None, "synced"):
            verdict = effective_verdict(entry)
            if verdict == "review":
                review[category] += 1
            elif verdict == "rejected":
                rejected[category] += 1
    wanted = target.wanted()
    rows = tuple(
        CategoryCount(c, usable[c], review[c], rejected[c], wanted.get(c, 0))
        for c in (*CATEGORIES, OTHER)
    )
    return BalanceReport(manifest.actor_id, target, rows)


def library_prompts(
    manifest: Manifest, library: Iterable[prompt_lib.PromptTemplate]
) -> list[ScenePrompt]:
    """The library rendered for the actor the manifest describes."""
    return prompt_lib.render_all(
        library,
        actor_type=manifest.actor_type,
        actor_sex=manifest.actor_sex,
        description=manifest.description,
        outfit=manifest.outfit,
    )


def fill_items(
    manifest: Manifest, found: BalanceReport, prompts: Sequence[ScenePrompt]
) -> list[JobItem]:
    """Items that make up each category's missing images (see the module docstring).

    A category the library has no prompt of gets no items: compare the result's length
    with ``found.total_missing``.
    """
    taken = manifest.prompt_ids()
    #: Per library prompt: images that count or may count (usable or awaiting review) …
    kept: Counter[str] = Counter()
    #: … and every image made from it, rejected ones included.
    made: Counter[str] = Counter()
    for entry in manifest.training_data:
        prompt_id = entry.get("prompt_id")
        if not isinstance(prompt_id, str) or not prompt_id:
            continue
        base = base_prompt_id(prompt_id)
        made[base] += 1
        if is_usable(entry, include_review=True):
            kept[base] += 1

    items: list[JobItem] = []
    for category in CATEGORIES:
        pool = [(i, p) for i, p in enumerate(prompts) if p.category == category]
        if not pool:
            continue
        for _ in range(found.missing.get(category, 0)):
            _, prompt = min(pool, key=lambda pair: (kept[pair[1].id], made[pair[1].id], pair[0]))
            prompt_id = prompt.id if made[prompt.id] == 0 and prompt.id not in taken else None
            if prompt_id is None:
                number = 2
                while f"{prompt.id}{REUSE_SEP}{number}" in taken:
                    number += 1
                prompt_id = f"{prompt.id}{REUSE_SEP}{number}"
            taken.add(prompt_id)
            kept[prompt.id] += 1
            made[prompt.id] += 1
            items.append(
                JobItem(
                    prompt_id=prompt_id,
                    prompt=prompt.text,
                    category=prompt.category,
                    face_visible=prompt.face_visible,
                )
            )
    return items
