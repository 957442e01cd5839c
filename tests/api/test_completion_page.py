"""The completion page: signed, expiring links; validated form; resubmission updates."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from bridge import links
from bridge.store.models import ClientLink, Completion, WriteBack
from bridge.web.app import create_app
from tests.factories import assignment, patient, seed

LINK = re.compile(r"https://bridge\.example\.org(/c/[A-Za-z0-9_-]+)")


@pytest.fixture
def page(bridge):
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1"))
    ehr.assign(
        assignment(
            "hw-1",
            bridge.clock.now(),
            instructions="Write one record a day.",
            success_criteria="Three records by Monday.",
        )
    )
    bridge.poll("ehr")
    bridge.dispatch()
    [message] = bridge.channel.sent
    path = LINK.search(message.body).group(1)
    return TestClient(create_app(bridge)), path


def completions(bridge):
    with Session(bridge.engine) as s:
        return list(s.exec(select(Completion)).all())


def test_every_reminder_carries_an_opaque_link(bridge, page):
    _, path = page
    token = path.removeprefix("/c/")
    assert len(token) <= 32 and "hw-1" not in token and "p1" not in token
    with Session(bridge.engine) as s:
        [row] = s.exec(select(ClientLink)).all()
        assert row.token_hash != token  # only the hash is stored
        assert row.expires_at == bridge.clock.now() + timedelta(days=14)


def test_page_shows_the_instructions_and_the_form(page):
    client, path = page
    response = client.get(path)
    assert response.status_code == 200
    html = response.text
    assert "Write one record a day." in html and "Three records by Monday." in html
    for field in (
        'name="status"',
        'name="times"',
        'name="quality"',
        'name="barriers"',
        'name="note"',
    ):
        assert field in html
    assert 'name="viewport"' in html and "noindex" in html


def test_submission_records_and_resubmission_updates(bridge, page):
    client, path = page
    form = {
        "status": "partial",
        "times": "2",
        "quality": "3",
        "barriers": ["too_busy", "forgot"],
        "note": "Busy week <b>really</b>",
    }
    response = client.post(path, data=form)
    assert response.status_code == 200 and "Thank you" in response.text
    [c] = completions(bridge)
    assert (c.status, c.quantity, c.quality, c.source) == ("partial", 2, 3, "page")
    assert c.barriers == "too_busy,forgot" and c.reflection == "Busy week <b>really</b>"
    again = client.get(path)
    assert "Busy week &lt;b&gt;really&lt;/b&gt;" in again.text  # escaped, and prefilled
    bridge.clock.advance(timedelta(hours=1))
    client.post(path, data={"status": "done", "times": "3", "quality": "4"})
    [c] = completions(bridge)
    assert (c.status, c.quantity, c.quality) == ("done", 3, 4)
    with Session(bridge.engine) as s:
        assert s.exec(select(func.count()).select_from(WriteBack)).one() == 1


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"status": "maybe"}, "Choose Done, Partly or Not yet."),
        ({"status": "done", "quality": "9"}, "between 1 and 5"),
        ({"status": "done", "quality": "x"}, "between 1 and 5"),
        ({"status": "done", "times": "-1"}, "between 0 and 100"),
        ({"status": "done", "barriers": "aliens"}, "Choose from the list"),
        ({"status": "done", "note": "x" * 1001}, "too long"),
        ({}, "Choose Done, Partly or Not yet."),
    ],
)
def test_bad_form_is_refused_and_changes_nothing(bridge, page, form, message):
    client, path = page
    response = client.post(path, data=form)
    assert response.status_code == 422 and message in response.text
    assert completions(bridge) == []


def test_tampered_and_unknown_tokens_get_a_friendly_page(bridge, page):
    client, path = page
    token = path.removeprefix("/c/")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (flipped, "not-a-token", "A" * 28):
        for response in (
            client.get(f"/c/{bad}"),
            client.post(f"/c/{bad}", data={"status": "done"}),
        ):
            assert response.status_code == 404
            assert "This link isn&#39;t working" in response.text
            assert "Traceback" not in response.text
    # a validly signed token that was never issued
    with Session(bridge.engine) as s:
        unknown = links.mint(
            s,
            bridge.link_key,
            assignment_id=1,
            reminder_id=None,
            now=bridge.clock.now(),
            ttl=timedelta(days=1),
        )
        s.rollback()
    assert client.get(f"/c/{unknown}").status_code == 404
    assert completions(bridge) == []


def test_expired_link_changes_nothing(bridge, page):
    client, path = page
    bridge.clock.advance(timedelta(days=14, seconds=1))
    response = client.post(path, data={"status": "done"})
    assert response.status_code == 410 and "expired" in response.text
    assert completions(bridge) == []


def test_link_signed_with_another_key_is_refused(bridge, page):
    _, path = page
    token = path.removeprefix("/c/")
    assert links.verify(bridge.link_key, token) is None
    assert links.verify(links.LinkKey.from_text("x" * 40), token) == links.LinkProblem.tampered
