"""The reminder planner: exact instants, quiet hours across DST, and invariants at random."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bridge.cadence import (
    DEFAULT_STEPS,
    CadencePolicy,
    CadenceStep,
    PlannedReminder,
    QuietHours,
    effective_due,
    in_quiet_hours,
    next_allowed,
    plan,
    steps_for,
)
from bridge.domain import AssignmentData, Step, TaskStatus

NY = "America/New_York"
A, M, N, OV = Step.on_assign, Step.mid_window, Step.near_due, Step.overdue


def u(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def hw(
    assigned: datetime,
    due: datetime | None = None,
    *,
    type_code: str = "worksheet",
    status: TaskStatus = TaskStatus.requested,
) -> AssignmentData:
    return AssignmentData(
        external_id="a-1",
        patient_external_id="p-1",
        clinician_external_id="c-1",
        type_code=type_code,
        title="Thought record",
        assigned_at=assigned,
        due_at=due,
        status=status,
    )


def step(name: Step, anchor: str, offset: float = 0) -> CadenceStep:
    return CadenceStep(name=name, anchor=anchor, offset_hours=offset)


def pairs(reminders: list[PlannedReminder]) -> list[tuple[Step, datetime]]:
    return [(r.step, r.at) for r in reminders]


# Quiet hours that never touch the daytime instants used in the gap tests.
NIGHT_ONLY = QuietHours(start=time(3, 0), end=time(4, 0))


# -- the default policy --------------------------------------------------------------


def test_default_steps() -> None:
    assert [(s.name, s.anchor, s.offset_hours) for s in DEFAULT_STEPS] == [
        (A, "assigned", 0),
        (M, "midpoint", 0),
        (N, "due", -24),
        (OV, "due", 24),
    ]
    policy = CadencePolicy()
    assert policy.steps == list(DEFAULT_STEPS)
    assert policy.default_window_days == 7
    assert policy.min_gap_hours == 12
    assert policy.overrides == {}
    assert policy.quiet_hours == QuietHours(start=time(21, 0), end=time(8, 0))


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        # Mon 10:00 EDT; the midpoint (Thu 22:00 EDT) is quiet and moves to Fri 08:00 EDT.
        (
            NY,
            [
                (A, u(2024, 5, 6, 14)),
                (M, u(2024, 5, 10, 12)),
                (N, u(2024, 5, 12, 14)),
                (OV, u(2024, 5, 14, 14)),
            ],
        ),
        # In UTC the midpoint is 02:00, moved to 08:00 UTC.
        (
            "UTC",
            [
                (A, u(2024, 5, 6, 14)),
                (M, u(2024, 5, 10, 8)),
                (N, u(2024, 5, 12, 14)),
                (OV, u(2024, 5, 14, 14)),
            ],
        ),
        # Los Angeles: the 07:00 PDT steps wait for 08:00 PDT; midpoint 19:00 PDT is fine.
        (
            "America/Los_Angeles",
            [
                (A, u(2024, 5, 6, 15)),
                (M, u(2024, 5, 10, 2)),
                (N, u(2024, 5, 12, 15)),
                (OV, u(2024, 5, 14, 15)),
            ],
        ),
    ],
)
def test_default_policy_seven_day_window(tz: str, expected: list) -> None:
    assignment = hw(u(2024, 5, 6, 14), u(2024, 5, 13, 14))
    got = plan(assignment, CadencePolicy(), tz, now=u(2024, 5, 6, 14))
    assert pairs(got) == expected
    assert all(r.at.tzinfo is UTC for r in got)


def test_no_due_date_uses_default_window() -> None:
    assignment = hw(u(2024, 5, 6, 14))
    assert effective_due(assignment, CadencePolicy()) == u(2024, 5, 13, 14)
    assert pairs(plan(assignment, CadencePolicy(), NY, now=u(2024, 5, 6, 14))) == [
        (A, u(2024, 5, 6, 14)),
        (M, u(2024, 5, 10, 12)),
        (N, u(2024, 5, 12, 14)),
        (OV, u(2024, 5, 14, 14)),
    ]


def test_no_due_date_custom_window() -> None:
    policy = CadencePolicy(default_window_days=3, quiet_hours=NIGHT_ONLY)
    assignment = hw(u(2024, 5, 6, 14))
    assert effective_due(assignment, policy) == u(2024, 5, 9, 14)
    assert pairs(plan(assignment, policy, "UTC", now=u(2024, 5, 6, 14))) == [
        (A, u(2024, 5, 6, 14)),
        (M, u(2024, 5, 8, 2)),
        (N, u(2024, 5, 8, 14)),
        (OV, u(2024, 5, 10, 14)),
    ]


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        (u(2024, 5, 20, 9), u(2024, 5, 20, 9)),
        (datetime(2024, 5, 20, 9, tzinfo=timezone(timedelta(hours=-4))), u(2024, 5, 20, 13)),
        (datetime(2024, 5, 20, 9), u(2024, 5, 20, 9)),  # naive = UTC, as in the store
        (None, u(2024, 5, 13, 14)),
    ],
)
def test_effective_due(due: datetime | None, expected: datetime) -> None:
    got = effective_due(hw(u(2024, 5, 6, 14), due), CadencePolicy())
    assert got == expected
    assert got.tzinfo is UTC


# -- overrides -----------------------------------------------------------------------

EXPOSURE = [step(A, "assigned"), step(N, "due", -2)]
OVERRIDDEN = CadencePolicy(overrides={"exposure": EXPOSURE, "silent": []})


@pytest.mark.parametrize(
    ("type_code", "expected"),
    [("exposure", EXPOSURE), ("silent", []), ("worksheet", list(DEFAULT_STEPS))],
)
def test_steps_for(type_code: str, expected: list[CadenceStep]) -> None:
    assert steps_for(type_code, OVERRIDDEN) == expected


def test_steps_for_returns_a_copy() -> None:
    steps_for("worksheet", OVERRIDDEN).clear()
    assert OVERRIDDEN.steps == list(DEFAULT_STEPS)


@pytest.mark.parametrize(
    ("type_code", "expected"),
    [
        ("exposure", [(A, u(2024, 5, 6, 14)), (N, u(2024, 5, 13, 12))]),
        ("silent", []),
        (
            "worksheet",
            [
                (A, u(2024, 5, 6, 14)),
                (M, u(2024, 5, 10, 12)),
                (N, u(2024, 5, 12, 14)),
                (OV, u(2024, 5, 14, 14)),
            ],
        ),
    ],
)
def test_override_replaces_steps_per_type(type_code: str, expected: list) -> None:
    assignment = hw(u(2024, 5, 6, 14), u(2024, 5, 13, 14), type_code=type_code)
    assert pairs(plan(assignment, OVERRIDDEN, NY, now=u(2024, 5, 6, 14))) == expected


# -- quiet hours ---------------------------------------------------------------------

NOON = QuietHours(start=time(12, 0), end=time(13, 0))
DEFAULT_QUIET = QuietHours()


@pytest.mark.parametrize(
    ("instant", "tz", "quiet", "expected"),
    [
        # wrapping 21:00-08:00, New York (EDT, -4)
        (u(2024, 5, 7, 0, 59), NY, DEFAULT_QUIET, u(2024, 5, 7, 0, 59)),  # 20:59 allowed
        (u(2024, 5, 7, 1, 0), NY, DEFAULT_QUIET, u(2024, 5, 7, 12)),  # 21:00 quiet
        (u(2024, 5, 7, 2, 30), NY, DEFAULT_QUIET, u(2024, 5, 7, 12)),  # 22:30 evening
        (u(2024, 5, 7, 4, 0), NY, DEFAULT_QUIET, u(2024, 5, 7, 12)),  # midnight
        (u(2024, 5, 7, 10, 59), NY, DEFAULT_QUIET, u(2024, 5, 7, 12)),  # 06:59 early
        (u(2024, 5, 7, 11, 59, 59), NY, DEFAULT_QUIET, u(2024, 5, 7, 12)),  # 07:59:59
        (u(2024, 5, 7, 12, 0), NY, DEFAULT_QUIET, u(2024, 5, 7, 12)),  # 08:00 allowed
        # non-wrapping 12:00-13:00
        (u(2024, 5, 7, 11, 59), "UTC", NOON, u(2024, 5, 7, 11, 59)),
        (u(2024, 5, 7, 12, 0), "UTC", NOON, u(2024, 5, 7, 13)),
        (u(2024, 5, 7, 12, 30), "UTC", NOON, u(2024, 5, 7, 13)),
        (u(2024, 5, 7, 13, 0), "UTC", NOON, u(2024, 5, 7, 13)),
        (u(2024, 5, 7, 16, 30), NY, NOON, u(2024, 5, 7, 17)),  # 12:30 EDT
        (u(2024, 5, 7, 12, 30), NY, NOON, u(2024, 5, 7, 12, 30)),  # 08:30 EDT
        # quiet hours with odd minutes
        (u(2024, 5, 7, 23), "UTC", QuietHours(start="22:15", end="06:45"), u(2024, 5, 8, 6, 45)),
        (
            u(2024, 5, 7, 22, 14),
            "UTC",
            QuietHours(start="22:15", end="06:45"),
            u(2024, 5, 7, 22, 14),
        ),
    ],
)
def test_next_allowed(instant: datetime, tz: str, quiet: QuietHours, expected: datetime) -> None:
    assert next_allowed(instant, tz, quiet) == expected
    assert in_quiet_hours(instant, tz, quiet) is (expected != instant)
    assert not in_quiet_hours(expected, tz, quiet)


def test_next_allowed_returns_allowed_instant_unchanged() -> None:
    instant = datetime(2024, 5, 7, 10, 0, tzinfo=ZoneInfo(NY))
    assert next_allowed(instant, NY, DEFAULT_QUIET) is instant


def test_next_allowed_accepts_any_aware_or_naive_utc() -> None:
    ist = datetime(2024, 5, 7, 23, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert next_allowed(ist, "UTC", DEFAULT_QUIET) == u(2024, 5, 7, 17, 30)  # 17:30 UTC fine
    assert next_allowed(datetime(2024, 5, 7, 22), "UTC", DEFAULT_QUIET) == u(2024, 5, 8, 8)
    assert in_quiet_hours(datetime(2024, 5, 7, 22), "UTC", DEFAULT_QUIET)


@pytest.mark.parametrize(
    ("local", "quiet", "inside"),
    [
        (time(21, 0), DEFAULT_QUIET, True),
        (time(20, 59, 59), DEFAULT_QUIET, False),
        (time(0, 0), DEFAULT_QUIET, True),
        (time(7, 59, 59, 999999), DEFAULT_QUIET, True),
        (time(8, 0), DEFAULT_QUIET, False),
        (time(12, 0), NOON, True),
        (time(12, 59), NOON, True),
        (time(13, 0), NOON, False),
        (time(0, 0), NOON, False),
        (time(23, 59), NOON, False),
    ],
)
def test_quiet_window_bounds(local: time, quiet: QuietHours, inside: bool) -> None:
    assert quiet.contains(local) is inside


# -- DST and zones east of UTC ----------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "tz", "quiet", "expected"),
    [
        # New York spring forward, Sun 2024-03-10 02:00 EST -> 03:00 EDT (07:00 UTC)
        (u(2024, 3, 9, 3), NY, DEFAULT_QUIET, u(2024, 3, 9, 13)),  # Fri 22:00 EST -> 08:00 EST
        (u(2024, 3, 10, 3), NY, DEFAULT_QUIET, u(2024, 3, 10, 12)),  # Sat 22:00 EST -> 08:00 EDT
        (u(2024, 3, 10, 6, 30), NY, DEFAULT_QUIET, u(2024, 3, 10, 12)),  # 01:30 EST
        (u(2024, 3, 10, 7, 0), NY, DEFAULT_QUIET, u(2024, 3, 10, 12)),  # 03:00 EDT
        # New York fall back, Sun 2024-11-03 02:00 EDT -> 01:00 EST (06:00 UTC)
        (u(2024, 11, 3, 4), NY, DEFAULT_QUIET, u(2024, 11, 3, 13)),  # 00:00 EDT -> 08:00 EST
        (u(2024, 11, 3, 5, 30), NY, DEFAULT_QUIET, u(2024, 11, 3, 13)),  # first 01:30
        (u(2024, 11, 3, 6, 30), NY, DEFAULT_QUIET, u(2024, 11, 3, 13)),  # second 01:30
        (u(2024, 11, 4, 4), NY, DEFAULT_QUIET, u(2024, 11, 4, 13)),  # Sun 23:00 EST
        # quiet end inside the spring-forward gap: the clock jumps past it at 07:00 UTC
        (u(2024, 3, 10, 6, 30), NY, QuietHours(start="01:00", end="02:30"), u(2024, 3, 10, 7)),
        (u(2024, 3, 10, 3), NY, QuietHours(start="21:00", end="02:30"), u(2024, 3, 10, 7)),
        # quiet start inside the gap: 03:00 EDT is already quiet
        (u(2024, 3, 10, 7), NY, QuietHours(start="02:30", end="05:00"), u(2024, 3, 10, 9)),
        # quiet end inside the repeated hour: the window is left at each 01:30
        (u(2024, 11, 3, 5), NY, QuietHours(start="00:30", end="01:30"), u(2024, 11, 3, 5, 30)),
        (
            u(2024, 11, 3, 5, 45),
            NY,
            QuietHours(start="00:30", end="01:30"),
            u(2024, 11, 3, 5, 45),
        ),  # 01:45 EDT is allowed...
        (u(2024, 11, 3, 6), NY, QuietHours(start="00:30", end="01:30"), u(2024, 11, 3, 6, 30)),
        # ...then 01:00 EST is quiet again until 01:30 EST
        # Asia/Kolkata, +05:30, no DST
        (u(2024, 6, 1, 16), "Asia/Kolkata", DEFAULT_QUIET, u(2024, 6, 2, 2, 30)),  # 21:30 IST
        (u(2024, 6, 1, 2), "Asia/Kolkata", DEFAULT_QUIET, u(2024, 6, 1, 2, 30)),  # 07:30 IST
        (u(2024, 6, 1, 2, 30), "Asia/Kolkata", DEFAULT_QUIET, u(2024, 6, 1, 2, 30)),
        # Pacific/Auckland: local date runs ahead of UTC
        (u(2024, 6, 1, 10), "Pacific/Auckland", DEFAULT_QUIET, u(2024, 6, 1, 20)),  # NZST +12
        (u(2024, 1, 10, 9), "Pacific/Auckland", DEFAULT_QUIET, u(2024, 1, 10, 19)),  # NZDT +13
        # NZ spring forward, Sun 2024-09-29 02:00 NZST -> 03:00 NZDT
        (u(2024, 9, 28, 10), "Pacific/Auckland", DEFAULT_QUIET, u(2024, 9, 28, 19)),
        # NZ fall back, Sun 2024-04-07 03:00 NZDT -> 02:00 NZST
        (u(2024, 4, 6, 9), "Pacific/Auckland", DEFAULT_QUIET, u(2024, 4, 6, 20)),
        # Asia/Kathmandu, +05:45
        (u(2024, 6, 1, 16), "Asia/Kathmandu", DEFAULT_QUIET, u(2024, 6, 2, 2, 15)),
    ],
)
def test_next_allowed_across_dst_and_east_of_utc(
    instant: datetime, tz: str, quiet: QuietHours, expected: datetime
) -> None:
    got = next_allowed(instant, tz, quiet)
    assert got == expected
    assert not in_quiet_hours(got, tz, quiet)


def test_shifted_reminder_lands_at_local_eight_on_dst_days() -> None:
    zone = ZoneInfo(NY)
    spring = next_allowed(u(2024, 3, 10, 3), NY, DEFAULT_QUIET).astimezone(zone)
    fall = next_allowed(u(2024, 11, 3, 4), NY, DEFAULT_QUIET).astimezone(zone)
    assert (spring.hour, spring.minute, spring.utcoffset()) == (8, 0, timedelta(hours=-4))
    assert (fall.hour, fall.minute, fall.utcoffset()) == (8, 0, timedelta(hours=-5))


@pytest.mark.parametrize(
    ("assigned", "due", "tz", "expected"),
    [
        # spring forward: near_due Sat 22:30 EST -> Sun 08:00 EDT; overdue Mon 23:30 EDT
        (
            u(2024, 3, 6, 17),
            u(2024, 3, 11, 3, 30),
            NY,
            [
                (A, u(2024, 3, 6, 17)),
                (M, u(2024, 3, 8, 22, 15)),
                (N, u(2024, 3, 10, 12)),
                (OV, u(2024, 3, 12, 12)),
            ],
        ),
        # fall back: near_due Sat 23:00 EDT -> Sun 08:00 EST; overdue Mon 22:00 EST
        (
            u(2024, 10, 30, 16),
            u(2024, 11, 4, 3),
            NY,
            [
                (A, u(2024, 10, 30, 16)),
                (M, u(2024, 11, 1, 21, 30)),
                (N, u(2024, 11, 3, 13)),
                (OV, u(2024, 11, 5, 13)),
            ],
        ),
        # Auckland: assigned at 21:00 NZST, so on_assign waits for 08:00 next morning
        (
            u(2024, 6, 3, 9),
            u(2024, 6, 10, 9),
            "Pacific/Auckland",
            [
                (A, u(2024, 6, 3, 20)),
                (M, u(2024, 6, 6, 21)),
                (N, u(2024, 6, 9, 20)),
                (OV, u(2024, 6, 11, 20)),
            ],
        ),
        # Kolkata: every step falls at 22:00 IST and waits for 08:00 IST next morning
        (
            u(2024, 6, 3, 16, 30),
            u(2024, 6, 9, 16, 30),
            "Asia/Kolkata",
            [
                (A, u(2024, 6, 4, 2, 30)),
                (M, u(2024, 6, 7, 2, 30)),
                (N, u(2024, 6, 9, 2, 30)),
                (OV, u(2024, 6, 11, 2, 30)),
            ],
        ),
    ],
)
def test_plan_across_dst_and_east_of_utc(
    assigned: datetime, due: datetime, tz: str, expected: list
) -> None:
    assert pairs(plan(hw(assigned, due), CadencePolicy(), tz, now=assigned)) == expected


# -- now, the past, and min_gap ---------------------------------------------------------

WEEK = (u(2024, 5, 6, 14), u(2024, 5, 13, 14))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (
            u(2024, 5, 6, 14),
            [
                (A, u(2024, 5, 6, 14)),
                (M, u(2024, 5, 10, 8)),
                (N, u(2024, 5, 12, 14)),
                (OV, u(2024, 5, 14, 14)),
            ],
        ),
        # before the assignment exists in the source: on_assign keeps its own time
        (
            u(2024, 5, 6, 9),
            [
                (A, u(2024, 5, 6, 14)),
                (M, u(2024, 5, 10, 8)),
                (N, u(2024, 5, 12, 14)),
                (OV, u(2024, 5, 14, 14)),
            ],
        ),
        # picked up late: on_assign at now, the passed midpoint is dropped
        (
            u(2024, 5, 11, 10),
            [(A, u(2024, 5, 11, 10)), (N, u(2024, 5, 12, 14)), (OV, u(2024, 5, 14, 14))],
        ),
        # picked up at night: on_assign waits for 08:00; near_due 6 h later is collapsed
        (u(2024, 5, 11, 22), [(A, u(2024, 5, 12, 8)), (OV, u(2024, 5, 14, 14))]),
        # a step whose raw time passed but whose shifted time has not is kept (mid 02:00->08:00)
        (
            u(2024, 5, 10, 3),
            [(A, u(2024, 5, 10, 8)), (N, u(2024, 5, 12, 14)), (OV, u(2024, 5, 14, 14))],
        ),
        # exactly at a step's instant: still planned
        (u(2024, 5, 12, 14), [(A, u(2024, 5, 12, 14)), (OV, u(2024, 5, 14, 14))]),
        # long after everything: only the on_assign message, now
        (u(2024, 6, 1, 12), [(A, u(2024, 6, 1, 12))]),
    ],
)
def test_past_steps_dropped_and_on_assign_at_now(now: datetime, expected: list) -> None:
    assert pairs(plan(hw(*WEEK), CadencePolicy(), "UTC", now=now)) == expected


def test_shifted_step_after_now_is_kept_without_on_assign() -> None:
    policy = CadencePolicy(steps=[step(M, "midpoint")])
    assert pairs(plan(hw(*WEEK), policy, "UTC", now=u(2024, 5, 10, 3))) == [(M, u(2024, 5, 10, 8))]
    assert plan(hw(*WEEK), policy, "UTC", now=u(2024, 5, 10, 8, 1)) == []


def test_now_may_be_naive_utc_or_any_offset() -> None:
    eastern = datetime(2024, 5, 11, 6, tzinfo=ZoneInfo(NY))  # 10:00 UTC
    expected = [(A, u(2024, 5, 11, 10)), (N, u(2024, 5, 12, 14)), (OV, u(2024, 5, 14, 14))]
    assert pairs(plan(hw(*WEEK), CadencePolicy(), "UTC", now=eastern)) == expected
    naive = datetime(2024, 5, 11, 10)
    assert pairs(plan(hw(*WEEK), CadencePolicy(), "UTC", now=naive)) == expected


SHORT = (u(2024, 5, 6, 14), u(2024, 5, 7, 14))  # a one-day window


@pytest.mark.parametrize(
    ("min_gap", "expected"),
    [
        # near_due (due-24h) coincides with on_assign
        (
            0,
            [
                (A, u(2024, 5, 6, 14)),
                (N, u(2024, 5, 6, 14)),
                (M, u(2024, 5, 7, 8)),
                (OV, u(2024, 5, 8, 14)),
            ],
        ),
        (12, [(A, u(2024, 5, 6, 14)), (M, u(2024, 5, 7, 8)), (OV, u(2024, 5, 8, 14))]),
        (18, [(A, u(2024, 5, 6, 14)), (M, u(2024, 5, 7, 8)), (OV, u(2024, 5, 8, 14))]),
        # mid is 18 h after on_assign: dropped; overdue is measured from on_assign (48 h)
        (18.5, [(A, u(2024, 5, 6, 14)), (OV, u(2024, 5, 8, 14))]),
        (48, [(A, u(2024, 5, 6, 14)), (OV, u(2024, 5, 8, 14))]),
        (48.01, [(A, u(2024, 5, 6, 14))]),
    ],
)
def test_min_gap_collapses_close_steps(min_gap: float, expected: list) -> None:
    policy = CadencePolicy(min_gap_hours=min_gap)
    assert pairs(plan(hw(*SHORT), policy, "UTC", now=SHORT[0])) == expected


def test_min_gap_measures_from_previous_kept_step() -> None:
    policy = CadencePolicy(
        steps=[step(A, "assigned"), step(M, "assigned", 8), step(N, "assigned", 16)],
        quiet_hours=NIGHT_ONLY,
    )
    got = plan(hw(u(2024, 5, 6, 5), u(2024, 5, 9, 5)), policy, "UTC", now=u(2024, 5, 6, 5))
    assert pairs(got) == [(A, u(2024, 5, 6, 5)), (N, u(2024, 5, 6, 21))]


def test_on_assign_is_kept_even_inside_the_gap() -> None:
    policy = CadencePolicy(
        steps=[step(M, "assigned"), step(A, "assigned", 6), step(N, "assigned", 8)],
        quiet_hours=NIGHT_ONLY,
    )
    got = plan(hw(u(2024, 5, 6, 5), u(2024, 5, 9, 5)), policy, "UTC", now=u(2024, 5, 6, 5))
    assert pairs(got) == [(M, u(2024, 5, 6, 5)), (A, u(2024, 5, 6, 11))]


def test_on_assign_wins_a_tie_whatever_the_list_order() -> None:
    policy = CadencePolicy(steps=[step(N, "assigned"), step(A, "assigned")])
    got = plan(hw(*WEEK), policy, "UTC", now=WEEK[0])
    assert pairs(got) == [(A, u(2024, 5, 6, 14))]


def test_negative_and_fractional_offsets() -> None:
    policy = CadencePolicy(
        steps=[step(A, "assigned", 1.5), step(N, "due", -36.25)], quiet_hours=NIGHT_ONLY
    )
    got = plan(hw(*WEEK), policy, "UTC", now=WEEK[0])
    assert pairs(got) == [(A, u(2024, 5, 6, 15, 30)), (N, u(2024, 5, 12, 1, 45))]


# -- closed assignments, bad zones ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "planned"),
    [
        (TaskStatus.requested, True),
        (TaskStatus.in_progress, True),
        (TaskStatus.completed, False),
        (TaskStatus.cancelled, False),
        (TaskStatus.failed, False),
        (TaskStatus.entered_in_error, False),
    ],
)
def test_only_open_assignments_are_planned(status: TaskStatus, planned: bool) -> None:
    got = plan(hw(*WEEK, status=status), CadencePolicy(), NY, now=WEEK[0])
    assert bool(got) is planned


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "../../etc/passwd", "EST5EDT/x"])
def test_unknown_time_zone_is_a_clear_error(tz: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        plan(hw(*WEEK), CadencePolicy(), tz, now=WEEK[0])
    with pytest.raises(ValueError, match="unknown time zone"):
        in_quiet_hours(WEEK[0], tz, DEFAULT_QUIET)
    with pytest.raises(ValueError, match="unknown time zone"):
        next_allowed(WEEK[0], tz, DEFAULT_QUIET)


# -- policy validation -----------------------------------------------------------------


def test_policy_from_yaml_shaped_data() -> None:
    policy = CadencePolicy.model_validate(
        {
            "steps": [
                {"name": "on_assign", "anchor": "assigned"},
                {"name": "near_due", "anchor": "due", "offset_hours": -12},
            ],
            "default_window_days": 14,
            "min_gap_hours": 6,
            "overrides": {"exposure": [{"name": "mid_window", "anchor": "midpoint"}]},
            "quiet_hours": {"start": "22:00", "end": "07:30"},
        }
    )
    assert policy.steps == [step(A, "assigned"), step(N, "due", -12)]
    assert policy.overrides == {"exposure": [step(M, "midpoint")]}
    assert policy.quiet_hours == QuietHours(start=time(22), end=time(7, 30))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "steps": [
                    {"name": "on_assign", "anchor": "assigned"},
                    {"name": "on_assign", "anchor": "due"},
                ]
            },
            "unique",
        ),
        (
            {
                "overrides": {
                    "x": [
                        {"name": "near_due", "anchor": "due"},
                        {"name": "near_due", "anchor": "due", "offset_hours": 1},
                    ]
                }
            },
            "override 'x'",
        ),
        ({"quiet_hours": {"start": "21:00", "end": "21:00"}}, "must differ"),
        ({"quiet_hours": {"start": 1260, "end": "08:00"}}, "in quotes"),  # YAML's 21:00
        ({"quiet_hours": {"start": "21:00+02:00"}}, "no UTC offset"),
        ({"quiet_hours": {"start": "25:00"}}, "time"),
        ({"quiet_hours": {"begin": "21:00"}}, "Extra inputs"),
        ({"steps": [{"name": "on_assign", "anchor": "assigned", "offset_hours": "nan"}]}, "finite"),
        (
            {"steps": [{"name": "on_assign", "anchor": "assigned", "offset_hours": float("inf")}]},
            "finite",
        ),
        (
            {"steps": [{"name": "on_assign", "anchor": "assigned", "offset_hours": 1e9}]},
            "less than or equal",
        ),
        ({"steps": [{"name": "someday", "anchor": "assigned"}]}, "on_assign"),
        ({"steps": [{"name": "on_assign", "anchor": "tomorrow"}]}, "'assigned'"),
        ({"steps": [{"name": "on_assign", "anchor": "assigned", "when": 1}]}, "Extra inputs"),
        ({"default_window_days": 0}, "greater than 0"),
        ({"default_window_days": float("nan")}, "finite"),
        ({"min_gap_hours": -1}, "greater than or equal"),
        ({"cadence": {}}, "Extra inputs"),
    ],
)
def test_invalid_policy_rejected(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CadencePolicy.model_validate(data)


def test_quiet_hours_direct_construction_rejects_equal_bounds() -> None:
    with pytest.raises(ValidationError, match="must differ"):
        QuietHours(start=time(8), end=time(8))


def test_policy_is_immutable() -> None:
    policy = CadencePolicy()
    with pytest.raises(ValidationError):
        policy.min_gap_hours = 1  # type: ignore[misc]


# -- invariants at random --------------------------------------------------------------

ZONES = [
    "UTC",
    NY,
    "America/Los_Angeles",
    "America/St_Johns",
    "America/Santiago",
    "Europe/London",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]
ANCHORS = ["assigned", "midpoint", "due"]
# Near a DST change somewhere, so the random cases hit gaps and repeats often.
HOT_DAYS = [
    u(2024, 3, 10),
    u(2024, 11, 3),
    u(2024, 3, 31),
    u(2024, 10, 27),
    u(2024, 4, 7),
    u(2024, 9, 29),
    u(2024, 4, 6),
    u(2024, 9, 8),
    u(2024, 5, 15),
    u(2025, 1, 1),
]


def _random_instant(rng: random.Random) -> datetime:
    base = rng.choice(HOT_DAYS)
    return base + timedelta(minutes=rng.randrange(-3 * 24 * 60, 3 * 24 * 60))


def _random_time(rng: random.Random) -> time:
    # Half the time near 00:00-04:00, where DST changes put gaps and repeated hours.
    hour = rng.randrange(5) if rng.random() < 0.5 else rng.randrange(24)
    return time(hour, rng.choice([0, 0, 15, 30, 45, rng.randrange(60)]))


def _random_quiet(rng: random.Random) -> QuietHours:
    start = _random_time(rng)
    while True:
        end = _random_time(rng)
        if end != start:
            return QuietHours(start=start, end=end)


def _random_policy(rng: random.Random) -> CadencePolicy:
    names = rng.sample(list(Step), rng.randint(0, len(Step)))
    steps = [step(n, rng.choice(ANCHORS), rng.uniform(-72, 72)) for n in names]
    return CadencePolicy(
        steps=steps,
        min_gap_hours=rng.choice([0, 1, 12, rng.uniform(0, 48)]),
        default_window_days=rng.uniform(0.5, 21),
        quiet_hours=_random_quiet(rng),
    )


def test_planned_reminders_hold_their_invariants_at_random() -> None:
    rng = random.Random(20240310)
    for _ in range(1500):
        policy = _random_policy(rng)
        tz = rng.choice(ZONES)
        assigned = _random_instant(rng)
        due = None if rng.random() < 0.3 else assigned + timedelta(hours=rng.uniform(-12, 600))
        now = assigned + timedelta(hours=rng.uniform(-48, 700))
        status = rng.choice([TaskStatus.requested, TaskStatus.in_progress])
        got = plan(hw(assigned, due, status=status), policy, tz, now)
        context = (policy, tz, assigned, due, now, got)

        steps = [r.step for r in got]
        assert len(set(steps)) == len(steps), context
        assert [r.at for r in got] == sorted(r.at for r in got), context
        assert set(steps) <= {s.name for s in policy.steps}, context
        assert (A in steps) == (A in {s.name for s in policy.steps}), context
        for r in got:
            assert r.at.tzinfo is UTC, context
            assert r.at >= now, context
            assert not in_quiet_hours(r.at, tz, policy.quiet_hours), context
        gap = timedelta(hours=policy.min_gap_hours)
        for before, after in zip(got, got[1:], strict=False):
            if after.step != A:
                assert after.at - before.at >= gap, context


def test_next_allowed_is_the_first_allowed_minute_at_random() -> None:
    """Against a brute-force oracle: walk forward minute by minute until allowed."""
    rng = random.Random(7)
    for _ in range(600):
        tz = rng.choice(ZONES)
        quiet = _random_quiet(rng)
        instant = _random_instant(rng)
        got = next_allowed(instant, tz, quiet)
        expected = instant
        while in_quiet_hours(expected, tz, quiet):
            expected += timedelta(minutes=1)
        assert got == expected, (tz, quiet, instant)
        assert not in_quiet_hours(got, tz, quiet)


DST_ZONES = [
    NY,
    "Europe/London",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/St_Johns",
]


def _offset_changes_2024(tz: str) -> list[datetime]:
    """The hours of 2024 right after each UTC-offset change (the oracle's own scan)."""
    zone, hour, found = ZoneInfo(tz), u(2024, 1, 1), []
    offset = hour.astimezone(zone).utcoffset()
    while hour < u(2025, 1, 1):
        hour += timedelta(hours=1)
        if hour.astimezone(zone).utcoffset() != offset:
            offset = hour.astimezone(zone).utcoffset()
            found.append(hour)
    return found


def test_next_allowed_around_dst_changes_at_random() -> None:
    """Quiet bounds near the changed wall times, instants just before: gaps and repeats."""
    rng = random.Random(95)
    changes = {tz: _offset_changes_2024(tz) for tz in DST_ZONES}
    for _ in range(400):
        tz = rng.choice(DST_ZONES)
        change = rng.choice(changes[tz])
        wall = change.astimezone(ZoneInfo(tz))
        near = wall + timedelta(minutes=rng.randrange(-120, 120))
        other = time(rng.randrange(24), rng.choice([0, 30]))
        bound = time(near.hour, near.minute)
        if bound == other:
            continue
        quiet = (
            QuietHours(start=other, end=bound)
            if rng.random() < 0.7
            else QuietHours(start=bound, end=other)
        )
        instant = change - timedelta(minutes=rng.randrange(0, 14 * 60))
        got = next_allowed(instant, tz, quiet)
        expected = instant
        while in_quiet_hours(expected, tz, quiet):
            expected += timedelta(minutes=1)
        assert got == expected, (tz, quiet, instant)
