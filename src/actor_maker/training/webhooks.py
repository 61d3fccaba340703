"""Verifying Replicate's webhooks (Standard Webhooks signatures).

Replicate signs every webhook with the account's ``whsec_…`` secret: ``webhook-signature``
holds one or more space-separated ``v1,<base64>`` entries, each an HMAC-SHA256 over
``"{webhook-id}.{webhook-timestamp}.{raw body}"`` keyed with the base64-decoded secret
(after its ``whsec_`` prefix). A delivery is accepted when one entry matches (compared in
constant time) and its timestamp is within ``tolerance_s`` of now, which refuses replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """True when ``body`` with these ``headers`` was signed with ``secret`` recently."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not message_id or not stamp or not signatures:
        return False
    try:
        timestamp = int(stamp)
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (ValueError, binascii.Error):
        return False
    if not key or abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    raw = body.encode() if isinstance(body, str) else body
    expected = hmac.new(key, f"{message_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    matched = False
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            continue
        matched |= hmac.compare_digest(given, expected)
    return matched
