"""Write-back: one note per assignment and kind, retried when the EHR is down."""

from __future__ import annotations

import base64
from datetime import timedelta

from sqlmodel import Session, select

from bridge.capture import handle_inbound_sms
from bridge.errors import FatalError, RetriableError
from bridge.store.db import session_scope
from bridge.store.models import Assignment, WriteBack
from tests.factories import assignment, patient, seed


def reply(bridge, body: str, sid: str) -> None:
    with session_scope(bridge.engine) as s:
        handle_inbound_sms(
            s,
            sender="+13125550101",
            body=body,
            message_sid=sid,
            settings=bridge.settings,
            renderer=bridge.renderer,
            now=bridge.clock.now(),
        )


def writebacks(bridge) -> list[WriteBack]:
    with Session(bridge.engine) as s:
        return list(s.exec(select(WriteBack)).all())


def start(bridge):
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1"))
    ehr.assign(assignment("hw-1", bridge.clock.now(), days=7))
    bridge.poll("ehr")
    bridge.dispatch()
    return ehr


def test_done_note_waits_for_the_rating_then_lands_once(any_bridge):
    bridge = any_bridge
    ehr = start(bridge)
    reply(bridge, "done", "SM1")
    bridge.write_back()
    assert ehr.notes == {}  # settling: the client may still send a rating
    bridge.clock.advance(timedelta(minutes=5))
    reply(bridge, "5", "SM2")
    bridge.clock.advance(timedelta(minutes=30))
    stats = bridge.write_back()
    assert stats.written == 1
    note = ehr.notes["ehr:hw-1:completion"]
    assert "Client report: done" in note.text and "Quality (client rating 1-5): 5" in note.text
    assert note.external_id == "note-1"
    doc = note.document_reference
    assert doc["status"] == "current" and doc["type"]["coding"][0]["code"] == "11506-3"
    attachment = doc["content"][0]["attachment"]
    assert attachment["contentType"] == "text/plain"
    assert base64.b64decode(attachment["data"]).decode() == note.text
    assert doc["context"]["related"][0]["reference"] == "Task/hw-1"
    for _ in range(3):
        bridge.clock.advance(timedelta(hours=1))
        bridge.write_back()
    assert ehr.note_writes == 1
    [wb] = writebacks(bridge)
    assert wb.state == "written" and wb.external_note_id == "note-1"
    with Session(bridge.engine) as s:
        assert s.exec(select(Assignment)).one().business_status == "written-back"


def test_ehr_outage_is_retried_until_it_recovers(any_bridge):
    bridge = any_bridge
    ehr = start(bridge)
    reply(bridge, "done", "SM1")
    ehr.fail_next_writes(RetriableError("EHR 503"), RetriableError("EHR timeout"))
    bridge.clock.advance(timedelta(minutes=31))
    assert bridge.write_back().retrying == 1
    [wb] = writebacks(bridge)
    assert wb.state == "pending" and wb.last_error == "EHR 503"
    bridge.clock.advance(timedelta(seconds=300))
    assert bridge.write_back().retrying == 1
    bridge.clock.advance(timedelta(seconds=600))
    assert bridge.write_back().written == 1
    assert len(ehr.notes) == 1


def test_permanent_refusal_is_recorded_not_retried(bridge):
    ehr = start(bridge)
    reply(bridge, "done", "SM1")
    ehr.fail_next_writes(FatalError("EHR 422: author is not a practitioner"))
    bridge.clock.advance(timedelta(minutes=31))
    assert bridge.write_back().failed == 1
    [wb] = writebacks(bridge)
    assert wb.state == "failed" and "422" in wb.last_error
    bridge.clock.advance(timedelta(days=1))
    bridge.write_back()
    assert ehr.notes == {}


def test_silence_becomes_a_missed_note_after_the_grace_period(bridge):
    ehr = start(bridge)
    bridge.clock.advance(timedelta(days=7, hours=23))
    bridge.write_back()
    assert ehr.notes == {}
    bridge.clock.advance(timedelta(hours=2))
    assert bridge.write_back().planned_missed == 1
    note = ehr.notes["ehr:hw-1:missed"]
    assert "none received by the due date" in note.text
    assert bridge.write_back().planned_missed == 0  # once


def test_partial_report_is_noted_at_the_due_date(bridge):
    ehr = start(bridge)
    reply(bridge, "partly", "SM1")
    bridge.clock.advance(timedelta(days=2))
    bridge.write_back()
    assert ehr.notes == {}  # the client may still finish
    bridge.clock.advance(timedelta(days=6))
    bridge.write_back()
    assert "partly done" in ehr.notes["ehr:hw-1:completion"].text
    assert "ehr:hw-1:missed" not in ehr.notes


def test_cancelled_assignment_gets_no_note(bridge):
    ehr = start(bridge)
    reply(bridge, "partly", "SM1")
    ehr.cancel("hw-1")
    bridge.poll("ehr")
    bridge.clock.advance(timedelta(days=9))
    bridge.write_back()
    assert ehr.notes == {}
    assert [wb.state for wb in writebacks(bridge)] == ["cancelled"]


def test_missed_notes_are_planned_in_chunks_each_exactly_once(any_bridge):
    """More overdue assignments than one batch: every one planned once, in several chunks."""
    bridge = any_bridge
    ehr = bridge.connectors["ehr"]
    count = bridge.settings.scheduler.batch_size * 2 + 3
    seed(ehr, *[patient(f"p{i}", f"+1312555{5000 + i}") for i in range(count)])
    for i in range(count):
        ehr.assign(assignment(f"hw-{i}", bridge.clock.now(), patient_ext=f"p{i}"))
    bridge.poll("ehr")
    bridge.clock.advance(timedelta(days=9))

    from bridge.writeback import plan_missed_notes

    assert plan_missed_notes(bridge.engine, bridge.settings, bridge.clock.now()) == count
    assert plan_missed_notes(bridge.engine, bridge.settings, bridge.clock.now()) == 0
    with Session(bridge.engine) as s:
        notes = s.exec(select(WriteBack).where(WriteBack.kind == "missed")).all()
        overdue = s.exec(select(Assignment).where(Assignment.business_status == "overdue")).all()
    assert len(notes) == count and len({n.assignment_id for n in notes}) == count
    assert len(overdue) == count
    assert all('"code":"overdue"' in a.task_json for a in overdue)
