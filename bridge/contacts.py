"""Client contact details: normalised, or refused with a reason."""

from __future__ import annotations

import hashlib
import re

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


def sender_hash(value: str) -> str:
    """Keeps who sent an unmatched reply comparable without storing the number."""
    return hashlib.sha256(value.encode()).hexdigest()
