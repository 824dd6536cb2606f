"""Request signing, Stripe-like: HMAC-SHA256 over ``timestamp + "." + body``. Pure.

Headers: ``Webhook-Id`` (the event id), ``Webhook-Timestamp`` (Unix seconds when
the attempt was sent) and ``Webhook-Signature: v1=<hex>``. The timestamp is
signed so a captured request cannot be replayed outside the receiver's window.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
ID_HEADER = "Webhook-Id"
TIMESTAMP_HEADER = "Webhook-Timestamp"
SIGNATURE_HEADER = "Webhook-Signature"
SCHEME = "v1"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value: ``v1=`` and the hex HMAC, keyed with the whole secret string."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
