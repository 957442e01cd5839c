"""Inbound webhooks: Twilio replies and status callbacks, and each connector's own.

The sender is verified over the exact URL and the raw body first; a request that fails
gets 403 and the store is not touched.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator, compare
from twilio.twiml.messaging_response import MessagingResponse

from bridge.capture import handle_inbound_sms
from bridge.connector import WebhookRejected
from bridge.ingest import apply_events
from bridge.service import Bridge
from bridge.status_callbacks import StatusCallback, apply_status_callbacks
from bridge.store.db import session_scope
from bridge.web.group_commit import GroupCommit

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks")

FORBIDDEN = JSONResponse({"error": "signature verification failed"}, status_code=403)


def public_url(bridge: Bridge, request: Request) -> str:
    """The URL the sender signed: behind a proxy, the configured public base."""
    base = bridge.settings.server.public_url
    if not base:
        return str(request.url)
    scope = request.scope  # read directly: building a URL object costs more than the check
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{base}{scope.get('root_path', '')}{scope['path']}" + (f"?{query}" if query else "")


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
    validator = _validator(twilio.auth_token.get_secret_value())
    url = public_url(bridge, request)
    # Twilio signs the URL it was given; check that one first, then let the validator try
    # its variants (with and without the default port, a JSON body's hash).
    if not (
        compare(validator.compute_signature(url, form), signature)
        or validator.validate(url, form, signature)
    ):
        log.warning("twilio webhook with a bad signature rejected on %s", request.url.path)
        return None
    return form


@lru_cache(maxsize=4)
def _validator(token: str) -> RequestValidator:
    return RequestValidator(token)


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


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    """Answered once the change is committed; concurrent callbacks share one commit."""
    form = await twilio_form(request)
    if form is None:
        return FORBIDDEN
    try:
        reminder_id = int(request.query_params.get("reminder", ""))
    except ValueError:
        return JSONResponse({"error": "reminder id missing"}, status_code=400)
    callback = StatusCallback(
        reminder_id=reminder_id,
        message_sid=form.get("MessageSid") or None,
        status=form.get("MessageStatus", ""),
        error_code=form.get("ErrorCode", ""),
    )
    outcome = await request.app.state.status_commits.submit(callback)
    if outcome == "mismatch":
        return JSONResponse({"error": "MessageSid does not match the reminder"}, status_code=409)
    if outcome == "unknown":
        return JSONResponse({"error": "unknown reminder"}, status_code=404)
    return Response(status_code=204)


def status_commits(bridge: Bridge) -> GroupCommit[StatusCallback, str]:
    """The app's group commit for status callbacks."""

    def apply(session, callbacks: list[StatusCallback]) -> list[str]:
        return apply_status_callbacks(session, callbacks, settings=bridge.settings,
                                      now=bridge.clock.now())  # fmt: skip

    return GroupCommit(bridge.engine, apply)


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
