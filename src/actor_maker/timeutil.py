"""Timestamps as the manifests and provenance records write them."""

from __future__ import annotations

from datetime import UTC, datetime


def legacy_now() -> str:
    """Timestamps in the legacy fields' format: ISO 8601, UTC, no offset."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


def utc_now() -> str:
    """Timestamps of new fields: ISO 8601 with offset."""
    return datetime.now(UTC).isoformat()
