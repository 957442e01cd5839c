"""POST /webhooks/sendgrid/events: verified over the raw body before anything is read."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bridge.config import SendGridSettings
from bridge.email_events import SIGNATURE_HEADER, TIMESTAMP_HEADER
from bridge.store.models import Patient, ProviderEvent, Reminder
from bridge.web.app import create_app
from tests.conftest import build_bridge, make_settings
from tests.integration.test_email_events import Signer, event, sent_email_reminder


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def setup(sqlite_url, clock, signer):
    base = make_settings()
    sendgrid = SendGridSettings(
        api_key="SG.test",
        from_email="care@example.org",
        event_webhook_public_key=signer.public_key_b64,
    )
    settings = base.model_copy(
        update={"channels": base.channels.model_copy(update={"sendgrid": sendgrid})}
    )
    bridge = build_bridge(sqlite_url, clock, settings)
    reminder_id = sent_email_reminder(bridge)
    yield bridge, TestClient(create_app(bridge)), reminder_id
    bridge.close()


def post(client, signer, body: bytes, timestamp: str, signature: str | None = None):
    headers = {
        TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature or signer.sign(timestamp, body),
    }
    return client.post("/webhooks/sendgrid/events", content=body, headers=headers)


def stamp(bridge) -> str:
    return str(int(bridge.clock.now().timestamp()))


def test_signed_bounce_stops_email_to_that_address(setup, signer):
    bridge, client, rid = setup
    body = json.dumps([event("bounce", rid, reason="550 mailbox unavailable")]).encode()
    response = post(client, signer, body, stamp(bridge))
    assert response.status_code == 200 and response.json()["applied"] == 1
    with Session(bridge.engine) as s:
        assert s.exec(select(Patient)).one().email_unusable
        assert s.get(Reminder, rid).state == "failed"


def test_unsigned_or_wrongly_signed_is_refused_and_nothing_stored(setup, signer):
    bridge, client, rid = setup
    body = json.dumps([event("unsubscribe", rid)]).encode()
    other = Signer()
    for signature in ("", other.sign(stamp(bridge), body)):
        response = post(client, signer, body, stamp(bridge), signature=signature or "e30=")
        assert response.status_code == 403
    with Session(bridge.engine) as s:
        assert s.exec(select(ProviderEvent)).all() == []
        assert not s.exec(select(Patient)).one().email_opted_out


def test_replayed_batch_changes_nothing(setup, signer):
    bridge, client, rid = setup
    body = json.dumps([event("unsubscribe", rid)]).encode()
    first = post(client, signer, body, stamp(bridge))
    second = post(client, signer, body, stamp(bridge))
    assert first.json()["applied"] == 1 and second.json()["duplicates"] == 1


def test_not_an_array_is_a_clear_400(setup, signer):
    bridge, client, _ = setup
    response = post(client, signer, b'{"event": "delivered"}', stamp(bridge))
    assert response.status_code == 400 and "array" in response.json()["error"]


def test_event_for_an_unknown_message_changes_nothing(setup, signer):
    bridge, client, _ = setup
    body = json.dumps([event("bounce", 9999)]).encode()
    response = post(client, signer, body, stamp(bridge))
    assert response.status_code == 200 and response.json()["unknown"] == 1
    with Session(bridge.engine) as s:
        assert not s.exec(select(Patient)).one().email_unusable
