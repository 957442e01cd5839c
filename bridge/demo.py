"""``bridge demo``: the whole loop on embedded defaults, two simulated weeks in seconds.

A simulated EHR (the sandbox connector) holds three clinicians and their caseload. At
each weekly session a clinician assigns homework from the library, due at the next
session. Simulated clients answer the texts the way a real caseload does: about half
finish (some only after a nudge), some do part of it and say what got in the way, some
never answer, and one texts STOP. Every step runs through the bridge's real paths:
poll, plan, dispatch, reply handling, write-back. It ends with the practice scorecard.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import select

from bridge.channels.console import ConsoleChannel
from bridge.clock import ManualClock
from bridge.config import Settings, parse_settings
from bridge.domain import (
    AssignmentData,
    Barrier,
    ClinicianData,
    CompletionData,
    CompletionStatus,
    PatientData,
)
from bridge.reports import Scorecard, load_scorecard
from bridge.service import Bridge
from bridge.store.db import make_engine, session_scope, upgrade
from bridge.store.models import ConsentEvent, Patient

LIBRARY = {
    "thought_record": ("Thought record", 3, "3 times a week", "10 minutes"),
    "behavioural_activation": ("Plan one pleasant activity a day", 5, "daily", "20 minutes"),
    "exposure": ("Exposure practice from your ladder", 3, "3 times a week", "15 minutes"),
    "breathing": ("Paced breathing", 7, "twice a day", "5 minutes"),
    "mood_log": ("Mood log", 7, "every evening", "5 minutes"),
}
CLINICIANS = [("c1", "Dr. Ana Reyes"), ("c2", "Sam Patel, LCSW"), ("c3", "Jordan Lee, LMFT")]
ZONES = ["America/Chicago", "America/New_York", "America/Los_Angeles", "America/Denver"]
FIRST = [
    "Alex",
    "Blair",
    "Casey",
    "Devon",
    "Emery",
    "Finley",
    "Gray",
    "Harper",
    "Indy",
    "Jules",
    "Kai",
    "Lane",
    "Morgan",
    "Noel",
    "Oakley",
    "Parker",
    "Quinn",
    "Reese",
    "Sage",
    "Tatum",
    "Uma",
    "Vale",
    "Wren",
    "Yael",
]

# What a simulated client does with one assignment, and how often.
BEHAVIOURS = [
    ("prompt", 0.28),  # finishes soon after the first message, then rates it
    ("nudged", 0.24),  # finishes only after a reminder
    ("partial", 0.18),  # does part of it; says what got in the way in the portal
    ("not_yet", 0.08),  # says NOT YET and then goes quiet
    ("silent", 0.22),  # never answers
]

DEMO_CONFIG = """
practice:
  name: Riverside Counseling
  timezone: America/Chicago
  contact: "(312) 555-0100"
database:
  url: {url}
connectors:
  - name: ehr
    type: sandbox
    poll_interval_seconds: 300
channels:
  sms: console
"""


@dataclass
class Pending:
    at: datetime
    kind: str  # sms | portal
    phone: str = ""
    text: str = ""
    assignment: str = ""
    completion: CompletionData | None = None


@dataclass
class Simulation:
    """The simulated practice: its EHR's users and its clients' phones."""

    rng: random.Random
    bridge: Bridge
    clock: ManualClock
    channel: ConsoleChannel
    plans: dict[str, str] = field(default_factory=dict)  # assignment id -> behaviour
    answered: set[str] = field(default_factory=set)
    by_phone: dict[str, list[str]] = field(default_factory=dict)  # phone -> assignment ids
    stopper: str = ""
    queue: list[Pending] = field(default_factory=list)
    seen: int = 0
    replies: Counter = field(default_factory=Counter)
    sids: int = 0

    @property
    def ehr(self):
        return self.bridge.connectors["ehr"]

    def react(self) -> None:
        """Clients read the texts that arrived since the last step and plan their answers."""
        new = self.channel.sent[self.seen :]
        self.seen = len(self.channel.sent)
        for message in new:
            if message.to == self.stopper:
                self.queue.append(
                    Pending(self.clock.now() + timedelta(minutes=20), "sms", message.to, "STOP")
                )
                self.stopper = ""  # one STOP is enough
                continue
            step = self._step_of(message.reminder_id)
            for ext in self.by_phone.get(message.to, []):
                behaviour = self.plans.get(ext)
                if behaviour is None or ext in self.answered:
                    continue
                self._answer(ext, behaviour, step, message.to)

    def _step_of(self, reminder_id: int) -> str:
        from bridge.store.models import Reminder

        with session_scope(self.bridge.engine) as session:
            row = session.get(Reminder, reminder_id)
            return row.step if row else ""

    def _answer(self, ext: str, behaviour: str, step: str, phone: str) -> None:
        later = lambda lo, hi: self.clock.now() + timedelta(minutes=self.rng.randint(lo, hi))  # noqa: E731
        if behaviour == "prompt" and step == "on_assign":
            at = later(60, 26 * 60)
            self.queue.append(Pending(at, "sms", phone, self.rng.choice(["DONE", "Done!", "done"])))
            self.queue.append(
                Pending(at + timedelta(minutes=3), "sms", phone, str(self.rng.choice([3, 4, 4, 5])))
            )
        elif behaviour == "nudged" and step in ("mid_window", "near_due"):
            if step == "near_due" or self.rng.random() < 0.6:
                at = later(20, 180)
                self.queue.append(Pending(at, "sms", phone, "DONE"))
                self.queue.append(
                    Pending(
                        at + timedelta(minutes=2), "sms", phone, str(self.rng.choice([2, 3, 4]))
                    )
                )
                self.answered.add(ext)
        elif behaviour == "partial" and step == "near_due":
            a = self.ehr.assignments[ext]
            barriers = tuple(self.rng.sample(list(Barrier)[:5], k=self.rng.randint(1, 2)))
            done = self.rng.randint(1, max(1, (a.repetitions or 3) - 1))
            self.queue.append(
                Pending(
                    later(30, 240),
                    "portal",
                    assignment=ext,
                    completion=CompletionData(
                        status=CompletionStatus.partial,
                        source="portal",
                        reported_at=self.clock.now(),
                        quantity=done,
                        quality=self.rng.randint(2, 4),
                        barriers=barriers,
                    ),
                )
            )
            self.answered.add(ext)
        elif behaviour == "not_yet" and step == "mid_window":
            self.queue.append(Pending(later(30, 300), "sms", phone, "not yet"))
            self.answered.add(ext)
        if behaviour == "prompt" and step == "on_assign":
            self.answered.add(ext)

    def deliver_due_replies(self) -> None:
        from bridge.capture import handle_inbound_sms

        now = self.clock.now()
        due = [p for p in self.queue if p.at <= now]
        self.queue = [p for p in self.queue if p.at > now]
        for p in sorted(due, key=lambda p: p.at):
            if p.kind == "portal":
                assert p.completion is not None
                completion = CompletionData(**{**p.completion.__dict__, "reported_at": now})
                self.ehr.report_in_portal(p.assignment, completion)
                self.replies["portal"] += 1
                continue
            self.sids += 1
            with session_scope(self.bridge.engine) as session:
                handle_inbound_sms(
                    session,
                    sender=p.phone,
                    body=p.text,
                    message_sid=f"SMDEMO{self.sids:06d}",
                    settings=self.bridge.settings,
                    renderer=self.bridge.renderer,
                    now=now,
                )
            self.replies[p.text.upper().strip("!")] += 1


def _behaviour(rng: random.Random) -> str:
    roll, acc = rng.random(), 0.0
    for name, share in BEHAVIOURS:
        acc += share
        if roll < acc:
            return name
    return BEHAVIOURS[-1][0]


def demo_settings(db_url: str) -> Settings:
    return parse_settings(DEMO_CONFIG.format(url=db_url), source="demo config", env={})


@dataclass(frozen=True)
class DemoResult:
    scorecard: Scorecard
    behaviours: dict[str, str]
    messages: int
    replies: dict[str, int]
    notes: int
    sent_log: list  # (reminder id, phone, at)
    stop_phone: str
    stop_at: datetime | None
    db_url: str


def run_demo(
    *,
    seed: int = 7,
    clients: int = 20,
    days: int = 14,
    step_minutes: int = 15,
    db_url: str | None = None,
    progress=None,
) -> DemoResult:
    rng = random.Random(seed)
    workdir = None
    if db_url is None:
        workdir = tempfile.mkdtemp(prefix="bridge-demo-")
        db_url = f"sqlite:///{Path(workdir) / 'demo.db'}"
    settings = demo_settings(db_url)
    practice_tz = ZoneInfo(settings.practice.timezone)
    start_local = datetime(2026, 3, 2, 8, 0, tzinfo=practice_tz)  # a Monday, 08:00 at the practice
    clock = ManualClock(start_local)
    engine = make_engine(db_url)
    upgrade(engine)
    channel = ConsoleChannel()
    bridge = Bridge(settings, clock=clock, engine=engine, channel=channel, worker_id="demo")
    sim = Simulation(rng=rng, bridge=bridge, clock=clock, channel=channel)
    ehr = sim.ehr

    for ext, name in CLINICIANS:
        ehr.add_clinician(ClinicianData(ext, name))
    sessions: list[tuple[datetime, str, str]] = []  # (start, patient, clinician)
    for i in range(clients):
        ext = f"p{i + 1:02d}"
        spanish = i % 7 == 3
        phone = f"+1312555{1000 + i:04d}"
        ehr.add_patient(
            PatientData(
                ext,
                f"{FIRST[i % len(FIRST)]} Demo",
                phone=phone,
                language="es" if spanish else "en",
                timezone=ZONES[i % len(ZONES)],
            )
        )
        weekday, hour = rng.randint(0, 4), rng.choice([9, 10, 11, 13, 14, 15, 16, 17])
        first = datetime.combine(
            start_local.date() + timedelta(days=weekday), time(hour), tzinfo=practice_tz
        )
        clinician = CLINICIANS[i % len(CLINICIANS)][0]
        sessions += [(first + timedelta(weeks=w), ext, clinician) for w in range(3)]
        sim.by_phone[phone] = []
    sim.stopper = f"+1312555{1000 + clients // 2:04d}"
    stop_phone = sim.stopper
    sessions.sort()
    codes = sorted(LIBRARY)
    end = clock.now() + timedelta(days=days)
    steps = int((end - clock.now()) / timedelta(minutes=step_minutes))
    counter = 0
    for n in range(steps):
        now = clock.advance(timedelta(minutes=step_minutes))
        # clinicians assign homework at each session that has started, due at the next one
        while sessions and sessions[0][0] <= now:
            started, patient, clinician = sessions.pop(0)
            nxt = started + timedelta(weeks=1)
            counter += 1
            code = rng.choice(codes)
            title, reps, freq, duration = LIBRARY[code]
            ext = f"hw-{counter:03d}"
            ehr.assign(
                AssignmentData(
                    external_id=ext,
                    patient_external_id=patient,
                    clinician_external_id=clinician,
                    type_code=code,
                    title=title,
                    assigned_at=started + timedelta(minutes=50),
                    due_at=nxt,
                    instructions=f"{title}: {duration}, {freq}.",
                    repetitions=reps,
                    frequency=freq,
                    duration=duration,
                    success_criteria="Bring what you wrote to the next session.",
                )
            )
            sim.plans[ext] = _behaviour(rng)
            phone = ehr.patients[patient].phone
            sim.by_phone[phone].append(ext)
        bridge.poll("ehr")
        bridge.dispatch()
        sim.react()
        sim.deliver_due_replies()
        bridge.write_back()
        if progress is not None:
            progress(
                n + 1, steps, now, len(channel.sent), sum(sim.replies.values()), len(ehr.notes)
            )

    with session_scope(engine) as session:
        card = load_scorecard(session)
        stop_at = session.exec(
            select(ConsentEvent.at)
            .join(Patient, Patient.id == ConsentEvent.patient_id)
            .where(Patient.phone_e164 == stop_phone, ConsentEvent.opted_in.is_(False))
        ).first()
    sent_log = list(channel.sent)
    result = DemoResult(
        card,
        dict(sim.plans),
        len(channel.sent),
        dict(sim.replies),
        len(ehr.notes),
        sent_log,
        stop_phone,
        stop_at,
        db_url,
    )
    bridge.close()
    return result
