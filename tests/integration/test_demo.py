"""``bridge demo``: the scorecard follows from what the simulated clients did."""

from __future__ import annotations

from collections import Counter

from sqlmodel import Session, select
from typer.testing import CliRunner

from bridge.cli import app
from bridge.demo import run_demo
from bridge.store.db import make_engine
from bridge.store.models import Completion, Reminder


def test_demo_scorecard_follows_from_the_simulated_replies(tmp_path):
    result = run_demo(seed=3, clients=20, days=14, db_url=f"sqlite:///{tmp_path / 'demo.db'}")
    card = result.scorecard
    assert card.overall.assigned == len(result.behaviours) >= 30
    engine = make_engine(result.db_url)
    with Session(engine) as s:
        completions = s.exec(select(Completion)).all()
        sent = s.exec(select(Reminder).where(Reminder.state == "sent")).all()
    statuses = Counter(c.status for c in completions)
    assert card.overall.done == statuses["done"] > 0
    assert card.overall.partial == statuses["partial"] > 0
    assert card.overall.silent == card.overall.assigned - len(completions)
    # the replies that were texted are the completions that were recorded
    assert result.replies.get("DONE", 0) == statuses["done"]
    assert result.replies.get("NOT YET", 0) == statuses["not_done"]
    assert result.replies.get("portal", 0) == statuses["partial"]
    # only clients whose behaviour finishes the work appear as done
    assert (
        card.completed_after_reminder
        == sum(c.after_reminder for c in completions if c.status == "done")
        > 0
    )
    assert card.reminders_sent == len(sent) == result.messages
    assert card.notes_written == result.notes > 0
    assert sum(r.assigned for r in card.by_clinician) == card.overall.assigned
    assert sum(r.done for r in card.by_type) == card.overall.done
    # the client who texted STOP received nothing afterwards
    assert result.stop_at is not None
    after = [m for m in result.sent_log if m.to == result.stop_phone]
    assert len(after) == 1
    engine.dispose()


def test_demo_command_ends_with_the_scorecard():
    out = CliRunner().invoke(app, ["demo", "--days", "5", "--clients", "8"])
    assert out.exit_code == 0, out.output
    assert "Practice scorecard" in out.output
    assert "Completion rate:" in out.output and "Notes written back to the EHR:" in out.output
    assert "By clinician" in out.output
