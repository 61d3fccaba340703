"""Webhooks the stand-in sends, signed as Replicate signs them (Standard Webhooks).

Headers: ``webhook-id`` (``msg_…``, the same when a delivery is retried),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature``: ``v1,`` + base64 of
HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``, keyed with the base64-decoded part of the
``whsec_…`` secret after its prefix. ``GET /v1/webhooks/default/secret`` shows the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

#: Attempts per event (Replicate retries a failed delivery a few times).
ATTEMPTS = 3


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{message_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }


@dataclass
class Delivery:
    """One attempt to deliver one event, for assertions."""

    url: str
    event: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    error: str | None = None
    at: float = field(default_factory=time.time)


class WebhookSender:
    """Sends events in daemon threads; keeps every attempt in ``deliveries``."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or new_secret()
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    def send(self, url: str, event: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` now (in the calling thread), retrying a failed attempt."""
        body = json.dumps(payload).encode()
        message_id = "msg_" + secrets.token_hex(12)
        for attempt in range(ATTEMPTS):
            headers = signed_headers(self.secret, message_id, int(time.time()), body)
            status: int | None = None
            error: str | None = None
            try:
                status = httpx.post(url, content=body, headers=headers, timeout=5).status_code
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            with self._lock:
                self.deliveries.append(Delivery(url, event, headers, body, status, error))
            if status is not None and status < 300:
                return
            time.sleep(0.1 * (attempt + 1))
