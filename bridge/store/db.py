"""Engines, sessions and schema migrations."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import ColumnElement, Integer, any_, bindparam, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here; SQLAlchemy would otherwise reach for psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL advisory locks."""
    digest = hashlib.sha256(f"homework-bridge:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def poll_lock(engine: Engine, connector: str) -> Iterator[bool]:
    """One replica polls a connector at a time: a session-level advisory lock on PostgreSQL.

    It is released when the poll ends, or by the server when the holder's connection dies,
    so a crashed replica hands the work on. SQLite is single-process: always held.
    """
    if not is_postgres(engine):
        yield True
        return
    key = advisory_key(f"poll:{connector}")
    with engine.connect() as conn:
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


class SQLiteInUse(RuntimeError):
    pass


def claim_sqlite_file(url: str):
    """Refuse a second process on one SQLite file: the bridge scales out on PostgreSQL only.

    Returns an open lock file to keep for the life of the process (None for other stores).
    """
    parsed = make_url(normalise_url(url))
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    lock_path = Path(parsed.database).resolve().with_suffix(".bridge-lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SQLiteInUse(
            f"another bridge process is already using {parsed.database}; SQLite serves one "
            "process. Stop it, or run several replicas on PostgreSQL."
        ) from None
    return handle


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def among(session: Session, column, ids: Iterable[int]) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL as ``= ANY(array)``, one parameter.

    An IN list binds one parameter per id, so every batch is a new statement for the
    driver to parse (psycopg caches none with over 50 parameters) and for the server to plan.
    """
    values = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(Integer)))
    return column.in_(values)
