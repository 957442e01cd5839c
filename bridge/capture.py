"""Capture: what the client reports, from an SMS reply, a page or a portal.

A report updates the one completion row of its assignment (a later report refines an
earlier one), moves the Task along, stops reminders once the work is done, and plans the
note that will carry it back to the EHR.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from bridge.config import Settings
from bridge.contacts import normalise_phone, sender_hash, sender_key
from bridge.domain import (
    BusinessStatus,
    CompletionData,
    CompletionStatus,
    NoteKind,
    Step,
    TaskStatus,
)
from bridge.errors import ContactError, SkippableError
from bridge.ingest import cancel_pending
from bridge.records import refresh_task
from bridge.rendering import Renderer
from bridge.replies import Intent, parse_reply
from bridge.store.models import (
    Assignment,
    Completion,
    ConsentEvent,
    InboundMessage,
    Patient,
    Reminder,
    WriteBack,
)

log = logging.getLogger(__name__)

RATING_WINDOW = timedelta(days=7)


def note_identifier(assignment: Assignment, kind: NoteKind) -> str:
    return f"{assignment.connector}:{assignment.external_id}:{kind.value}"


def schedule_note(
    session: Session, assignment: Assignment, kind: NoteKind, due: datetime, now: datetime
) -> WriteBack:
    """One note per assignment and kind; a pending one is moved, a written one is kept."""
    row = session.exec(
        select(WriteBack).where(WriteBack.assignment_id == assignment.id, WriteBack.kind == kind)
    ).first()
    if row is None:
        row = WriteBack(
            assignment_id=assignment.id,
            kind=kind.value,
            state="pending",
            due_at=due,
            note_identifier=note_identifier(assignment, kind),
            updated_at=now,
        )
        session.add(row)
    elif row.state == "pending" and row.due_at != due:
        row.due_at = due
        row.updated_at = now
    return row


def record_completion(
    session: Session,
    assignment: Assignment,
    report: CompletionData,
    settings: Settings,
    now: datetime,
) -> Completion:
    if assignment.status in (TaskStatus.cancelled, TaskStatus.entered_in_error):
        raise SkippableError("report for a cancelled assignment")
    row = session.exec(select(Completion).where(Completion.assignment_id == assignment.id)).first()
    if row is None:
        nudged = session.exec(
            select(Reminder.id).where(
                Reminder.assignment_id == assignment.id,
                Reminder.step != Step.on_assign.value,
                col(Reminder.state).in_(["sent", "delivered"]),
                Reminder.sent_at <= report.reported_at,  # type: ignore[operator]
            )
        ).first()
        row = Completion(
            assignment_id=assignment.id,
            status=report.status.value,
            source=report.source,
            first_reported_at=report.reported_at,
            reported_at=report.reported_at,
            after_reminder=nudged is not None,
        )
        session.add(row)
    row.status = report.status.value
    row.source = report.source
    row.reported_at = report.reported_at
    if report.quantity is not None:
        row.quantity = report.quantity
    if report.quality is not None:
        row.quality = report.quality
    if report.barriers:
        row.barriers = ",".join(b.value for b in report.barriers)
    if report.reflection:
        row.reflection = report.reflection
    session.flush()

    done = report.status == CompletionStatus.done
    assignment.status = (TaskStatus.completed if done else TaskStatus.in_progress).value
    assignment.business_status = BusinessStatus.reported.value
    assignment.version += 1
    assignment.updated_at = now
    if done:
        cancel_pending(session, assignment, now, reason="client reported it done")
        due = now + timedelta(minutes=settings.writeback.settle_minutes)
    else:
        due = max(
            now,
            assignment.effective_due_at + timedelta(hours=settings.writeback.missed_after_hours),
        )
    if settings.writeback.enabled:
        schedule_note(session, assignment, NoteKind.completion, due, now)
        session.exec(
            update(WriteBack)
            .where(
                WriteBack.assignment_id == assignment.id,
                WriteBack.kind == NoteKind.missed,
                WriteBack.state == "pending",
            )
            .values(
                state="cancelled", last_error="superseded by the client's report", updated_at=now
            )
        )
    refresh_task(session, assignment)
    return row


def record_rating(
    session: Session, assignment: Assignment, rating: int, settings: Settings, now: datetime
) -> Completion:
    """A lone 1-5 rates the latest report; with no report yet it means done, rated."""
    existing = session.exec(
        select(Completion).where(Completion.assignment_id == assignment.id)
    ).first()
    status = CompletionStatus(existing.status) if existing else CompletionStatus.done
    return record_completion(
        session,
        assignment,
        CompletionData(status=status, source="sms", reported_at=now, quality=rating),
        settings,
        now,
    )


def set_consent(
    session: Session,
    patients: list[Patient],
    channel: str,
    opted_in: bool,
    source: str,
    now: datetime,
) -> None:
    for patient in patients:
        if channel == "sms":
            if patient.sms_opted_out == (not opted_in):
                continue
            patient.sms_opted_out = not opted_in
        else:
            if patient.email_opted_out == (not opted_in):
                continue
            patient.email_opted_out = not opted_in
        patient.updated_at = now
        session.add(
            ConsentEvent(
                patient_id=patient.id, channel=channel, opted_in=opted_in, source=source, at=now
            )
        )


# -- inbound SMS ---------------------------------------------------------------------


@dataclass(frozen=True)
class InboundResult:
    outcome: str  # applied | rejected | ignored | duplicate
    reply: str | None = None
    reason: str | None = None


def _open_assignment(session: Session, patient_ids: list[int]) -> Assignment | None:
    """The open assignment the client was most recently reminded about (or assigned)."""
    rows = session.exec(
        select(Assignment).where(
            col(Assignment.patient_id).in_(patient_ids),
            col(Assignment.status).in_([TaskStatus.requested.value, TaskStatus.in_progress.value]),
        )
    ).all()
    if not rows:
        return None

    def last_touch(a: Assignment) -> datetime:
        sent = session.exec(
            select(Reminder.sent_at)
            .where(Reminder.assignment_id == a.id, Reminder.sent_at.is_not(None))  # type: ignore[union-attr]
            .order_by(col(Reminder.sent_at).desc())
        ).first()
        return max(sent or a.assigned_at, a.assigned_at)

    return max(rows, key=last_touch)


def _recently_reported(
    session: Session, patient_ids: list[int], now: datetime
) -> Assignment | None:
    return session.exec(
        select(Assignment)
        .join(Completion, Completion.assignment_id == Assignment.id)
        .where(
            col(Assignment.patient_id).in_(patient_ids),
            Completion.reported_at >= now - RATING_WINDOW,
        )  # type: ignore[operator]
        .order_by(col(Completion.reported_at).desc())
    ).first()


def handle_inbound_sms(
    session: Session,
    *,
    sender: str,
    body: str,
    message_sid: str,
    settings: Settings,
    renderer: Renderer,
    now: datetime,
) -> InboundResult:
    """Apply one inbound SMS. The body is never stored; the sender only as a hash."""
    if session.exec(
        select(InboundMessage.id).where(InboundMessage.provider_message_id == message_sid)
    ).first():
        return InboundResult("duplicate")
    reply = parse_reply(body)
    record = InboundMessage(
        provider="twilio",
        provider_message_id=message_sid,
        sender_hash=sender_hash(sender, sender_key(_secret(settings))),
        intent=reply.intent.value,
        outcome="rejected",
        received_at=now,
    )
    session.add(record)
    try:
        phone = normalise_phone(sender, settings.practice.default_region)
    except ContactError:
        phone = None
    patients = (
        list(session.exec(select(Patient).where(Patient.phone_e164 == phone)).all())
        if phone
        else []
    )
    if not patients:
        record.reason = "sender is not a known client"
        log.info("inbound SMS from an unknown sender rejected")
        return InboundResult("rejected", reason=record.reason)
    patient = patients[0]
    record.patient_id = patient.id
    ids = [p.id for p in patients]
    lang = reply.language or patient.language
    practice = settings.practice

    def answer(name: str, **ctx) -> str | None:
        if any(p.sms_opted_out for p in patients):
            return None
        return renderer.sms(name, lang, practice=practice.name, contact=practice.contact, **ctx)

    match reply.intent:
        case Intent.stop:
            set_consent(session, patients, "sms", False, "sms:keyword", now)
            record.outcome = "applied"
            return InboundResult("applied")  # the carrier/Twilio confirms the opt-out itself
        case Intent.start:
            set_consent(session, patients, "sms", True, "sms:keyword", now)
            record.outcome = "applied"
            return InboundResult("applied")
        case Intent.help:
            record.outcome = "applied"
            return InboundResult("applied", reply=answer("help"))
        case Intent.unknown:
            record.outcome = "ignored"
            record.reason = "not understood"
            return InboundResult("ignored", reply=answer("unknown"), reason=record.reason)
        case Intent.rating:
            target = _recently_reported(session, ids, now) or _open_assignment(session, ids)
            if target is None:
                record.reason = "no assignment to rate"
                return InboundResult("rejected", reply=answer("unknown"), reason=record.reason)
            assert reply.rating is not None
            record_rating(session, target, reply.rating, settings, now)
            record.assignment_id = target.id
            record.outcome = "applied"
            return InboundResult("applied", reply=answer("ack_rating"))
    status = {
        Intent.done: CompletionStatus.done,
        Intent.partial: CompletionStatus.partial,
        Intent.not_done: CompletionStatus.not_done,
    }[reply.intent]
    target = _open_assignment(session, ids)
    if target is None:
        record.reason = "no open assignment"
        return InboundResult("rejected", reply=answer("unknown"), reason=record.reason)
    record_completion(
        session,
        target,
        CompletionData(status=status, source="sms", reported_at=now, quality=reply.rating),
        settings,
        now,
    )
    record.assignment_id = target.id
    record.outcome = "applied"
    return InboundResult("applied", reply=answer("ack_reported", status=status.value))


def _secret(settings: Settings) -> str | None:
    secret = settings.security.secret_key
    return secret.get_secret_value() if secret else None
