"""Ingest: connector events into the store, idempotently, and plan their reminders.

Each page is one transaction that also saves the connector's cursor, so a crash re-reads
the page instead of skipping it. Each event runs in a savepoint: a bad one is recorded
as a rejection and leaves nothing half written, and the rest of the page goes on.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, select

from bridge import cadence
from bridge.config import Settings, check_timezone
from bridge.contacts import normalise_email, normalise_phone
from bridge.domain import (
    AppointmentBooked,
    AssignmentCancelled,
    AssignmentData,
    AssignmentUpserted,
    ClinicianData,
    CompletionReported,
    Event,
    Page,
    PatientData,
    PatientUpserted,
    TaskStatus,
)
from bridge.errors import ContactError, SkippableError
from bridge.records import assignment_data, refresh_task, task_json
from bridge.store.models import Assignment, Clinician, Patient, Reminder, SyncCursor, WriteBack
from bridge.store.models import Rejection as RejectionRow

log = logging.getLogger(__name__)
CHANNELS = ("sms", "email")


@dataclass
class IngestStats:
    pages: int = 0
    events: int = 0
    rejected: int = 0
    skipped: bool = False


# -- patients and clinicians ---------------------------------------------------------


def upsert_patient(
    session: Session, connector: str, data: PatientData, settings: Settings, now: datetime
) -> Patient:
    """Store a client's contact details; refuse a client the bridge could never reach."""
    phone = email = None
    problems = []
    if data.phone:
        try:
            phone = normalise_phone(data.phone, settings.practice.default_region)
        except ContactError as exc:
            problems.append(str(exc))
    if data.email:
        try:
            email = normalise_email(data.email)
        except ContactError as exc:
            problems.append(str(exc))
    if phone is None and email is None:
        detail = "; ".join(problems) or "no phone or email on file"
        raise ContactError(f"client has no usable contact ({detail})")
    if data.timezone:
        check_timezone(data.timezone)
    row = session.exec(
        select(Patient).where(
            Patient.connector == connector, Patient.external_id == data.external_id
        )
    ).first()
    if row is None:
        row = Patient(
            connector=connector, external_id=data.external_id, name=data.name, updated_at=now
        )
        session.add(row)
    if row.phone_e164 != phone:
        row.phone_unusable = False  # a new number gets a fresh chance
    if row.email != email:
        row.email_unusable = False
    row.name = data.name
    row.phone_e164 = phone
    row.email = email
    row.language = (data.language or settings.practice.default_language)[:8]
    row.timezone = data.timezone
    row.preferred_channel = data.preferred_channel if data.preferred_channel in CHANNELS else None
    row.updated_at = now
    session.flush()
    return row


def upsert_clinician(session: Session, connector: str, data: ClinicianData) -> Clinician:
    row = session.exec(
        select(Clinician).where(
            Clinician.connector == connector, Clinician.external_id == data.external_id
        )
    ).first()
    if row is None:
        row = Clinician(connector=connector, external_id=data.external_id, name=data.name)
        session.add(row)
    row.name = data.name
    session.flush()
    return row


# -- assignments ---------------------------------------------------------------------


def _fingerprint(event: AssignmentUpserted) -> str:
    return hashlib.sha256(
        repr((event.assignment, event.patient, event.clinician)).encode()
    ).hexdigest()


def upsert_assignment(
    session: Session, connector: str, event: AssignmentUpserted, settings: Settings, now: datetime
) -> Assignment:
    data = event.assignment
    existing = session.exec(
        select(Assignment).where(
            Assignment.connector == connector, Assignment.external_id == data.external_id
        )
    ).first()
    fingerprint = _fingerprint(event)
    if existing is not None and existing.source_hash == fingerprint:
        return existing  # a repeated page or webhook: nothing changed
    if event.patient is not None:
        if event.patient.external_id != data.patient_external_id:
            raise SkippableError("assignment's patient does not match the patient sent with it")
        patient = upsert_patient(session, connector, event.patient, settings, now)
    else:
        patient = session.exec(
            select(Patient).where(
                Patient.connector == connector, Patient.external_id == data.patient_external_id
            )
        ).first()
        if patient is None:
            raise SkippableError("assignment names a client the bridge has never seen")
    clinician = None
    if event.clinician is not None:
        clinician = upsert_clinician(session, connector, event.clinician)
    elif data.clinician_external_id:
        clinician = session.exec(
            select(Clinician).where(
                Clinician.connector == connector,
                Clinician.external_id == data.clinician_external_id,
            )
        ).first()
    if data.due_at is not None and data.due_at <= data.assigned_at:
        raise SkippableError("assignment is due before it was assigned")

    status = data.status
    if existing is not None and existing.status == TaskStatus.completed and status.is_open:
        status = TaskStatus.completed  # the client reported it done; the source has not caught up
    row = existing or Assignment(connector=connector, external_id=data.external_id)
    row.patient_id = patient.id
    row.clinician_id = clinician.id if clinician else None
    row.type_code = data.type_code
    row.title = data.title
    row.status = status.value
    row.assigned_at = data.assigned_at
    row.due_at = data.due_at
    if data.due_at is not None or existing is None:
        row.effective_due_at = cadence.effective_due(data, settings.cadence)
    row.source_hash = fingerprint
    row.updated_at = now
    if existing is None:
        row.business_status = None
        row.task_json = task_json(connector, replace(data, status=status), None, None)
        session.add(row)
        session.flush()
    else:
        row.version += 1
        refresh_task(session, row, data)
    if status.is_open:
        replan(session, row, data, patient, settings, now)
    else:
        cancel_pending(session, row, now, reason=f"assignment {status.value} in source")
    return row


def replan(
    session: Session,
    row: Assignment,
    data: AssignmentData,
    patient: Patient,
    settings: Settings,
    now: datetime,
) -> None:
    """Make the scheduled reminders match the plan; what was already sent stays as it was."""
    tz = patient.timezone or settings.practice.timezone
    planned_data = replace(data, due_at=row.effective_due_at)
    planned = {p.step.value: p.at for p in cadence.plan(planned_data, settings.cadence, tz, now)}
    existing = {
        r.step: r
        for r in session.exec(select(Reminder).where(Reminder.assignment_id == row.id)).all()
    }
    for step, at in planned.items():
        reminder = existing.get(step)
        if reminder is None:
            session.add(
                Reminder(
                    assignment_id=row.id,
                    step=step,
                    scheduled_for=at,
                    state="scheduled",
                    updated_at=now,
                )
            )
        elif reminder.state == "scheduled" and reminder.scheduled_for != at:
            reminder.scheduled_for = at
            reminder.updated_at = now
    for step, reminder in existing.items():
        if step not in planned and reminder.state == "scheduled" and reminder.scheduled_for > now:
            reminder.state = "cancelled"
            reminder.last_error = "no longer in the plan"
            reminder.updated_at = now


def cancel_pending(
    session: Session, row: Assignment, now: datetime, reason: str, writebacks: bool = True
) -> None:
    session.exec(
        update(Reminder)
        .where(Reminder.assignment_id == row.id, Reminder.state == "scheduled")
        .values(state="cancelled", last_error=reason, updated_at=now)
    )
    if writebacks and row.status in (TaskStatus.cancelled, TaskStatus.entered_in_error):
        session.exec(
            update(WriteBack)
            .where(WriteBack.assignment_id == row.id, WriteBack.state == "pending")
            .values(state="cancelled", last_error=reason, updated_at=now)
        )


def cancel_assignment(
    session: Session, connector: str, event: AssignmentCancelled, now: datetime
) -> None:
    row = session.exec(
        select(Assignment).where(
            Assignment.connector == connector, Assignment.external_id == event.external_id
        )
    ).first()
    if row is None:
        return  # never seen: nothing to cancel
    if row.status != TaskStatus.cancelled:
        row.status = TaskStatus.cancelled.value
        row.version += 1
        row.updated_at = now
        refresh_task(session, row)
    cancel_pending(session, row, now, reason=event.reason)


def appointment_booked(
    session: Session, connector: str, event: AppointmentBooked, settings: Settings, now: datetime
) -> None:
    """The next session bounds the window of open assignments that have no due date."""
    patient = session.exec(
        select(Patient).where(
            Patient.connector == connector, Patient.external_id == event.patient_external_id
        )
    ).first()
    if patient is None or event.start <= now:
        return
    rows = session.exec(
        select(Assignment).where(
            Assignment.patient_id == patient.id,
            Assignment.due_at.is_(None),  # type: ignore[union-attr]
            Assignment.status.in_([TaskStatus.requested.value, TaskStatus.in_progress.value]),
        )
    ).all()
    for row in rows:
        if row.effective_due_at == event.start or event.start <= row.assigned_at:
            continue
        row.effective_due_at = event.start
        row.updated_at = now
        replan(session, row, assignment_data(row), patient, settings, now)


# -- events and pages ----------------------------------------------------------------


def apply_event(
    session: Session, connector: str, event: Event, settings: Settings, now: datetime
) -> None:
    from bridge.capture import record_completion

    match event:
        case AssignmentUpserted():
            upsert_assignment(session, connector, event, settings, now)
        case AssignmentCancelled():
            cancel_assignment(session, connector, event, now)
        case PatientUpserted():
            upsert_patient(session, connector, event.patient, settings, now)
        case AppointmentBooked():
            appointment_booked(session, connector, event, settings, now)
        case CompletionReported():
            row = session.exec(
                select(Assignment).where(
                    Assignment.connector == connector,
                    Assignment.external_id == event.assignment_external_id,
                )
            ).first()
            if row is None:
                raise SkippableError("completion for an assignment the bridge has never seen")
            record_completion(session, row, event.completion, settings, now)
        case _:
            raise SkippableError(f"unknown event type {type(event).__name__}")


def _external_id(event: Event) -> str | None:
    match event:
        case AssignmentUpserted():
            return event.assignment.external_id
        case AssignmentCancelled():
            return event.external_id
        case PatientUpserted():
            return event.patient.external_id
        case AppointmentBooked():
            return event.patient_external_id
        case CompletionReported():
            return event.assignment_external_id
    return None


def apply_events(
    session: Session, connector: str, events: list[Event], settings: Settings, now: datetime
) -> tuple[int, int]:
    """Apply each event in its own savepoint; return (applied, rejected)."""
    applied = rejected = 0
    for event in events:
        try:
            with session.begin_nested():
                apply_event(session, connector, event, settings, now)
            applied += 1
        except (SkippableError, ValueError) as exc:
            rejected += 1
            record_rejection(session, connector, _external_id(event), str(exc), now)
    return applied, rejected


def record_rejection(
    session: Session, connector: str, external_id: str | None, reason: str, now: datetime
) -> None:
    log.warning("rejected input from %s: %s", connector, reason)
    session.add(
        RejectionRow(connector=connector, external_id=external_id, reason=reason[:500], at=now)
    )


def apply_page(
    session: Session, connector: str, page: Page, settings: Settings, now: datetime
) -> tuple[int, int]:
    applied, rejected = apply_events(session, connector, page.events, settings, now)
    for rejection in page.rejections:
        record_rejection(session, connector, rejection.external_id, rejection.reason, now)
    save_cursor(session, connector, page.cursor, now)
    return applied, rejected + len(page.rejections)


def read_cursor(session: Session, connector: str) -> str | None:
    row = session.get(SyncCursor, connector)
    return row.cursor if row else None


def save_cursor(session: Session, connector: str, cursor: str | None, now: datetime) -> None:
    if cursor is None:
        return
    row = session.get(SyncCursor, connector)
    if row is None:
        session.add(SyncCursor(connector=connector, cursor=cursor, updated_at=now))
    else:
        row.cursor = cursor
        row.updated_at = now
