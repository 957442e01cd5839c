"""Client links: opaque, signed, expiring tokens for the one-tap completion page.

A token is 12 random bytes plus a truncated HMAC of them, base64url: it names nothing
(no id, no PHI), a tampered one is refused before the store is asked, and the store keeps
only its SHA-256 with the assignment it opens and when it stops working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, select

from bridge.store.models import ClientLink

NONCE = 12
MAC = 9


class LinkProblem(StrEnum):
    malformed = "malformed"
    tampered = "tampered"
    unknown = "unknown"
    expired = "expired"


@dataclass(frozen=True)
class LinkKey:
    secret: bytes

    @classmethod
    def from_text(cls, text: str) -> LinkKey:
        return cls(hashlib.sha256(b"homework-bridge/links/" + text.encode()).digest())

    @classmethod
    def ephemeral(cls) -> LinkKey:
        """For development: links stop working when the process restarts."""
        return cls(secrets.token_bytes(32))

    def mac(self, nonce: bytes) -> bytes:
        return hmac.new(self.secret, nonce, hashlib.sha256).digest()[:MAC]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_link(key: LinkKey, *, assignment_id: int, reminder_id: int | None, now: datetime,
             ttl: timedelta) -> tuple[str, dict]:  # fmt: skip
    """A fresh token and the ClientLink row (as column values) that will honour it."""
    nonce = secrets.token_bytes(NONCE)
    token = base64.urlsafe_b64encode(nonce + key.mac(nonce)).decode().rstrip("=")
    row = {"token_hash": _hash(token), "assignment_id": assignment_id,
           "reminder_id": reminder_id, "expires_at": now + ttl, "created_at": now}  # fmt: skip
    return token, row


def mint(session: Session, key: LinkKey, *, assignment_id: int, reminder_id: int | None,
         now: datetime, ttl: timedelta) -> str:  # fmt: skip
    token, row = new_link(key, assignment_id=assignment_id, reminder_id=reminder_id, now=now,
                          ttl=ttl)  # fmt: skip
    session.add(ClientLink(**row))
    return token


def verify(key: LinkKey, token: str) -> LinkProblem | None:
    """The signature alone: no store access for a forged or mangled token."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return LinkProblem.malformed
    if len(raw) != NONCE + MAC or len(token) > 64:
        return LinkProblem.malformed
    if not hmac.compare_digest(key.mac(raw[:NONCE]), raw[NONCE:]):
        return LinkProblem.tampered
    return None


def resolve(session: Session, key: LinkKey, token: str, now: datetime) -> ClientLink | LinkProblem:
    problem = verify(key, token)
    if problem is not None:
        return problem
    link = session.exec(select(ClientLink).where(ClientLink.token_hash == _hash(token))).first()
    if link is None:
        return LinkProblem.unknown
    if link.expires_at <= now:
        return LinkProblem.expired
    return link
