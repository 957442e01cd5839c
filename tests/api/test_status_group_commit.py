"""Status callbacks arriving together share a commit, and each is answered only after it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from bridge.store.models import Reminder
from bridge.web.app import create_app
from bridge.web.group_commit import GroupCommit
from tests.factories import assignment, patient, seed

TOKEN = "test-auth-token"
PUBLIC = "https://bridge.example.org"


def sent_reminders(bridge, n: int) -> list[Reminder]:
    ehr = bridge.connectors["ehr"]
    seed(ehr, *[patient(f"p{i}", f"+1312555{4000 + i}") for i in range(n)])
    for i in range(n):
        ehr.assign(assignment(f"hw-{i}", bridge.clock.now() - timedelta(minutes=5),
                              patient_ext=f"p{i}"))  # fmt: skip
    bridge.poll("ehr")
    assert bridge.dispatch().sent == n
    with Session(bridge.engine) as s:
        return list(s.exec(select(Reminder).where(Reminder.state == "sent")).all())


def signed(reminder_id: int, form: dict[str, str]) -> tuple[str, bytes, dict[str, str]]:
    path = f"/webhooks/twilio/status?reminder={reminder_id}"
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}{path}", form)
    headers = {"X-Twilio-Signature": signature,
               "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip
    return path, urlencode(form).encode(), headers


def status(sid: str, value: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": value,
            "AccountSid": "AC00000000000000000000000000000000", **extra}  # fmt: skip


async def post_all(app, requests) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
        return await asyncio.gather(
            *(client.post(path, content=body, headers=headers) for path, body, headers in requests)
        )


def test_concurrent_callbacks_share_commits_and_all_land(any_bridge):
    bridge = any_bridge
    reminders = sent_reminders(bridge, 40)
    app = create_app(bridge)
    requests = [signed(r.id, status(r.provider_message_id, "delivered")) for r in reminders]

    responses = asyncio.run(post_all(app, requests))

    assert [r.status_code for r in responses] == [204] * 40
    commits = app.state.status_commits
    assert commits.items == 40
    assert commits.batches < 40 // 4  # concurrent requests were committed together
    with Session(bridge.engine) as s:
        states = {r.id: r.state for r in s.exec(select(Reminder)).all()}
    assert all(states[r.id] == "delivered" for r in reminders)


def test_callbacks_for_one_reminder_in_one_batch_apply_in_arrival_order(any_bridge):
    bridge = any_bridge
    (r,) = sent_reminders(bridge, 1)
    app = create_app(bridge)
    requests = [
        signed(r.id, status(r.provider_message_id, "sent")),
        signed(r.id, status(r.provider_message_id, "delivered")),
        signed(r.id, status(r.provider_message_id, "sent")),  # late: never moves it back
    ]

    responses = asyncio.run(post_all(app, requests))

    assert [x.status_code for x in responses] == [204, 204, 204]
    with Session(bridge.engine) as s:
        assert s.get(Reminder, r.id).state == "delivered"


def test_an_unknown_or_mismatched_callback_in_a_shared_batch_fails_alone(any_bridge):
    bridge = any_bridge
    a, b = sent_reminders(bridge, 2)
    app = create_app(bridge)
    requests = [
        signed(a.id, status(a.provider_message_id, "delivered")),
        signed(b.id, status("SM" + "f" * 32, "failed", ErrorCode="30006")),  # not b's message
        signed(b.id + 999, status("SM" + "e" * 32, "delivered")),
    ]

    responses = asyncio.run(post_all(app, requests))

    assert [x.status_code for x in responses] == [204, 409, 404]
    with Session(bridge.engine) as s:
        assert s.get(Reminder, a.id).state == "delivered"
        assert s.get(Reminder, b.id).state == "sent"


def test_a_failing_shared_transaction_is_retried_one_by_one(sqlite_url):
    """One item that breaks the shared commit fails alone; the rest are committed."""
    from bridge.store.db import make_engine, upgrade
    from bridge.store.models import SyncCursor

    engine = make_engine(sqlite_url)
    upgrade(engine)

    def apply(session, items: list[str]) -> list[str]:
        for item in items:
            if item == "bad":
                raise ValueError("cannot apply this one")
            session.add(SyncCursor(connector=item, cursor="c", updated_at=_now()))
        return [f"ok {item}" for item in items]

    commits: GroupCommit[str, str] = GroupCommit(engine, apply)

    async def run():
        return await asyncio.gather(
            *(commits.submit(x) for x in ["a", "b", "bad", "c"]), return_exceptions=True
        )

    results = asyncio.run(run())

    assert results[:2] == ["ok a", "ok b"] and results[3] == "ok c"
    assert isinstance(results[2], ValueError)
    with Session(engine) as s:
        assert sorted(c.connector for c in s.exec(select(SyncCursor)).all()) == ["a", "b", "c"]


def test_a_single_callback_is_not_held_back_waiting_for_company(any_bridge):
    bridge = any_bridge
    (r,) = sent_reminders(bridge, 1)
    app = create_app(bridge)

    (response,) = asyncio.run(post_all(app, [signed(r.id, status(r.provider_message_id,
                                                                 "delivered"))]))  # fmt: skip

    assert response.status_code == 204
    assert app.state.status_commits.batches == 1


def _now() -> datetime:
    return datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
