"""The web app's webhooks: Twilio replies and status callbacks, connector webhooks, health.

Twilio requests are signed with twilio's own RequestValidator over the public URL the
bridge is configured with; connector webhooks with ``bridge.signing``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from bridge import signing
from bridge.store.models import (
    Assignment,
    Clinician,
    Completion,
    ConsentEvent,
    InboundMessage,
    Patient,
    Reminder,
)
from bridge.web.app import create_app
from tests.factories import assignment, patient, seed

TOKEN = "test-auth-token"
PUBLIC = "https://bridge.example.org"
SMS_PATH = "/webhooks/twilio/sms"
STATUS_PATH = "/webhooks/twilio/status"
CLIENT = "+13125550101"
BRIDGE_NUMBER = "+13125550199"
SECRET = "sandbox-secret"
FORM = "application/x-www-form-urlencoded"


# -- helpers -------------------------------------------------------------------------


def sms_form(body: str, sid: str, sender: str = CLIENT) -> dict[str, str]:
    """What Twilio posts for an inbound SMS (the fields the bridge may read, and more)."""
    return {
        "ToCountry": "US",
        "ToState": "IL",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "CHICAGO",
        "FromZip": "60601",
        "SmsSid": sid,
        "FromState": "IL",
        "SmsStatus": "received",
        "FromCity": "CHICAGO",
        "Body": body,
        "FromCountry": "US",
        "To": BRIDGE_NUMBER,
        "ToZip": "60601",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC00000000000000000000000000000000",
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def twilio_signature(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def post_signed(
    client: TestClient,
    path: str,
    form: dict[str, str],
    *,
    signed_url: str | None = None,
    signature: str | None = None,
    content: str | None = None,
):
    """POST a form as Twilio would; ``signature`` overrides, "" leaves the header out."""
    if signature is None:
        signature = twilio_signature(signed_url or f"{PUBLIC}{path}", form)
    headers = {"Content-Type": FORM}
    if signature:
        headers["X-Twilio-Signature"] = signature
    return client.post(
        path, content=content if content is not None else urlencode(form), headers=headers
    )


def text_in(client: TestClient, body: str, sid: str, sender: str = CLIENT):
    return post_signed(client, SMS_PATH, sms_form(body, sid, sender))


def twiml_messages(response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    assert all(child.tag == "Message" for child in root)
    return [child.text or "" for child in root]


def rows(bridge, model) -> list:
    with Session(bridge.engine) as s:
        return list(s.exec(select(model)).all())


def one(bridge, model):
    found = rows(bridge, model)
    assert len(found) == 1, found
    return found[0]


def reminder(bridge, step: str) -> Reminder:
    with Session(bridge.engine) as s:
        return s.exec(select(Reminder).where(Reminder.step == step)).one()


def assert_nothing_stored(bridge) -> None:
    assert rows(bridge, InboundMessage) == []
    assert rows(bridge, Completion) == []
    assert rows(bridge, ConsentEvent) == []


@pytest.fixture
def client(bridge):
    with TestClient(create_app(bridge)) as c:
        yield c


@pytest.fixture
def sent(bridge):
    """A client with one open assignment whose first reminder went out."""
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1", CLIENT, timezone="America/Chicago"))
    ehr.assign(assignment("hw-1", bridge.clock.now() - timedelta(minutes=5), days=7))
    bridge.poll("ehr")
    stats = bridge.dispatch()
    assert stats.sent == 1
    assert [m.to for m in bridge.channel.sent] == [CLIENT]
    r = reminder(bridge, "on_assign")
    assert r.state == "sent" and r.provider_message_id
    return r


# -- inbound SMS ---------------------------------------------------------------------


def test_done_with_a_valid_signature_is_recorded_and_thanked(bridge, client, sent):
    response = text_in(client, "DONE", "SM" + "1" * 32)

    [message] = twiml_messages(response)
    assert message.startswith("Thanks!")
    assert "1 (hard) to 5 (great)" in message
    completion = one(bridge, Completion)
    assert completion.status == "done"
    assert completion.source == "sms"
    assert completion.quality is None
    assert completion.reported_at == bridge.clock.now()
    inbound = one(bridge, InboundMessage)
    assert (inbound.outcome, inbound.intent) == ("applied", "done")
    assert inbound.provider_message_id == "SM" + "1" * 32
    assert inbound.assignment_id == completion.assignment_id
    assert one(bridge, Assignment).status == "completed"


def test_missing_signature_is_refused_and_nothing_stored(bridge, client, sent):
    response = post_signed(client, SMS_PATH, sms_form("DONE", "SM" + "2" * 32), signature="")

    assert response.status_code == 403
    assert response.json() == {"error": "signature verification failed"}
    assert_nothing_stored(bridge)


def test_wrong_signature_is_refused_and_nothing_stored(bridge, client, sent):
    form = sms_form("DONE", "SM" + "3" * 32)
    forged = twilio_signature(f"{PUBLIC}{SMS_PATH}", form, token="not-the-auth-token")

    response = post_signed(client, SMS_PATH, form, signature=forged)

    assert response.status_code == 403
    assert_nothing_stored(bridge)


def test_signature_over_the_internal_url_is_refused(bridge, client, sent):
    # Behind a proxy the request arrives as http://internal:8000/...; Twilio signs the
    # public URL, so a signature over the URL the app happens to see must not verify.
    internal = f"http://internal:8000{SMS_PATH}"
    form = sms_form("DONE", "SM" + "4" * 32)

    response = client.post(
        internal,
        content=urlencode(form),
        headers={"Content-Type": FORM, "X-Twilio-Signature": twilio_signature(internal, form)},
    )

    assert response.status_code == 403
    assert_nothing_stored(bridge)


def test_signature_over_the_public_url_verifies_whatever_host_the_app_sees(bridge, client, sent):
    form = sms_form("DONE", "SM" + "4" * 32)

    response = client.post(
        f"http://internal:8000{SMS_PATH}",
        content=urlencode(form),
        headers={
            "Content-Type": FORM,
            "X-Twilio-Signature": twilio_signature(f"{PUBLIC}{SMS_PATH}", form),
        },
    )

    assert len(twiml_messages(response)) == 1
    assert one(bridge, Completion).status == "done"


def test_body_tampered_after_signing_is_refused(bridge, client, sent):
    form = sms_form("NOT YET", "SM" + "5" * 32)
    signature = twilio_signature(f"{PUBLIC}{SMS_PATH}", form)
    tampered = urlencode({**form, "Body": "DONE"})

    response = post_signed(client, SMS_PATH, form, signature=signature, content=tampered)

    assert response.status_code == 403
    assert_nothing_stored(bridge)


@pytest.mark.parametrize("second_body", ["DONE", "NOT YET"])
def test_duplicate_message_sid_changes_nothing(bridge, client, sent, second_body):
    sid = "SM" + "6" * 32
    assert len(twiml_messages(text_in(client, "DONE", sid))) == 1
    before = one(bridge, Completion).model_dump()
    inbound_before = one(bridge, InboundMessage).model_dump()

    bridge.clock.advance(timedelta(minutes=10))
    again = text_in(client, second_body, sid)

    assert twiml_messages(again) == []
    assert one(bridge, Completion).model_dump() == before
    assert one(bridge, InboundMessage).model_dump() == inbound_before


def test_reply_from_an_unknown_number_is_rejected_quietly(bridge, client, sent):
    stranger = "+13125550177"

    response = text_in(client, "DONE", "SM" + "7" * 32, sender=stranger)

    assert twiml_messages(response) == []
    inbound = one(bridge, InboundMessage)
    assert inbound.outcome == "rejected"
    assert inbound.patient_id is None and inbound.assignment_id is None
    stored = json.dumps(inbound.model_dump(), default=str)
    for form in (stranger, stranger.lstrip("+"), stranger[2:], "555-0177", "5550177"):
        assert form not in stored
    assert rows(bridge, Completion) == []


def test_help_names_the_practice_and_its_contact(bridge, client, sent):
    [message] = twiml_messages(text_in(client, "HELP", "SM" + "8" * 32))

    assert "Riverside Counseling" in message
    assert "(312) 555-0100" in message
    assert "Msg&data rates may apply" in message
    assert one(bridge, InboundMessage).intent == "help"
    assert rows(bridge, Completion) == []


def test_stop_opts_out_and_later_reminders_are_not_sent(bridge, client, sent):
    response = text_in(client, "STOP", "SM" + "9" * 32)

    assert twiml_messages(response) == []  # Twilio confirms the opt-out itself
    assert one(bridge, Patient).sms_opted_out is True
    consent = one(bridge, ConsentEvent)
    assert (consent.channel, consent.opted_in, consent.source) == ("sms", False, "sms:keyword")
    assert consent.patient_id == one(bridge, Patient).id

    mid = reminder(bridge, "mid_window")
    assert mid.state == "scheduled"
    bridge.clock.set(mid.scheduled_for + timedelta(minutes=1))
    stats = bridge.dispatch()

    assert stats.claimed >= 1 and stats.sent == 0
    assert stats.reasons == {"client opted out of SMS": stats.skipped}
    assert [m.to for m in bridge.channel.sent] == [CLIENT]  # only the first message, ever
    assert reminder(bridge, "mid_window").state == "skipped"


def test_start_after_stop_opts_back_in(bridge, client, sent):
    assert twiml_messages(text_in(client, "STOP", "SM" + "a" * 32)) == []
    assert one(bridge, Patient).sms_opted_out is True

    bridge.clock.advance(timedelta(minutes=1))
    assert twiml_messages(text_in(client, "START", "SM" + "b" * 32)) == []

    assert one(bridge, Patient).sms_opted_out is False
    events = sorted(rows(bridge, ConsentEvent), key=lambda e: e.at)
    assert [(e.channel, e.opted_in) for e in events] == [("sms", False), ("sms", True)]


def test_gibberish_asks_for_a_keyword(bridge, client, sent):
    [message] = twiml_messages(text_in(client, "purple monkey dishwasher", "SM" + "c" * 32))

    assert "Reply DONE, PARTLY or NOT YET" in message
    inbound = one(bridge, InboundMessage)
    assert (inbound.intent, inbound.outcome) == ("unknown", "ignored")
    assert rows(bridge, Completion) == []


def test_rating_after_done_sets_the_quality(bridge, client, sent):
    twiml_messages(text_in(client, "DONE", "SM" + "d" * 32))
    bridge.clock.advance(timedelta(minutes=3))

    [message] = twiml_messages(text_in(client, "4", "SM" + "e" * 32))

    assert message == "Thanks, your therapist will see your rating."
    completion = one(bridge, Completion)
    assert (completion.status, completion.quality) == ("done", 4)
    assert len(rows(bridge, InboundMessage)) == 2


# -- status callbacks ----------------------------------------------------------------


def status_form(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": CLIENT,
        "MessageSid": sid,
        "AccountSid": "AC00000000000000000000000000000000",
        "From": BRIDGE_NUMBER,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def post_status(client, reminder_id: int, form: dict[str, str], **kw):
    path = f"{STATUS_PATH}?reminder={reminder_id}"
    return post_signed(client, path, form, **kw)


def test_delivered_callback_marks_the_reminder_delivered(bridge, client, sent):
    response = post_status(client, sent.id, status_form(sent.provider_message_id, "delivered"))

    assert response.status_code == 204
    r = reminder(bridge, "on_assign")
    assert r.state == "delivered"
    assert r.provider_message_id == sent.provider_message_id
    assert r.last_error is None


def test_undelivered_callback_records_the_failure(bridge, client, sent):
    form = status_form(sent.provider_message_id, "undelivered", ErrorCode="30006")

    response = post_status(client, sent.id, form)

    assert response.status_code == 204
    r = reminder(bridge, "on_assign")
    assert r.state == "failed"
    assert "30006" in r.last_error and "undelivered" in r.last_error
    with Session(bridge.engine) as s:
        assert s.exec(select(Patient)).one().phone_unusable  # a landline: next time by email


def test_opt_out_error_in_a_callback_turns_consent_off(bridge, client, sent):
    form = status_form(sent.provider_message_id, "failed", ErrorCode="21610")
    assert post_status(client, sent.id, form).status_code == 204
    with Session(bridge.engine) as s:
        assert s.exec(select(Patient)).one().sms_opted_out
        assert s.exec(select(ConsentEvent)).one().source == "provider:21610"


def test_unsigned_callback_is_refused_and_changes_nothing(bridge, client, sent):
    form = status_form(sent.provider_message_id, "delivered")

    response = post_status(client, sent.id, form, signature="")

    assert response.status_code == 403
    assert reminder(bridge, "on_assign").model_dump() == sent.model_dump()


def test_callback_signed_without_the_reminder_query_is_refused(bridge, client, sent):
    form = status_form(sent.provider_message_id, "failed", ErrorCode="30006")

    response = post_status(client, sent.id, form, signed_url=f"{PUBLIC}{STATUS_PATH}")

    assert response.status_code == 403
    assert reminder(bridge, "on_assign").state == "sent"


def test_callback_for_an_unknown_reminder_is_404(bridge, client, sent):
    response = post_status(client, sent.id + 999, status_form("SM" + "f" * 32, "delivered"))

    assert response.status_code == 404
    assert reminder(bridge, "on_assign").model_dump() == sent.model_dump()


# -- connector webhooks --------------------------------------------------------------


def bridge_signature(bridge, body: bytes, age: timedelta = timedelta(0)) -> str:
    return signing.sign(SECRET, body, int((bridge.clock.now() - age).timestamp()))


@pytest.fixture
def in_ehr(bridge):
    """An assignment that exists in the sandbox EHR but has not been polled."""
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1", CLIENT, timezone="America/Chicago"))
    ehr.assign(assignment("hw-9", bridge.clock.now() - timedelta(minutes=5), days=7))
    return "hw-9"


def assert_no_records(bridge) -> None:
    for model in (Assignment, Patient, Clinician, Reminder):
        assert rows(bridge, model) == [], model.__name__


def test_signed_connector_webhook_applies_the_assignment(bridge, client, in_ehr):
    body = json.dumps({"assignment": in_ehr}).encode()

    response = client.post(
        "/webhooks/ehr",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Bridge-Signature": bridge_signature(bridge, body),
        },
    )

    assert response.status_code == 200
    assert response.json() == {"applied": 1, "rejected": 0}
    row = one(bridge, Assignment)
    assert (row.connector, row.external_id) == ("ehr", in_ehr)
    assert one(bridge, Patient).phone_e164 == CLIENT


def test_connector_webhook_with_a_bad_signature_is_refused(bridge, client, in_ehr):
    body = json.dumps({"assignment": in_ehr}).encode()
    forged = signing.sign("not-the-secret", body, int(bridge.clock.now().timestamp()))

    response = client.post("/webhooks/ehr", content=body, headers={"X-Bridge-Signature": forged})

    assert response.status_code == 403
    assert response.json() == {"error": "signature verification failed"}
    assert_no_records(bridge)


def test_connector_webhook_without_a_signature_is_refused(bridge, client, in_ehr):
    body = json.dumps({"assignment": in_ehr}).encode()

    response = client.post("/webhooks/ehr", content=body)

    assert response.status_code == 403
    assert_no_records(bridge)


def test_connector_webhook_with_a_stale_timestamp_is_refused(bridge, client, in_ehr):
    body = json.dumps({"assignment": in_ehr}).encode()
    stale = bridge_signature(bridge, body, age=timedelta(minutes=10))

    response = client.post("/webhooks/ehr", content=body, headers={"X-Bridge-Signature": stale})

    assert response.status_code == 403
    assert_no_records(bridge)


def test_connector_webhook_with_malformed_json_is_400(bridge, client, in_ehr):
    body = b'{"assignment": "hw-9"'

    response = client.post(
        "/webhooks/ehr",
        content=body,
        headers={"X-Bridge-Signature": bridge_signature(bridge, body)},
    )

    assert response.status_code == 400
    assert "error" in response.json()
    assert_no_records(bridge)


def test_unknown_connector_is_404(bridge, client, in_ehr):
    body = json.dumps({"assignment": in_ehr}).encode()

    response = client.post(
        "/webhooks/nope",
        content=body,
        headers={"X-Bridge-Signature": bridge_signature(bridge, body)},
    )

    assert response.status_code == 404
    assert_no_records(bridge)


# -- health and errors ---------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "connectors": ["ehr"]}


def test_unexpected_error_is_a_bare_json_500(bridge, sent, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom secret")

    monkeypatch.setattr("bridge.web.webhooks.handle_inbound_sms", explode)
    with TestClient(create_app(bridge), raise_server_exceptions=False) as client:
        response = text_in(client, "DONE", "SM" + "0" * 32)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "internal error"}
    assert "boom" not in response.text
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert_nothing_stored(bridge)


def test_unreachable_handset_is_retried_later(bridge, client, sent):
    form = status_form(sent.provider_message_id, "undelivered", ErrorCode="30003")
    assert post_status(client, sent.id, form).status_code == 204
    r = reminder(bridge, "on_assign")
    assert r.state == "scheduled" and r.provider_message_id is None
    assert r.scheduled_for == bridge.clock.now() + timedelta(seconds=300)
    bridge.clock.advance(timedelta(seconds=300))
    assert bridge.dispatch().sent == 1
    assert reminder(bridge, "on_assign").state == "sent"


def test_callback_for_another_message_changes_nothing(bridge, client, sent):
    form = status_form("SM" + "f" * 32, "failed", ErrorCode="21610")
    response = post_status(client, sent.id, form)
    assert response.status_code == 409
    r = reminder(bridge, "on_assign")
    assert r.state == "sent" and r.last_error is None
    assert not one(bridge, Patient).sms_opted_out


def test_connector_webhooks_are_parsed_off_the_event_loop(bridge, client, in_ehr, monkeypatch):
    """A large notification Bundle must not stall the server: parsing runs in a worker."""
    import asyncio

    ehr = bridge.connectors["ehr"]
    real = ehr.handle_webhook
    seen = []

    def handler(headers, body):
        try:
            asyncio.get_running_loop()
            seen.append("event loop")
        except RuntimeError:
            seen.append("worker thread")
        return real(headers, body)

    monkeypatch.setattr(ehr, "handle_webhook", handler)
    body = json.dumps({"assignment": in_ehr}).encode()
    response = client.post(
        "/webhooks/ehr",
        content=body,
        headers={"X-Bridge-Signature": bridge_signature(bridge, body)},
    )
    assert response.status_code == 200 and seen == ["worker thread"]


def test_an_unmatched_sender_is_kept_only_as_a_keyed_hash(bridge, client):
    import hashlib

    from bridge.contacts import sender_hash, sender_key

    stranger = "+13125559999"
    text_in(client, "DONE", "SM" + "9" * 32, sender=stranger)

    record = one(bridge, InboundMessage)
    assert record.outcome == "rejected"
    assert record.sender_hash != hashlib.sha256(stranger.encode()).hexdigest()
    secret = bridge.settings.security.secret_key
    key = sender_key(secret.get_secret_value() if secret else None)
    assert record.sender_hash == sender_hash(stranger, key)
