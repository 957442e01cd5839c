"""The whole loop, on SQLite and on PostgreSQL: EHR -> Task -> reminders -> reply -> note.

Replies go through the real Twilio webhook, signed with twilio's own RequestValidator.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from urllib.parse import urlencode

from fastapi.testclient import TestClient
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from bridge import cadence
from bridge.fhir import task_from_json, task_to_assignment
from bridge.store.models import Assignment, Reminder
from bridge.web.app import create_app
from tests.factories import assignment, patient, seed

TOKEN = "test-auth-token"
SMS_URL = "https://bridge.example.org/webhooks/twilio/sms"


def text_in(client: TestClient, sender: str, body: str, sid: str):
    form = {"From": sender, "To": "+13125550199", "Body": body, "MessageSid": sid}
    signature = RequestValidator(TOKEN).compute_signature(SMS_URL, form)
    return client.post(
        "/webhooks/twilio/sms",
        content=urlencode(form),
        headers={
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def test_full_loop(any_bridge):
    bridge, clock = any_bridge, any_bridge.clock
    ehr = bridge.connectors["ehr"]
    seed(
        ehr,
        patient("p1", "+13125550101", timezone="America/Chicago"),
        patient("p2", "+13125550102", timezone="America/Los_Angeles"),
        patient("p3", "+13125550103", timezone="America/New_York", language="es"),
        patient("p4", "+13125550104", timezone="America/Chicago"),
    )
    start = clock.now()
    for i, p in enumerate(("p1", "p2", "p3", "p4"), start=1):
        ehr.assign(assignment(f"hw-{i}", start - timedelta(minutes=30), days=7, patient_ext=p))
    client = TestClient(create_app(bridge))
    sent_at: list = []  # (message index, instant)

    replies = {
        # p1 finishes after the mid-window reminder and rates it
        "mid_window": [("+13125550101", "Done!"), ("+13125550101", "4")],
        # p2 texts STOP after the first message
        "on_assign": [("+1 (312) 555-0102", "stop")],
        # p3 did part of it
        "near_due": [("+13125550103", "parcial")],
    }
    sid = 0
    seen = 0
    for _ in range(10 * 24 * 4):  # ten days in 15-minute steps
        clock.advance(timedelta(minutes=15))
        bridge.poll("ehr")
        bridge.dispatch()
        new = bridge.channel.sent[seen:]
        seen = len(bridge.channel.sent)
        for message in new:
            sent_at.append((message, clock.now()))
            with Session(bridge.engine) as s:
                step = s.get(Reminder, message.reminder_id).step
            for sender, body in replies.get(step, []):
                if (
                    sender.replace(" ", "").replace("(", "").replace(")", "").replace("-", "")
                    != message.to
                ):
                    continue
                sid += 1
                response = text_in(client, sender, body, f"SM{sid:032d}")
                assert response.status_code == 200
        bridge.write_back()

    sent = bridge.channel.sent
    # no reminder was sent twice
    counts = Counter(m.reminder_id for m in sent)
    assert counts and max(counts.values()) == 1
    with Session(bridge.engine) as s:
        reminders = {r.id: r for r in s.exec(select(Reminder)).all()}
        rows = {a.external_id: a for a in s.exec(select(Assignment)).all()}
    assert len(
        {(reminders[m.reminder_id].assignment_id, reminders[m.reminder_id].step) for m in sent}
    ) == len(sent)
    # none was sent during the client's quiet hours
    zones = {
        "+13125550101": "America/Chicago",
        "+13125550102": "America/Los_Angeles",
        "+13125550103": "America/New_York",
        "+13125550104": "America/Chicago",
    }
    quiet = bridge.settings.cadence.quiet_hours
    for message, at in sent_at:
        assert not cadence.in_quiet_hours(at, zones[message.to], quiet), (message.to, at)
    # nothing was sent after STOP (p2 got exactly its first message)
    assert [m.to for m in sent].count("+13125550102") == 1
    # p1: completed, reminders stopped after DONE, note landed in the EHR with the rating
    p1_steps = [reminders[m.reminder_id].step for m in sent if m.to == "+13125550101"]
    assert p1_steps == ["on_assign", "mid_window"]
    note = ehr.notes["ehr:hw-1:completion"]
    assert "Client report: done" in note.text
    assert "Quality (client rating 1-5): 4" in note.text
    assert "reported after a reminder" in note.text
    assert note.document_reference["resourceType"] == "DocumentReference"
    # p4 never answered: got every step and a 'missed' note
    p4_steps = [reminders[m.reminder_id].step for m in sent if m.to == "+13125550104"]
    assert p4_steps == ["on_assign", "mid_window", "near_due", "overdue"]
    assert "none received by the due date" in ehr.notes["ehr:hw-4:missed"].text
    # p3 (Spanish) reported partly; got Spanish texts
    assert any("LISTO" in m.body for m in sent if m.to == "+13125550103")
    assert "partly done" in ehr.notes["ehr:hw-3:completion"].text
    # the Task carries the funnel and the completion
    _, data, completion, business = task_to_assignment(task_from_json(rows["hw-1"].task_json))
    assert rows["hw-1"].status == "completed" and completion.quality == 4
    assert business.value == "written-back"
    # every note written exactly once, even though write-back ran every step
    assert ehr.note_writes == len(ehr.notes) == 4
    # PHI-minimal by default: no homework title in any text
    assert all("Thought record" not in m.body for m in sent)
