"""The bridge's vocabulary as plain, immutable data.

Connectors turn what an EHR says into these; the core stores them; the FHIR mapping
turns them into resources. Nothing here touches a database or the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class TaskStatus(StrEnum):
    requested = "requested"
    in_progress = "in-progress"
    completed = "completed"
    cancelled = "cancelled"
    failed = "failed"
    entered_in_error = "entered-in-error"

    @property
    def is_open(self) -> bool:
        return self in (TaskStatus.requested, TaskStatus.in_progress)


class BusinessStatus(StrEnum):
    """The funnel, kept in ``Task.businessStatus``."""

    delivered = "delivered"
    reminded = "reminded"
    overdue = "overdue"
    reported = "reported"
    written_back = "written-back"


class CompletionStatus(StrEnum):
    done = "done"
    partial = "partial"
    not_done = "not_done"


class Barrier(StrEnum):
    forgot = "forgot"
    too_busy = "too_busy"
    too_hard = "too_hard"
    avoided = "avoided"
    no_opportunity = "no_opportunity"
    other = "other"


class Step(StrEnum):
    """A cadence step: which reminder of an assignment this is."""

    on_assign = "on_assign"
    mid_window = "mid_window"
    near_due = "near_due"
    overdue = "overdue"


class ReminderState(StrEnum):
    scheduled = "scheduled"
    sending = "sending"
    unknown = "unknown"  # the provider may have it; its callback settles it
    sent = "sent"
    delivered = "delivered"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


class WriteBackState(StrEnum):
    pending = "pending"
    writing = "writing"
    written = "written"
    failed = "failed"
    cancelled = "cancelled"


class NoteKind(StrEnum):
    completion = "completion"
    missed = "missed"


@dataclass(frozen=True)
class PatientData:
    external_id: str
    name: str
    phone: str | None = None
    email: str | None = None
    language: str | None = None
    timezone: str | None = None
    preferred_channel: str | None = None  # "sms" | "email"; None: SMS first


@dataclass(frozen=True)
class ClinicianData:
    external_id: str
    name: str


@dataclass(frozen=True)
class AssignmentData:
    """One piece of homework for one client, as the source holds it."""

    external_id: str
    patient_external_id: str
    clinician_external_id: str | None
    type_code: str
    title: str
    assigned_at: datetime
    due_at: datetime | None = None
    instructions: str | None = None
    repetitions: int | None = None
    frequency: str | None = None
    duration: str | None = None
    success_criteria: str | None = None
    status: TaskStatus = TaskStatus.requested


@dataclass(frozen=True)
class CompletionData:
    status: CompletionStatus
    source: str
    reported_at: datetime
    quantity: int | None = None
    quality: int | None = None
    barriers: tuple[Barrier, ...] = ()
    reflection: str | None = None


# -- events a connector yields -------------------------------------------------------


@dataclass(frozen=True)
class AssignmentUpserted:
    assignment: AssignmentData
    patient: PatientData | None = None
    clinician: ClinicianData | None = None


@dataclass(frozen=True)
class AssignmentCancelled:
    external_id: str
    reason: str = "cancelled in source"


@dataclass(frozen=True)
class PatientUpserted:
    patient: PatientData


@dataclass(frozen=True)
class AppointmentBooked:
    patient_external_id: str
    start: datetime


@dataclass(frozen=True)
class CompletionReported:
    assignment_external_id: str
    completion: CompletionData


Event = (
    AssignmentUpserted
    | AssignmentCancelled
    | PatientUpserted
    | AppointmentBooked
    | CompletionReported
)


@dataclass(frozen=True)
class Rejection:
    """One input a connector could not use; recorded, never fatal to the page."""

    external_id: str | None
    reason: str


@dataclass(frozen=True)
class Page:
    """One page of a poll. The cursor is saved in the same transaction as the events."""

    events: list[Event] = field(default_factory=list)
    cursor: str | None = None
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class NoteWrite:
    """One note to land in the EHR, keyed by the bridge's own identifier."""

    identifier_system: str
    identifier_value: str
    kind: NoteKind
    assignment_external_id: str
    patient_external_id: str
    clinician_external_id: str | None
    text: str
    written_at: datetime
    document_reference: dict = field(default_factory=dict)
    attempt: int = 1  # > 1: an earlier try may have landed; look it up before creating
    completion: CompletionData | None = None  # what the client reported (completion notes)
