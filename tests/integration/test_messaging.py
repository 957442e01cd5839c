"""Channel choice, consent and PHI-minimal texts, end to end through dispatch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bridge.capture import handle_inbound_sms
from bridge.channels.console import ConsoleChannel
from bridge.replies import OPT_OUT_KEYWORDS
from bridge.store.db import session_scope
from bridge.store.models import ConsentEvent, Patient, Reminder
from tests.conftest import build_bridge, make_settings
from tests.factories import assignment, patient, seed


@pytest.fixture
def both(sqlite_url, clock):
    """A bridge with an SMS and an email channel (both console)."""
    b = build_bridge(sqlite_url, clock)
    b.email_channel = ConsoleChannel(name="email")
    yield b
    b.close()


def start(bridge, **kw):
    ehr = bridge.connectors["ehr"]
    seed(ehr, patient("p1", **kw))
    ehr.assign(assignment("hw-1", bridge.clock.now(), days=7))
    bridge.poll("ehr")


def text(bridge, body, sid="SM1", sender="+13125550101"):
    with session_scope(bridge.engine) as s:
        return handle_inbound_sms(
            s,
            sender=sender,
            body=body,
            message_sid=sid,
            settings=bridge.settings,
            renderer=bridge.renderer,
            now=bridge.clock.now(),
        )


def test_sms_first_by_default(both):
    start(both, email="alex@example.org")
    both.dispatch()
    assert len(both.channel.sent) == 1 and both.email_channel.sent == []


def test_preferred_email_goes_by_email_with_no_phi(both):
    start(both, email="alex@example.org", preferred_channel="email")
    both.dispatch()
    [mail] = both.email_channel.sent
    assert both.channel.sent == [] and mail.to == "alex@example.org"
    assert mail.subject.startswith("Riverside Counseling:")
    assert "/c/" in mail.body and "/c/" in mail.html
    for part in (mail.subject, mail.body, mail.html):
        assert "Thought record" not in part and "Alex" not in part
    with Session(both.engine) as s:
        assert s.exec(select(Reminder).where(Reminder.step == "on_assign")).one().channel == "email"


def test_unusable_number_falls_back_to_email(both):
    start(both, email="alex@example.org")
    with session_scope(both.engine) as s:
        s.exec(select(Patient)).one().phone_unusable = True
    both.dispatch()
    assert both.channel.sent == [] and len(both.email_channel.sent) == 1


def test_an_opt_out_is_respected_not_routed_around(both):
    start(both, email="alex@example.org")
    both.dispatch()
    text(both, "STOP")
    both.clock.advance(timedelta(days=9))
    both.dispatch()
    assert len(both.channel.sent) == 1  # only the first message, before STOP
    assert both.email_channel.sent == []  # and no email instead


def test_title_only_when_the_practice_opts_in(sqlite_url, clock):
    bridge = build_bridge(sqlite_url, clock, make_settings("messages:\n  include_title: true\n"))
    bridge.email_channel = ConsoleChannel(name="email")
    start(bridge)
    bridge.dispatch()
    assert "Thought record about work stress" in bridge.channel.sent[0].body
    bridge.close()


def test_default_texts_carry_no_title(bridge):
    start(bridge)
    bridge.dispatch()
    body = bridge.channel.sent[0].body
    assert "Thought record" not in body and "Riverside Counseling" in body
    assert "STOP" in body


@pytest.mark.parametrize("keyword", sorted(OPT_OUT_KEYWORDS))
def test_every_opt_out_keyword_stops_texts(bridge, keyword):
    start(bridge)
    bridge.dispatch()
    result = text(bridge, keyword.lower() + ".")
    assert result.outcome == "applied" and result.reply is None
    with Session(bridge.engine) as s:
        assert s.exec(select(Patient)).one().sms_opted_out
        [event] = s.exec(select(ConsentEvent)).all()
        assert (event.channel, event.opted_in, event.source) == ("sms", False, "sms:keyword")
        assert event.at == bridge.clock.now()
    bridge.clock.advance(timedelta(days=9))
    bridge.dispatch()
    assert len(bridge.channel.sent) == 1


@pytest.mark.parametrize("keyword", ["START", "unstop", "Inicio"])
def test_start_resumes(bridge, keyword):
    start(bridge)
    text(bridge, "STOP", sid="SM1")
    text(bridge, keyword, sid="SM2")
    with Session(bridge.engine) as s:
        assert not s.exec(select(Patient)).one().sms_opted_out
        assert [e.opted_in for e in s.exec(select(ConsentEvent)).all()] == [False, True]


def test_help_answers_with_the_practice_in_the_clients_language(bridge):
    start(bridge, language="es")
    en = text(bridge, "HELP", sid="SM1")
    es = text(bridge, "ayuda", sid="SM2")
    assert "Riverside Counseling" in en.reply and "(312) 555-0100" in en.reply
    assert "Contacto" in es.reply and "(312) 555-0100" in es.reply


def test_spanish_client_gets_spanish_reminders(bridge):
    start(bridge, language="es")
    bridge.dispatch()
    assert "LISTO" in bridge.channel.sent[0].body
