"""Browser sessions: the cookie's own signing key, revoking every session, and the
sign-in rate limit.

The cookie is signed with a key derived by HKDF-SHA256 from the API token and a random
32-byte salt kept in the store (``SALT_KEY``). A stolen cookie therefore says nothing
that would let anyone test guesses of the token offline: without the salt no guess can
be checked. Rotating the salt (``rotate_salt``: ``actor-maker sessions revoke`` or
``POST /api/sessions/revoke``) ends every session at once; servers sharing the store
notice within ``REFRESH_S`` seconds. Changing the token ends them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeTimedSerializer

from actor_maker.errors import NotFoundError, PreconditionFailed, StoreError
from actor_maker.store.base import ObjectStore

log = logging.getLogger(__name__)

SALT_KEY = "system_actors/.auth/session-salt"
SESSION_DAYS = 7
#: Seconds a server trusts the salt it read before reading it again.
REFRESH_S = 5.0
_INFO = b"actor-maker session cookie v1"


def derive_key(token: str, salt: bytes) -> bytes:
    """The cookie-signing key: HKDF-SHA256(token, salt)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(token.encode())


def _new_salt() -> bytes:
    return secrets.token_hex(32).encode()


def load_salt(store: ObjectStore) -> bytes:
    """The store's salt, created on first use (two servers starting at once agree)."""
    try:
        return store.get(SALT_KEY).data
    except NotFoundError:
        pass
    with contextlib.suppress(PreconditionFailed):  # another server made it first: use theirs
        store.put_if_absent(SALT_KEY, _new_salt(), content_type="text/plain")
    return store.get(SALT_KEY).data


def rotate_salt(store: ObjectStore) -> None:
    """Replace the salt: every session cookie issued so far stops verifying."""
    try:
        current = store.get(SALT_KEY)
    except NotFoundError:
        load_salt(store)  # nothing issued yet; create one so the next check is cheap
        return
    # PreconditionFailed: rotated concurrently by someone else; the old salt is gone anyway
    with contextlib.suppress(PreconditionFailed):
        store.put_if_version(SALT_KEY, _new_salt(), current.info.version, content_type="text/plain")


class FailureLimiter:
    """At most ``limit`` failed token checks per ``window_s`` seconds per client address.

    Memory is bounded: at most ``max_clients`` addresses are tracked (oldest dropped).
    """

    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float] | None:
        seen = self._failures.get(client)
        if seen is None:
            return None
        cutoff = self._clock() - self.window_s
        while seen and seen[0] <= cutoff:
            seen.popleft()
        if not seen:
            del self._failures[client]
            return None
        return seen

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or ``None`` when it may now."""
        seen = self._recent(client)
        if seen is None or len(seen) < self.limit:
            return None
        return max(1, int(seen[0] + self.window_s - self._clock()) + 1)

    def failed(self, client: str) -> None:
        seen = self._recent(client)
        if seen is None:
            if len(self._failures) >= self.max_clients:
                del self._failures[next(iter(self._failures))]
            seen = self._failures[client] = deque(maxlen=self.limit)
        seen.append(self._clock())


class Sessions:
    """Checks the token and issues and verifies session cookies for one server."""

    def __init__(
        self,
        token: str,
        store: ObjectStore,
        *,
        limiter: FailureLimiter | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._token = token
        self._store = store
        self._refresh_s = refresh_s
        self._serializer: URLSafeTimedSerializer | None = None
        self._loaded_at = 0.0
        self.limiter = limiter or FailureLimiter()

    def token_ok(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token.encode())

    def _signer(self, salt: bytes) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(derive_key(self._token, salt), salt="actor-maker-session")

    async def _current(self) -> URLSafeTimedSerializer:
        now = time.monotonic()
        if self._serializer is None or now - self._loaded_at > self._refresh_s:
            salt = await asyncio.to_thread(load_salt, self._store)
            self._serializer, self._loaded_at = self._signer(salt), now
        return self._serializer

    async def prepare(self) -> None:
        """Read (or create) the salt now, so the first sign-in does not wait for the store.
        A store that is down now is tried again on the first request that needs it."""
        try:
            await self._current()
        except StoreError as exc:
            log.warning("session salt not read yet: %s", exc)

    async def issue(self) -> str:
        return (await self._current()).dumps("session")

    async def cookie_ok(self, value: str) -> bool:
        try:
            (await self._current()).loads(value, max_age=SESSION_DAYS * 86400)
        except BadSignature:
            return False
        return True

    async def revoke_all(self) -> None:
        """Rotate the salt; this server stops accepting old cookies at once."""
        await asyncio.to_thread(rotate_salt, self._store)
        self._serializer = None
