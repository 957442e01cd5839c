"""The ``bridge`` command: check, db upgrade/current, and clear exits on bad config."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bridge.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.yaml"
SECRETS = {
    "TWILIO_AUTH_TOKEN": "cli-test-token",
    "SENDGRID_API_KEY": "SG.cli-test",
    "BRIDGE_SECRET_KEY": "s" * 40,
}

runner = CliRunner()


def write_config(tmp_path: Path, body: str) -> tuple[Path, Path]:
    """A config whose SQLite database would be created in tmp_path; returns (config, db)."""
    db = tmp_path / "bridge.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
database:
  url: sqlite:///{db}
practice:
  name: Riverside Counseling
  contact: "(312) 555-0100"
{body}"""
    )
    return config, db


GOOD_CONNECTORS = """\
connectors:
  - name: ehr
    type: sandbox
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # the example's sqlite:///bridge.db is relative: keep anything it might create here
    monkeypatch.chdir(tmp_path)


def test_check_on_the_example(tmp_path) -> None:
    result = runner.invoke(app, ["check", "--config", str(EXAMPLE)], env=SECRETS)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "Riverside Counseling (America/New_York)"
    assert "database: sqlite:///bridge.db" in lines
    assert (
        "connector ehr: sandbox, poll every 300s; simulated EHR, pages of 50, no webhook" in lines
    )
    assert [x for x in lines if x.startswith("sms channel:")] == [
        "sms channel: console; email channel: none"
    ]
    assert not [x for x in lines if "secret_key is not set" in x]
    flat = " ".join(result.stdout.split())  # rich wraps long lines at the console width
    assert (
        "cadence: on_assign (assigned+0h), mid_window (midpoint+0h), near_due (due-24h), "
        "overdue (due+24h); quiet hours 21:00-08:00 local" in flat
    )
    assert "override exposure: on_assign, near_due" in flat
    assert lines[-2:] == [
        "public url: (not set: no status callbacks)",
        "configuration is valid",
    ]
    assert list(tmp_path.iterdir()) == []  # check touches no database


def test_check_without_the_secret_exits_2_naming_the_variable() -> None:
    env = {**SECRETS, "TWILIO_AUTH_TOKEN": None}
    result = runner.invoke(app, ["check", "--config", str(EXAMPLE)], env=env)
    assert result.exit_code == 2
    line = next(
        n
        for n, text in enumerate(EXAMPLE.read_text().splitlines(), 1)
        if "${TWILIO_AUTH_TOKEN}" in text
    )
    assert result.stderr == (
        "configuration error:\n"
        f"  {EXAMPLE}:{line}: channels.twilio.auth_token: "
        "environment variable TWILIO_AUTH_TOKEN is not set\n"
    )
    assert result.stdout == ""


def test_check_on_malformed_yaml_exits_2_with_file_and_line(tmp_path) -> None:
    config, db = write_config(tmp_path, GOOD_CONNECTORS + "    options: {page_size: 5\nserver:\n")
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"configuration error:\n  {config}:10: not valid YAML: ")
    assert result.stderr.endswith("(while parsing a flow mapping at line 9)\n")
    assert not db.exists()


def test_check_reports_every_problem_on_its_own_line(tmp_path) -> None:
    config, db = write_config(
        tmp_path,
        GOOD_CONNECTORS.replace("sandbox", "epic")
        + "server:\n  public_url: bridge.example.org/a/rather/long/path/that/would/wrap\n",
    )
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr == (
        "configuration errors:\n"
        f"  {config}:10: server.public_url: Value error, public_url must start with https:// "
        "(or http:// for local testing)\n"
        f"  {config}:8: connectors[0].type: unknown connector 'epic'; available: fhir, sandbox\n"
    )
    assert not db.exists()


def test_check_with_an_unknown_connector_lists_the_available_ones(tmp_path) -> None:
    config, db = write_config(tmp_path, GOOD_CONNECTORS.replace("sandbox", "epic"))
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "configuration error:\n"
        f"  {config}:8: connectors[0].type: unknown connector 'epic'; available: fhir, sandbox\n"
    )
    assert not db.exists()


def test_check_on_a_missing_file(tmp_path) -> None:
    missing = tmp_path / "no" / "such" / "config.yaml"
    result = runner.invoke(app, ["check", "--config", str(missing)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "configuration error:\n"
        f"  {missing}: cannot read the config file: No such file or directory\n"
    )


def test_run_with_a_bad_config_touches_no_database(tmp_path) -> None:
    config, db = write_config(tmp_path, GOOD_CONNECTORS.replace("sandbox", "epic"))
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2
    assert "unknown connector 'epic'; available: fhir, sandbox" in result.stderr
    assert not db.exists()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from bridge.store.db import alembic_config, make_engine

    head = ScriptDirectory.from_config(alembic_config(make_engine("sqlite://"))).get_current_head()
    assert head is not None
    return head


def test_db_upgrade_then_current(tmp_path) -> None:
    config, db = write_config(tmp_path, GOOD_CONNECTORS)
    args = ["db", "upgrade", "--config", str(config), "--revision", "0001"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "database at revision 0001\n"
    assert db.exists()

    result = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "0001\n"

    # the default is head, and upgrading again is a no-op
    head = head_revision()
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
        assert result.exit_code == 0, result.output
        assert result.stdout == f"database at revision {head}\n"
    result = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert result.stdout == f"{head}\n"


def test_db_current_on_an_empty_database(tmp_path) -> None:
    config, _ = write_config(tmp_path, GOOD_CONNECTORS)
    result = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "(empty)\n"


def test_db_upgrade_with_a_bad_config_exits_2(tmp_path) -> None:
    config, db = write_config(tmp_path, "connectors: []\n")
    result = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr == (
        "configuration error:\n"
        f"  {config}:6: connectors: List should have at least 1 item after validation, not 0\n"
    )
    assert not db.exists()
