"""When an assignment's reminders fire: a pure planner over a practice's cadence policy.

Nothing here reads the clock or the store: ``now`` and the client's time zone are
arguments, so the same function re-plans after a due-date change, and the dispatcher
re-checks quiet hours at send time with :func:`next_allowed`.

Quiet hours are wall-clock times in the client's zone, so every comparison is made on
local time and every shifted instant is converted back to UTC through ``zoneinfo``;
DST gaps and repeats are handled by looking at the actual instants where the local
clock leaves the quiet window (see :func:`next_allowed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bridge.clock import ensure_utc
from bridge.domain import AssignmentData, Step

# A step more than a year from its anchor is a typo, and bounding it keeps datetime
# arithmetic from overflowing.
MAX_OFFSET_HOURS = 366 * 24


class CadenceStep(BaseModel):
    """One reminder: an anchor on the assignment's window plus an offset in hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Step
    anchor: Literal["assigned", "midpoint", "due"]
    offset_hours: float = Field(0, allow_inf_nan=False, ge=-MAX_OFFSET_HOURS, le=MAX_OFFSET_HOURS)


DEFAULT_STEPS: tuple[CadenceStep, ...] = (
    CadenceStep(name=Step.on_assign, anchor="assigned", offset_hours=0),
    CadenceStep(name=Step.mid_window, anchor="midpoint", offset_hours=0),
    CadenceStep(name=Step.near_due, anchor="due", offset_hours=-24),
    CadenceStep(name=Step.overdue, anchor="due", offset_hours=24),
)


class QuietHours(BaseModel):
    """Local wall-clock window with no messages: [start, end), wrapping midnight if start > end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time = time(21, 0)
    end: time = time(8, 0)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _no_numbers(cls, value: object) -> object:
        # PyYAML reads an unquoted 21:00 as the sexagesimal integer 1260, which pydantic
        # would silently take as 00:21:00 (seconds).
        if isinstance(value, int | float):
            raise ValueError(
                "give a time as 'HH:MM' in quotes (YAML reads an unquoted 21:00 as a number)"
            )
        return value

    @field_validator("start", "end")
    @classmethod
    def _naive(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("quiet hours are the client's local time; give no UTC offset")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        return self

    def contains(self, local: time) -> bool:
        """Whether a local wall-clock time falls in the window (end is exclusive)."""
        local = local.replace(tzinfo=None, fold=0)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def _unique(steps: list[CadenceStep]) -> list[CadenceStep]:
    names = [s.name for s in steps]
    dupes = sorted({str(n) for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"step names must be unique in a list; repeated: {', '.join(dupes)}")
    return steps


class CadencePolicy(BaseModel):
    """A practice's cadence, from the YAML config; ``overrides`` replace steps per type code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[CadenceStep] = Field(default_factory=lambda: list(DEFAULT_STEPS))
    default_window_days: float = Field(7, gt=0, le=366, allow_inf_nan=False)
    min_gap_hours: float = Field(12, ge=0, le=MAX_OFFSET_HOURS, allow_inf_nan=False)
    overrides: dict[str, list[CadenceStep]] = Field(default_factory=dict)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)

    @field_validator("steps")
    @classmethod
    def _steps_unique(cls, value: list[CadenceStep]) -> list[CadenceStep]:
        return _unique(value)

    @field_validator("overrides")
    @classmethod
    def _overrides_unique(cls, value: dict[str, list[CadenceStep]]) -> dict:
        for code, steps in value.items():
            try:
                _unique(steps)
            except ValueError as exc:
                raise ValueError(f"override {code!r}: {exc}") from None
        return value


@dataclass(frozen=True)
class PlannedReminder:
    step: Step
    at: datetime  # aware, UTC


# -- time zones and quiet hours ------------------------------------------------------


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {tz!r} (use an IANA name such as America/Chicago)"
        ) from None


def _quiet_at(instant: datetime, zone: ZoneInfo, quiet: QuietHours) -> bool:
    return quiet.contains(instant.astimezone(zone).time())


def in_quiet_hours(instant: datetime, tz: str, quiet: QuietHours) -> bool:
    """Whether ``instant`` is inside quiet hours on the client's local clock.

    Naive datetimes are UTC, as everywhere in the bridge.
    """
    return _quiet_at(ensure_utc(instant), _zone(tz), quiet)


def _offset_changes(zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The UTC instants in [start, end] where the zone's UTC offset changes.

    zoneinfo has no public transition list, so sample hourly (no zone changes its
    offset twice within an hour) and bisect each change to the second.
    """
    found = []
    step = timedelta(hours=1)
    lo = start.replace(microsecond=0)
    lo_off = lo.astimezone(zone).utcoffset()
    while lo < end:
        hi = lo + step
        hi_off = hi.astimezone(zone).utcoffset()
        if hi_off != lo_off:
            a, b = 0, 3600  # offset(lo + a s) == lo_off, offset(lo + b s) == hi_off
            while b - a > 1:
                mid = (a + b) // 2
                if (lo + timedelta(seconds=mid)).astimezone(zone).utcoffset() == lo_off:
                    a = mid
                else:
                    b = mid
            found.append(lo + timedelta(seconds=b))
        lo, lo_off = hi, hi_off
    return found


def _next_allowed(instant: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    if not _quiet_at(instant, zone, quiet):
        return instant
    # The local clock leaves the window either when it reads ``end`` (either fold, if
    # the hour repeats) or when an offset change makes it jump (e.g. over a DST gap
    # that swallows ``end``). Every such instant is a candidate; the first one that is
    # not quiet is the answer, because quietness only changes at those instants.
    day = instant.astimezone(zone).date()
    candidates = _offset_changes(zone, instant, instant + timedelta(hours=72))
    for days in range(-1, 3):
        local = datetime.combine(day + timedelta(days=days), quiet.end, tzinfo=zone)
        for fold in (0, 1):
            candidates.append(local.replace(fold=fold).astimezone(UTC))
    for candidate in sorted(candidates):
        if candidate > instant and not _quiet_at(candidate, zone, quiet):
            return candidate
    raise AssertionError("quiet hours never end")  # unreachable: start != end


def next_allowed(instant: datetime, tz: str, quiet: QuietHours) -> datetime:
    """The first instant at or after ``instant`` outside quiet hours.

    Returns ``instant`` itself when it is already allowed; otherwise the (UTC) instant
    the client's local clock leaves the window, which is the window's end on the local
    clock, or the end of a DST gap when the gap swallows that wall time.
    """
    zone = _zone(tz)
    if not _quiet_at(ensure_utc(instant), zone, quiet):
        return instant
    return _next_allowed(ensure_utc(instant), zone, quiet)


# -- planning ------------------------------------------------------------------------


def effective_due(assignment: AssignmentData, policy: CadencePolicy) -> datetime:
    """The due instant (UTC): the source's, or the policy's default window when it has none."""
    if assignment.due_at is not None:
        return ensure_utc(assignment.due_at)
    return ensure_utc(assignment.assigned_at) + timedelta(days=policy.default_window_days)


def steps_for(type_code: str, policy: CadencePolicy) -> list[CadenceStep]:
    """The steps for one assignment type: its override if the practice set one."""
    return list(policy.overrides.get(type_code, policy.steps))


def _raw_instant(step: CadenceStep, assigned: datetime, due: datetime) -> datetime | None:
    anchors = {"assigned": assigned, "midpoint": assigned + (due - assigned) / 2, "due": due}
    try:
        return anchors[step.anchor] + timedelta(hours=step.offset_hours)
    except OverflowError:  # beyond year 9999: it would never fire anyway
        return None


def plan(
    assignment: AssignmentData, policy: CadencePolicy, tz: str, now: datetime
) -> list[PlannedReminder]:
    """The reminders still to send for one assignment, in time order.

    Each step's instant is moved out of quiet hours; steps already past are dropped,
    except on_assign, which fires at ``now`` if its time has passed; a step closer than
    ``min_gap_hours`` to the previous kept one is dropped (on_assign is always kept).
    Closed assignments get nothing. Naive datetimes are UTC.
    """
    zone = _zone(tz)
    if not assignment.status.is_open:
        return []
    now = ensure_utc(now)
    assigned = ensure_utc(assignment.assigned_at)
    due = effective_due(assignment, policy)

    candidates: list[tuple[datetime, int, PlannedReminder]] = []
    for index, step in enumerate(steps_for(assignment.type_code, policy)):
        at = _raw_instant(step, assigned, due)
        if at is None:
            continue
        first = step.name == Step.on_assign
        if first:
            at = max(at, now)
        at = _next_allowed(at, zone, policy.quiet_hours).astimezone(UTC)
        if at < now:
            continue
        # on_assign sorts first among equal instants, so it is the one a tie keeps.
        candidates.append((at, 0 if first else 1 + index, PlannedReminder(step.name, at)))
    candidates.sort(key=lambda c: (c[0], c[1]))

    gap = timedelta(hours=policy.min_gap_hours)
    kept: list[PlannedReminder] = []
    for _, _, reminder in candidates:
        if reminder.step == Step.on_assign or not kept or reminder.at - kept[-1].at >= gap:
            kept.append(reminder)
    return kept


__all__ = [
    "DEFAULT_STEPS",
    "MAX_OFFSET_HOURS",
    "CadencePolicy",
    "CadenceStep",
    "PlannedReminder",
    "QuietHours",
    "effective_due",
    "in_quiet_hours",
    "next_allowed",
    "plan",
    "steps_for",
]
