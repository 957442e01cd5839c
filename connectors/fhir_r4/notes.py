"""Pure helpers for write-back: the note as the server should get it, and the Task merge.

The core renders every note as Epic's lowest common denominator (base64 ``text/plain``);
a server that takes markdown or HTML gets the same words in that form. The Task merge is
applied on top of whatever the server holds *now*, so a clinician's concurrent edit survives
a 412 and our retry.
"""

from __future__ import annotations

import base64
import copy
import html
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.documentreference import DocumentReference

from bridge.domain import BusinessStatus, NoteWrite
from bridge.fhir import note_to_document_reference
from bridge.fhir.note import LOINC_SYSTEM, NOTE_TITLE, PROGRESS_NOTE_CODE, PROGRESS_NOTE_DISPLAY
from bridge.fhir.task import BUSINESS_STATUS_SYSTEM

WRITTEN_BACK = BusinessStatus.written_back.value


def render_text(text: str, content_type: str) -> str:
    """The note's words in the attachment's format (plain text is already valid markdown)."""
    if content_type != "text/html":
        return text
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    body = "".join(
        "<p>" + "<br/>".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
    return f"<div>{body}</div>"


def document_for_server(
    note: NoteWrite, *, content_type: str, encounter_ref: str | None
) -> dict[str, Any]:
    """``note.document_reference`` re-rendered for this server, validated, as JSON."""
    task_ref = f"Task/{note.assignment_external_id}"
    base = note.document_reference or note_to_document_reference(
        note, task_ref=task_ref
    ).model_dump(mode="json", exclude_none=True)
    doc = copy.deepcopy(dict(base))
    data = base64.b64encode(render_text(note.text, content_type).encode("utf-8")).decode("ascii")
    doc["content"] = [
        {"attachment": {"contentType": content_type, "data": data, "title": NOTE_TITLE}}
    ]
    if encounter_ref:
        context = doc.setdefault("context", {})
        context["encounter"] = [{"reference": encounter_ref}]
    DocumentReference.model_validate(doc)  # what we send must be valid R4
    return doc


def note_output(doc_id: str) -> dict[str, Any]:
    """A Task.output pointing at the note (LOINC-typed, so the bridge's own codes stay clean)."""
    return {
        "type": {
            "coding": [
                {
                    "system": LOINC_SYSTEM,
                    "code": PROGRESS_NOTE_CODE,
                    "display": PROGRESS_NOTE_DISPLAY,
                }
            ]
        },
        "valueReference": {"reference": f"DocumentReference/{doc_id}"},
    }


def merge_task_update(
    task: Mapping[str, Any], doc_id: str, *, status: str | None = None
) -> dict[str, Any]:
    """The server's Task with our changes on top: the note as an output, the funnel status,
    and (when the core says so) a new ``status``. Idempotent: merging twice changes nothing.
    """
    merged = copy.deepcopy(dict(task))
    outputs = list(merged.get("output") or [])
    ref = f"DocumentReference/{doc_id}"
    if not any((o.get("valueReference") or {}).get("reference") == ref for o in outputs):
        outputs.append(note_output(doc_id))
    merged["output"] = outputs
    merged["businessStatus"] = {
        "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": WRITTEN_BACK}],
        "text": "Homework note written to the chart",
    }
    if status is not None and merged.get("status") not in ("cancelled", "entered-in-error"):
        merged["status"] = status
    return merged
