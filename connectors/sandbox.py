"""A simulated EHR: a homework feed to poll, a webhook, and a place notes land.

It behaves as a small-practice EHR's API would: every change gets a sequence number,
polls page through changes after a cursor, and notes are keyed by the writer's
identifier so writing the same note twice keeps one. The demo and the tests drive it
through the same core paths a real connector uses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bridge import signing
from bridge.connector import Connector, WebhookRejected
from bridge.domain import (
    AppointmentBooked,
    AssignmentCancelled,
    AssignmentData,
    AssignmentUpserted,
    ClinicianData,
    CompletionData,
    CompletionReported,
    Event,
    NoteWrite,
    Page,
    PatientData,
    TaskStatus,
)
from bridge.errors import FatalError, RetriableError


class SandboxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_size: int = Field(50, ge=1, le=1000)
    webhook_secret: SecretStr | None = None


@dataclass(frozen=True)
class StoredNote:
    identifier: str
    external_id: str
    patient_external_id: str
    assignment_external_id: str
    kind: str
    text: str
    document_reference: dict


class SandboxConnector(Connector):
    Options = SandboxOptions

    def __init__(self, name, options, *, clock, http=None) -> None:
        super().__init__(name, options, clock=clock, http=http)
        self._lock = threading.Lock()
        self._seq = 0
        self.patients: dict[str, PatientData] = {}
        self.clinicians: dict[str, ClinicianData] = {}
        self.assignments: dict[str, AssignmentData] = {}
        self._changes: list[tuple[int, Event]] = []  # (sequence, event), append-only
        self.notes: dict[str, StoredNote] = {}
        self.note_writes = 0
        self._write_failures: list[Exception] = []
        self._poll_failures: list[Exception] = []

    # -- what the EHR's users do -----------------------------------------------------

    def _record(self, event: Event) -> None:
        self._seq += 1
        self._changes.append((self._seq, event))

    def add_clinician(self, clinician: ClinicianData) -> None:
        with self._lock:
            self.clinicians[clinician.external_id] = clinician

    def add_patient(self, patient: PatientData) -> None:
        with self._lock:
            self.patients[patient.external_id] = patient

    def _upserted(self, a: AssignmentData) -> AssignmentUpserted:
        return AssignmentUpserted(
            a,
            self.patients.get(a.patient_external_id),
            self.clinicians.get(a.clinician_external_id or ""),
        )

    def assign(self, assignment: AssignmentData) -> None:
        with self._lock:
            self.assignments[assignment.external_id] = assignment
            self._record(self._upserted(assignment))

    def update_assignment(self, external_id: str, **changes) -> AssignmentData:
        with self._lock:
            updated = replace(self.assignments[external_id], **changes)
            self.assignments[external_id] = updated
            self._record(self._upserted(updated))
            return updated

    def cancel(self, external_id: str) -> None:
        with self._lock:
            a = self.assignments[external_id]
            self.assignments[external_id] = replace(a, status=TaskStatus.cancelled)
            self._record(AssignmentCancelled(external_id, "cancelled by the clinician"))

    def book_appointment(self, patient_external_id: str, start: datetime) -> None:
        with self._lock:
            self._record(AppointmentBooked(patient_external_id, start))

    def report_in_portal(self, assignment_external_id: str, completion: CompletionData) -> None:
        with self._lock:
            self._record(CompletionReported(assignment_external_id, completion))

    def fail_next_writes(self, *errors: Exception) -> None:
        """Make the next note writes fail with these errors, in order (outage drills)."""
        with self._lock:
            self._write_failures.extend(errors)

    def fail_next_polls(self, *errors: Exception) -> None:
        """Make the next polls fail with these errors, in order (EHR outage drills)."""
        with self._lock:
            self._poll_failures.extend(errors)

    # -- the connector contract ------------------------------------------------------

    def poll(self, cursor: str | None) -> Iterator[Page]:
        with self._lock:
            if self._poll_failures:
                raise self._poll_failures.pop(0)
        yield from self._pages(cursor)

    def _pages(self, cursor: str | None) -> Iterator[Page]:
        try:
            after = int(cursor) if cursor else 0
        except ValueError:
            raise FatalError(f"sandbox cursor {cursor!r} is not a sequence number") from None
        size = self.options.page_size
        while True:
            with self._lock:
                batch = [(s, e) for s, e in self._changes if s > after][:size]
            if not batch:
                return
            after = batch[-1][0]
            yield Page(events=[e for _, e in batch], cursor=str(after))
            if len(batch) < size:
                return

    def write_note(self, note: NoteWrite) -> str:
        with self._lock:
            if self._write_failures:
                raise self._write_failures.pop(0)
            self.note_writes += 1
            existing = self.notes.get(note.identifier_value)
            if existing is not None:
                return existing.external_id
            stored = StoredNote(
                identifier=note.identifier_value,
                external_id=f"note-{len(self.notes) + 1}",
                patient_external_id=note.patient_external_id,
                assignment_external_id=note.assignment_external_id,
                kind=note.kind.value,
                text=note.text,
                document_reference=note.document_reference,
            )
            self.notes[note.identifier_value] = stored
            return stored.external_id

    def handle_webhook(self, headers: Mapping[str, str], body: bytes) -> list[Event]:
        """``{"assignment": "<id>"}`` signed with the shared secret: fetch just that one."""
        secret = self.options.webhook_secret
        if secret is None:
            raise WebhookRejected("webhooks are not enabled for this connector")
        try:
            signing.verify(
                secret.get_secret_value(), body, headers.get("x-bridge-signature"), self.clock.now()
            )
        except signing.SignatureError as exc:
            raise WebhookRejected(str(exc)) from None
        try:
            external_id = json.loads(body)["assignment"]
        except (ValueError, KeyError, TypeError):
            raise ValueError('expected a JSON object {"assignment": "<id>"}') from None
        with self._lock:
            a = self.assignments.get(str(external_id))
            if a is None:
                return []
            if a.status == TaskStatus.cancelled:
                return [AssignmentCancelled(a.external_id, "cancelled by the clinician")]
            return [self._upserted(a)]

    def describe(self) -> list[str]:
        hook = "webhook on" if self.options.webhook_secret else "no webhook"
        return [f"simulated EHR, pages of {self.options.page_size}, {hook}"]


__all__ = ["SandboxConnector", "SandboxOptions", "StoredNote", "RetriableError"]
