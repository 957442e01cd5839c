"""The schema comes from Alembic, on SQLite and PostgreSQL, up and down."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlmodel import SQLModel

from bridge.store.db import current_revision, downgrade, make_engine, upgrade

HEAD = "0002"


def test_upgrade_from_empty_matches_the_models_and_downgrades_cleanly(db_url):
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == HEAD
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(SQLModel.metadata.tables)
    uniques = {u["name"] for u in inspect(engine).get_unique_constraints("reminder")}
    assert "uq_reminder_step" in uniques
    upgrade(engine)  # idempotent
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == HEAD
    engine.dispose()


def test_models_and_migrations_agree(db_url):
    """Autogenerate finds nothing to add: no table or column exists only in the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    engine.dispose()


def test_upgrade_from_the_previous_revision_keeps_data(db_url):
    from sqlalchemy import text

    engine = make_engine(db_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO patient (connector, external_id, name, language, sms_opted_out, "
                "email_opted_out, phone_unusable, updated_at) VALUES "
                "('ehr', 'p1', 'Alex', 'en', false, false, false, '2026-03-03 15:00:00')"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT external_id, email_unusable FROM patient")).one()
    assert row[0] == "p1" and not row[1]
    engine.dispose()
