"""HMAC-SHA256 signatures with a timestamp, for generic webhook senders.

Header form: ``t=<unix seconds>,v1=<hex hmac of "t.body">``. The timestamp bounds
replays; the comparison is constant-time; the body is verified as raw bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime


class SignatureError(Exception):
    pass


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str, body: bytes, header: str | None, now: datetime, tolerance_seconds: int = 300
) -> None:
    if not header:
        raise SignatureError("missing signature")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise SignatureError("malformed signature header") from None
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        raise SignatureError("signature timestamp outside the allowed window")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given):
        raise SignatureError("signature does not match")
