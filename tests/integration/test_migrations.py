"""The schema comes from Alembic, on SQLite and PostgreSQL, up and down."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlmodel import SQLModel

from bridge.store.db import current_revision, downgrade, make_engine, upgrade


def test_upgrade_from_empty_matches_the_models_and_downgrades_cleanly(db_url):
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == "0001"
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(SQLModel.metadata.tables)
    uniques = {u["name"] for u in inspect(engine).get_unique_constraints("reminder")}
    assert "uq_reminder_step" in uniques
    upgrade(engine)  # idempotent
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert current_revision(engine) == "0001"
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
