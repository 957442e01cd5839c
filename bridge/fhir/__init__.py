"""Pure FHIR R4 mapping: assignments as ``Task``, write-back notes as ``DocumentReference``."""

from __future__ import annotations

from bridge.fhir.note import (
    build_document_reference,
    note_text_from_document_reference,
    note_to_document_reference,
)
from bridge.fhir.task import (
    assignment_to_task,
    execution_period,
    external_id_from_reference,
    task_from_json,
    task_identifier_system,
    task_to_assignment,
    task_to_json,
    with_business_status,
)

__all__ = [
    "assignment_to_task",
    "build_document_reference",
    "execution_period",
    "external_id_from_reference",
    "note_text_from_document_reference",
    "note_to_document_reference",
    "task_from_json",
    "task_identifier_system",
    "task_to_assignment",
    "task_to_json",
    "with_business_status",
]
