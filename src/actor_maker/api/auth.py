"""Bearer-token protection, and the HttpOnly session cookie browsers use instead.

Every route but ``/healthz``, ``/api/session`` and the web UI's pages and static files
(``OPEN_PAGES``, ``OPEN_PREFIXES``: they hold no data) needs ``Authorization: Bearer
<token>`` or the session cookie when ``ACTOR_MAKER_API_TOKEN`` is set. The token is never read
from a query string. ``POST /api/session {"token": ...}`` exchanges it for the cookie
(signed with a key of its own: see ``api.sessions``). Wrong tokens count towards the
per-address rate limit, whether sent as a bearer token or to sign in; a limited address gets
429 for every token it sends until the window passes (a valid cookie still works).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actor_maker.api.errors import send_problem
from actor_maker.api.sessions import Sessions

COOKIE = "actor_maker_session"
#: ``/api/webhooks/replicate`` carries no token: it is verified by its signature.
OPEN_PATHS = frozenset({"/healthz", "/api/session", "/api/webhooks/replicate"})
#: The web UI's page shells and assets; their data comes from the protected API.
OPEN_PAGES = frozenset({"/", "/jobs", "/trash"})
OPEN_PREFIXES = ("/actors/", "/static/")


def is_open(path: str) -> bool:
    """Paths served without the token."""
    return path in OPEN_PATHS or path in OPEN_PAGES or path.startswith(OPEN_PREFIXES)


def is_page(path: str) -> bool:
    """The web UI's HTML pages."""
    return path in OPEN_PAGES or path.startswith("/actors/")


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


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
        cookie = _cookie(headers)
        if cookie and await self.sessions.cookie_ok(cookie):
            await self.app(scope, receive, send)
            return
        auth = next((v.decode("latin-1") for k, v in headers if k == b"authorization"), "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer":
            client = client_address(scope)
            limiter = self.sessions.limiter
            wait = limiter.retry_after(client)
            if wait is not None:
                await send_problem(
                    send,
                    429,
                    "Too many requests",
                    f"too many wrong tokens from {client}; try again in {wait} s",
                    [(b"retry-after", str(wait).encode())],
                )
                return
            if self.sessions.token_ok(token.strip()):
                await self.app(scope, receive, send)
                return
            limiter.failed(client)
        await send_problem(
            send,
            401,
            "Unauthorized",
            "send Authorization: Bearer <ACTOR_MAKER_API_TOKEN> or sign in with POST /api/session",
            [(b"www-authenticate", b'Bearer realm="actor-maker"')],
        )


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
    await send_problem(
        send, 413, "Payload too large", f"the request body is larger than {limit} bytes"
    )
