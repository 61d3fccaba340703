"""Server-Sent Events: what the job and the training event streams share.

A stream starts after an event sequence number (``Last-Event-ID``, see
:func:`resume_after`), polls its source for newer events, sends each with its number as
the event id (so a reconnecting browser resumes where it was) and ends after a final event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any

from sse_starlette.sse import EventSourceResponse

#: Seconds between two looks at an event source.
POLL_S = 0.25
#: Seconds between keep-alive comments on an idle stream.
PING_S = 15

#: The keyword arguments of an event-stream route (its OpenAPI entry names the media type).
ROUTE: dict[str, Any] = {
    "response_class": EventSourceResponse,
    "responses": {200: {"content": {"text/event-stream": {}}}},
}

#: (sequence number, event name, data), oldest first.
Event = tuple[int, str, Any]


def event(name: str, data: Any, seq: int | None = None) -> dict[str, str]:
    """One event as ``EventSourceResponse`` sends it (data as JSON)."""
    sent = {"event": name, "data": json.dumps(data, default=str)}
    if seq is not None:
        sent["id"] = str(seq)
    return sent


def resume_after(header: str | None, latest: int) -> int:
    """The event sequence number a stream starts after: without ``Last-Event-ID``, ``latest``;
    with a valid one, that number; with a malformed one ("abc", "-1", "²", 5,000 digits), 0:
    the whole stream again, never an error."""
    if header is None:
        return latest
    value = header.strip()
    if value and len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return 0


async def follow(
    disconnected: Callable[[], Awaitable[bool]],
    newer: Callable[[int], Awaitable[Sequence[Event]]],
    *,
    after: int,
    final: Collection[str],
    done: Callable[[], bool] = lambda: False,
) -> AsyncIterator[dict[str, str]]:
    """The events ``newer(seq)`` gives after ``after``, polled until one named in ``final``
    is sent, the source is ``done`` (its last events sent) or the client has gone
    (``disconnected``: the request's ``is_disconnected``)."""
    while not await disconnected():
        finished = done()  # read before the events, so the last ones are not missed
        for seq, name, data in await newer(after):
            after = seq
            yield event(name, data, seq)
            if name in final:
                return
        if finished:
            return
        await asyncio.sleep(POLL_S)


def respond(events: AsyncIterator[dict[str, str]]) -> EventSourceResponse:
    """The streaming response, with keep-alive pings."""
    return EventSourceResponse(events, ping=PING_S)
