"""Twilio message status callbacks: what each one changes on its reminder.

A callback names the reminder it is about (the bridge put the id in the callback URL)
and the message it reports on. It settles sends whose outcome was unknown, never moves
a reminder backwards, and turns a handset that was unreachable (30003) into a later retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from bridge.capture import set_consent
from bridge.channels.twilio_sms import OPTED_OUT, UNUSABLE_NUMBER
from bridge.config import Settings
from bridge.store.db import among
from bridge.store.models import Assignment, Patient, Reminder
from bridge.store.outbox import backoff

RETRY_LATER_CODES = {"30003"}
STATUS_STATES = {
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "sent": "sent",
}


@dataclass(frozen=True)
class StatusCallback:
    reminder_id: int
    message_sid: str | None
    status: str
    error_code: str = ""


def apply_status_callbacks(session: Session, callbacks: list[StatusCallback], *,
                           settings: Settings, now: datetime) -> list[str]:  # fmt: skip
    """Apply callbacks in arrival order; one outcome each: ok, unknown or mismatch.

    The reminders are read in one statement and locked in id order, the order dispatch
    locks them in too, so the two never deadlock.
    """
    ids = {c.reminder_id for c in callbacks}
    rows = {
        r.id: r
        for r in session.exec(
            select(Reminder)
            .where(among(session, Reminder.id, ids))
            .order_by(Reminder.id)
            .with_for_update()
        ).all()
    }
    return [apply_one(session, rows.get(c.reminder_id), c, settings, now) for c in callbacks]


def apply_one(session: Session, row: Reminder | None, callback: StatusCallback,
              settings: Settings, now: datetime) -> str:  # fmt: skip
    if row is None:
        return "unknown"
    if row.state in ("scheduled", "cancelled", "skipped"):
        return "ok"  # a late callback for an attempt already settled and re-planned
    sid = callback.message_sid
    if row.provider_message_id and sid != row.provider_message_id:
        return "mismatch"  # not the message this reminder sent: change nothing
    if row.provider_message_id is None and sid:
        row.provider_message_id = sid  # reconciles a send whose outcome was unknown
    new_state = STATUS_STATES.get(callback.status)
    if not new_state or (row.state == "delivered" and new_state == "sent"):
        return "ok"
    if row.state in ("sending", "unknown", "failed") and new_state in ("sent", "delivered"):
        row.sent_at = row.sent_at or now
    row.state = new_state
    row.lease_until = None
    row.updated_at = now
    if new_state == "failed":
        code = callback.error_code
        row.last_error = f"twilio {callback.status} {code}".strip()
        sched = settings.scheduler
        if code in RETRY_LATER_CODES and row.attempts < sched.max_send_attempts:
            row.state = "scheduled"  # the handset was unreachable: try again later
            row.scheduled_for = now + backoff(
                sched.retry_backoff_seconds, row.attempts, jitter=sched.retry_jitter
            )
            row.provider_message_id = None
            row.sent_at = None
        else:
            remember_error(session, row, code, now)
    return "ok"


def remember_error(session: Session, reminder: Reminder, code: str, now: datetime) -> None:
    """A delivery error that says something about the client outlives the message."""
    if not code.isdigit() or int(code) not in OPTED_OUT | UNUSABLE_NUMBER:
        return
    assignment = session.get(Assignment, reminder.assignment_id)
    patient = session.get(Patient, assignment.patient_id) if assignment else None
    if patient is None:
        return
    if int(code) in OPTED_OUT:
        set_consent(session, [patient], "sms", False, f"provider:{code}", now)
    else:
        patient.phone_unusable = True
        patient.updated_at = now
