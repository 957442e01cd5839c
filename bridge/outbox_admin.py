"""What is stuck in the outboxes, and the operator's two remedies: retry or drop.

Failed rows are the dead letters: retries ran out, or the provider or EHR refused for
good. Each keeps its reason. Retrying puts it back as due now with a fresh attempt count;
dropping cancels it for good. Both are recorded on the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, or_, select

from bridge.store.models import Assignment, Reminder, WriteBack

KINDS = ("reminder", "writeback")


@dataclass(frozen=True)
class StuckItem:
    kind: str
    id: int
    assignment: str
    what: str  # the cadence step or the note kind
    state: str
    attempts: int
    reason: str | None


def stuck(session: Session, now: datetime, limit: int = 500) -> list[StuckItem]:
    """The oldest ``limit`` stuck items of each kind: an outage can leave tens of thousands."""
    reminders = session.exec(
        select(Reminder, Assignment.external_id)
        .join(Assignment, Assignment.id == Reminder.assignment_id)
        .where(or_(col(Reminder.state).in_(["failed", "unknown"]),
                   (Reminder.state == "sending") & (col(Reminder.lease_until) < now)))
        .order_by(Reminder.id)
        .limit(limit)
    ).all()  # fmt: skip
    writebacks = session.exec(
        select(WriteBack, Assignment.external_id)
        .join(Assignment, Assignment.id == WriteBack.assignment_id)
        .where(or_(WriteBack.state == "failed",
                   (WriteBack.state == "pending") & (WriteBack.attempts > 0)))
        .order_by(WriteBack.id)
        .limit(limit)
    ).all()  # fmt: skip
    return [
        StuckItem("reminder", r.id, ext, r.step, r.state, r.attempts, r.last_error)
        for r, ext in reminders
    ] + [
        StuckItem("writeback", w.id, ext, w.kind, w.state, w.attempts, w.last_error)
        for w, ext in writebacks
    ]


class OutboxError(ValueError):
    pass


def _row(session: Session, kind: str, item_id: int) -> Reminder | WriteBack:
    if kind not in KINDS:
        raise OutboxError(f"kind must be one of {', '.join(KINDS)}")
    row = session.get(Reminder if kind == "reminder" else WriteBack, item_id)
    if row is None:
        raise OutboxError(f"no {kind} with id {item_id}")
    return row


def retry(session: Session, kind: str, item_id: int, now: datetime) -> None:
    row = _row(session, kind, item_id)
    if row.state != "failed":
        raise OutboxError(f"{kind} {item_id} is {row.state}; only failed items can be retried")
    if isinstance(row, Reminder):
        row.state, row.scheduled_for = "scheduled", now
        row.provider_message_id = None
    else:
        row.state, row.due_at = "pending", now
    row.attempts = 0
    row.lease_until = None
    row.last_error = f"retried by an operator (was: {row.last_error or 'no reason'})"[:500]
    row.updated_at = now


def drop(session: Session, kind: str, item_id: int, now: datetime) -> None:
    row = _row(session, kind, item_id)
    if row.state not in ("failed", "scheduled", "pending"):
        raise OutboxError(f"{kind} {item_id} is {row.state}; it cannot be dropped")
    row.state = "cancelled"
    row.lease_until = None
    row.last_error = f"dropped by an operator (was: {row.last_error or 'no reason'})"[:500]
    row.updated_at = now
