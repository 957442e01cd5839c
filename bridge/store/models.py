"""Tables. Unique constraints carry every idempotency rule the bridge relies on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bridge.store.types import UTCDateTime


def _ts(nullable: bool = False, index: bool = False):
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class Patient(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("connector", "external_id", name="uq_patient_source"),)

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=40)
    external_id: str = Field(max_length=200)
    name: str = Field(max_length=200)
    phone_e164: str | None = Field(default=None, max_length=20, index=True)
    email: str | None = Field(default=None, max_length=320)
    language: str = Field(default="en", max_length=8)
    timezone: str | None = Field(default=None, max_length=64)
    preferred_channel: str | None = Field(default=None, max_length=8)
    sms_opted_out: bool = False
    email_opted_out: bool = False
    phone_unusable: bool = False
    email_unusable: bool = False
    updated_at: datetime = _ts()


class Clinician(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("connector", "external_id", name="uq_clinician_source"),)

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=40)
    external_id: str = Field(max_length=200)
    name: str = Field(max_length=200)


class Assignment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("connector", "external_id", name="uq_assignment_source"),)

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=40)
    external_id: str = Field(max_length=200)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    clinician_id: int | None = Field(default=None, foreign_key="clinician.id", index=True)
    type_code: str = Field(max_length=80)
    title: str = Field(max_length=300)
    status: str = Field(max_length=20, index=True)
    business_status: str | None = Field(default=None, max_length=20)
    assigned_at: datetime = _ts()
    due_at: datetime | None = _ts(nullable=True)
    effective_due_at: datetime = _ts()
    task_json: str = Field(sa_column=Column(Text, nullable=False))
    source_hash: str = Field(max_length=64)
    version: int = 1
    updated_at: datetime = _ts()


class Reminder(SQLModel, table=True):
    """The reminder outbox: one row per assignment x cadence step."""

    __table_args__ = (
        UniqueConstraint("assignment_id", "step", name="uq_reminder_step"),
        Index("ix_reminder_due", "state", "scheduled_for"),
    )

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id", index=True)
    step: str = Field(max_length=20)
    scheduled_for: datetime = _ts()
    state: str = Field(max_length=12)
    channel: str | None = Field(default=None, max_length=12)
    provider_message_id: str | None = Field(default=None, max_length=64, unique=True)
    attempts: int = 0
    lease_until: datetime | None = _ts(nullable=True)
    leased_by: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=500)
    sent_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts()


class Completion(SQLModel, table=True):
    """What the client reported; one row per assignment, updated by later reports."""

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id", unique=True)
    status: str = Field(max_length=12)
    quantity: int | None = None
    quality: int | None = None
    barriers: str = Field(default="", max_length=200)
    reflection: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    source: str = Field(max_length=20)
    first_reported_at: datetime = _ts()
    reported_at: datetime = _ts()
    after_reminder: bool = False


class WriteBack(SQLModel, table=True):
    """The write-back outbox: one note per assignment x note kind."""

    __table_args__ = (
        UniqueConstraint("assignment_id", "kind", name="uq_writeback_kind"),
        Index("ix_writeback_due", "state", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id", index=True)
    kind: str = Field(max_length=20)
    state: str = Field(max_length=12)
    due_at: datetime = _ts()
    note_identifier: str = Field(max_length=120, unique=True)
    attempts: int = 0
    lease_until: datetime | None = _ts(nullable=True)
    leased_by: str | None = Field(default=None, max_length=64)
    external_note_id: str | None = Field(default=None, max_length=200)
    last_error: str | None = Field(default=None, max_length=500)
    written_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts()


class SyncCursor(SQLModel, table=True):
    connector: str = Field(primary_key=True, max_length=40)
    cursor: str | None = Field(default=None, max_length=500)
    updated_at: datetime = _ts()


class ConsentEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    channel: str = Field(max_length=12)
    opted_in: bool
    source: str = Field(max_length=40)
    at: datetime = _ts()


class InboundMessage(SQLModel, table=True):
    """Every inbound reply, applied or rejected. The sender is kept only as a hash."""

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    provider_message_id: str = Field(max_length=64, unique=True)
    sender_hash: str = Field(max_length=64)
    patient_id: int | None = Field(default=None, foreign_key="patient.id")
    assignment_id: int | None = Field(default=None, foreign_key="assignment.id")
    intent: str = Field(max_length=12)
    outcome: str = Field(max_length=12)
    reason: str | None = Field(default=None, max_length=200)
    received_at: datetime = _ts()


class Rejection(SQLModel, table=True):
    """An input from a connector that the bridge could not use, and why."""

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=40, index=True)
    external_id: str | None = Field(default=None, max_length=200)
    reason: str = Field(max_length=500)
    at: datetime = _ts()


class ClientLink(SQLModel, table=True):
    """A client's one-tap link: an opaque token, stored only as its hash, that expires."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    assignment_id: int = Field(foreign_key="assignment.id", index=True)
    reminder_id: int | None = Field(default=None, foreign_key="reminder.id")
    expires_at: datetime = _ts()
    created_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)


class ProviderEvent(SQLModel, table=True):
    """Provider webhook events already applied, so a redelivery changes nothing."""

    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_provider_event"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    event_id: str = Field(max_length=100)
    kind: str = Field(max_length=30)
    received_at: datetime = _ts()
