"""Dispatch: claim due reminders in batches, decide each one again, send, record.

Decide, then deliver: the planner wrote the rows; here each claimed row is judged anew
against the assignment, consent and quiet hours as they are now. A row is marked
``sending`` (committed) before the provider is called, so no crash can send it twice.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import insert, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import defer
from sqlmodel import Session, select

from bridge import cadence, links
from bridge.capture import set_consent
from bridge.channels.base import Channel, OutboundMessage, PermanentSendError, SendResult
from bridge.config import Settings
from bridge.domain import BusinessStatus, CompletionStatus, Step, TaskStatus
from bridge.errors import AmbiguousError, RetriableError
from bridge.fhir import with_business_status
from bridge.links import LinkKey
from bridge.rendering import Renderer
from bridge.store.db import among, session_scope
from bridge.store.models import Assignment, ClientLink, Completion, Patient, Reminder
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

    def add(self, other: DispatchStats) -> None:
        for name in ("claimed", "sent", "skipped", "deferred", "failed", "retrying", "unknown",
                     "expired"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n


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


@dataclass
class Batch:
    """One claimed batch on its way through: decided, rendered, handed to the senders."""

    ids: list[int]
    rows: dict[int, tuple[Reminder, Assignment, Patient]]
    decisions: dict[int, Decision]
    sends: dict[int, Future] = field(default_factory=dict)


def claim_batch(engine, *, channels: dict[str, Channel], settings: Settings, now: datetime,
                worker: str, stats: DispatchStats) -> Batch | None:  # fmt: skip
    """Lease one batch and decide each of its rows against the world as it is now."""
    sched = settings.scheduler
    with session_scope(engine) as session:
        wait = timedelta(seconds=sched.unknown_outcome_wait_seconds)
        expired, _ = expire_leases(session, now=now, unknown_wait=wait)
        stats.expired += expired
        ids = claim(
            session,
            Reminder,
            now=now,
            limit=sched.batch_size,
            lease=timedelta(seconds=sched.lease_seconds),
            worker=worker,
        )
    stats.claimed += len(ids)
    if not ids:
        return None

    with Session(engine, expire_on_commit=False) as session:
        found = session.exec(
            select(Reminder, Assignment, Patient)
            .options(defer(Assignment.task_json))  # large, and not needed to decide or render
            .join(Assignment, Assignment.id == Reminder.assignment_id)
            .join(Patient, Patient.id == Assignment.patient_id)
            .where(among(session, Reminder.id, ids))
        ).all()
        assignment_ids = {a.id for _, a, _ in found}
        completions = {
            c.assignment_id: c
            for c in session.exec(
                select(Completion).where(among(session, Completion.assignment_id, assignment_ids))
            ).all()
        }
    available = set(channels)
    batch = Batch(ids=ids, rows={r.id: (r, a, p) for r, a, p in found}, decisions={})
    for rid, (r, a, p) in batch.rows.items():
        batch.decisions[rid] = decide(r, a, p, completions.get(a.id), settings=settings,
                                      available=available, now=now)  # fmt: skip
    return batch


def render_batch(engine, batch: Batch, *, settings: Settings, renderer: Renderer,
                 now: datetime, link_key: LinkKey) -> dict[int, OutboundMessage]:  # fmt: skip
    """Every message of the batch; each one's link is committed before it can be sent."""
    messages: dict[int, OutboundMessage] = {}
    ttl = timedelta(days=settings.security.link_ttl_days)
    rows: list[dict] = []
    for rid, decision in batch.decisions.items():
        if not isinstance(decision, Send):
            continue
        reminder = batch.rows[rid][0]
        link = None
        if settings.server.public_url:
            token, row = links.new_link(link_key, assignment_id=reminder.assignment_id,
                                        reminder_id=rid, now=now, ttl=ttl)  # fmt: skip
            rows.append(row)
            link = f"{settings.server.public_url}/c/{token}"
        messages[rid] = render(decision, reminder, link, settings, renderer)
    if rows:
        with session_scope(engine) as session:
            session.connection().execute(insert(ClientLink.__table__), rows)
    return messages


def submit_batch(batch: Batch, messages: dict[int, OutboundMessage], pool: Executor,
                 channels: dict[str, Channel]) -> None:  # fmt: skip
    for rid, message in messages.items():
        channel = channels[batch.decisions[rid].channel]  # type: ignore[union-attr]
        batch.sends[rid] = pool.submit(_send, channel, message)


def record_batch(engine, batch: Batch, *, settings: Settings, now: datetime, worker: str,
                 stats: DispatchStats) -> None:  # fmt: skip
    """Wait for the batch's sends, then record every outcome in one transaction.

    The rows are re-read locked, so a status callback that settled a row meanwhile is
    kept, and one that arrives now waits for this commit and applies on top of it.
    """
    results = {rid: future.result() for rid, future in batch.sends.items()}
    for attempt in range(1, 4):
        try:
            with session_scope(engine) as session:
                _record(session, batch, results, settings, now, worker, stats)
            return
        except OperationalError as exc:  # a deadlock with a concurrent report: do it again
            if attempt == 3 or not _is_transient(exc):
                raise
            log.warning("recording a dispatch batch was rolled back; retrying")


def _is_transient(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)
    return code in ("40001", "40P01")  # serialization failure, deadlock detected


def _record(session: Session, batch: Batch, results: dict[int, SendResult | Exception],
            settings: Settings, now: datetime, worker: str,
            stats: DispatchStats) -> None:  # fmt: skip
    """Apply every outcome of the batch as bulk updates: no row objects, one round trip each."""
    local = DispatchStats()
    live = set(
        session.exec(
            select(Reminder.id)
            .where(among(session, Reminder.id, batch.ids))
            .where(Reminder.state == "sending", Reminder.leased_by == worker)
            .with_for_update()
        ).all()
    )  # the rest were settled meanwhile, by a status callback or another worker
    reminder_changes: list[dict] = []
    delivered: dict[int, BusinessStatus] = {}
    for rid, decision in batch.decisions.items():
        if rid not in live:
            continue
        reminder, assignment, patient = batch.rows[rid]
        result = results.get(rid)
        changes, counted = outcome(reminder, decision, result, settings, now)
        reminder_changes.append({"id": rid, "lease_until": None, "updated_at": now, **changes})
        setattr(local, counted, getattr(local, counted) + 1)
        if isinstance(decision, Skip):
            local.reasons[decision.reason] = local.reasons.get(decision.reason, 0) + 1
        if isinstance(result, SendResult):
            delivered[assignment.id] = (
                BusinessStatus.delivered if reminder.step == Step.on_assign
                else BusinessStatus.reminded
            )  # fmt: skip
        elif isinstance(result, PermanentSendError) and result.consequence:
            _remember(session, patient.id, decision, result, now)
    if reminder_changes:
        session.exec(update(Reminder), params=reminder_changes)  # type: ignore[call-overload]
    _advance_funnel(session, delivered, now)
    stats.add(local)  # counted only once the transaction is about to commit


def outcome(reminder: Reminder, decision: Decision, result: SendResult | Exception | None,
            settings: Settings, now: datetime) -> tuple[dict, str]:  # fmt: skip
    """Pure: a claimed reminder's new column values, and which tally the outcome counts in."""
    sched = settings.scheduler
    match decision:
        case Skip(state=state, reason=reason):
            return {"state": state, "last_error": reason}, "skipped"
        case Defer(until=until):
            # waiting out quiet hours is not an attempt
            return {"state": "scheduled", "scheduled_for": until,
                    "attempts": reminder.attempts - 1}, "deferred"  # fmt: skip
    assert isinstance(decision, Send)
    base = {"channel": decision.channel}
    if isinstance(result, SendResult):
        return {**base, "state": "sent", "provider_message_id": result.provider_message_id,
                "sent_at": now, "last_error": None}, "sent"  # fmt: skip
    error = str(result)[:500]
    if isinstance(result, AmbiguousError):
        # the status callback (it carries the reminder id) settles it
        error = f"outcome unknown, awaiting the provider: {result}"[:500]
        return {**base, "state": "unknown", "last_error": error}, "unknown"
    if isinstance(result, RetriableError) and reminder.attempts < sched.max_send_attempts:
        delay = backoff(sched.retry_backoff_seconds, reminder.attempts, jitter=sched.retry_jitter,
                        retry_after=result.retry_after)  # fmt: skip
        return {**base, "state": "scheduled", "scheduled_for": now + delay,
                "last_error": error}, "retrying"  # fmt: skip
    return {**base, "state": "failed", "last_error": error}, "failed"


def _remember(session: Session, patient_id: int, send: Decision, error: PermanentSendError,
              now: datetime) -> None:  # fmt: skip
    """What a refusal says about the client outlives the message."""
    client = session.get(Patient, patient_id)
    assert client is not None and isinstance(send, Send)
    if error.consequence == "opted_out":
        set_consent(session, [client], send.channel, False, f"provider:{error.code}", now)
    elif error.consequence == "unusable_number":
        client.phone_unusable = True
        client.updated_at = now
    elif error.consequence == "unusable_address":
        client.email_unusable = True
        client.updated_at = now


def _advance_funnel(session: Session, funnel: dict[int, BusinessStatus], now: datetime) -> None:
    """Delivered or reminded, unless the client already reported: on the row and its Task."""
    if not funnel:
        return
    rows = session.exec(
        select(Assignment.id, Assignment.business_status, Assignment.task_json)
        .where(among(session, Assignment.id, funnel))
        .with_for_update()
    ).all()
    changes = [
        {
            "id": aid,
            "business_status": funnel[aid].value,
            "updated_at": now,
            "task_json": with_business_status(task, funnel[aid]),
        }  # fmt: skip
        for aid, current, task in rows
        if current not in (BusinessStatus.reported, BusinessStatus.written_back, funnel[aid])
    ]
    if changes:
        session.exec(update(Assignment), params=changes)  # type: ignore[call-overload]


def dispatch_due(
    engine,
    *,
    channels: dict[str, Channel],
    settings: Settings,
    renderer: Renderer,
    now: datetime,
    worker: str,
    link_key: LinkKey,
) -> DispatchStats:
    """Drain every reminder due now, batch after batch, with the senders never idle.

    While one batch is with the provider the next is claimed, rendered and queued behind
    it, and the one before is recorded: the database work overlaps the sending instead
    of adding to it, and no batch boundary leaves the senders waiting.
    """
    common = {"settings": settings, "now": now}
    total = DispatchStats()
    with ThreadPoolExecutor(max_workers=settings.scheduler.send_concurrency,
                            thread_name_prefix="send") as senders:  # fmt: skip
        in_flight: Batch | None = None
        try:
            while True:
                batch = claim_batch(engine, channels=channels, worker=worker, stats=total,
                                    **common)  # fmt: skip
                if batch is not None:
                    messages = render_batch(engine, batch, renderer=renderer,
                                            link_key=link_key, **common)  # fmt: skip
                    submit_batch(batch, messages, senders, channels)
                if in_flight is not None:
                    done, in_flight = in_flight, None  # never recorded twice
                    record_batch(engine, done, worker=worker, stats=total, **common)
                in_flight = batch
                if batch is None or len(batch.ids) < settings.scheduler.batch_size:
                    break
        finally:
            if in_flight is not None:
                record_batch(engine, in_flight, worker=worker, stats=total, **common)
    return total
