"""Health, metrics and browser sessions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from actor_maker.api.auth import COOKIE, SESSION_DAYS
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.errors import ActorMakerError

router = APIRouter(tags=["meta"])


class Unauthorized(ActorMakerError):
    status = 401


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: always open, even with a token configured."""
    return {"status": "ok"}


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class SessionRequest(BaseModel):
    token: str


@router.post("/api/session", status_code=204)
def sign_in(body: SessionRequest, request: Request, services: ServicesDep) -> Response:
    """Exchange the API token for an HttpOnly session cookie (for browsers)."""
    response = Response(status_code=204)
    sessions = services.sessions
    if sessions is None:
        return response  # no token configured: nothing to sign in to
    if not sessions.token_ok(body.token):
        raise Unauthorized("that is not the API token")
    response.set_cookie(
        COOKIE,
        sessions.issue(),
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.delete("/api/session", status_code=204)
def sign_out() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response
