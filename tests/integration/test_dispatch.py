"""Dispatch: batches, leases, re-checks at send time, at most one send per reminder."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bridge.channels.base import PermanentSendError, SendResult
from bridge.errors import RetriableError
from bridge.store.db import session_scope
from bridge.store.models import ConsentEvent, Patient, Reminder
from bridge.store.outbox import claim
from tests.factories import assignment, patient, seed


def reminders(bridge) -> dict[str, Reminder]:
    with Session(bridge.engine) as s:
        return {r.step: r for r in s.exec(select(Reminder)).all()}


def setup_one(bridge, **patient_kw):
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1", **patient_kw))
    ehr.assign(assignment("hw-1", bridge.clock.now() - timedelta(minutes=5), days=7))
    bridge.poll("ehr")


def test_on_assign_goes_out_once_and_never_again(any_bridge):
    setup_one(any_bridge)
    first = any_bridge.dispatch()
    assert (first.claimed, first.sent) == (1, 1)
    again = any_bridge.dispatch()
    assert again.claimed == 0
    assert len(any_bridge.channel.sent) == 1
    r = reminders(any_bridge)["on_assign"]
    assert r.state == "sent" and r.provider_message_id == "CONSOLE00000001"
    assert r.attempts == 1 and r.lease_until is None


def test_dispatcher_works_in_batches(bridge):
    ehr = bridge.connectors["ehr"]
    seed(ehr, *[patient(f"p{i}", f"+1312555{2000 + i}") for i in range(12)])
    for i in range(12):
        ehr.assign(assignment(f"hw-{i}", bridge.clock.now(), patient_ext=f"p{i}"))
    bridge.poll("ehr")
    calls = []
    from bridge import dispatch as module

    real = module.claim_batch

    def counting(*a, **kw):
        batch = real(*a, **kw)
        calls.append(len(batch.ids) if batch else 0)
        return batch

    module.claim_batch = counting
    try:
        stats = bridge.dispatch()
    finally:
        module.claim_batch = real
    assert calls == [5, 5, 2]  # batch_size 5 in the test config
    assert stats.sent == 12 and len(bridge.channel.sent) == 12


def test_quiet_hours_defer_to_the_next_allowed_minute(bridge):
    # 22:30 in Chicago: the assignment arrives during quiet hours
    bridge.clock.set(datetime(2026, 3, 4, 4, 30, tzinfo=UTC))
    setup_one(bridge, timezone="America/Chicago")
    r = reminders(bridge)["on_assign"]
    assert r.scheduled_for == datetime(2026, 3, 4, 14, 0, tzinfo=UTC)  # 08:00 CST
    # even a row that is due now is re-checked at send time and deferred
    with session_scope(bridge.engine) as s:
        s.get(Reminder, r.id).scheduled_for = bridge.clock.now()
    stats = bridge.dispatch()
    assert (stats.deferred, stats.sent) == (1, 0)
    r = reminders(bridge)["on_assign"]
    assert r.state == "scheduled" and r.scheduled_for == datetime(2026, 3, 4, 14, 0, tzinfo=UTC)
    bridge.clock.set(datetime(2026, 3, 4, 14, 0, tzinfo=UTC))
    assert bridge.dispatch().sent == 1


def test_completed_assignment_is_not_reminded(bridge):
    setup_one(bridge)
    bridge.dispatch()
    from bridge.capture import handle_inbound_sms

    with session_scope(bridge.engine) as s:
        handle_inbound_sms(
            s,
            sender="+13125550101",
            body="DONE",
            message_sid="SM1",
            settings=bridge.settings,
            renderer=bridge.renderer,
            now=bridge.clock.now(),
        )
    bridge.clock.advance(timedelta(days=9))
    assert bridge.dispatch().sent == 0
    states = {k: v.state for k, v in reminders(bridge).items()}
    assert states == {
        "on_assign": "sent",
        "mid_window": "cancelled",
        "near_due": "cancelled",
        "overdue": "cancelled",
    }


def test_opted_out_client_is_skipped_at_send_time(bridge):
    setup_one(bridge)
    with session_scope(bridge.engine) as s:
        s.exec(select(Patient)).one().sms_opted_out = True
    stats = bridge.dispatch()
    assert stats.skipped == 1 and bridge.channel.sent == []
    assert reminders(bridge)["on_assign"].last_error == "client opted out of SMS"


class FlakyChannel:
    name = "sms"

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def send(self, message):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return SendResult(outcome)


def test_transient_failure_is_retried_later_with_backoff(bridge):
    setup_one(bridge)
    bridge.channel = FlakyChannel(RetriableError("twilio 503"), "SM2")
    assert bridge.dispatch().retrying == 1
    r = reminders(bridge)["on_assign"]
    assert r.state == "scheduled" and r.last_error == "twilio 503"
    assert r.scheduled_for == bridge.clock.now() + timedelta(seconds=300)
    assert bridge.dispatch().claimed == 0  # not before its time
    bridge.clock.advance(timedelta(seconds=300))
    assert bridge.dispatch().sent == 1
    assert reminders(bridge)["on_assign"].provider_message_id == "SM2"


def test_retries_are_bounded(bridge):
    setup_one(bridge)
    bridge.channel = FlakyChannel(*[RetriableError("twilio 500")] * 5)
    for _ in range(5):
        bridge.dispatch()
        bridge.clock.advance(timedelta(hours=1))  # stays inside allowed hours
    r = reminders(bridge)["on_assign"]
    assert r.state == "failed" and r.attempts == 5 and bridge.channel.calls == 5


def test_permanent_failures_update_consent_and_contact(bridge):
    setup_one(bridge)
    bridge.channel = FlakyChannel(
        PermanentSendError("opted out", code=21610, consequence="opted_out")
    )
    assert bridge.dispatch().failed == 1
    with Session(bridge.engine) as s:
        p = s.exec(select(Patient)).one()
        assert p.sms_opted_out
        [event] = s.exec(select(ConsentEvent)).all()
        assert (event.opted_in, event.source) == (False, "provider:21610")


def test_unusable_number_is_remembered(bridge):
    setup_one(bridge)
    bridge.channel = FlakyChannel(
        PermanentSendError("landline", code=30006, consequence="unusable_number")
    )
    bridge.dispatch()
    bridge.clock.advance(timedelta(days=4))
    bridge.dispatch()  # the mid-window reminder is skipped: no usable phone
    with Session(bridge.engine) as s:
        assert s.exec(select(Patient)).one().phone_unusable
    assert reminders(bridge)["mid_window"].last_error == "client has no usable phone number"
    assert bridge.channel.calls == 1


def kill_mid_send(bridge) -> int:
    """A worker claims the reminder (marks it sending), then dies before recording anything."""
    with session_scope(bridge.engine) as s:
        [rid] = claim(
            s,
            Reminder,
            now=bridge.clock.now(),
            limit=10,
            lease=timedelta(seconds=120),
            worker="dead-worker",
        )
    return rid


def test_a_send_whose_worker_died_waits_for_the_provider(any_bridge):
    bridge = any_bridge
    setup_one(bridge)
    kill_mid_send(bridge)
    assert bridge.dispatch().claimed == 0  # leased: nobody else takes it
    bridge.clock.advance(timedelta(seconds=121))
    bridge.dispatch()
    r = reminders(bridge)["on_assign"]
    assert r.state == "unknown" and "outcome unknown" in r.last_error
    bridge.clock.advance(timedelta(seconds=899 - 121))
    assert bridge.dispatch().claimed == 0 and bridge.channel.sent == []  # still waiting


def test_a_late_callback_settles_it_and_nothing_is_resent(any_bridge):
    from fastapi.testclient import TestClient
    from twilio.request_validator import RequestValidator

    from bridge.web.app import create_app

    bridge = any_bridge
    setup_one(bridge)
    rid = kill_mid_send(bridge)
    bridge.clock.advance(timedelta(seconds=121))
    bridge.dispatch()
    url = f"https://bridge.example.org/webhooks/twilio/status?reminder={rid}"
    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator("test-auth-token").compute_signature(url, form)
    response = TestClient(create_app(bridge)).post(
        f"/webhooks/twilio/status?reminder={rid}",
        data=form,
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 204
    bridge.clock.advance(timedelta(hours=1))
    bridge.dispatch()
    r = reminders(bridge)["on_assign"]
    assert r.state == "delivered" and r.provider_message_id == "SM" + "a" * 32
    assert bridge.channel.sent == []  # the provider had it: never sent again


def test_no_callback_within_the_wait_sends_it_again_once(any_bridge):
    bridge = any_bridge
    setup_one(bridge)
    kill_mid_send(bridge)
    bridge.clock.advance(timedelta(seconds=121))
    bridge.dispatch()
    bridge.clock.advance(timedelta(seconds=900))
    stats = bridge.dispatch()
    assert stats.expired == 1 and stats.sent == 1
    bridge.clock.advance(timedelta(hours=2))
    bridge.dispatch()
    assert [m.reminder_id for m in bridge.channel.sent] == [reminders(bridge)["on_assign"].id]
    assert reminders(bridge)["on_assign"].state == "sent"


def test_concurrent_claims_never_overlap(pg_url, clock):
    """Two replicas claiming from one PostgreSQL at once get disjoint rows (SKIP LOCKED)."""
    from tests.conftest import build_bridge

    bridge = build_bridge(pg_url, clock)
    ehr = bridge.connectors["ehr"]
    seed(ehr, *[patient(f"p{i}", f"+1312555{3000 + i}") for i in range(40)])
    for i in range(40):
        ehr.assign(assignment(f"hw-{i}", clock.now(), patient_ext=f"p{i}"))
    bridge.poll("ehr")
    barrier = threading.Barrier(4)
    claimed: list[list[int]] = []

    def worker(name: str) -> None:
        barrier.wait()
        while True:
            with session_scope(bridge.engine) as s:
                ids = claim(
                    s, Reminder, now=clock.now(), limit=3, lease=timedelta(seconds=60), worker=name
                )
            if not ids:
                return
            claimed.append(ids)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for batch in claimed for i in batch]
    assert len(flat) == len(set(flat)) == 40
    bridge.close()


def test_ambiguous_send_waits_for_the_provider_before_any_resend(any_bridge):
    from bridge.errors import AmbiguousError

    bridge = any_bridge
    setup_one(bridge)
    bridge.channel = FlakyChannel(AmbiguousError("twilio 500: Twilio may have accepted it"), "SM9")
    assert bridge.dispatch().unknown == 1
    bridge.clock.advance(timedelta(minutes=10))
    bridge.dispatch()
    r = reminders(bridge)["on_assign"]
    assert r.state == "unknown" and r.last_error.startswith("outcome unknown, awaiting")
    assert bridge.channel.calls == 1
    bridge.clock.advance(timedelta(minutes=5))  # 15 minutes without a callback
    bridge.dispatch()
    assert bridge.channel.calls == 2 and reminders(bridge)["on_assign"].state == "sent"


def test_sends_in_a_batch_run_concurrently_up_to_the_setting(sqlite_url, clock):
    from tests.conftest import build_bridge, make_settings

    base = make_settings()
    sched = base.scheduler.model_copy(update={"send_concurrency": 5})
    bridge = build_bridge(sqlite_url, clock, base.model_copy(update={"scheduler": sched}))
    ehr = bridge.connectors["ehr"]
    seed(ehr, *[patient(f"p{i}", f"+1312555{5000 + i}") for i in range(5)])
    for i in range(5):
        ehr.assign(assignment(f"hw-{i}", clock.now(), patient_ext=f"p{i}"))
    bridge.poll("ehr")
    meet = threading.Barrier(5, timeout=10)  # passes only if all five are in flight at once

    class Gathering:
        name = "sms"

        def send(self, message):
            meet.wait()
            return SendResult(f"SM{message.reminder_id}")

    bridge.channel = Gathering()
    assert bridge.dispatch().sent == 5
    bridge.close()


def test_the_next_batch_is_claimed_and_queued_before_the_last_is_recorded(any_bridge):
    """Database work overlaps sending: claim k+1, then record k, so senders never idle."""
    bridge = any_bridge
    ehr = bridge.connectors["ehr"]
    seed(ehr, *[patient(f"p{i}", f"+1312555{3000 + i}") for i in range(12)])
    for i in range(12):
        ehr.assign(assignment(f"hw-{i}", bridge.clock.now(), patient_ext=f"p{i}"))
    bridge.poll("ehr")
    from bridge import dispatch as module

    events: list[str] = []
    real_claim, real_record = module.claim_batch, module.record_batch

    def claim(*a, **kw):
        batch = real_claim(*a, **kw)
        events.append(f"claim {len(batch.ids) if batch else 0}")
        return batch

    def record(engine, batch, **kw):
        events.append(f"record {len(batch.ids)}")
        return real_record(engine, batch, **kw)

    module.claim_batch, module.record_batch = claim, record
    try:
        stats = bridge.dispatch()
    finally:
        module.claim_batch, module.record_batch = real_claim, real_record
    assert events == ["claim 5", "claim 5", "record 5", "claim 2", "record 5", "record 2"]
    assert stats.sent == 12 and len(bridge.channel.sent) == 12
    with Session(bridge.engine) as s:
        due = s.exec(select(Reminder).where(Reminder.step == "on_assign")).all()
    assert len(due) == 12 and {r.state for r in due} == {"sent"}


def test_a_batch_whose_recording_fails_is_not_recorded_twice_and_stays_leased(bridge):
    """A failure while recording leaves the rows `sending`: the lease, not a guess, settles them."""
    setup_one(bridge)
    from bridge import dispatch as module

    real = module._record
    calls = []

    def broken(*a, **kw):
        calls.append(1)
        raise RuntimeError("database went away")

    module._record = broken
    try:
        with pytest.raises(RuntimeError):
            bridge.dispatch()
    finally:
        module._record = real
    assert calls == [1]
    assert len(bridge.channel.sent) == 1
    r = reminders(bridge)["on_assign"]
    assert r.state == "sending" and r.lease_until is not None
