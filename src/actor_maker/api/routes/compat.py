"""The old frontend's routes (same paths, bodies and response shapes)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["old frontend"])
