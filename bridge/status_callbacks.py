"""Twilio message status callbacks: what each one changes on its reminder.

A callback names the reminder it is about (the bridge put the id in the callback URL)
and the message it reports on. It settles sends whose outcome was unknown, never moves
a reminder backwards, and turns a handset that was unreachable (30003) into a later retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, update
from sqlmodel import Session, select

from bridge.capture import set_consent
from bridge.channels.twilio_errors import OPTED_OUT, UNUSABLE_NUMBER
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


FIELDS = (
    "id",
    "state",
    "provider_message_id",
    "attempts",
    "sent_at",
    "assignment_id",
)  # what settle() reads


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
    locks them in too, so the two never deadlock; the changes go back as one bulk update.
    """
    ids = {c.reminder_id for c in callbacks}
    table = Reminder.__table__
    conn = session.connection()  # plain SQL: this runs per batch of webhooks, on every replica
    found = conn.execute(
        select(*(table.c[f] for f in FIELDS))
        .where(among(session, table.c.id, ids))
        .order_by(table.c.id)
        .with_for_update()
    ).all()
    rows = {row[0]: dict(zip(FIELDS, row, strict=True)) for row in found}
    changed: dict[int, dict] = {}
    outcomes = []
    for callback in callbacks:
        row = rows.get(callback.reminder_id)
        outcome, changes = settle(row, callback, settings, now)
        outcomes.append(outcome)
        if changes and row is not None:
            row.update(changes)
            changed.setdefault(row["id"], {"id": row["id"]}).update(changes)
            if row["state"] == "failed":
                remember_error(session, row["assignment_id"], callback.error_code, now)
    by_columns: dict[tuple[str, ...], list[dict]] = {}
    for change in changed.values():
        by_columns.setdefault(tuple(sorted(change)), []).append(
            {f"new_{k}": v for k, v in change.items()}
        )
    for columns, params in by_columns.items():
        conn.execute(
            update(table)
            .where(table.c.id == bindparam("new_id"))
            .values({c: bindparam(f"new_{c}") for c in columns if c != "id"}),
            params,
        )
    return outcomes


def settle(row: dict | None, callback: StatusCallback, settings: Settings,
           now: datetime) -> tuple[str, dict]:  # fmt: skip
    """Pure: the outcome of one callback for a reminder as it stands, and the columns to change."""
    if row is None:
        return "unknown", {}
    if row["state"] in ("scheduled", "cancelled", "skipped"):
        return "ok", {}  # a late callback for an attempt already settled and re-planned
    sid = callback.message_sid
    if row["provider_message_id"] and sid != row["provider_message_id"]:
        return "mismatch", {}  # not the message this reminder sent: change nothing
    changes: dict = {}
    if row["provider_message_id"] is None and sid:
        changes["provider_message_id"] = sid  # reconciles a send whose outcome was unknown
    new_state = STATUS_STATES.get(callback.status)
    if not new_state or (row["state"] == "delivered" and new_state == "sent"):
        return "ok", changes
    if row["state"] in ("sending", "unknown", "failed") and new_state in ("sent", "delivered"):
        changes["sent_at"] = row["sent_at"] or now
    changes.update(state=new_state, lease_until=None, updated_at=now)
    if new_state == "failed":
        code = callback.error_code
        changes["last_error"] = f"twilio {callback.status} {code}".strip()
        sched = settings.scheduler
        if code in RETRY_LATER_CODES and row["attempts"] < sched.max_send_attempts:
            # the handset was unreachable: try again later
            delay = backoff(sched.retry_backoff_seconds, row["attempts"], jitter=sched.retry_jitter)
            changes.update(state="scheduled", scheduled_for=now + delay,
                           provider_message_id=None, sent_at=None)  # fmt: skip
    return "ok", changes


def remember_error(session: Session, assignment_id: int, code: str, now: datetime) -> None:
    """A delivery error that says something about the client outlives the message."""
    if not code.isdigit() or int(code) not in OPTED_OUT | UNUSABLE_NUMBER:
        return
    assignment = session.get(Assignment, assignment_id)
    patient = session.get(Patient, assignment.patient_id) if assignment else None
    if patient is None:
        return
    if int(code) in OPTED_OUT:
        set_consent(session, [patient], "sms", False, f"provider:{code}", now)
    else:
        patient.phone_unusable = True
        patient.updated_at = now
