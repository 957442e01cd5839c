"""Dead letters: listed with their reasons, retried or dropped by an operator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlmodel import Session, select
from typer.testing import CliRunner

from bridge.cli import app as cli
from bridge.errors import FatalError
from bridge.store.models import WriteBack
from bridge.web.app import create_app
from tests.conftest import BASE_CONFIG, build_bridge, make_settings
from tests.factories import assignment, patient, seed
from tests.integration.test_writeback import reply

TOKEN = "admin-token-0123456789"


@pytest.fixture
def dead(sqlite_url, clock):
    """A write-back the EHR refused for good: a dead letter with its reason."""
    base = make_settings()
    server = base.server.model_copy(update={"admin_token": SecretStr(TOKEN)})
    bridge = build_bridge(sqlite_url, clock, base.model_copy(update={"server": server}))
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1"))
    ehr.assign(assignment("hw-1", clock.now()))
    bridge.poll("ehr")
    bridge.dispatch()
    reply(bridge, "done", "SM1")
    ehr.fail_next_writes(FatalError("EHR 422: author is not a practitioner"))
    clock.advance(timedelta(minutes=31))
    assert bridge.write_back().failed == 1
    yield bridge
    bridge.close()


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def test_admin_api_lists_retries_and_drops(dead):
    client = TestClient(create_app(dead))
    assert client.get("/admin/outbox").status_code == 401
    assert client.get("/admin/outbox", headers=auth("wrong")).status_code == 401
    [item] = client.get("/admin/outbox", headers=auth()).json()["items"]
    assert (item["kind"], item["assignment"], item["what"], item["state"]) == (
        "writeback",
        "hw-1",
        "completion",
        "failed",
    )
    assert "422" in item["reason"]
    response = client.post(f"/admin/outbox/writeback/{item['id']}/retry", headers=auth())
    assert response.status_code == 200
    assert dead.write_back().written == 1  # the EHR accepts it now
    assert "ehr:hw-1:completion" in dead.connectors["ehr"].notes
    assert client.get("/admin/outbox", headers=auth()).json()["items"] == []
    again = client.post(f"/admin/outbox/writeback/{item['id']}/drop", headers=auth())
    assert again.status_code == 409 and "written" in again.json()["error"]
    assert client.post("/admin/outbox/nope/1/retry", headers=auth()).status_code == 409


def test_outbox_command_lists_and_drops(dead, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(BASE_CONFIG.replace("url: sqlite://", f"url: {dead.engine.url}"))
    runner = CliRunner()
    listed = runner.invoke(cli, ["outbox", "list", "--config", str(config)])
    assert listed.exit_code == 0 and "writeback" in listed.output and "422" in listed.output
    with Session(dead.engine) as s:
        wb_id = s.exec(select(WriteBack)).one().id
    dropped = runner.invoke(
        cli, ["outbox", "drop", "writeback", str(wb_id), "--config", str(config)]
    )
    assert dropped.exit_code == 0
    with Session(dead.engine) as s:
        row = s.exec(select(WriteBack)).one()
        assert row.state == "cancelled" and row.last_error.startswith("dropped by an operator")
    missing = runner.invoke(cli, ["outbox", "retry", "writeback", "999", "--config", str(config)])
    assert missing.exit_code == 2 and "no writeback with id 999" in missing.output
    assert (
        runner.invoke(cli, ["outbox", "list", "--config", str(config)]).output.strip()
        == "nothing is stuck"
    )


def test_the_listing_is_bounded_and_a_bad_limit_is_refused(dead):
    """An outage can leave thousands stuck: the list is the oldest N of each kind."""
    with Session(dead.engine) as s:
        wb = s.exec(select(WriteBack)).one()
    from bridge.store.db import session_scope

    with session_scope(dead.engine) as s:  # two more dead letters
        for kind in ("missed", "other"):
            s.add(WriteBack(assignment_id=wb.assignment_id, kind=kind, state="failed",
                            due_at=wb.due_at, note_identifier=f"ehr:hw-1:{kind}", attempts=5,
                            last_error="EHR 422", updated_at=wb.updated_at))  # fmt: skip
    client = TestClient(create_app(dead))
    items = client.get("/admin/outbox?limit=2", headers=auth()).json()["items"]
    assert [i["id"] for i in items] == sorted(i["id"] for i in items) and len(items) == 2
    assert len(client.get("/admin/outbox", headers=auth()).json()["items"]) == 3
    for bad in ("0", "5001", "many"):
        response = client.get(f"/admin/outbox?limit={bad}", headers=auth())
        assert response.status_code == 400 and "limit" in response.json()["error"]
