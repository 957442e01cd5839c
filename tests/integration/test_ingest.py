"""Polling: idempotent upserts, cursor with the data, rejections that change nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, func, select

from bridge.domain import AssignmentUpserted, TaskStatus
from bridge.errors import RetriableError
from bridge.fhir import task_from_json, task_to_assignment
from bridge.store.models import Assignment, Patient, Rejection, Reminder, SyncCursor
from tests.factories import CLINICIAN, assignment, patient, seed


def count(bridge, model) -> int:
    with Session(bridge.engine) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def rows(bridge, model):
    with Session(bridge.engine) as s:
        return list(s.exec(select(model)).all())


def test_assignment_becomes_task_with_planned_reminders(any_bridge):
    bridge = any_bridge
    ehr = bridge.connectors["ehr"]
    seed(ehr)
    a = assignment("hw-1", bridge.clock.now(), days=7)
    ehr.assign(a)
    stats = bridge.poll("ehr")
    assert (stats.pages, stats.events, stats.rejected) == (1, 1, 0)
    [row] = rows(bridge, Assignment)
    connector, data, completion, _ = task_to_assignment(task_from_json(row.task_json))
    assert connector == "ehr" and data == a and completion is None
    steps = sorted(r.step for r in rows(bridge, Reminder))
    assert steps == ["mid_window", "near_due", "on_assign", "overdue"]


def test_repeated_poll_and_repeated_page_change_nothing(any_bridge):
    bridge = any_bridge
    ehr = bridge.connectors["ehr"]
    seed(ehr)
    for i in range(7):  # page_size is 3: three pages
        ehr.assign(assignment(f"hw-{i}", bridge.clock.now()))
    assert bridge.poll("ehr").pages == 3
    before = [(r.id, r.scheduled_for, r.state) for r in rows(bridge, Reminder)]
    versions = {a.external_id: a.version for a in rows(bridge, Assignment)}
    # a second poll reads nothing new; replaying every page from scratch changes nothing
    assert bridge.poll("ehr").events == 0
    with Session(bridge.engine) as s:
        s.get(SyncCursor, "ehr").cursor = None
        s.commit()
    assert bridge.poll("ehr").events == 7
    assert [(r.id, r.scheduled_for, r.state) for r in rows(bridge, Reminder)] == before
    assert {a.external_id: a.version for a in rows(bridge, Assignment)} == versions
    assert count(bridge, Assignment) == 7


def test_cursor_commits_with_each_page_and_a_crash_rereads(bridge, monkeypatch):
    ehr = bridge.connectors["ehr"]
    seed(ehr)
    for i in range(5):
        ehr.assign(assignment(f"hw-{i}", bridge.clock.now()))
    real_poll = ehr.poll

    def failing_after_first_page(cursor):
        pages = real_poll(cursor)
        yield next(pages)
        raise RetriableError("EHR went away")

    monkeypatch.setattr(ehr, "poll", failing_after_first_page)
    with pytest.raises(RetriableError):
        bridge.poll("ehr")
    assert count(bridge, Assignment) == 3
    with Session(bridge.engine) as s:
        assert s.get(SyncCursor, "ehr").cursor == "3"
    monkeypatch.setattr(ehr, "poll", real_poll)
    assert bridge.poll("ehr").events == 2
    assert count(bridge, Assignment) == 5


@pytest.mark.parametrize(
    ("bad_patient", "reason"),
    [
        (patient("p9", phone=None, email=None), "no phone or email on file"),
        (patient("p9", phone="555"), "phone number is not a valid number"),
        (patient("p9", phone="call me maybe"), "phone number cannot be parsed"),
        (patient("p9", phone="+13125550109", timezone="Mars/Olympus"), "unknown time zone"),
    ],
)
def test_bad_input_is_rejected_whole_and_the_rest_of_the_page_goes_on(
    any_bridge, bad_patient, reason
):
    bridge = any_bridge
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1"), bad_patient)
    ehr.assign(assignment("hw-ok-1", bridge.clock.now()))
    ehr.assign(assignment("hw-bad", bridge.clock.now(), patient_ext="p9"))
    ehr.assign(assignment("hw-ok-2", bridge.clock.now()))
    stats = bridge.poll("ehr")
    assert (stats.events, stats.rejected) == (2, 1)
    assert sorted(a.external_id for a in rows(bridge, Assignment)) == ["hw-ok-1", "hw-ok-2"]
    assert [p.external_id for p in rows(bridge, Patient)] == ["p1"]  # nothing half written
    [rejection] = rows(bridge, Rejection)
    assert rejection.external_id == "hw-bad" and reason in rejection.reason
    with Session(bridge.engine) as s:
        assert s.get(SyncCursor, "ehr").cursor == "3"  # the cursor still moved past it


def test_email_only_client_is_accepted(bridge):
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1", phone=None, email="Client@Example.org"))
    ehr.assign(assignment("hw-1", bridge.clock.now()))
    assert bridge.poll("ehr").rejected == 0
    [p] = rows(bridge, Patient)
    assert (p.phone_e164, p.email) == (None, "client@example.org")


def test_phone_numbers_are_normalised_to_e164(bridge):
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1", phone="(312) 555-0101"))
    ehr.assign(assignment("hw-1", bridge.clock.now()))
    bridge.poll("ehr")
    assert rows(bridge, Patient)[0].phone_e164 == "+13125550101"


def test_changed_due_date_replans_and_cancel_cancels(any_bridge):
    bridge = any_bridge
    ehr = bridge.connectors["ehr"]
    seed(ehr)
    now = bridge.clock.now()
    ehr.assign(assignment("hw-1", now, days=7))
    bridge.poll("ehr")
    near = {r.step: r.scheduled_for for r in rows(bridge, Reminder)}["near_due"]
    ehr.update_assignment("hw-1", due_at=now + timedelta(days=10))
    bridge.poll("ehr")
    moved = {r.step: r.scheduled_for for r in rows(bridge, Reminder)}["near_due"]
    assert moved - near == timedelta(days=3)
    assert rows(bridge, Assignment)[0].version == 2
    ehr.cancel("hw-1")
    bridge.poll("ehr")
    assert rows(bridge, Assignment)[0].status == "cancelled"
    assert {r.state for r in rows(bridge, Reminder)} == {"cancelled"}


def test_appointment_sets_the_window_of_an_assignment_without_due_date(bridge):
    ehr = bridge.connectors["ehr"]
    seed(ehr)
    now = bridge.clock.now()
    ehr.assign(assignment("hw-1", now, due_at=None))
    bridge.poll("ehr")
    [row] = rows(bridge, Assignment)
    assert row.effective_due_at == now + timedelta(days=7)  # the policy's default window
    session = now + timedelta(days=4, hours=2)
    ehr.book_appointment("p1", session)
    bridge.poll("ehr")
    [row] = rows(bridge, Assignment)
    assert row.effective_due_at == session
    near = {r.step: r.scheduled_for for r in rows(bridge, Reminder)}["near_due"]
    assert near == session - timedelta(hours=24)


def test_assignment_for_an_unknown_client_is_rejected(bridge):
    ehr = bridge.connectors["ehr"]
    ehr.add_clinician(CLINICIAN)
    a = assignment("hw-1", bridge.clock.now(), patient_ext="ghost")
    # an event with no patient attached, for a client the bridge never saw
    page_event = AssignmentUpserted(a, None, CLINICIAN)
    from bridge.ingest import apply_events
    from bridge.store.db import session_scope

    with session_scope(bridge.engine) as s:
        assert apply_events(s, "ehr", [page_event], bridge.settings, bridge.clock.now()) == (0, 1)
    assert count(bridge, Assignment) == 0
    assert "never seen" in rows(bridge, Rejection)[0].reason


def test_completed_in_source_cancels_reminders(bridge):
    ehr = bridge.connectors["ehr"]
    seed(ehr)
    ehr.assign(assignment("hw-1", bridge.clock.now()))
    bridge.poll("ehr")
    ehr.update_assignment("hw-1", status=TaskStatus.completed)
    bridge.poll("ehr")
    assert {r.state for r in rows(bridge, Reminder)} == {"cancelled"}


def test_one_replica_polls_a_connector_at_a_time(pg_url, clock):
    """While another replica holds the connector's advisory lock, this one skips the poll."""
    from sqlalchemy import create_engine, text

    from bridge.store.db import advisory_key
    from tests.conftest import build_bridge

    bridge = build_bridge(pg_url, clock)
    seed(bridge.connectors["ehr"])
    bridge.connectors["ehr"].assign(assignment("hw-1", clock.now()))
    other = create_engine(pg_url)
    with other.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": advisory_key("poll:ehr")})
        stats = bridge.poll("ehr")
        assert stats.skipped and stats.events == 0
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key("poll:ehr")})
    assert bridge.poll("ehr").events == 1  # the lock is free again
    other.dispose()
    bridge.close()
