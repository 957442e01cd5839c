"""The fhir connector driven by the real core: poll into the store, a reply, a note back."""

from __future__ import annotations

import base64
from datetime import timedelta

from sqlmodel import Session, select

from bridge.capture import handle_inbound_sms
from bridge.store.db import session_scope
from bridge.store.models import Assignment, Patient, Reminder, SyncCursor, WriteBack
from tests.conftest import build_bridge
from tests.connectors.fhir_server import make_connector, patient_resource, task_resource


def test_poll_plan_reply_and_write_back(server, sqlite_url, clock) -> None:
    server.put(patient_resource("p2", phone=None, email=None))
    server.put(task_resource("t1", due="2026-03-10T15:00:00Z", authored="2026-03-03T14:00:00Z"))
    server.put(task_resource("t2", patient="p2"))  # no contact: rejected by the core
    bridge = build_bridge(sqlite_url, clock)
    bridge.connectors = {"ehr": make_connector(server, clock, write_task_updates=True)}
    try:
        stats = bridge.poll("ehr")
        assert (stats.pages, stats.events, stats.rejected) == (1, 1, 1)
        with Session(bridge.engine) as s:
            row = s.exec(select(Assignment)).one()
            assert row.external_id == "t1" and row.connector == "ehr"
            assert s.exec(select(Patient)).one().timezone == "America/Denver"
            assert s.exec(select(Reminder)).all()
            cursor = s.get(SyncCursor, "ehr").cursor
            assert cursor == server.read("Task", "t2")["meta"]["lastUpdated"]

        assert bridge.poll("ehr").events == 0  # nothing changed
        bridge.dispatch()
        with session_scope(bridge.engine) as s:
            handle_inbound_sms(
                s,
                sender="+13125550101",
                body="done",
                message_sid="SM1",
                settings=bridge.settings,
                renderer=bridge.renderer,
                now=bridge.clock.now(),
            )
        bridge.clock.advance(timedelta(minutes=31))
        assert bridge.write_back().written == 1

        [doc] = server.all("DocumentReference")
        text = base64.b64decode(doc["content"][0]["attachment"]["data"]).decode()
        assert "done" in text
        assert doc["context"]["related"] == [{"reference": "Task/t1"}]
        task = server.read("Task", "t1")
        assert task["businessStatus"]["coding"][0]["code"] == "written-back"
        with Session(bridge.engine) as s:
            wb = s.exec(select(WriteBack)).one()
            assert wb.state == "written" and wb.external_note_id == doc["id"]

        # the EHR's Task changed (our own update): the next poll sees it, the core dedups it
        assert bridge.poll("ehr").rejected == 0
    finally:
        bridge.close()
