"""Fetching a base image from a URL a user gave us, safely.

Only ``http``/``https`` URLs whose host resolves to public addresses are
fetched (``ACTOR_MAKER_ALLOW_PRIVATE_URLS`` lifts the address rule). An IPv6
address that wraps an IPv4 one (``::a.b.c.d``, ``::ffff:a.b.c.d``, NAT64
``64:ff9b::a.b.c.d``, 6to4 ``2002:aabb:ccdd::``) is judged by the IPv4 address. Every
redirect hop is checked the same way. The resolver is injectable so tests can
exercise the policy on loopback without touching another address.

Known limit: the address is checked at resolution time and httpx resolves
again when it connects, so a DNS server that answers differently within
milliseconds (rebinding) is not caught; run workers where private networks
are firewalled if that matters to you.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from actor_maker.errors import FetchError, UnsafeURLError

Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_REDIRECTS = 5


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    return [str(info[4][0]) for info in infos]


#: IPv6 prefixes whose last 32 bits are an IPv4 address that the packets end up at (or that
#: a host's stack may route to): IPv4-compatible, IPv4-mapped, IPv4-translated (SIIT) and the
#: NAT64 well-known prefix. An address in one is judged by the IPv4 address it wraps.
_WRAPS_IPV4_LAST_32 = tuple(
    ipaddress.IPv6Network(net)
    for net in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
#: Local-use NAT64 (RFC 8215): translated by the operator's own gateway, never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _wrapped_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside ``ip`` (6to4 ``2002::/16`` or :data:`_WRAPS_IPV4_LAST_32`)."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _WRAPS_IPV4_LAST_32):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return False
        wrapped = _wrapped_ipv4(ip)
        if wrapped is not None:
            return wrapped.is_global and not wrapped.is_multicast
    return ip.is_global and not ip.is_multicast


def redact_url(url: str) -> str:
    """The URL without query string or credentials, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url.split("?", 1)[0]


@dataclass
class AddressPolicy:
    """Which URLs may be fetched: scheme and resolved-address rules."""

    allow_private: bool = False
    resolver: Resolver = field(default=system_resolver)

    def check_syntax(self, url: str) -> None:
        """Checks that need no network: scheme and host present."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise UnsafeURLError(
                f"URL scheme {parts.scheme or '(none)'!r} is not allowed; use http(s) or s3://"
            )
        if not parts.hostname:
            raise UnsafeURLError(f"URL {redact_url(url)!r} has no host")
        if parts.username or parts.password:
            raise UnsafeURLError("URLs with embedded credentials are not allowed")

    async def check(self, url: str) -> None:
        self.check_syntax(url)
        if self.allow_private:
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await self.resolver(host, port)
        if not addresses:
            raise FetchError(f"host {host!r} has no addresses")
        for address in addresses:
            if not _is_public(address):
                raise UnsafeURLError(
                    f"URL host {host!r} resolves to a private, loopback or link-local address "
                    f"({address}); set ACTOR_MAKER_ALLOW_PRIVATE_URLS=1 to allow it"
                )


async def fetch_url(
    url: str,
    *,
    policy: AddressPolicy,
    client: httpx.AsyncClient,
    max_bytes: int,
    timeout: float,
) -> tuple[bytes, str | None]:
    """GET ``url`` under ``policy``; returns the body and its Content-Type.

    Redirects are followed by hand so each hop passes the policy; the body is
    streamed and refused as soon as it exceeds ``max_bytes``.
    """
    try:
        async with asyncio.timeout(timeout):
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                await policy.check(current)
                async with client.stream("GET", current, follow_redirects=False) as response:
                    if response.is_redirect:
                        location = response.headers.get("location", "")
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        raise FetchError(
                            f"downloading {redact_url(current)} failed: HTTP {response.status_code}"
                        )
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise FetchError(_too_big(current, max_bytes))
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise FetchError(_too_big(current, max_bytes))
                        chunks.append(chunk)
                    return b"".join(chunks), response.headers.get("content-type")
            raise FetchError(f"too many redirects fetching {redact_url(url)}")
    except TimeoutError as exc:
        raise FetchError(f"downloading {redact_url(url)} took longer than {timeout:.0f} s") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"downloading {redact_url(url)} failed: {type(exc).__name__}") from exc


def _too_big(url: str, max_bytes: int) -> str:
    return f"{redact_url(url)} is larger than {max_bytes / (1024 * 1024):.0f} MB"
