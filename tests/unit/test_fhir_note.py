"""DocumentReference mapping: the exact shape Epic accepts, and the text coming back intact."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.documentreference import DocumentReference

from bridge.domain import NoteKind, NoteWrite
from bridge.fhir import (
    build_document_reference,
    note_text_from_document_reference,
    note_to_document_reference,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
WRITTEN_AT = datetime(2024, 3, 5, 15, 45, 30, tzinfo=timezone(timedelta(hours=-5)))
TEXT = "Client completed 3 of 5 walks.\nMood: 4 → 7.\nBarriers: forgot."
SPANISH = "La clienta completó la exposición «ascensor» 2 veces. Ansiedad: 80 → 35. ¡Bien! 🎉"


def _build(**changes: Any) -> DocumentReference:
    kwargs: dict[str, Any] = {
        "identifier_system": "urn:homework-bridge:note",
        "identifier_value": "note-42",
        "patient_ref": "Patient/p1",
        "author_ref": "Practitioner/c1",
        "task_ref": "Task/t1",
        "text": TEXT,
        "date": WRITTEN_AT,
    }
    kwargs.update(changes)
    return build_document_reference(**kwargs)


def _as_json(doc: DocumentReference) -> dict[str, Any]:
    return json.loads(doc.model_dump_json())


def test_full_shape():
    body = _as_json(_build(encounter_ref="Encounter/e1"))

    assert body == {
        "resourceType": "DocumentReference",
        "identifier": [{"system": "urn:homework-bridge:note", "value": "note-42"}],
        "status": "current",
        "type": {
            "coding": [
                {"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": (
                            "http://hl7.org/fhir/us/core/CodeSystem/"
                            "us-core-documentreference-category"
                        ),
                        "code": "clinical-note",
                        "display": "Clinical Note",
                    }
                ]
            }
        ],
        "subject": {"reference": "Patient/p1"},
        "date": "2024-03-05T20:45:30Z",
        "author": [{"reference": "Practitioner/c1"}],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": base64.b64encode(TEXT.encode("utf-8")).decode("ascii"),
                    "title": "Homework update",
                }
            }
        ],
        "context": {
            "encounter": [{"reference": "Encounter/e1"}],
            "related": [{"reference": "Task/t1"}],
        },
    }


def test_default_content_type_is_exactly_text_plain():
    attachment = _as_json(_build())["content"][0]["attachment"]

    assert attachment["contentType"] == "text/plain"


def test_optional_parts_are_omitted():
    body = _as_json(_build(author_ref=None, task_ref=None))

    assert "author" not in body
    assert "context" not in body
    assert _as_json(_build(task_ref=None, encounter_ref="Encounter/e1"))["context"] == {
        "encounter": [{"reference": "Encounter/e1"}]
    }


@pytest.mark.parametrize("text", [TEXT, SPANISH, "x", "  leading and trailing  \n"])
@pytest.mark.parametrize("content_type", ["text/plain", "text/markdown", "text/html"])
def test_text_round_trips(text, content_type):
    doc = _build(text=text, content_type=content_type)
    reparsed = DocumentReference.model_validate_json(doc.model_dump_json())

    assert reparsed.content[0].attachment.contentType == content_type
    assert note_text_from_document_reference(doc) == text
    assert note_text_from_document_reference(reparsed) == text
    assert note_text_from_document_reference(json.loads(doc.model_dump_json())) == text


def test_emitted_resource_revalidates():
    doc = _build(encounter_ref="Encounter/e1")
    reparsed = DocumentReference.model_validate_json(doc.model_dump_json())

    assert reparsed.model_dump_json() == doc.model_dump_json()
    assert DocumentReference.model_validate(doc.model_dump(mode="json")) == reparsed


@pytest.mark.parametrize(
    "content_type", ["text/plain; charset=utf-8", "application/pdf", "TEXT/PLAIN", ""]
)
def test_other_content_types_are_refused(content_type):
    with pytest.raises(ValueError, match="content_type must be one of"):
        _build(content_type=content_type)


@pytest.mark.parametrize(
    "change",
    [
        {"text": ""},
        {"patient_ref": ""},
        {"identifier_system": ""},
        {"identifier_value": ""},
    ],
)
def test_missing_required_inputs_are_refused(change):
    with pytest.raises(ValueError, match="cannot be empty"):
        _build(**change)


def test_naive_date_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        _build(date=datetime(2024, 3, 5, 15, 45))


def test_note_write_maps_to_the_same_resource():
    note = NoteWrite(
        identifier_system="urn:homework-bridge:note",
        identifier_value="note-42",
        kind=NoteKind.completion,
        assignment_external_id="asg-1",
        patient_external_id="p1",
        clinician_external_id="c1",
        text=TEXT,
        written_at=WRITTEN_AT,
    )

    assert note_to_document_reference(note, task_ref="Task/t1") == _build()
    no_author = note_to_document_reference(
        NoteWrite(**{**note.__dict__, "clinician_external_id": None}), task_ref=None
    )
    assert no_author == _build(author_ref=None, task_ref=None)


def test_charset_parameter_is_honoured_when_reading():
    body = _as_json(_build())
    attachment = body["content"][0]["attachment"]
    attachment["contentType"] = 'text/plain; charset="ISO-8859-1"'
    attachment["data"] = base64.b64encode("Señora Núñez".encode("latin-1")).decode("ascii")

    assert note_text_from_document_reference(body) == "Señora Núñez"


def test_first_inline_attachment_is_read():
    body = _as_json(_build())
    body["content"].insert(0, {"attachment": {"url": "Binary/1", "contentType": "text/plain"}})

    assert note_text_from_document_reference(body) == TEXT


def test_hl7_example_document_reference_parses_but_has_no_inline_text():
    raw = (FIXTURES / "documentreference-example-hl7.json").read_bytes()
    doc = DocumentReference.model_validate_json(raw)

    assert doc.id == "example"
    assert DocumentReference.model_validate_json(doc.model_dump_json()) == doc
    with pytest.raises(ValueError, match="no inline attachment data"):
        note_text_from_document_reference(doc)


def test_hl7_example_with_inline_data_reads_back():
    body = json.loads((FIXTURES / "documentreference-example-hl7.json").read_text())
    body["content"][0]["attachment"]["data"] = base64.b64encode(b"<ClinicalDocument/>").decode()

    assert note_text_from_document_reference(body) == "<ClinicalDocument/>"


def test_date_is_written_in_utc():
    doc = _build(date=datetime(2024, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))))

    assert _as_json(doc)["date"] == "2023-12-31T22:30:00Z"
    assert doc.date == datetime(2023, 12, 31, 22, 30, tzinfo=UTC)
