"""Write-back: the clinician's note, landed in the EHR exactly once.

A note is planned when the client reports (or when the due date passes in silence),
claimed under a lease when due, rendered from the assignment as it is at that moment,
and written through the assignment's own connector under the bridge's note identifier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists
from sqlmodel import Session, col, func, select

from bridge.capture import note_identifier
from bridge.config import Settings
from bridge.connector import Connector
from bridge.domain import BusinessStatus, NoteKind, NoteWrite, TaskStatus
from bridge.errors import FatalError, RetriableError
from bridge.fhir import build_document_reference, with_business_status
from bridge.records import assignment_data, completion_data, refresh_task
from bridge.rendering import Renderer
from bridge.store.db import is_postgres, session_scope
from bridge.store.models import Assignment, Clinician, Completion, Patient, Reminder, WriteBack
from bridge.store.outbox import backoff, claim

log = logging.getLogger(__name__)

NOTE_SYSTEM = "urn:homework-bridge:note"
STATUS_TEXT = {"done": "done", "partial": "partly done", "not_done": "not done yet"}


@dataclass
class WriteBackStats:
    planned_missed: int = 0
    claimed: int = 0
    written: int = 0
    retrying: int = 0
    failed: int = 0


def plan_missed_notes(engine, settings: Settings, now: datetime) -> int:
    """Open assignments past due (plus grace) with no report get a 'missed' note.

    In chunks of ``scheduler.batch_size``, each its own transaction: a practice that fell
    far behind (or a first start on a large caseload) must not be read into memory whole.
    On PostgreSQL replicas split the work (SKIP LOCKED) instead of queueing on it.
    """
    cutoff = now - timedelta(hours=settings.writeback.missed_after_hours)
    limit = settings.scheduler.batch_size
    planned = 0
    while True:
        with session_scope(engine) as session:
            stmt = (
                select(Assignment)
                .where(
                    col(Assignment.status).in_(
                        [TaskStatus.requested.value, TaskStatus.in_progress.value]
                    ),
                    Assignment.effective_due_at <= cutoff,
                    ~exists().where(Completion.assignment_id == Assignment.id),
                    ~exists().where(
                        WriteBack.assignment_id == Assignment.id,
                        WriteBack.kind == NoteKind.missed.value,
                    ),
                )
                .order_by(Assignment.id)
                .limit(limit)
            )
            if is_postgres(engine):
                stmt = stmt.with_for_update(skip_locked=True, of=Assignment)
            rows = session.exec(stmt).all()
            for row in rows:  # none has a missed note yet: the query says so
                note = note_identifier(row, NoteKind.missed)
                session.add(WriteBack(assignment_id=row.id, kind=NoteKind.missed.value,
                                      state="pending", due_at=now, updated_at=now,
                                      note_identifier=note))  # fmt: skip
                row.business_status = BusinessStatus.overdue.value
                row.task_json = with_business_status(row.task_json, BusinessStatus.overdue)
                row.updated_at = now
        planned += len(rows)
        if len(rows) < limit:
            return planned


def render_note(
    session: Session, wb: WriteBack, assignment: Assignment, renderer: Renderer
) -> NoteWrite:
    patient = session.get(Patient, assignment.patient_id)
    clinician = session.get(Clinician, assignment.clinician_id) if assignment.clinician_id else None
    completion = session.exec(
        select(Completion).where(Completion.assignment_id == assignment.id)
    ).first()
    sent = session.exec(
        select(func.count())
        .select_from(Reminder)
        .where(
            Reminder.assignment_id == assignment.id,
            col(Reminder.state).in_(["sent", "delivered"]),
        )
    ).one()
    data = assignment_data(assignment)
    ctx = {
        "title": data.title,
        "type_display": data.type_code.replace("_", " "),
        "assigned_on": data.assigned_at.date().isoformat(),
        "due_on": assignment.effective_due_at.date().isoformat(),
        "frequency": data.frequency,
        "repetitions": data.repetitions,
        "reminders_sent": sent,
    }
    if wb.kind == NoteKind.completion and completion is not None:
        ctx |= {
            "status_text": STATUS_TEXT[completion.status],
            "quantity": completion.quantity,
            "quality": completion.quality,
            "barriers": [b.replace("_", " ") for b in completion.barriers.split(",") if b],
            "reflection": completion.reflection,
            "reported_on": completion.reported_at.date().isoformat(),
            "source": {"sms": "text reply", "page": "completion page"}.get(
                completion.source, completion.source
            ),
            "after_reminder": completion.after_reminder,
        }
        text = renderer.note("completion", **ctx)
    else:
        reachable = bool(
            patient
            and patient.phone_e164
            and not patient.phone_unusable
            and not patient.sms_opted_out
        )
        reason = "opted out of texts" if patient and patient.sms_opted_out else "no usable phone"
        text = renderer.note("missed", reachable=reachable, unreachable_reason=reason, **ctx)
    patient_ext = patient.external_id if patient else ""
    clinician_ext = clinician.external_id if clinician else None
    doc = build_document_reference(
        identifier_system=NOTE_SYSTEM,
        identifier_value=wb.note_identifier,
        patient_ref=f"Patient/{patient_ext}",
        author_ref=f"Practitioner/{clinician_ext}" if clinician_ext else None,
        task_ref=f"Task/{assignment.external_id}",
        text=text,
        date=wb.updated_at,
    )
    return NoteWrite(
        identifier_system=NOTE_SYSTEM,
        identifier_value=wb.note_identifier,
        kind=NoteKind(wb.kind),
        assignment_external_id=assignment.external_id,
        patient_external_id=patient_ext,
        clinician_external_id=clinician_ext,
        text=text,
        written_at=wb.updated_at,
        document_reference=doc.model_dump(mode="json", exclude_none=True),
        attempt=wb.attempts,
        completion=completion_data(completion) if wb.kind == NoteKind.completion else None,
    )


def run_writebacks(
    engine,
    *,
    connectors: dict[str, Connector],
    settings: Settings,
    renderer: Renderer,
    now: datetime,
    worker: str,
) -> WriteBackStats:
    stats = WriteBackStats()
    if not settings.writeback.enabled:
        return stats
    sched = settings.scheduler
    stats.planned_missed = plan_missed_notes(engine, settings, now)
    while True:
        with session_scope(engine) as session:
            ids = claim(
                session,
                WriteBack,
                now=now,
                limit=sched.batch_size,
                lease=timedelta(seconds=sched.lease_seconds),
                worker=worker,
            )
        stats.claimed += len(ids)
        for wb_id in ids:
            _write_one(engine, wb_id, connectors, settings, renderer, now, stats)
        if len(ids) < sched.batch_size:
            return stats


def _write_one(
    engine,
    wb_id: int,
    connectors: dict[str, Connector],
    settings: Settings,
    renderer: Renderer,
    now: datetime,
    stats: WriteBackStats,
) -> None:
    with session_scope(engine) as session:
        wb = session.get(WriteBack, wb_id)
        assert wb is not None
        assignment = session.get(Assignment, wb.assignment_id)
        assert assignment is not None
        note = render_note(session, wb, assignment, renderer)
        connector = connectors.get(assignment.connector)
    error: Exception | None = None
    external_id = None
    if connector is None:
        error = FatalError(f"connector {assignment.connector!r} is not configured")
    else:
        try:
            external_id = connector.write_note(note)
        except (RetriableError, FatalError) as exc:
            error = exc
        except Exception as exc:
            log.exception("write-back through %s failed unexpectedly", assignment.connector)
            error = RetriableError(f"unexpected {type(exc).__name__}")
    with session_scope(engine) as session:
        wb = session.get(WriteBack, wb_id)
        assignment = session.get(Assignment, wb.assignment_id)
        wb.lease_until = None
        wb.updated_at = now
        if error is None:
            wb.state = "written"
            wb.external_note_id = external_id
            wb.written_at = now
            wb.last_error = None
            assignment.business_status = BusinessStatus.written_back.value
            assignment.updated_at = now
            refresh_task(session, assignment)
            stats.written += 1
        elif isinstance(error, RetriableError) and wb.attempts < settings.writeback.max_attempts:
            wb.state = "pending"
            wb.last_error = str(error)[:500]
            sched = settings.scheduler
            wb.due_at = now + backoff(
                sched.retry_backoff_seconds,
                wb.attempts,
                jitter=sched.retry_jitter,
                retry_after=error.retry_after,
            )
            stats.retrying += 1
        else:
            wb.state = "failed"
            wb.last_error = str(error)[:500]
            stats.failed += 1
