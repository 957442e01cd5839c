"""Outages: the EHR down for an hour loses nothing; a refused note ends as a dead letter."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, func, select

from bridge.errors import RetriableError
from bridge.scheduler import _guarded
from bridge.store.models import Assignment, Reminder, WriteBack
from tests.factories import assignment, patient, seed
from tests.integration.test_writeback import reply


def test_an_hour_long_ehr_outage_loses_and_repeats_nothing(any_bridge):
    bridge = any_bridge
    ehr = bridge.connectors["ehr"]
    seed(ehr, *[patient(f"p{i}", f"+1312555{4000 + i}") for i in range(6)])
    # every poll for an hour fails, as the scheduler's ticks would see it
    ehr.fail_next_polls(*[RetriableError("EHR 503") for _ in range(12)])
    poll = _guarded("poll:ehr", lambda: bridge.poll("ehr"))
    for i in range(12):  # one tick every five minutes
        ehr.assign(assignment(f"hw-{i}", bridge.clock.now(), patient_ext=f"p{i % 6}"))
        poll()
        bridge.clock.advance(timedelta(minutes=5))
    with Session(bridge.engine) as s:
        assert s.exec(select(func.count()).select_from(Assignment)).one() == 0
    poll()  # the EHR is back
    poll()  # and a repeated poll changes nothing
    with Session(bridge.engine) as s:
        ids = s.exec(select(Assignment.external_id)).all()
        steps = s.exec(select(func.count()).select_from(Reminder)).one()
    assert sorted(ids) == sorted(f"hw-{i}" for i in range(12))
    assert steps == len(ids) * 4  # four cadence steps each, none twice
    assert ehr.note_writes == 0


def test_a_note_the_ehr_keeps_failing_ends_as_a_dead_letter(any_bridge):
    bridge = any_bridge
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1"))
    ehr.assign(assignment("hw-1", bridge.clock.now()))
    bridge.poll("ehr")
    bridge.dispatch()
    reply(bridge, "done", "SM1")
    ehr.fail_next_writes(*[RetriableError("EHR 503") for _ in range(20)])
    for _ in range(60):  # hours of ticks
        bridge.clock.advance(timedelta(hours=2))
        bridge.write_back()
    with Session(bridge.engine) as s:
        wb = s.exec(select(WriteBack)).one()
    assert wb.state == "failed" and wb.attempts == bridge.settings.writeback.max_attempts
    assert wb.last_error == "EHR 503"
    assert ehr.notes == {}
