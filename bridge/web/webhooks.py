"""Inbound webhooks: Twilio replies and status callbacks, and each connector's own.

The sender is verified over the exact URL and the raw body first; a request that fails
gets 403 and the store is not touched.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlmodel import select
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bridge.capture import handle_inbound_sms
from bridge.connector import WebhookRejected
from bridge.ingest import apply_events
from bridge.service import Bridge
from bridge.store.db import session_scope
from bridge.store.models import Reminder
from bridge.store.outbox import backoff

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks")

FORBIDDEN = JSONResponse({"error": "signature verification failed"}, status_code=403)


def public_url(bridge: Bridge, request: Request) -> str:
    """The URL the sender signed: behind a proxy, the configured public base."""
    base = bridge.settings.server.public_url
    if not base:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{base}{request.url.path}{query}"


async def twilio_form(request: Request) -> dict[str, str] | None:
    """The form Twilio posted, or None when its signature does not verify."""
    bridge: Bridge = request.app.state.bridge
    twilio = bridge.settings.channels.twilio
    signature = request.headers.get("x-twilio-signature")
    if twilio is None or not signature:
        return None
    raw = await request.body()
    try:
        form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        return None
    validator = RequestValidator(twilio.auth_token.get_secret_value())
    if not validator.validate(public_url(bridge, request), form, signature):
        log.warning("twilio webhook with a bad signature rejected on %s", request.url.path)
        return None
    return form


def twiml(text: str | None) -> Response:
    reply = MessagingResponse()
    if text:
        reply.message(text)
    return Response(str(reply), media_type="application/xml")


@router.post("/twilio/sms")
async def twilio_sms(request: Request) -> Response:
    form = await twilio_form(request)
    if form is None:
        return FORBIDDEN
    sender, sid = form.get("From", ""), form.get("MessageSid", "")
    if not sender or not sid:
        return JSONResponse({"error": "From and MessageSid are required"}, status_code=400)
    bridge: Bridge = request.app.state.bridge

    def apply():
        with session_scope(bridge.engine) as session:
            return handle_inbound_sms(
                session,
                sender=sender,
                body=form.get("Body", ""),
                message_sid=sid,
                settings=bridge.settings,
                renderer=bridge.renderer,
                now=bridge.clock.now(),
            )

    result = await run_in_threadpool(apply)
    return twiml(result.reply)


RETRY_LATER_CODES = {"30003"}
STATUS_STATES = {
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "sent": "sent",
}


def remember_error(session, reminder: Reminder, code: str, now) -> None:
    """A delivery error that says something about the client outlives the message."""
    from bridge.capture import set_consent
    from bridge.channels.twilio_sms import OPTED_OUT, UNUSABLE_NUMBER
    from bridge.store.models import Assignment, Patient

    if not code.isdigit() or int(code) not in OPTED_OUT | UNUSABLE_NUMBER:
        return
    assignment = session.get(Assignment, reminder.assignment_id)
    patient = session.get(Patient, assignment.patient_id) if assignment else None
    if patient is None:
        return
    if int(code) in OPTED_OUT:
        set_consent(session, [patient], "sms", False, f"provider:{code}", now)
    else:
        patient.phone_unusable = True
        patient.updated_at = now


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    form = await twilio_form(request)
    if form is None:
        return FORBIDDEN
    bridge: Bridge = request.app.state.bridge
    try:
        reminder_id = int(request.query_params.get("reminder", ""))
    except ValueError:
        return JSONResponse({"error": "reminder id missing"}, status_code=400)
    status = form.get("MessageStatus", "")
    new_state = STATUS_STATES.get(status)

    def apply() -> str:
        with session_scope(bridge.engine) as session:
            row = session.exec(select(Reminder).where(Reminder.id == reminder_id)).first()
            if row is None:
                return "unknown"
            if row.state in ("scheduled", "cancelled", "skipped"):
                return "ok"  # a late callback for an attempt already settled and re-planned
            sid = form.get("MessageSid")
            if row.provider_message_id and sid != row.provider_message_id:
                return "mismatch"  # not the message this reminder sent: change nothing
            now = bridge.clock.now()
            if row.provider_message_id is None and sid:
                row.provider_message_id = sid  # reconciles a send whose outcome was unknown
            if not new_state or (row.state == "delivered" and new_state == "sent"):
                return "ok"
            if row.state in ("sending", "unknown", "failed") and new_state in ("sent", "delivered"):
                row.sent_at = row.sent_at or now
            row.state = new_state
            row.lease_until = None
            row.updated_at = now
            if new_state == "failed":
                code = form.get("ErrorCode", "")
                row.last_error = f"twilio {status} {code}".strip()
                if (
                    code in RETRY_LATER_CODES
                    and row.attempts < bridge.settings.scheduler.max_send_attempts
                ):
                    sched = bridge.settings.scheduler
                    row.state = "scheduled"  # the handset was unreachable: try again later
                    row.scheduled_for = now + backoff(
                        sched.retry_backoff_seconds, row.attempts, jitter=sched.retry_jitter
                    )
                    row.provider_message_id = None
                    row.sent_at = None
                else:
                    remember_error(session, row, code, now)
            return "ok"

    outcome = await run_in_threadpool(apply)
    if outcome == "mismatch":
        return JSONResponse({"error": "MessageSid does not match the reminder"}, status_code=409)
    if outcome == "unknown":
        return JSONResponse({"error": "unknown reminder"}, status_code=404)
    return Response(status_code=204)


@router.post("/sendgrid/events")
async def sendgrid_events(request: Request) -> Response:
    """SendGrid's signed Event Webhook: delivery, bounces, spam reports, unsubscribes."""
    from bridge.email_events import (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        apply_sendgrid_events,
        parse_events,
        verify_event_webhook,
    )

    bridge: Bridge = request.app.state.bridge
    sendgrid = bridge.settings.channels.sendgrid
    if sendgrid is None or not sendgrid.event_webhook_public_key:
        return FORBIDDEN
    raw = await request.body()
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not verify_event_webhook(sendgrid.event_webhook_public_key, raw, signature, timestamp,
                                now=bridge.clock.now()):  # fmt: skip
        log.warning("sendgrid event webhook with a bad signature rejected")
        return FORBIDDEN
    try:
        events = parse_events(raw)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)

    def apply():
        with session_scope(bridge.engine) as session:
            return apply_sendgrid_events(session, events, now=bridge.clock.now())

    result = await run_in_threadpool(apply)
    return JSONResponse({"applied": result.applied, "duplicates": result.duplicates,
                         "unknown": result.unknown, "ignored": result.ignored})  # fmt: skip


@router.post("/{connector_name}")
async def connector_webhook(connector_name: str, request: Request) -> Response:
    bridge: Bridge = request.app.state.bridge
    connector = bridge.connectors.get(connector_name)
    if connector is None or not connector.accepts_webhooks:
        return JSONResponse({"error": "no such webhook"}, status_code=404)
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}

    def apply():
        events = connector.handle_webhook(headers, body)
        with session_scope(bridge.engine) as session:
            return apply_events(
                session, connector_name, events, bridge.settings, bridge.clock.now()
            )

    try:
        applied, rejected = await run_in_threadpool(apply)
    except WebhookRejected:
        return FORBIDDEN
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"applied": applied, "rejected": rejected})
