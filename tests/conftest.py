"""Shared fixtures: one clock, real stores (SQLite, and PostgreSQL where it answers)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from bridge.channels.console import ConsoleChannel
from bridge.clock import ManualClock
from bridge.config import Settings, parse_settings
from bridge.service import Bridge
from bridge.store.db import make_engine, upgrade

PG_URL = os.environ.get("BRIDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"

BASE_CONFIG = """
practice:
  name: Riverside Counseling
  timezone: America/Chicago
  contact: "(312) 555-0100"
database:
  url: sqlite://
server:
  public_url: https://bridge.example.org
connectors:
  - name: ehr
    type: sandbox
    options:
      page_size: 3
      webhook_secret: sandbox-secret
channels:
  sms: console
  twilio:
    account_sid: AC00000000000000000000000000000000
    auth_token: test-auth-token
    from_number: "+13125550199"
scheduler:
  batch_size: 5
  retry_jitter: 0  # exact instants in tests; the spread has its own test
"""


def make_settings(extra: str = "", **env: str) -> Settings:
    return parse_settings(BASE_CONFIG + extra, source="test config", env=env)


@pytest.fixture
def clock() -> ManualClock:
    # Tuesday 2026-03-03 15:00 UTC = 09:00 in Chicago: inside allowed hours
    return ManualClock(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))


def _pg_available() -> bool:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_ok() -> bool:
    ok = _pg_available()
    if not ok and IN_CI:
        pytest.fail(f"PostgreSQL is required when CI=true and did not answer at {PG_URL}")
    return ok


@pytest.fixture
def pg_url(pg_ok) -> Iterator[str]:
    """A fresh schema on the PostgreSQL server, dropped afterwards."""
    if not pg_ok:
        pytest.skip(f"no PostgreSQL server at {PG_URL}")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'bridge.db'}"


@pytest.fixture
def settings() -> Settings:
    return make_settings()


def build_bridge(url: str, clock: ManualClock, settings: Settings | None = None) -> Bridge:
    engine = make_engine(url)
    upgrade(engine)
    return Bridge(
        settings or make_settings(),
        clock=clock,
        engine=engine,
        channel=ConsoleChannel(),
        worker_id="test-worker",
    )


@pytest.fixture
def bridge(sqlite_url, clock) -> Iterator[Bridge]:
    b = build_bridge(sqlite_url, clock)
    yield b
    b.close()


@pytest.fixture
def any_bridge(db_url, clock) -> Iterator[Bridge]:
    """The same bridge on SQLite and on PostgreSQL."""
    b = build_bridge(db_url, clock)
    yield b
    b.close()
