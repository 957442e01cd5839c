"""The practice scorecard: pure over facts read from the store.

Completion rate is the share of assignments (cancelled ones aside) the client reported
done; the reminder-to-completion lift is the share of those completions that came only
after a reminder beyond the first message had fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, func, select

from bridge.store.models import Assignment, Clinician, Completion, Reminder, WriteBack


@dataclass(frozen=True)
class AssignmentFact:
    type_code: str
    clinician: str
    completion: str | None  # done | partial | not_done | None (no report)
    after_reminder: bool
    cancelled: bool


@dataclass(frozen=True)
class Rate:
    label: str
    assigned: int
    done: int
    partial: int
    not_done: int
    silent: int

    @property
    def completion_rate(self) -> float:
        return self.done / self.assigned if self.assigned else 0.0


@dataclass(frozen=True)
class Scorecard:
    overall: Rate
    by_type: list[Rate]
    by_clinician: list[Rate]
    completed_after_reminder: int
    reminders_sent: int
    notes_written: int
    cancelled: int
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def reminder_lift(self) -> float:
        done = self.overall.done
        return self.completed_after_reminder / done if done else 0.0


def _rate(label: str, facts: list[AssignmentFact]) -> Rate:
    live = [f for f in facts if not f.cancelled]
    count = lambda status: sum(1 for f in live if f.completion == status)  # noqa: E731
    return Rate(label, len(live), count("done"), count("partial"), count("not_done"), count(None))


def scorecard(facts: list[AssignmentFact], *, reminders_sent: int, notes_written: int) -> Scorecard:
    def grouped(key) -> list[Rate]:
        groups: dict[str, list[AssignmentFact]] = {}
        for fact in facts:
            groups.setdefault(key(fact), []).append(fact)
        rates = [_rate(label, items) for label, items in groups.items()]
        return sorted((r for r in rates if r.assigned), key=lambda r: (-r.completion_rate, r.label))

    return Scorecard(
        overall=_rate("all", facts),
        by_type=grouped(lambda f: f.type_code),
        by_clinician=grouped(lambda f: f.clinician),
        completed_after_reminder=sum(
            1 for f in facts if not f.cancelled and f.completion == "done" and f.after_reminder
        ),
        reminders_sent=reminders_sent,
        notes_written=notes_written,
        cancelled=sum(1 for f in facts if f.cancelled),
    )


def load_scorecard(session: Session) -> Scorecard:
    rows = session.exec(
        select(
            Assignment.type_code,
            Clinician.name,
            Completion.status,
            Completion.after_reminder,
            Assignment.status,
        )
        .join(Clinician, Clinician.id == Assignment.clinician_id, isouter=True)
        .join(Completion, Completion.assignment_id == Assignment.id, isouter=True)
    ).all()
    facts = [
        AssignmentFact(
            type_code,
            clinician or "(none)",
            status,
            bool(after),
            task_status in ("cancelled", "entered-in-error"),
        )
        for type_code, clinician, status, after, task_status in rows
    ]
    sent = session.exec(
        select(func.count())
        .select_from(Reminder)
        .where(col(Reminder.state).in_(["sent", "delivered"]))
    ).one()
    written = session.exec(
        select(func.count()).select_from(WriteBack).where(WriteBack.state == "written")
    ).one()
    return scorecard(facts, reminders_sent=sent, notes_written=written)


def render_scorecard(card: Scorecard):
    """A rich renderable for the terminal."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def table(title: str, rates: list[Rate]) -> Table:
        t = Table(title=title, title_justify="left")
        for name in ("", "assigned", "done", "partly", "not yet", "no reply", "completion"):
            t.add_column(name, justify="left" if not name else "right")
        for r in rates:
            t.add_row(
                r.label,
                str(r.assigned),
                str(r.done),
                str(r.partial),
                str(r.not_done),
                str(r.silent),
                f"{r.completion_rate:.0%}",
            )
        return t

    o = card.overall
    head = Text.assemble(
        ("Practice scorecard\n", "bold"),
        f"Completion rate: {o.completion_rate:.0%} ({o.done} of {o.assigned} assignments done; "
        f"{o.partial} partly, {o.not_done} not yet, {o.silent} no reply)\n",
        f"Reminder-to-completion lift: {card.reminder_lift:.0%} of completions "
        f"({card.completed_after_reminder} of {o.done}) came after a reminder\n",
        f"Reminders sent: {card.reminders_sent}   Notes written back to the EHR: "
        f"{card.notes_written}   Cancelled assignments: {card.cancelled}",
    )
    return Group(
        head, table("By assignment type", card.by_type), table("By clinician", card.by_clinician)
    )
