"""Outbox claims as leases.

A claim moves due rows to their in-flight state with ``lease_until`` and ``leased_by``
in one statement. On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED`` so several
replicas share one database without taking the same row; SQLite is single-node.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from bridge.store.db import among
from bridge.store.models import Reminder, WriteBack


def claim(
    session: Session,
    model: type[Reminder] | type[WriteBack],
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    worker: str,
) -> list[int]:
    """Lease up to ``limit`` due rows to ``worker``; return their ids, oldest first."""
    if model is Reminder:
        ready, claimed, due = "scheduled", "sending", Reminder.scheduled_for
    else:
        ready, claimed, due = "pending", "writing", WriteBack.due_at
    stmt = (
        select(model.id)
        .where(model.state == ready, due <= now)
        .order_by(due, model.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    ids = list(session.exec(stmt).all())
    if ids:
        session.exec(
            update(model)
            .where(among(session, model.id, ids))
            .values(
                state=claimed,
                lease_until=now + lease,
                leased_by=worker,
                attempts=model.attempts + 1,
                updated_at=now,
            )
        )
    return ids


def expire_leases(session: Session, *, now: datetime, unknown_wait: timedelta) -> tuple[int, int]:
    """Settle rows whose worker vanished mid-flight.

    A reminder left ``sending`` may have reached the provider: it becomes ``unknown`` and
    waits for the provider's status callback (which carries the reminder id) to settle it.
    Only when ``unknown_wait`` passes with no callback is it put back in line to be sent.
    A write-back left ``writing`` is retried: notes are keyed by the bridge's identifier,
    so writing one again cannot duplicate it.
    """
    session.exec(
        update(Reminder)
        .where(Reminder.state == "sending", Reminder.lease_until < now)
        .values(
            state="unknown",
            last_error="outcome unknown: the worker stopped mid-send; awaiting the provider",
            lease_until=None,
            updated_at=now,
        )
    )
    reminders = session.exec(
        update(Reminder)
        .where(Reminder.state == "unknown", Reminder.updated_at <= now - unknown_wait)
        .values(
            state="scheduled",
            scheduled_for=now,
            last_error="no word from the provider in time: sending again",
            updated_at=now,
        )
    ).rowcount
    writebacks = session.exec(
        update(WriteBack)
        .where(WriteBack.state == "writing", WriteBack.lease_until < now)
        .values(state="pending", lease_until=None, updated_at=now)
    ).rowcount
    return reminders or 0, writebacks or 0


def backoff(
    base_seconds: float,
    attempt: int,
    *,
    jitter: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> timedelta:
    """Exponential backoff for an outbox row, spread by up to ``jitter`` of itself.

    The spread keeps replicas that failed together (an outage ends for everyone at once)
    from retrying in lockstep; a provider's ``Retry-After`` is a floor, never shortened.
    """
    delay = base_seconds * 2 ** max(0, attempt - 1) * (1 + jitter * rand())
    return timedelta(seconds=max(delay, retry_after or 0))
