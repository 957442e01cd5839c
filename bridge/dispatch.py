"""Dispatch: claim due reminders in batches, decide each one again, send, record.

Decide, then deliver: the planner wrote the rows; here each claimed row is judged anew
against the assignment, consent and quiet hours as they are now. A row is marked
``sending`` (committed) before the provider is called, so no crash can send it twice.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bridge import cadence, links
from bridge.capture import set_consent
from bridge.channels.base import Channel, OutboundMessage, PermanentSendError, SendResult
from bridge.config import Settings
from bridge.domain import BusinessStatus, CompletionStatus, Step, TaskStatus
from bridge.errors import AmbiguousError, RetriableError
from bridge.links import LinkKey
from bridge.records import refresh_task
from bridge.rendering import Renderer
from bridge.store.db import session_scope
from bridge.store.models import Assignment, Completion, Patient, Reminder
from bridge.store.outbox import backoff, claim, expire_leases

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Send:
    channel: str  # sms | email
    to: str
    language: str
    title: str | None


@dataclass(frozen=True)
class Skip:
    state: str  # cancelled | skipped
    reason: str


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str


Decision = Send | Skip | Defer


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    failed: int = 0
    retrying: int = 0
    unknown: int = 0
    expired: int = 0  # unknown outcomes put back in line after the wait
    reasons: dict[str, int] = field(default_factory=dict)


def choose_channel(patient: Patient, available: set[str]) -> tuple[str, str] | Skip:
    """The client's preferred channel first, the other when the first cannot reach them.

    An opt-out is a wish, not a failure: it is respected, never routed around.
    """
    order = ("email", "sms") if patient.preferred_channel == "email" else ("sms", "email")
    reasons = []
    for channel in order:
        if channel not in available:
            continue
        if channel == "sms":
            if patient.sms_opted_out:
                return Skip("skipped", "client opted out of SMS")
            if patient.phone_e164 and not patient.phone_unusable:
                return channel, patient.phone_e164
            reasons.append("no usable phone number")
        else:
            if patient.email_opted_out:
                return Skip("skipped", "client opted out of email")
            if patient.email and not patient.email_unusable:
                return channel, patient.email
            reasons.append("no usable email address")
    if not reasons:
        return Skip("skipped", "no channel is configured")
    return Skip("skipped", "client has " + " and ".join(reasons))


def decide(reminder: Reminder, assignment: Assignment, patient: Patient,
           completion: Completion | None, *, settings: Settings, available: set[str],
           now: datetime) -> Decision:  # fmt: skip
    """Pure: what to do with one claimed reminder, given the world as it is now."""
    if not TaskStatus(assignment.status).is_open:
        return Skip("cancelled", f"assignment is {assignment.status}")
    if completion is not None and completion.status == CompletionStatus.done:
        return Skip("cancelled", "client already reported it done")
    if reminder.step == Step.overdue and completion is not None:
        return Skip("cancelled", "client already reported")
    route = choose_channel(patient, available)
    if isinstance(route, Skip):
        return route
    tz = patient.timezone or settings.practice.timezone
    quiet = settings.cadence.quiet_hours
    if cadence.in_quiet_hours(now, tz, quiet):
        return Defer(cadence.next_allowed(now, tz, quiet), "quiet hours")
    title = assignment.title if settings.messages.include_title else None
    return Send(channel=route[0], to=route[1], language=patient.language, title=title)


def render(send: Send, reminder: Reminder, link: str | None, settings: Settings,
           renderer: Renderer) -> OutboundMessage:  # fmt: skip
    ctx = {"practice": settings.practice.name, "title": send.title, "link": link}
    if send.channel == "email":
        subject, text, html = renderer.email(reminder.step, send.language, **ctx)
        return OutboundMessage(reminder.id, send.to, text, subject=subject, html=html)
    return OutboundMessage(reminder.id, send.to, renderer.sms(reminder.step, send.language, **ctx))


def _send(channel: Channel, message: OutboundMessage) -> SendResult | Exception:
    try:
        return channel.send(message)
    except (RetriableError, PermanentSendError, AmbiguousError) as exc:
        return exc
    except Exception as exc:  # an unexpected channel bug must not lose the batch's bookkeeping
        log.exception("channel %s raised unexpectedly", channel.name)
        return PermanentSendError(f"channel error: {type(exc).__name__}")


def dispatch_batch(
    engine,
    *,
    channels: dict[str, Channel],
    settings: Settings,
    renderer: Renderer,
    now: datetime,
    worker: str,
    link_key: LinkKey,
) -> DispatchStats:
    """Claim one batch, send it, record every outcome in one transaction."""
    stats = DispatchStats()
    sched = settings.scheduler
    with session_scope(engine) as session:
        wait = timedelta(seconds=sched.unknown_outcome_wait_seconds)
        stats.expired, _ = expire_leases(session, now=now, unknown_wait=wait)
        ids = claim(
            session,
            Reminder,
            now=now,
            limit=sched.batch_size,
            lease=timedelta(seconds=sched.lease_seconds),
            worker=worker,
        )
    stats.claimed = len(ids)
    if not ids:
        return stats

    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(
            select(Reminder, Assignment, Patient)
            .join(Assignment, Assignment.id == Reminder.assignment_id)
            .join(Patient, Patient.id == Assignment.patient_id)
            .where(col(Reminder.id).in_(ids))
        ).all()
        assignment_ids = {a.id for _, a, _ in rows}
        completions = {
            c.assignment_id: c
            for c in session.exec(
                select(Completion).where(col(Completion.assignment_id).in_(assignment_ids))
            ).all()
        }
    available = set(channels)
    decisions = {
        r.id: decide(r, a, p, completions.get(a.id), settings=settings, available=available,
                     now=now)
        for r, a, p in rows
    }  # fmt: skip
    by_reminder = {r.id: r for r, _, _ in rows}
    to_send = [(rid, d) for rid, d in decisions.items() if isinstance(d, Send)]
    messages: dict[int, OutboundMessage] = {}
    with session_scope(engine) as session:  # every message's link exists before it is sent
        for rid, send in to_send:
            reminder = by_reminder[rid]
            link = None
            if settings.server.public_url:
                token = links.mint(session, link_key, assignment_id=reminder.assignment_id,
                                   reminder_id=rid, now=now,
                                   ttl=timedelta(days=settings.security.link_ttl_days))  # fmt: skip
                link = f"{settings.server.public_url}/c/{token}"
            messages[rid] = render(send, reminder, link, settings, renderer)
    workers = max(1, min(sched.send_concurrency, len(to_send)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(
            zip(
                [rid for rid, _ in to_send],
                pool.map(lambda item: _send(channels[item[1].channel], messages[item[0]]),
                         to_send),
                strict=True,
            )
        )  # fmt: skip

    with session_scope(engine) as session:
        reminders = {
            r.id: r for r in session.exec(select(Reminder).where(col(Reminder.id).in_(ids))).all()
        }
        by_id = {r.id: (a, p) for r, a, p in rows}
        touched: dict[int, Assignment] = {}
        for rid, decision in decisions.items():
            reminder = reminders[rid]
            if reminder.state != "sending" or reminder.leased_by != worker:
                continue  # a status callback or another worker settled it meanwhile
            reminder.lease_until = None
            reminder.updated_at = now
            assignment, patient = by_id[rid]
            match decision:
                case Skip(state=state, reason=reason):
                    reminder.state, reminder.last_error = state, reason
                    stats.skipped += 1
                    stats.reasons[reason] = stats.reasons.get(reason, 0) + 1
                case Defer(until=until):
                    reminder.state, reminder.scheduled_for = "scheduled", until
                    reminder.attempts -= 1  # waiting out quiet hours is not an attempt
                    stats.deferred += 1
                case Send(channel=channel):
                    reminder.channel = channel
                    _record_send(
                        session,
                        reminder,
                        assignment,
                        patient,
                        results[rid],
                        settings,
                        now,
                        stats,
                        touched,
                    )
        for assignment in touched.values():
            refresh_task(session, assignment)
    return stats


def _record_send(
    session: Session,
    reminder: Reminder,
    assignment: Assignment,
    patient: Patient,
    result: SendResult | Exception,
    settings: Settings,
    now: datetime,
    stats: DispatchStats,
    touched: dict[int, Assignment],
) -> None:
    sched = settings.scheduler
    if isinstance(result, SendResult):
        reminder.state = "sent"
        reminder.provider_message_id = result.provider_message_id
        reminder.sent_at = now
        reminder.last_error = None
        stats.sent += 1
        row = session.get(Assignment, assignment.id)
        assert row is not None
        funnel = (
            BusinessStatus.delivered if reminder.step == Step.on_assign else BusinessStatus.reminded
        )
        if row.business_status not in (BusinessStatus.reported, BusinessStatus.written_back):
            row.business_status = funnel.value
            row.updated_at = now
            touched[row.id] = row
        return
    reminder.last_error = str(result)[:500]
    if isinstance(result, AmbiguousError):
        reminder.state = "unknown"  # the status callback (it carries the id) settles it
        reminder.last_error = f"outcome unknown, awaiting the provider: {result}"[:500]
        stats.unknown += 1
        return
    if isinstance(result, RetriableError) and reminder.attempts < sched.max_send_attempts:
        reminder.state = "scheduled"
        reminder.scheduled_for = now + backoff(
            sched.retry_backoff_seconds, reminder.attempts, jitter=sched.retry_jitter,
            retry_after=result.retry_after,
        )  # fmt: skip
        stats.retrying += 1
        return
    reminder.state = "failed"
    stats.failed += 1
    if isinstance(result, PermanentSendError):
        client = session.get(Patient, patient.id)
        assert client is not None
        if result.consequence == "opted_out":
            set_consent(
                session, [client], reminder.channel or "sms", False, f"provider:{result.code}", now
            )
        elif result.consequence == "unusable_number":
            client.phone_unusable = True
            client.updated_at = now
        elif result.consequence == "unusable_address":
            client.email_unusable = True
            client.updated_at = now


def dispatch_due(engine, **kwargs) -> DispatchStats:
    """Drain every reminder due now, batch after batch."""
    total = DispatchStats()
    while True:
        stats = dispatch_batch(engine, **kwargs)
        for name in (
            "claimed",
            "sent",
            "skipped",
            "deferred",
            "failed",
            "retrying",
            "unknown",
            "expired",
        ):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
        for reason, n in stats.reasons.items():
            total.reasons[reason] = total.reasons.get(reason, 0) + n
        if stats.claimed < kwargs["settings"].scheduler.batch_size:
            return total
