"""``api/sse.py``: what the job and the training event streams share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from actor_maker.api import sse

EVENTS: list[sse.Event] = [(1, "a", {}), (2, "b", {"x": 1}), (3, "end", None), (4, "late", None)]


async def newer(after: int) -> list[sse.Event]:
    return [e for e in EVENTS if e[0] > after]


def connected_for(polls: int) -> Callable[[], Any]:
    """A client that goes away after ``polls`` looks."""
    left = [polls]

    async def disconnected() -> bool:
        left[0] -= 1
        return left[0] < 0

    return disconnected


def collect(**kwargs: Any) -> list[dict[str, str]]:
    async def run() -> list[dict[str, str]]:
        return [e async for e in sse.follow(kwargs.pop("disconnected"), newer, **kwargs)]

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, 7), ("3", 3), (" 4 ", 4), ("0", 0), ("abc", 0), ("-1", 0), ("²", 0), ("9" * 19, 0)],
)
def test_resume_after_is_never_an_error(header: str | None, expected: int) -> None:
    assert sse.resume_after(header, 7) == expected


def test_events_after_the_start_up_to_the_final_one() -> None:
    sent = collect(disconnected=connected_for(10), after=1, final={"end"})
    assert sent == [
        {"event": "b", "data": '{"x": 1}', "id": "2"},
        {"event": "end", "data": "null", "id": "3"},
    ]


def test_a_finished_source_ends_the_stream_after_its_last_events() -> None:
    sent = collect(disconnected=connected_for(10), after=2, final=(), done=lambda: True)
    assert [e["event"] for e in sent] == ["end", "late"]


def test_a_client_that_went_away_ends_the_stream() -> None:
    assert collect(disconnected=connected_for(0), after=0, final={"end"}) == []
    sent = collect(disconnected=connected_for(2), after=4, final={"end"})  # nothing new
    assert sent == []
