"""SendGrid's signed Event Webhook: verify the sender, then apply delivery and consent events.

SendGrid posts batches of events, signs ``timestamp + raw body`` with ECDSA P-256, and
redelivers a batch it thinks failed, so every event is applied at most once (keyed on its
``sg_event_id``). An event finds its reminder through the ``reminder_id`` custom arg the
email channel attached; SendGrid copies custom args to the top level of each event.
Events quote the recipient's address: it is compared, never stored or logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from bridge.capture import set_consent
from bridge.channels.sendgrid_email import REMINDER_ARG, redact_addresses
from bridge.store.models import Assignment, Patient, ProviderEvent, Reminder

log = logging.getLogger(__name__)

PROVIDER = "sendgrid"
SIGNATURE_HEADER = EventWebhookHeader.SIGNATURE  # X-Twilio-Email-Event-Webhook-Signature
TIMESTAMP_HEADER = EventWebhookHeader.TIMESTAMP  # X-Twilio-Email-Event-Webhook-Timestamp

RECORD_ONLY = {"processed", "deferred"}
FAILED = {"bounce", "dropped"}
OPT_OUT = {"spamreport", "unsubscribe", "group_unsubscribe"}
HANDLED = RECORD_ONLY | FAILED | OPT_OUT | {"delivered"}
# open, click (tracking is off), group_resubscribe and anything new: ignored.


@dataclass(frozen=True)
class EventResult:
    applied: int = 0
    duplicates: int = 0
    unknown: int = 0
    ignored: int = 0


# -- verification --------------------------------------------------------------------


def verify_event_webhook(
    public_key_b64: str,
    raw_body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: datetime,
    tolerance_seconds: int = 600,
) -> bool:
    """True only for a fresh batch SendGrid signed; any doubt (bad key, bad input) is False.

    The signature covers the exact bytes sent, so the body is decoded, never re-serialised.
    """
    if not public_key_b64 or not signature or not timestamp:
        return False
    if not _fresh(timestamp, now, tolerance_seconds):
        return False
    try:
        payload = raw_body.decode("utf-8")
        verifier = EventWebhook(_key_body(public_key_b64))
        return verifier.verify_signature(payload, signature, timestamp) is True
    except Exception:  # bad base64, a key that is not an EC key, undecodable body
        return False


def _fresh(timestamp: str, now: datetime, tolerance_seconds: int) -> bool:
    """A replayed batch carries its old timestamp; one too far from now is refused."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    return abs(now.timestamp() - int(timestamp)) <= tolerance_seconds


def _key_body(public_key: str) -> str:
    """The base64 DER SendGrid shows, also when pasted as PEM or wrapped over lines."""
    lines = [line.strip() for line in public_key.strip().splitlines()]
    return "".join(line for line in lines if line and not line.startswith("-----"))


# -- parsing -------------------------------------------------------------------------


def parse_events(raw_body: bytes) -> list[dict[str, Any]]:
    """The verified body as a list of event objects, or ValueError saying what is wrong."""
    try:
        events = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("the event webhook body is not valid UTF-8 JSON") from None
    check_events(events)
    return events


def check_events(events: Any) -> None:
    if not isinstance(events, list):
        raise ValueError("the event webhook body must be a JSON array of event objects")
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise ValueError(f"event {i} is not a JSON object")


# -- applying ------------------------------------------------------------------------


def apply_sendgrid_events(
    session: Session, events: list[dict[str, Any]], *, now: datetime
) -> EventResult:
    """Apply a verified batch; a redelivered batch changes nothing."""
    check_events(events)
    counts = {"applied": 0, "duplicates": 0, "unknown": 0, "ignored": 0}
    for event in events:
        counts[_apply_one(session, event, now)] += 1
    result = EventResult(**counts)
    log.info(
        "sendgrid events: %d applied, %d duplicates, %d unknown, %d ignored",
        result.applied,
        result.duplicates,
        result.unknown,
        result.ignored,
    )
    return result


def _apply_one(session: Session, event: dict[str, Any], now: datetime) -> str:
    kind = event.get("event")
    if not isinstance(kind, str) or kind not in HANDLED:
        return "ignored"
    event_id = event.get("sg_event_id")
    reminder = _reminder_for(session, event)
    if reminder is None or not isinstance(event_id, str) or not event_id:
        return "unknown"
    if not _first_time(session, event_id, kind, now):
        return "duplicates"
    if kind == "delivered":
        _delivered(reminder, event, now)
    elif kind in FAILED:
        _failed(session, reminder, event, kind, now)
    elif kind in OPT_OUT:
        _opted_out(session, reminder, event, kind, now)
    return "applied"


def _reminder_for(session: Session, event: dict[str, Any]) -> Reminder | None:
    """The reminder this event is about, or None when it is not one of this bridge's emails."""
    raw = event.get(REMINDER_ARG)
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit():
        return None
    reminder = session.get(Reminder, int(text))
    if reminder is None or (reminder.channel and reminder.channel != "email"):
        return None
    # Another deployment on the same SendGrid account numbers its reminders too.
    if not _same_message(reminder.provider_message_id, event.get("sg_message_id")):
        return None
    return reminder


def _same_message(sent_as: str | None, sg_message_id: Any) -> bool:
    """``sg_message_id`` starts with the X-Message-Id the send was answered with."""
    if not sent_as or sent_as.startswith("sg-") or not isinstance(sg_message_id, str):
        return True  # nothing to compare with
    return sg_message_id.split(".", 1)[0] == sent_as


def _first_time(session: Session, event_id: str, kind: str, now: datetime) -> bool:
    """Record the event; False when it was recorded before (also by a concurrent replica)."""
    if len(event_id) > 100:
        event_id = hashlib.sha256(event_id.encode()).hexdigest()
    values = {"provider": PROVIDER, "event_id": event_id, "kind": kind[:30], "received_at": now}
    table = ProviderEvent.__table__
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        make = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = (
            make(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["provider", "event_id"])
            .returning(table.c.id)
        )
        return session.exec(stmt).first() is not None  # type: ignore[call-overload]
    seen = session.exec(
        select(ProviderEvent.id).where(
            ProviderEvent.provider == PROVIDER, ProviderEvent.event_id == event_id
        )
    ).first()
    if seen is not None:
        return False
    session.exec(insert(table).values(**values))  # type: ignore[call-overload]
    return True


def _delivered(reminder: Reminder, event: dict[str, Any], now: datetime) -> None:
    if reminder.state == "delivered":
        return
    reminder.state = "delivered"
    reminder.lease_until = None
    reminder.last_error = None
    reminder.sent_at = reminder.sent_at or now
    if reminder.provider_message_id is None:  # a send whose outcome was unknown
        sg_message_id = event.get("sg_message_id")
        if isinstance(sg_message_id, str) and 0 < len(sg_message_id.split(".", 1)[0]) <= 64:
            reminder.provider_message_id = sg_message_id.split(".", 1)[0]
    reminder.updated_at = now


def _failed(
    session: Session, reminder: Reminder, event: dict[str, Any], kind: str, now: datetime
) -> None:
    """The message will not arrive; a hard bounce or a drop also means stop using the address."""
    patient = _patient(session, reminder)
    reason = event.get("reason") or event.get("response") or event.get("type") or ""
    reason = redact_addresses(str(reason), patient.email or "")
    reminder.state = "failed"
    reminder.lease_until = None
    reminder.last_error = f"sendgrid {kind}: {reason}".strip().rstrip(":")[:500]
    reminder.updated_at = now
    blocked = kind == "bounce" and event.get("type") == "blocked"  # refused for now, not unknown
    if not blocked and _same_address(patient, event) and not patient.email_unusable:
        patient.email_unusable = True
        patient.updated_at = now


def _opted_out(
    session: Session, reminder: Reminder, event: dict[str, Any], kind: str, now: datetime
) -> None:
    patient = _patient(session, reminder)
    if _same_address(patient, event):
        set_consent(session, [patient], "email", False, f"sendgrid:{kind}", now)


def _patient(session: Session, reminder: Reminder) -> Patient:
    assignment = session.get(Assignment, reminder.assignment_id)
    assert assignment is not None  # foreign key
    patient = session.get(Patient, assignment.patient_id)
    assert patient is not None  # foreign key
    return patient


def _same_address(patient: Patient, event: dict[str, Any]) -> bool:
    """An event about an address the client has since replaced says nothing about the new one."""
    address = event.get("email")
    if not isinstance(address, str) or not address.strip():
        return patient.email is not None
    return patient.email is not None and patient.email.casefold() == address.strip().casefold()
