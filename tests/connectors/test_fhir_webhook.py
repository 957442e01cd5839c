"""Subscription rest-hook notifications: verified first, then only the changed Tasks read."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from bridge.connector import WebhookRejected
from bridge.domain import AssignmentCancelled, AssignmentUpserted
from tests.connectors.fhir_server import make_connector, notification, task_resource

SECRET = "rest-hook-secret"


@pytest.fixture
def hooked(server, clock):
    server.put(task_resource("t1"))
    server.put(task_resource("t2", status="cancelled"))
    return make_connector(server, clock, notification_secret=SECRET)


def body_of(bundle) -> bytes:
    return json.dumps(bundle).encode()


def bearer() -> dict[str, str]:
    return {"authorization": f"Bearer {SECRET}"}


def test_id_only_notification_reads_just_the_changed_tasks(server, hooked) -> None:
    server.requests.clear()
    events = hooked.handle_webhook(bearer(), body_of(notification(server, ["t1", "t2"])))
    assert isinstance(events[0], AssignmentUpserted) and events[0].assignment.external_id == "t1"
    assert events[0].patient.external_id == "p1"
    assert events[1] == AssignmentCancelled("t2", "cancelled in source")
    fetched = sorted(r.url.path for r in server.requests)
    assert "/fhir/Task/t1" in fetched and "/fhir/Task/t2" in fetched
    assert not any(r.url.path.endswith("/Task") for r in server.requests)  # no search


def test_full_resource_notification_reads_no_task(server, hooked) -> None:
    server.requests.clear()
    bundle = notification(server, ["t1"], full=True)
    events = hooked.handle_webhook(bearer(), body_of(bundle))
    assert [e.assignment.external_id for e in events] == ["t1"]
    assert server.count("GET", "/Task") == 0


def test_hmac_signature_over_the_raw_body(server, hooked) -> None:
    body = body_of(notification(server, ["t1"]))
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    events = hooked.handle_webhook({"X-Signature": signature}, body)
    assert len(events) == 1
    events = hooked.handle_webhook({"x-signature": f"sha256={signature.upper()}"}, body)
    assert len(events) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {SECRET}"},
        {"x-signature": "00" * 32},
    ],
)
def test_unverified_senders_are_rejected_before_parsing(server, hooked, headers) -> None:
    server.requests.clear()
    with pytest.raises(WebhookRejected):
        hooked.handle_webhook(headers, b"not even json")
    assert server.requests == []


def test_a_signature_over_another_body_is_rejected(server, hooked) -> None:
    body = body_of(notification(server, ["t1"]))
    signature = hmac.new(SECRET.encode(), body + b" ", hashlib.sha256).hexdigest()
    with pytest.raises(WebhookRejected):
        hooked.handle_webhook({"x-signature": signature}, body)


def test_without_a_secret_every_notification_is_refused(server, clock) -> None:
    connector = make_connector(server, clock)
    with pytest.raises(WebhookRejected, match="not enabled"):
        connector.handle_webhook(bearer(), body_of(notification(server, ["t1"])))


def test_handshake_and_heartbeat_carry_no_events(server, hooked) -> None:
    for kind in ("handshake", "heartbeat"):
        assert hooked.handle_webhook(bearer(), body_of(notification(server, [], kind=kind))) == []


def test_a_task_gone_from_the_server_is_cancelled(server, hooked) -> None:
    bundle = notification(server, ["t1"])
    bundle["entry"][1]["fullUrl"] = f"{server.base}/Task/vanished"
    bundle["entry"][0]["resource"]["parameter"] = bundle["entry"][0]["resource"]["parameter"][:4]
    assert hooked.handle_webhook(bearer(), body_of(bundle)) == [
        AssignmentCancelled("vanished", "no longer in source")
    ]


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b'{"resourceType": "Patient"}', b'{"resourceType": "Bundle", "type": "batch"}'],
)
def test_verified_but_malformed_notifications_are_bad_input(hooked, payload) -> None:
    with pytest.raises(ValueError):
        hooked.handle_webhook(bearer(), payload)


def test_duplicate_delivery_gives_the_same_events(server, hooked) -> None:
    body = body_of(notification(server, ["t1"]))
    assert hooked.handle_webhook(bearer(), body) == hooked.handle_webhook(bearer(), body)


def test_a_plain_resource_body_is_a_full_resource_notification(server, hooked) -> None:
    """Medplum's default rest-hook payload: the Task itself, signed with X-Signature."""
    body = json.dumps(server.read("Task", "t1")).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    server.requests.clear()
    events = hooked.handle_webhook({"x-signature": signature}, body)
    assert [e.assignment.external_id for e in events] == ["t1"]
    assert server.count("GET", "/Task") == 0
