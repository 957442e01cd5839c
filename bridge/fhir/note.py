"""The write-back note as a FHIR R4 ``DocumentReference``.

Shaped for the strictest target (Epic): one inline base64 attachment whose contentType is
exactly ``text/plain`` by default, a LOINC progress-note type and the US Core
``clinical-note`` category. Pure functions; the bridge's write ledger, not the server,
keeps notes unique (conditional create is not race-safe), so the identifier is ours.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fhir.resources.R4B.documentreference import DocumentReference

from bridge.domain import NoteWrite
from bridge.fhir.task import as_utc

LOINC_SYSTEM = "http://loinc.org"
PROGRESS_NOTE_CODE = "11506-3"
PROGRESS_NOTE_DISPLAY = "Progress note"
CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
CLINICAL_NOTE_CODE = "clinical-note"
CLINICAL_NOTE_DISPLAY = "Clinical Note"
NOTE_TITLE = "Homework update"
CONTENT_TYPES = ("text/plain", "text/markdown", "text/html")


def build_document_reference(
    *,
    identifier_system: str,
    identifier_value: str,
    patient_ref: str,
    author_ref: str | None,
    task_ref: str | None,
    text: str,
    date: datetime,
    content_type: str = "text/plain",
    encounter_ref: str | None = None,
) -> DocumentReference:
    """A current progress note carrying ``text`` as UTF-8, base64-encoded inline.

    ``content_type`` is written verbatim (no charset parameter: Epic rejects it) and must be
    one of :data:`CONTENT_TYPES`. ``date`` must be aware; it is written in UTC.
    """
    if content_type not in CONTENT_TYPES:
        raise ValueError(f"content_type must be one of {CONTENT_TYPES}, got {content_type!r}")
    for what, value in (
        ("identifier_system", identifier_system),
        ("identifier_value", identifier_value),
        ("patient_ref", patient_ref),
        ("text", text),
    ):
        if not value:
            raise ValueError(f"{what} is required and cannot be empty")
    body: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [{"system": identifier_system, "value": identifier_value}],
        "status": "current",
        "type": {
            "coding": [
                {
                    "system": LOINC_SYSTEM,
                    "code": PROGRESS_NOTE_CODE,
                    "display": PROGRESS_NOTE_DISPLAY,
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": CATEGORY_SYSTEM,
                        "code": CLINICAL_NOTE_CODE,
                        "display": CLINICAL_NOTE_DISPLAY,
                    }
                ]
            }
        ],
        "subject": {"reference": patient_ref},
        "date": as_utc(date, "note date"),
        "content": [
            {
                "attachment": {
                    "contentType": content_type,
                    "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                    "title": NOTE_TITLE,
                }
            }
        ],
    }
    if author_ref:
        body["author"] = [{"reference": author_ref}]
    context: dict[str, Any] = {}
    if encounter_ref:
        context["encounter"] = [{"reference": encounter_ref}]
    if task_ref:
        context["related"] = [{"reference": task_ref}]
    if context:
        body["context"] = context
    return DocumentReference.model_validate(body)


def note_to_document_reference(
    note: NoteWrite,
    *,
    task_ref: str | None = None,
    encounter_ref: str | None = None,
    content_type: str = "text/plain",
) -> DocumentReference:
    """:func:`build_document_reference` for a ledger entry.

    The Task's server reference is not part of :class:`NoteWrite` (it is the EHR's id, not
    the source assignment id), so the caller passes it.
    """
    clinician = note.clinician_external_id
    return build_document_reference(
        identifier_system=note.identifier_system,
        identifier_value=note.identifier_value,
        patient_ref=f"Patient/{note.patient_external_id}",
        author_ref=f"Practitioner/{clinician}" if clinician else None,
        task_ref=task_ref,
        text=note.text,
        date=note.written_at,
        content_type=content_type,
        encounter_ref=encounter_ref,
    )


def note_text_from_document_reference(doc: DocumentReference | Mapping[str, Any]) -> str:
    """The text of the first inline attachment (decoded with its charset, UTF-8 by default).

    Accepts a parsed resource or its JSON dict (as stored in ``NoteWrite.document_reference``).
    Raises ``ValueError`` when no attachment carries inline data (e.g. only a ``url``).
    """
    if not isinstance(doc, DocumentReference):
        doc = DocumentReference.model_validate(doc)
    for content in doc.content or ():
        attachment = content.attachment
        if attachment is not None and attachment.data is not None:
            # fhir.resources has already base64-decoded ``data`` into bytes.
            return bytes(attachment.data).decode(_charset(attachment.contentType))
    raise ValueError("DocumentReference has no inline attachment data (only a url?)")


def _charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"
