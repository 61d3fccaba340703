"""Helpers every part of the stand-in shares: ids, timestamps, problem and page bodies,
``Prefer``, and attributes read from a part."""

from __future__ import annotations

import math
import operator
import secrets
import string
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast, overload

OUTPUT_FORMATS = ("jpg", "png")
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
MAX_WAIT_S = 60.0
#: How long a prediction stays ``starting`` at most before it is ``processing``.
START_DELAY_S = 0.05
FILE_TTL = timedelta(hours=24)
_ID_ALPHABET = string.ascii_lowercase + string.digits
T = TypeVar("T")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "detail": detail, "status": status, **extra}


def parse_prefer_wait(header: str | None) -> float | None:
    """Seconds to wait from a ``Prefer`` header, or ``None`` when no wait was asked for.

    ``wait`` means 60 s; ``wait=N`` means N seconds, clamped to (0, 60]. Other preferences
    are ignored, as RFC 7240 asks.
    """
    if not header:
        return None
    for token in header.split(","):
        name, _, value = token.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value:
            return MAX_WAIT_S
        try:
            seconds = float(value)
        except ValueError:
            return MAX_WAIT_S
        if not math.isfinite(seconds) or seconds <= 0:
            return MAX_WAIT_S
        return min(seconds, MAX_WAIT_S)
    return None


def page(results: list[Any]) -> dict[str, Any]:
    """A list answer as Replicate pages it (here always one page)."""
    return {"next": None, "previous": None, "results": results}


class Delegated(Generic[T]):
    """A read-only attribute read from a part of the object, by a dotted ``path``.

    The stand-in shows as its own the counters its parts keep, e.g.
    ``throttled: Delegated[int] = Delegated("_counter.throttled")``.
    """

    def __init__(self, path: str) -> None:
        self._read = operator.attrgetter(path)

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Delegated[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> Delegated[T] | T:
        return self if obj is None else cast(T, self._read(obj))
