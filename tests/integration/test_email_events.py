"""SendGrid's signed Event Webhook: verification as SendGrid signs, then events on a real store."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, select

from bridge.email_events import (
    EventResult,
    apply_sendgrid_events,
    parse_events,
    verify_event_webhook,
)
from bridge.store.db import session_scope
from bridge.store.models import Assignment, ConsentEvent, Patient, ProviderEvent, Reminder
from tests.factories import assignment, patient, seed

NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
EMAIL = "alex.client@example.com"
MESSAGE_ID = "W3Ef1x9QRu6pWl3h0oVqzA"
SG_MESSAGE_ID = f"{MESSAGE_ID}.filterdrecv-5645d9c87f-8mqzc-1-69A6F7B0-2.0"


# -- signing as SendGrid does ----------------------------------------------------------


class Signer:
    """An ECDSA P-256 key pair; signs ``timestamp + payload`` (SHA-256, DER, base64)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key_b64(self) -> str:
        """What SendGrid shows under Mail Settings: base64 DER SubjectPublicKeyInfo."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")

    def sign(self, timestamp: str, payload: bytes) -> str:
        signed = self.key.sign(timestamp.encode("utf-8") + payload, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signed).decode("ascii")


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


def stamp(at: datetime = NOW) -> str:
    return str(int(at.timestamp()))


# A body as SendGrid sends it: its own spacing and key order, non-ASCII left as UTF-8.
BODY = (
    '[{"email":"alex.client@example.com","timestamp":1772550000,"event":"delivered",'
    '"sg_event_id":"ZGVsaXZlcmVkLTAtMjQ","sg_message_id":"' + SG_MESSAGE_ID + '",'
    '"reminder_id":"1","category":["homework-reminder"],"response":"250 OK — queued"}]\r\n'
).encode()


def test_a_batch_signed_by_sendgrid_verifies(signer):
    ts = stamp()
    assert verify_event_webhook(signer.public_key_b64, BODY, signer.sign(ts, BODY), ts, now=NOW)


def test_a_tampered_body_does_not_verify(signer):
    ts = stamp()
    signature = signer.sign(ts, BODY)
    tampered = BODY.replace(b'"delivered"', b'"spamreport"')
    assert not verify_event_webhook(signer.public_key_b64, tampered, signature, ts, now=NOW)


def test_the_body_is_verified_as_sent_not_as_re_serialised(signer):
    ts = stamp()
    signature = signer.sign(ts, BODY)
    same_events = json.dumps(json.loads(BODY)).encode()
    assert not verify_event_webhook(signer.public_key_b64, same_events, signature, ts, now=NOW)


def test_another_key_does_not_verify(signer):
    ts = stamp()
    other = Signer()
    assert not verify_event_webhook(other.public_key_b64, BODY, signer.sign(ts, BODY), ts, now=NOW)


@pytest.mark.parametrize("missing", ["signature", "timestamp", "both", "key"])
def test_missing_headers_or_key_do_not_verify(signer, missing):
    ts = stamp()
    signature: str | None = signer.sign(ts, BODY)
    timestamp: str | None = ts
    key = signer.public_key_b64
    if missing in ("signature", "both"):
        signature = None
    if missing in ("timestamp", "both"):
        timestamp = None
    if missing == "key":
        key = ""
    assert not verify_event_webhook(key, BODY, signature, timestamp, now=NOW)


@pytest.mark.parametrize("skew", [-601, 601, -86400])
def test_a_stale_or_future_timestamp_does_not_verify_even_when_signed(signer, skew):
    ts = stamp(NOW + timedelta(seconds=skew))
    signature = signer.sign(ts, BODY)
    assert not verify_event_webhook(signer.public_key_b64, BODY, signature, ts, now=NOW)


def test_the_tolerance_is_inclusive_and_configurable(signer):
    ts = stamp(NOW - timedelta(seconds=600))
    signature = signer.sign(ts, BODY)
    assert verify_event_webhook(signer.public_key_b64, BODY, signature, ts, now=NOW)
    assert not verify_event_webhook(
        signer.public_key_b64, BODY, signature, ts, now=NOW, tolerance_seconds=60
    )


def test_the_signed_timestamp_is_the_one_in_the_header(signer):
    signature = signer.sign(stamp(NOW - timedelta(seconds=5)), BODY)
    assert not verify_event_webhook(signer.public_key_b64, BODY, signature, stamp(), now=NOW)


@pytest.mark.parametrize(
    ("key", "signature", "timestamp", "body"),
    [
        ("not base64 at all!", None, None, None),  # bad key
        ("c2hvcnQ=", None, None, None),  # base64, but not a key
        (None, "bm90IGEgc2lnbmF0dXJl", None, None),  # base64, but not a DER signature
        (None, "%%%", None, None),  # not base64
        (None, None, "1772550000.5", None),  # not whole seconds
        (None, None, "-1772550000", None),
        (None, None, None, b"\xff\xfe not UTF-8"),
    ],
)
def test_malformed_input_is_refused_not_raised(signer, key, signature, timestamp, body):
    ts = timestamp or stamp()
    body = body or BODY
    assert not verify_event_webhook(
        key or signer.public_key_b64, body, signature or signer.sign(ts, body), ts, now=NOW
    )


def test_a_key_pasted_as_pem_still_verifies(signer):
    pem = (
        signer.key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    ts = stamp()
    assert verify_event_webhook(pem, BODY, signer.sign(ts, BODY), ts, now=NOW)


# -- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"event": "delivered"}', "must be a JSON array"),
        (b'"delivered"', "must be a JSON array"),
        (b'[{"event": "delivered"}, 3]', "event 1 is not a JSON object"),
        (b"[{", "not valid UTF-8 JSON"),
        (b"\xff[]", "not valid UTF-8 JSON"),
    ],
)
def test_a_body_that_is_not_an_array_of_objects_is_refused(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_events(raw)


def test_an_empty_batch_parses():
    assert parse_events(b"[]") == []


# -- applying events to the store ---------------------------------------------------------


def sent_email_reminder(bridge) -> int:
    """One reminder sent by email: dispatched by the bridge, then marked as SendGrid's."""
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1", email=EMAIL))
    ehr.assign(assignment("hw-1", bridge.clock.now() - timedelta(minutes=5), days=7))
    bridge.poll("ehr")
    bridge.dispatch()
    with session_scope(bridge.engine) as s:
        reminder = s.exec(select(Reminder).where(Reminder.step == "on_assign")).one()
        assert reminder.state == "sent"
        reminder.channel = "email"
        reminder.provider_message_id = MESSAGE_ID
        client = s.get(Patient, s.get(Assignment, reminder.assignment_id).patient_id)
        client.email = EMAIL
        return reminder.id


def event(kind: str, reminder_id: int | str | None, n: int = 1, **extra: Any) -> dict[str, Any]:
    """One event as SendGrid posts it; custom args sit at the top level."""
    body: dict[str, Any] = {
        "email": EMAIL,
        "timestamp": int(NOW.timestamp()),
        "event": kind,
        "sg_event_id": f"{kind}-{n}-{reminder_id}",
        "sg_message_id": SG_MESSAGE_ID,
        "category": ["homework-reminder"],
        "smtp-id": "<W3Ef1x9QRu6pWl3h0oVqzA@geopod-ismtpd-1>",
    }
    if reminder_id is not None:
        body["reminder_id"] = str(reminder_id)
    body.update(extra)
    return body


def apply(bridge, events: list[dict[str, Any]]) -> EventResult:
    with session_scope(bridge.engine) as s:
        return apply_sendgrid_events(s, events, now=bridge.clock.now())


def snapshot(bridge) -> dict[str, Any]:
    """Everything an event may change."""
    with Session(bridge.engine) as s:
        return {
            "reminders": [r.model_dump() for r in s.exec(select(Reminder)).all()],
            "patients": [p.model_dump() for p in s.exec(select(Patient)).all()],
            "consent": [c.model_dump() for c in s.exec(select(ConsentEvent)).all()],
            "events": [e.model_dump() for e in s.exec(select(ProviderEvent)).all()],
        }


def reminder_row(bridge, reminder_id: int) -> Reminder:
    with Session(bridge.engine) as s:
        row = s.get(Reminder, reminder_id)
        assert row is not None
        return row


def client_row(bridge) -> Patient:
    with Session(bridge.engine) as s:
        return s.exec(select(Patient)).one()


def consent_rows(bridge) -> list[ConsentEvent]:
    with Session(bridge.engine) as s:
        return list(s.exec(select(ConsentEvent)).all())


def test_delivered_marks_the_reminder_delivered(any_bridge):
    rid = sent_email_reminder(any_bridge)
    sent_at = reminder_row(any_bridge, rid).sent_at

    result = apply(any_bridge, [event("delivered", rid, response="250 OK")])

    assert result == EventResult(applied=1)
    row = reminder_row(any_bridge, rid)
    assert row.state == "delivered"
    assert row.sent_at == sent_at
    with Session(any_bridge.engine) as s:
        recorded = s.exec(select(ProviderEvent)).one()
    assert (recorded.provider, recorded.event_id, recorded.kind) == (
        "sendgrid",
        f"delivered-1-{rid}",
        "delivered",
    )


def test_a_redelivered_batch_changes_nothing(any_bridge):
    rid = sent_email_reminder(any_bridge)
    batch = [event("delivered", rid), event("unsubscribe", rid)]
    assert apply(any_bridge, batch) == EventResult(applied=2)
    # the clinic re-opts the client in; an old unsubscribe arriving again must not undo it
    with session_scope(any_bridge.engine) as s:
        s.exec(select(Patient)).one().email_opted_out = False
    before = snapshot(any_bridge)

    assert apply(any_bridge, batch) == EventResult(duplicates=2)

    assert snapshot(any_bridge) == before


def test_processed_and_deferred_are_only_recorded(bridge):
    rid = sent_email_reminder(bridge)
    before = snapshot(bridge)

    result = apply(bridge, [event("processed", rid), event("deferred", rid, attempt="1")])

    assert result == EventResult(applied=2)
    after = snapshot(bridge)
    assert after["reminders"] == before["reminders"]
    assert after["patients"] == before["patients"]
    assert [e["kind"] for e in after["events"]] == ["processed", "deferred"]


def test_delivered_twice_in_a_batch_counts_once(bridge):
    rid = sent_email_reminder(bridge)
    same = event("delivered", rid)
    assert apply(bridge, [same, dict(same)]) == EventResult(applied=1, duplicates=1)


def test_bounce_fails_the_reminder_and_stops_email_to_the_address(bridge, caplog):
    rid = sent_email_reminder(bridge)
    reason = f"550 5.1.1 <{EMAIL}>: Recipient address rejected: User unknown"

    with caplog.at_level(logging.DEBUG):
        result = apply(bridge, [event("bounce", rid, type="bounce", reason=reason, status="5.1.1")])

    assert result == EventResult(applied=1)
    row = reminder_row(bridge, rid)
    assert row.state == "failed"
    assert row.last_error == (
        "sendgrid bounce: 550 5.1.1 <<address>>: Recipient address rejected: User unknown"
    )
    assert client_row(bridge).email_unusable is True
    assert client_row(bridge).email_opted_out is False
    assert EMAIL not in caplog.text


def test_a_blocked_bounce_fails_the_message_but_keeps_the_address(bridge):
    rid = sent_email_reminder(bridge)

    apply(bridge, [event("bounce", rid, type="blocked", reason="421 try again later")])

    assert reminder_row(bridge, rid).state == "failed"
    assert client_row(bridge).email_unusable is False


def test_dropped_fails_the_reminder_and_stops_email_to_the_address(bridge):
    rid = sent_email_reminder(bridge)

    result = apply(bridge, [event("dropped", rid, reason="Bounced Address")])

    assert result == EventResult(applied=1)
    row = reminder_row(bridge, rid)
    assert (row.state, row.last_error) == ("failed", "sendgrid dropped: Bounced Address")
    assert client_row(bridge).email_unusable is True


def test_a_bounce_for_an_address_the_client_has_replaced_keeps_the_new_one(bridge):
    rid = sent_email_reminder(bridge)
    with session_scope(bridge.engine) as s:
        s.exec(select(Patient)).one().email = "alex.new@example.com"

    apply(bridge, [event("bounce", rid, reason="550 user unknown"), event("spamreport", rid)])

    assert reminder_row(bridge, rid).state == "failed"
    client = client_row(bridge)
    assert (client.email_unusable, client.email_opted_out) == (False, False)
    assert consent_rows(bridge) == []


@pytest.mark.parametrize("kind", ["spamreport", "unsubscribe", "group_unsubscribe"])
def test_unsubscribes_turn_email_consent_off(bridge, kind):
    rid = sent_email_reminder(bridge)
    state_before = reminder_row(bridge, rid).state

    result = apply(bridge, [event(kind, rid, asm_group_id=1)])

    assert result == EventResult(applied=1)
    client = client_row(bridge)
    assert client.email_opted_out is True
    assert client.sms_opted_out is False  # email consent only
    (consent,) = consent_rows(bridge)
    assert (consent.channel, consent.opted_in, consent.source) == (
        "email",
        False,
        f"sendgrid:{kind}",
    )
    assert consent.patient_id == client.id
    assert reminder_row(bridge, rid).state == state_before


@pytest.mark.parametrize(
    "bad",
    [
        event("delivered", 999_999),
        event("delivered", None),
        event("delivered", "not-a-number"),
        event("delivered", "1; DROP TABLE reminder"),
        {**event("delivered", 1), "reminder_id": ["1"]},
        {**event("delivered", 1), "sg_event_id": None},
        {**event("bounce", 1), "sg_message_id": "SomeoneElse0000000000a.filterdrecv-1"},
    ],
    ids=["no-such", "missing", "text", "injection", "list", "no-event-id", "other-message"],
)
def test_events_this_bridge_cannot_place_change_nothing(bridge, bad):
    rid = sent_email_reminder(bridge)
    assert rid == 1  # the parametrized events name reminder 1
    before = snapshot(bridge)

    result = apply(bridge, [bad])

    assert result == EventResult(unknown=1)
    assert snapshot(bridge) == before


def test_an_sms_reminder_is_not_an_email_event_target(bridge):
    rid = sent_email_reminder(bridge)
    with session_scope(bridge.engine) as s:
        s.get(Reminder, rid).channel = "sms"
    before = snapshot(bridge)

    assert apply(bridge, [event("bounce", rid)]) == EventResult(unknown=1)
    assert snapshot(bridge) == before


def test_tracking_and_unhandled_events_are_ignored(bridge):
    rid = sent_email_reminder(bridge)
    before = snapshot(bridge)

    result = apply(
        bridge,
        [event("open", rid), event("click", rid, url="https://x"), event("group_resubscribe", rid)]
        + [{"no": "event"}],
    )

    assert result == EventResult(ignored=4)
    assert snapshot(bridge) == before


@pytest.mark.parametrize("body", [{"event": "delivered"}, "delivered", [event("x", 1), 3], None])
def test_a_body_that_is_not_an_array_of_objects_raises_and_changes_nothing(bridge, body):
    sent_email_reminder(bridge)
    before = snapshot(bridge)

    with pytest.raises(ValueError):
        apply(bridge, body)

    assert snapshot(bridge) == before


def test_a_mixed_batch(bridge):
    rid = sent_email_reminder(bridge)

    result = apply(
        bridge,
        [
            event("processed", rid),
            event("delivered", rid),
            event("delivered", rid),
            event("open", rid),
            event("delivered", 424242),
        ],
    )

    assert result == EventResult(applied=2, duplicates=1, unknown=1, ignored=1)
    assert reminder_row(bridge, rid).state == "delivered"


def test_verified_body_parsed_and_applied_end_to_end(bridge, signer):
    rid = sent_email_reminder(bridge)
    raw = json.dumps([event("delivered", rid), event("unsubscribe", rid)]).encode()
    ts = stamp(bridge.clock.now())
    signature = signer.sign(ts, raw)

    assert verify_event_webhook(signer.public_key_b64, raw, signature, ts, now=bridge.clock.now())
    result = apply(bridge, parse_events(raw))

    assert result == EventResult(applied=2)
    assert reminder_row(bridge, rid).state == "delivered"
    assert client_row(bridge).email_opted_out is True
