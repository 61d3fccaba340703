"""What a reconcile found and what it left: the report and its findings."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

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
