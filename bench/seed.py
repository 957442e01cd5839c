"""Bulk rows for benchmarks: clients, open assignments and their due reminders.

Rows go in with multi-row INSERTs, not through a connector poll, so seeding 100 000
assignments takes seconds; each assignment carries a real Task JSON (built once by the
bridge's own mapping and re-stamped per row) so every code path can read it back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import insert, text
from sqlalchemy.engine import Engine, make_url

from bridge.domain import AssignmentData
from bridge.records import task_json
from bridge.store.models import Assignment, Patient, Reminder

CONNECTOR = "ehr"
CHUNK = 5_000


def admin_url(url: str) -> str:
    """The same server's maintenance database, for CREATE/DROP DATABASE."""
    return (
        make_url(url)
        .set(drivername="postgresql", database="postgres")
        .render_as_string(hide_password=False)
    )


def fresh_database(base_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``base_url``; return its URL."""
    with psycopg.connect(admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_database(base_url: str, name: str) -> None:
    with psycopg.connect(admin_url(base_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _task_template(assigned_at: datetime) -> str:
    data = AssignmentData(
        external_id="@ID@",
        patient_external_id="@PATIENT@",
        clinician_external_id=None,
        type_code="thought_record",
        title="Thought record",
        assigned_at=assigned_at,
        due_at=assigned_at + timedelta(days=7),
        repetitions=3,
        frequency="3 times a week",
    )
    return task_json(CONNECTOR, data, None, None)


def seed_assignments(
    engine: Engine,
    count: int,
    *,
    now: datetime,
    timezone: str = "UTC",
    due_reminders: bool = True,
) -> None:
    """``count`` clients, each with one open assignment and its on-assign reminder.

    With ``due_reminders`` the reminders are due now (a dispatch backlog); without, they
    are due a week ahead (a practice's steady state: many open assignments, little due).
    """
    now = now.astimezone(UTC)
    template = _task_template(now - timedelta(minutes=5))
    json.loads(template)  # fail here, not in the middle of a benchmark
    when = now - timedelta(seconds=1) if due_reminders else now + timedelta(days=7)
    with engine.begin() as conn:
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            patients = [
                {
                    "connector": CONNECTOR,
                    "external_id": f"p{i}",
                    "name": f"Client {i}",
                    "phone_e164": f"+1312{2000000 + i:07d}",
                    "language": "en",
                    "timezone": timezone,
                    "updated_at": now,
                }
                for i in range(start, stop)
            ]
            ids = conn.execute(insert(Patient).returning(Patient.id), patients).scalars().all()
            assignments = [
                {
                    "connector": CONNECTOR,
                    "external_id": f"hw-{i}",
                    "patient_id": pid,
                    "type_code": "thought_record",
                    "title": "Thought record",
                    "status": "requested",
                    "business_status": None,
                    "assigned_at": now - timedelta(minutes=5),
                    "due_at": now + timedelta(days=7),
                    "effective_due_at": now + timedelta(days=7),
                    "task_json": template.replace("@ID@", f"hw-{i}").replace("@PATIENT@", f"p{i}"),
                    "source_hash": f"{i:064x}",
                    "version": 1,
                    "updated_at": now,
                }
                for i, pid in zip(range(start, stop), ids, strict=True)
            ]
            aids = (
                conn.execute(insert(Assignment).returning(Assignment.id), assignments)
                .scalars()
                .all()
            )
            conn.execute(
                insert(Reminder),
                [
                    {
                        "assignment_id": aid,
                        "step": "on_assign",
                        "scheduled_for": when,
                        "state": "scheduled",
                        "attempts": 0,
                        "updated_at": now,
                    }
                    for aid in aids
                ],
            )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def reset_reminders(engine: Engine, *, now: datetime) -> None:
    """Put every reminder back in line, due now, as if never sent."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE reminder SET state='scheduled', scheduled_for=:due, attempts=0,"
                " lease_until=NULL, leased_by=NULL, provider_message_id=NULL, sent_at=NULL,"
                " last_error=NULL, channel=NULL"
            ),
            {"due": now.astimezone(UTC) - timedelta(seconds=1)},
        )
        conn.execute(text("DELETE FROM clientlink"))
        conn.execute(text("UPDATE assignment SET business_status=NULL"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
