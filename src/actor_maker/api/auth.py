"""Bearer-token protection, and the HttpOnly session cookie browsers use instead.

Every route but ``/healthz``, ``/api/session`` and the web UI's pages and static files
(``OPEN_PAGES``, ``OPEN_PREFIXES``: they hold no data) needs ``Authorization: Bearer
<token>`` or the session cookie when ``ACTOR_MAKER_API_TOKEN`` is set. The token is never read
from a query string. ``POST /api/session {"token": ...}`` exchanges it for the
cookie (signed with the token itself, so changing the token ends all sessions).
"""

from __future__ import annotations

import hmac
import json

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "actor_maker_session"
SESSION_DAYS = 7
OPEN_PATHS = frozenset({"/healthz", "/api/session"})
#: The web UI's page shells and assets; their data comes from the protected API.
OPEN_PAGES = frozenset({"/", "/jobs", "/trash"})
OPEN_PREFIXES = ("/actors/", "/static/")


def is_open(path: str) -> bool:
    """Paths served without the token."""
    return path in OPEN_PATHS or path in OPEN_PAGES or path.startswith(OPEN_PREFIXES)


class Sessions:
    def __init__(self, token: str) -> None:
        self._token = token
        self._serializer = URLSafeTimedSerializer(token, salt="actor-maker-session")

    def token_ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token.encode())

    def issue(self) -> str:
        return self._serializer.dumps("session")

    def cookie_ok(self, value: str) -> bool:
        try:
            self._serializer.loads(value, max_age=SESSION_DAYS * 86400)
        except BadSignature:
            return False
        return True


def _cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE:
                    return val
    return None


class TokenMiddleware:
    """Refuses unauthenticated requests with 401 problem+json (pure ASGI: SSE-safe)."""

    def __init__(self, app: ASGIApp, sessions: Sessions | None) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.sessions is None or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        auth = next((v.decode("latin-1") for k, v in headers if k == b"authorization"), "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and self.sessions.token_ok(token.strip()):
            await self.app(scope, receive, send)
            return
        cookie = _cookie(headers)
        if cookie and self.sessions.cookie_ok(cookie):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "type": "about:blank#unauthorized",
                "title": "Unauthorized",
                "status": 401,
                "detail": "send Authorization: Bearer <ACTOR_MAKER_API_TOKEN> or sign in "
                "with POST /api/session",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"www-authenticate", b'Bearer realm="actor-maker"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuses request bodies over the limit (413), whether or not they say their length."""

    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.upload_limit if multipart else self.json_limit
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        seen = 0
        refused = False
        started = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit and not refused:
                    refused = True
                    if not started:
                        await _too_large(send, limit)
                    return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # we answered 413 already; drop the app's own answer
            started = True
            await send(message)

        await self.app(scope, counted, guarded)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "type": "about:blank#payload-too-large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"the request body is larger than {limit} bytes",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
