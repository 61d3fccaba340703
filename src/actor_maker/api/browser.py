"""What keeps other web pages from using the server through the user's browser.

``BrowserGuard`` (pure ASGI, the outermost middleware) does three things:

1. **Host allow-list** (DNS rebinding): a request whose ``Host`` is not an allowed name is
   refused with 421 problem+json. Allowed: ``localhost``, ``127.0.0.1``, ``[::1]``, the
   address the server listens on and ``ACTOR_MAKER_ALLOWED_HOSTS``; when it listens on every
   interface (``0.0.0.0``, ``::``), any IP-address ``Host`` too (a rebinding page always
   sends its own *name*). ``["*"]`` turns the check off.
2. **Same-origin state changes** (CSRF, including from another port on 127.0.0.1): a request
   with any method but GET, HEAD and OPTIONS is refused with 403 when its ``Origin`` is not
   the server's own (same host and port as ``Host``; the scheme is not compared, so a
   TLS-terminating proxy works) nor listed in ``ACTOR_MAKER_CORS_ORIGINS``; or, with no
   ``Origin``, when ``Sec-Fetch-Site`` says ``same-site`` or ``cross-site``. Requests that
   send neither (curl, the CLI, other servers) are not browsers and pass.
3. **Headers**: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, a
   ``Content-Security-Policy`` with ``frame-ancestors 'none'`` on every answer, and on the
   web UI's pages a policy that allows only this server's scripts, styles and connections.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actor_maker.api.auth import is_page
from actor_maker.api.errors import send_problem

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: blob: http: https:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
OTHER_CSP = "frame-ancestors 'none'"


def host_name(host: str) -> str:
    """``Host`` header or configured name → lower-case name without port; IPv6 in brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    if host.count(":") > 1:  # a bare IPv6 address (configured, or --host ::1)
        return f"[{host}]"
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        host = name
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class HostPolicy:
    def __init__(self, extra: Iterable[str], bind_host: str | None = None) -> None:
        names = [*LOOPBACK_NAMES, *extra]
        self.any_host = "*" in names
        self.any_ip = bind_host is not None and host_name(bind_host) in WILDCARD_BINDS
        if bind_host is not None and not self.any_ip:
            names.append(bind_host)
        self.names = frozenset(host_name(n) for n in names if n != "*")

    def allows(self, host: str) -> bool:
        if self.any_host:
            return True
        name = host_name(host)
        return name in self.names or (self.any_ip and _is_ip(name))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def cross_origin(scope: Scope, host: str, cors_origins: frozenset[str]) -> str | None:
    """Why this state-changing request comes from another site, or ``None`` if it doesn't."""
    origin = _header(scope, b"origin")
    if origin is not None:
        origin = origin.strip().rstrip("/")
        if "*" in cors_origins or origin in cors_origins:
            return None
        _, sep, netloc = origin.partition("://")
        if sep and netloc.lower() == host.strip().lower():
            return None
        return f"Origin {origin[:100]} is not this server"
    fetch_site = (_header(scope, b"sec-fetch-site") or "").strip().lower()
    if fetch_site in ("same-site", "cross-site"):
        return f"Sec-Fetch-Site is {fetch_site}"
    return None


def _with_headers(message: Message, path: str) -> Message:
    if message["type"] != "http.response.start":
        return message
    headers = [
        (k, v)
        for k, v in message.get("headers", [])
        if k.lower() not in (b"x-frame-options", b"x-content-type-options")
    ]
    headers += [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
    if not any(k.lower() == b"content-security-policy" for k, _ in headers):
        csp = PAGE_CSP if is_page(path) else OTHER_CSP
        headers.append((b"content-security-policy", csp.encode()))
    return {**message, "headers": headers}


class BrowserGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: HostPolicy,
        cors_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.cors_origins = frozenset(o.strip().rstrip("/") for o in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            await send(_with_headers(message, path))

        host = _header(scope, b"host") or ""
        if not self.hosts.allows(host):
            await send_problem(
                send_with_headers,
                421,
                "Misdirected request",
                f"this server does not answer to the host name {host_name(host)[:100]!r}; "
                "add it to ACTOR_MAKER_ALLOWED_HOSTS",
            )
            return
        if scope["method"] not in SAFE_METHODS:
            why = cross_origin(scope, host, self.cors_origins)
            if why is not None:
                await send_problem(
                    send_with_headers,
                    403,
                    "Forbidden",
                    f"cross-site request refused: {why} (list trusted origins in "
                    "ACTOR_MAKER_CORS_ORIGINS)",
                )
                return
        await self.app(scope, receive, send_with_headers)
