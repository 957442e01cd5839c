"""The scorecard is pure arithmetic over facts."""

from __future__ import annotations

from bridge.reports import AssignmentFact, render_scorecard, scorecard


def fact(type_code="thought_record", clinician="A", completion=None, after=False, cancelled=False):
    return AssignmentFact(type_code, clinician, completion, after, cancelled)


def test_rates_lift_and_groups():
    facts = [
        fact(completion="done"),
        fact(completion="done", after=True),
        fact(completion="partial", clinician="B"),
        fact(completion=None, clinician="B", type_code="mood_log"),
        fact(completion="done", clinician="B", type_code="mood_log", after=True),
        fact(completion="done", cancelled=True),  # cancelled work is not counted
    ]
    card = scorecard(facts, reminders_sent=9, notes_written=4)
    assert (card.overall.assigned, card.overall.done, card.overall.partial) == (5, 3, 1)
    assert card.overall.silent == 1 and card.cancelled == 1
    assert card.overall.completion_rate == 3 / 5
    assert card.completed_after_reminder == 2 and card.reminder_lift == 2 / 3
    by_type = {r.label: (r.assigned, r.done) for r in card.by_type}
    assert by_type == {"thought_record": (3, 2), "mood_log": (2, 1)}
    assert [r.label for r in card.by_clinician] == ["A", "B"]  # best completion first


def test_empty_practice_has_zero_rates_not_errors():
    card = scorecard([], reminders_sent=0, notes_written=0)
    assert card.overall.completion_rate == 0 and card.reminder_lift == 0
    assert render_scorecard(card) is not None
