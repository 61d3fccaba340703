"""One error shape for every failure (problem+json), produced here and nowhere else.

``{"type": ..., "title": ..., "status": ..., "detail": ...}`` plus, for
validation errors, ``errors: [{field, message}]``. Shared code raises our own
exceptions (actor_maker.errors); their ``status`` decides the HTTP status.
A route that must add members to the body (the old frontend's ``success`` and
``error``) raises ``ProblemWithFields``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Send

from actor_maker.errors import ActorMakerError

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


def _slug(title: str) -> str:
    """'Payload too large' → 'payload-too-large' (the ``type`` fragment of every error)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"about:blank#{_slug(title)}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


async def send_problem(
    send: Send,
    status: int,
    title: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """The same body as ``problem``, sent by a pure ASGI middleware (no request object)."""
    body = json.dumps(
        {"type": f"about:blank#{_slug(title)}", "title": title, "status": status, "detail": detail}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TooManyRequests(ActorMakerError):
    """429 with ``Retry-After`` (the sign-in rate limit)."""

    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProblemWithFields(ActorMakerError):
    """An API-edge error whose body carries extra members; its status and ``error_type``
    are those of the failure it reports (usually its ``__cause__``)."""

    def __init__(
        self, message: str, *, status: int, error_type: str, fields: dict[str, Any]
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.fields = fields


def _titled(status: int) -> str:
    return {
        400: "Bad request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        409: "Conflict",
        413: "Payload too large",
        421: "Misdirected request",
        422: "Invalid input",
        429: "Too many requests",
        500: "Internal error",
        501: "Not implemented",
        502: "Upstream failure",
        503: "Unavailable",
    }.get(status, "Error")


def install(app: FastAPI) -> None:
    @app.exception_handler(ActorMakerError)
    async def _ours(request: Request, exc: ActorMakerError) -> JSONResponse:
        if isinstance(exc, ProblemWithFields):
            extra = {**exc.fields, "error_type": exc.error_type}
        else:
            extra = {"error_type": type(exc).__name__}
        response = problem(exc.status, _titled(exc.status), str(exc), **extra)
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "message": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return problem(422, "Invalid input", detail, errors=errors, error_type="ValidationError")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem(exc.status_code, _titled(exc.status_code), str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500, "Internal error", "something went wrong on our side; see the server log"
        )
