"""Write-back: each note exactly once, and the EHR's Task updated with If-Match."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from bridge.errors import FatalError, RetriableError
from tests.connectors.fhir_server import (
    encounter_resource,
    make_connector,
    task_resource,
)
from tests.connectors.fhir_server import note_write as note

NOTE_SYSTEM = "urn:homework-bridge:note"


def posts(server):
    return [r for r in server.requests if r.method == "POST" and "DocumentReference" in str(r.url)]


def searches(server):
    return [
        r
        for r in server.requests
        if r.method == "GET" and r.url.path.endswith("/DocumentReference")
    ]


def test_conditional_create_on_first_attempt(server, clock) -> None:
    connector = make_connector(server, clock)
    doc_id = connector.write_note(note())

    [post] = posts(server)
    assert post.headers["If-None-Exist"] == f"identifier={NOTE_SYSTEM}|hw-t1-completion"
    assert searches(server) == []
    stored = server.read("DocumentReference", doc_id)
    attachment = stored["content"][0]["attachment"]
    assert attachment["contentType"] == "text/plain"
    assert base64.b64decode(attachment["data"]).decode() == "Done <3 times>\n\nok"
    assert stored["context"]["related"] == [{"reference": "Task/t1"}]
    assert stored["identifier"] == [{"system": NOTE_SYSTEM, "value": "hw-t1-completion"}]


def test_writing_twice_keeps_one_note(server, clock) -> None:
    connector = make_connector(server, clock)
    first = connector.write_note(note())
    again = connector.write_note(note(attempt=2))
    assert first == again
    assert len(server.all("DocumentReference")) == 1
    assert len(posts(server)) == 1  # the retry found it by identifier


def test_without_conditional_create_the_note_is_looked_up_first(bare_server, clock) -> None:
    connector = make_connector(bare_server, clock)
    first = connector.write_note(note())
    [search] = searches(bare_server)
    assert ("identifier", f"{NOTE_SYSTEM}|hw-t1-completion") in search.url.params.multi_items()
    assert ("patient", "Patient/p1") in search.url.params.multi_items()
    [post] = posts(bare_server)
    assert "If-None-Exist" not in post.headers

    assert connector.write_note(note()) == first
    assert len(bare_server.all("DocumentReference")) == 1


def test_a_lost_response_is_not_retried_blind_without_conditional_create(bare_server, clock):
    connector = make_connector(bare_server, clock)
    bare_server.fault("lost", path="POST /fhir/DocumentReference")
    with pytest.raises(RetriableError, match="outcome is unknown"):
        connector.write_note(note())
    assert len(posts(bare_server)) == 1  # no second POST in the same attempt
    assert len(bare_server.all("DocumentReference")) == 1  # it had landed

    doc_id = connector.write_note(note(attempt=2))
    assert doc_id == bare_server.all("DocumentReference")[0]["id"]
    assert len(bare_server.all("DocumentReference")) == 1


def test_a_lost_response_is_retried_safely_with_conditional_create(server, clock) -> None:
    connector = make_connector(server, clock)
    server.fault("lost", path="POST /fhir/DocumentReference")
    doc_id = connector.write_note(note())
    assert len(posts(server)) == 2
    assert [d["id"] for d in server.all("DocumentReference")] == [doc_id]


def test_a_note_the_server_refuses_is_fatal_with_its_words(server, clock) -> None:
    connector = make_connector(server, clock)
    server.fault("bad-request", path="POST /fhir/DocumentReference")
    with pytest.raises(FatalError, match="400 error/invalid: Unknown search parameter"):
        connector.write_note(note())


def test_a_server_that_stays_down_is_retriable(server, clock) -> None:
    connector = make_connector(server, clock, max_retries=1)
    server.fault("fail", times=2, path="POST /fhir/DocumentReference")
    with pytest.raises(RetriableError):
        connector.write_note(note())


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/markdown", "Done <3 times>\n\nok"),
        ("text/html", "<div><p>Done &lt;3 times&gt;</p><p>ok</p></div>"),
    ],
)
def test_configured_content_type(server, clock, content_type, expected) -> None:
    connector = make_connector(server, clock, note_content_type=content_type)
    doc_id = connector.write_note(note())
    attachment = server.read("DocumentReference", doc_id)["content"][0]["attachment"]
    assert attachment["contentType"] == content_type
    assert base64.b64decode(attachment["data"]).decode() == expected


def test_required_encounter_is_the_clients_latest(server, clock) -> None:
    server.put(encounter_resource("e1", "p1", "2026-02-20T15:00:00Z"))
    server.put(encounter_resource("e2", "p1", "2026-02-27T15:00:00Z"))
    connector = make_connector(server, clock, require_encounter=True)
    doc_id = connector.write_note(note())
    context = server.read("DocumentReference", doc_id)["context"]
    assert context["encounter"] == [{"reference": "Encounter/e2"}]


def test_required_encounter_missing_waits(server, clock) -> None:
    connector = make_connector(server, clock, require_encounter=True)
    with pytest.raises(RetriableError, match="no encounter yet") as info:
        connector.write_note(note())
    assert info.value.retry_after == 3600
    assert server.all("DocumentReference") == []


def test_task_update_uses_if_match_and_records_the_note(server, clock) -> None:
    server.put(task_resource("t1"))
    connector = make_connector(server, clock, write_task_updates=True)
    doc_id = connector.write_note(note())

    [put] = [r for r in server.requests if r.method == "PUT"]
    assert put.headers["If-Match"] == 'W/"1"'
    task = server.read("Task", "t1")
    assert task["meta"]["versionId"] == "2"
    assert task["output"][-1]["valueReference"] == {"reference": f"DocumentReference/{doc_id}"}
    assert task["businessStatus"]["coding"][0]["code"] == "written-back"
    assert task["status"] == "requested"  # no report of "done" travelled with this note


def test_a_done_report_completes_the_ehrs_task(server, clock) -> None:
    from bridge.domain import CompletionData, CompletionStatus

    server.put(task_resource("t1"))
    connector = make_connector(server, clock, write_task_updates=True)
    done = CompletionData(status=CompletionStatus.done, source="sms", reported_at=clock.now())
    connector.write_note(replace(note(), completion=done))
    assert server.read("Task", "t1")["status"] == "completed"
    partly = CompletionData(status=CompletionStatus.partial, source="sms", reported_at=clock.now())
    server.put(task_resource("t2"))
    connector.write_note(
        replace(note(), identifier_value="n2", assignment_external_id="t2", completion=partly)
    )
    assert server.read("Task", "t2")["status"] == "requested"


def test_a_concurrent_edit_is_merged_not_overwritten(server, clock) -> None:
    server.put(task_resource("t1"))
    server.fault("edit", path="GET /fhir/Task/t1")  # the EHR saves right after we read
    connector = make_connector(server, clock, write_task_updates=True)
    doc_id = connector.write_note(note())

    puts = [r for r in server.requests if r.method == "PUT"]
    assert [p.headers["If-Match"] for p in puts] == ['W/"1"', 'W/"2"']
    task = server.read("Task", "t1")
    assert task["note"] == [{"text": "edited in the EHR"}]  # their change survived
    assert task["output"][-1]["valueReference"]["reference"] == f"DocumentReference/{doc_id}"


def test_a_task_that_keeps_changing_is_retried_later(server, clock) -> None:
    server.put(task_resource("t1"))
    server.fault("edit", times=3, path="GET /fhir/Task/t1")
    connector = make_connector(server, clock, write_task_updates=True)
    with pytest.raises(RetriableError, match="kept changing"):
        connector.write_note(note())
    # the retry finds the note and finishes the Task
    doc_id = connector.write_note(note(attempt=2))
    assert len(server.all("DocumentReference")) == 1
    refs = [o["valueReference"]["reference"] for o in server.read("Task", "t1")["output"]]
    assert refs == [f"DocumentReference/{doc_id}"]


def test_without_versioned_update_no_if_match(bare_server, clock) -> None:
    bare_server.put(task_resource("t1"))
    connector = make_connector(bare_server, clock, write_task_updates=True)
    connector.write_note(note())
    [put] = [r for r in bare_server.requests if r.method == "PUT"]
    assert "If-Match" not in put.headers


def test_a_refused_task_update_still_reports_the_note(server, clock) -> None:
    server.put(task_resource("t1"))
    server.fault("bad-request", path="PUT /fhir/Task/t1")
    connector = make_connector(server, clock, write_task_updates=True)
    doc_id = connector.write_note(note())
    assert server.read("DocumentReference", doc_id)
    assert "output" not in server.read("Task", "t1")


def test_task_update_is_idempotent(server, clock) -> None:
    server.put(task_resource("t1"))
    connector = make_connector(server, clock, write_task_updates=True)
    connector.write_note(note())
    connector.write_note(note(attempt=2))
    assert len([r for r in server.requests if r.method == "PUT"]) == 1


def test_the_sent_document_validates_and_keeps_the_core_fields(server, clock) -> None:
    connector = make_connector(server, clock)
    written = note()
    connector.write_note(written)
    [post] = posts(server)
    sent = json.loads(post.content)
    for key in ("identifier", "status", "type", "category", "subject", "author", "date"):
        assert sent[key] == written.document_reference[key]
    assert post.headers["Content-Type"] == "application/fhir+json"


def test_an_empty_document_reference_is_built_from_the_note(server, clock) -> None:
    connector = make_connector(server, clock)
    doc_id = connector.write_note(replace(note(), document_reference={}))
    stored = server.read("DocumentReference", doc_id)
    assert stored["subject"] == {"reference": "Patient/p1"}


def test_a_server_refusing_identifier_search_is_scanned_by_patient(bare_server, clock) -> None:
    connector = make_connector(bare_server, clock)
    first = connector.write_note(note())
    bare_server.fault("bad-request", path="identifier=")
    assert connector.write_note(note(attempt=2)) == first
    last = searches(bare_server)[-1]
    assert ("type", "http://loinc.org|11506-3") in last.url.params.multi_items()
    assert len(bare_server.all("DocumentReference")) == 1
