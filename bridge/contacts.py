"""Client contact details: normalised, or refused with a reason."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import phonenumbers

from bridge.errors import ContactError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_phone(raw: str, region: str = "US") -> str:
    """E.164 or ContactError; a number phonenumbers cannot validate never reaches a channel."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise ContactError("phone number cannot be parsed") from None
    if not phonenumbers.is_valid_number(number):
        raise ContactError("phone number is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    value = raw.strip()
    if not _EMAIL.match(value):
        raise ContactError("email address is not valid")
    return value.lower()


def mask_phone(e164: str | None) -> str:
    """For logs and the console: enough to tell two numbers apart, not enough to dial."""
    if not e164:
        return "(none)"
    return f"{e164[:2]}•••••{e164[-2:]}"


_PROCESS_KEY = secrets.token_bytes(32)


def sender_key(secret: str | None) -> bytes:
    """The key for sender hashes: from ``security.secret_key``, else this process's own.

    Phone numbers are few enough to hash them all, so a plain hash would give the number
    back; keyed, the hash is useless without the practice's secret.
    """
    if not secret:
        return _PROCESS_KEY  # development: comparable only within one process
    return hashlib.sha256(b"homework-bridge/senders/" + secret.encode()).digest()


def sender_hash(value: str, key: bytes) -> str:
    """Keeps who sent an unmatched reply comparable without storing the number."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
