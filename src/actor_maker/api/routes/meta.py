"""Health, metrics and browser sessions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from actor_maker.api.auth import COOKIE, client_address
from actor_maker.api.errors import TooManyRequests
from actor_maker.api.routes.deps import ServicesDep
from actor_maker.api.sessions import SESSION_DAYS
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
async def sign_in(body: SessionRequest, request: Request, services: ServicesDep) -> Response:
    """Exchange the API token for an HttpOnly session cookie (for browsers).

    At most 10 wrong tokens a minute per client address (bearer tokens included); then 429
    with ``Retry-After``."""
    response = Response(status_code=204)
    sessions = services.sessions
    if sessions is None:
        return response  # no token configured: nothing to sign in to
    client = client_address(request.scope)
    wait = sessions.limiter.retry_after(client)
    if wait is not None:
        raise TooManyRequests(
            f"too many wrong tokens from {client}; try again in {wait} s", retry_after=wait
        )
    if not sessions.token_ok(body.token):
        sessions.limiter.failed(client)
        raise Unauthorized("that is not the API token")
    response.set_cookie(
        COOKIE,
        await sessions.issue(),
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


@router.post("/api/sessions/revoke", status_code=204)
async def revoke_sessions(services: ServicesDep) -> Response:
    """End every browser session (rotates the cookie key's salt in the store). Servers
    sharing the store stop accepting old cookies within seconds; the token still works."""
    if services.sessions is not None:
        await services.sessions.revoke_all()
    return Response(status_code=204)
